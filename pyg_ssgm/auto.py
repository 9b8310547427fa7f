r"""``--preset auto``: no preset to pick by hand. The candidates are trained on the user's data and
the one with the best validation F1 is kept.

Each candidate is the default settings or a shipped preset (:data:`CANDIDATES`), under the user's
own settings, which always win: the data, the folder, the epochs if given, every ``--set``. Each
is trained in its own sub-folder, then chooses its settings of inference on the validation split
(:mod:`pyg_ssgm.tuning`; the presets' own inference settings are where that search starts), and
is scored there. Candidates are tried in order until ``budget_s`` seconds have passed: a
candidate starts only while time is left, so the budget may be exceeded by one training at most,
and the default always runs. The best candidate's files (checkpoint, metrics, config, test
results) are copied to the run folder itself, so that it reads like any run; ``auto.json``
lists every candidate with its validation figures and the time it took.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .config import Settings, merge, split_sections
from .data import KeypointInstance
from .errors import ConfigError
from .files import prepare_output_dir, write_text_atomic
from .presets import preset

#: Candidates in the order they are tried: ``None`` the default settings, else a preset's name.
#: Cheapest first, so that a budget cuts the dear ones: ``willow_geometry`` pseudo-labels real
#: training pairs every epoch (on CUB, 16 min an epoch against 2 for ``cub`` on 2 shared CPU cores).
#: A preset that computes image features joins only where the user asks for image features (a
#: ``features`` section with a backbone): which input the model sees is the user's choice.
CANDIDATES: Tuple[Optional[str], ...] = (None, "cub", "willow_geometry", "willow_images")

#: The files of the chosen candidate copied to the run folder.
RUN_FILES = ("checkpoint.pt", "metrics.csv", "config.json", "test_results.json")


def _candidate_values(name: Optional[str], values: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The preset's sections under the user's ``values``; its inference settings become the start
    of the search on validation."""
    base = split_sections(preset(name)) if name else split_sections({})
    merged = merge(base, split_sections(values))
    merged["inference"]["choose_on_validation"] = True
    return merged


def _validation_f1(trainer) -> float:
    """The validation F1 of the trainer's predictor: the chosen row of its inference choice, or
    the last epoch's validation."""
    if trainer.choice:
        return [row for row in trainer.choice if row["kept"]][-1]["val_f1"]
    from .metrics_log import read_metrics

    rows = [r for r in read_metrics(trainer.out_dir) or [] if r.get("val_f1") is not None and r["val_f1"] == r["val_f1"]]
    return rows[-1]["val_f1"] if rows else float("nan")


def train_auto(values: Optional[Mapping[str, Any]] = None,
               splits: Optional[Mapping[str, List[KeypointInstance]]] = None, budget_s: float = 3600.0,
               candidates: Sequence[Optional[str]] = CANDIDATES, overwrite: bool = False, progress: bool = True,
               echo=print):
    """Train the candidates (see the module docstring) on ``values`` (the user's settings, flat or
    in sections, as a config file holds them) and ``splits`` (your own data, as for
    :func:`pyg_ssgm.trainer.train`), keep the one of best validation F1. Returns ``(trainer,
    test_results, table)``: the chosen candidate's trainer and results, and one row per candidate
    tried."""
    from .trainer import check_run_folder, train

    values = split_sections(values or {})
    if "choose_on_validation" in values["inference"] and not values["inference"]["choose_on_validation"]:
        raise ConfigError("--preset auto chooses the settings of inference on validation: drop "
                          "choose_on_validation=false, or pick a preset yourself.")
    out = Path(Settings.from_dict(values).train.output_dir)
    check_run_folder(out, overwrite=overwrite)
    prepare_output_dir(out)
    start, table, runs = time.perf_counter(), [], {}
    for name in candidates:
        label = name or "default"
        if table and time.perf_counter() - start > budget_s:
            table.append({"candidate": label, "skipped": f"the budget of {budget_s:.0f} s was spent"})
            continue
        settings = Settings.from_dict(_candidate_values(name, {**values, "train": {**values["train"],
                                                                                    "output_dir": str(out / label)}}))
        if settings.features is not None and not values["features"].get("backbone"):
            table.append({"candidate": label, "skipped": "it computes image features, which were not asked for"})
            continue
        began = time.perf_counter()
        trainer, results = train(settings, splits=splits, overwrite=overwrite, progress=progress)
        row = {"candidate": label, "val_f1": _validation_f1(trainer), "seconds": time.perf_counter() - began,
               "inference": results.get("inference")}
        table.append(row)
        runs[label] = (trainer, results)
        if echo is not None:
            echo(f"auto: {label}: validation F1 {row['val_f1']:.4f} ({row['seconds']:.0f} s)")
    tried = [row for row in table if "val_f1" in row]
    best = max(tried, key=lambda row: row["val_f1"] if row["val_f1"] == row["val_f1"] else -1.0)
    for row in table:
        row["chosen"] = row is best
    trainer, results = runs[best["candidate"]]
    for name in RUN_FILES:
        if (trainer.out_dir / name).exists():
            shutil.copy2(trainer.out_dir / name, out / name)
    write_text_atomic(out / "auto.json", json.dumps({"budget_s": budget_s, "wall_s": time.perf_counter() - start,
                                                     "chosen": best["candidate"], "candidates": table}, indent=2))
    if echo is not None:
        # the margin says how much the choice rests on: a few thousandths is within a small split's noise
        others = [row for row in tried if row is not best and row["val_f1"] == row["val_f1"]]
        runner_up = max(others, key=lambda row: row["val_f1"]) if others else None
        margin = (f", {best['val_f1'] - runner_up['val_f1']:+.4f} over {runner_up['candidate']}"
                  if runner_up is not None else "")
        echo(f"auto: chose {best['candidate']} (validation F1 {best['val_f1']:.4f}{margin}); its files are in {out}, "
             f"every candidate's in its sub-folder, the table in {out / 'auto.json'}")
    return trainer, results, table


__all__ = ["CANDIDATES", "train_auto"]
