"""``--preset auto`` (:mod:`pyg_ssgm.auto`): candidates trained on the user's data, the best one on
validation kept, within a time budget."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import tiny_settings
from pyg_ssgm.auto import train_auto
from pyg_ssgm.checkpoint import load_checkpoint
from pyg_ssgm.cli.train import train_command
from pyg_ssgm.errors import ConfigError


def test_auto_keeps_the_candidate_of_best_validation_f1(tmp_path):
    values = tiny_settings(tmp_path / "run", epochs=1)
    lines = []
    trainer, results, table = train_auto(values, candidates=(None, "willow_geometry"), progress=False,
                                         echo=lines.append)
    tried = {row["candidate"]: row for row in table}
    assert set(tried) == {"default", "willow_geometry"}
    best = max(tried.values(), key=lambda row: row["val_f1"])
    assert best["chosen"] and sum(row["chosen"] for row in table) == 1
    # the printout says how much the choice rests on: the margin over the runner-up
    other = next(row for row in table if row is not best)
    assert f"{best['val_f1'] - other['val_f1']:+.4f} over {other['candidate']})" in lines[-1]
    assert trainer.out_dir == tmp_path / "run" / best["candidate"]
    # the user's settings win over the preset's, and the chosen run's files are the run's own
    assert trainer.settings.train.epochs == 1 and trainer.settings.model.hidden_channels == 16
    saved = json.loads((tmp_path / "run" / "auto.json").read_text())
    assert saved["chosen"] == best["candidate"] and len(saved["candidates"]) == 2
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["train_config"]["output_dir"] == str(trainer.out_dir)
    assert json.loads((tmp_path / "run" / "test_results.json").read_text())["unfiltered"]["mean"]["f1"] == \
        results["unfiltered"].mean.f1
    # every candidate chose its inference on validation, the preset's values only its start
    assert all(row["inference"]["choose_on_validation"] is False for row in table)


def test_auto_stops_starting_candidates_when_the_budget_is_spent(tmp_path):
    values = tiny_settings(tmp_path / "run", epochs=1)
    _, _, table = train_auto(values, candidates=(None, "willow_geometry", "cub"), budget_s=0.0, progress=False,
                             echo=None)
    assert [row["candidate"] for row in table if "val_f1" in row] == ["default"]  # the default always runs
    assert all("budget" in row["skipped"] for row in table[1:])


def test_auto_refuses_pinned_inference_and_resume(tmp_path):
    values = tiny_settings(tmp_path / "run", epochs=1)
    values["inference"] = {"choose_on_validation": False}
    with pytest.raises(ConfigError, match="choose_on_validation"):
        train_auto(values, progress=False, echo=None)
    result = CliRunner().invoke(train_command, ["--preset", "auto", "--resume", "--output-dir", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--resume" in result.output


def test_candidates_are_tried_cheapest_first():
    """A budget must cut the dear candidate: ``willow_geometry`` pseudo-labels real pairs every
    epoch (8 times a ``cub`` epoch on CUB), so it comes after ``cub``; the default always first."""
    from pyg_ssgm.auto import CANDIDATES

    assert CANDIDATES[0] is None and CANDIDATES.index("cub") < CANDIDATES.index("willow_geometry")
