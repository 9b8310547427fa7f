"""The guarantees of docs/guarantees.md: bad input, interruption and untrusted files.

Each test feeds one class of bad input through the public API or the command lines and checks
the named error of :mod:`pyg_ssgm.errors` (through the CLI too: ``_fail`` is spied on), a message
that says what to fix, and that no file already on disk was changed. Everything is tiny:
synthetic data, one or two epochs, a 16-wide model.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import runpy
import shutil
import struct
import sys
import warnings
import zlib
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import pyg_ssgm.cli.common as cli
import pyg_ssgm.evaluation as evaluate_module
import pyg_ssgm.trainer as trainer_module
from conftest import make_trainer, tiny_settings
from fixtures_native import make_cub, make_pascal_voc, make_spair, make_willow
from pyg_ssgm.baselines import ClassicalMatcher
from pyg_ssgm.checkpoint import load_checkpoint, load_tensors, save_checkpoint
from pyg_ssgm.cli.evaluate import evaluate_command
from pyg_ssgm.cli.train import train_command
from pyg_ssgm.config import InferenceConfig, LossConfig, ModelConfig, Settings, TrainConfig
from pyg_ssgm.data import GeometricAugmentation, KeypointInstance, PairGenerator, RealPairs, make_pair, pair_loader
from pyg_ssgm.data.image_features import load_instance_image
from pyg_ssgm.data.readers import load_dataset, read_cub, read_pascal_voc, read_spair, read_spair_json
from pyg_ssgm.data.synthetic import SyntheticConfig
from pyg_ssgm.errors import (CheckpointError, ConfigError, InvalidInputError, MalformedAnnotationError,
                             MetricsLogError, OutputPathError)
from pyg_ssgm.evaluation import evaluate_matching, format_results
from pyg_ssgm.experiment import check_splits, load_model
from pyg_ssgm.feature_cache import image_identity, image_key, view_seed, view_seed_key
from pyg_ssgm.features import FeatureConfig, attach_features, build_backbone, with_image_features
from pyg_ssgm.files import atomic_write
from pyg_ssgm.metrics import MatchingReport
from pyg_ssgm.metrics_log import read_metrics
from pyg_ssgm.presets import preset
from pyg_ssgm.threads import apply_thread_policy, usable_cores
from pyg_ssgm.trainer import train

PACKAGE = Path(__file__).resolve().parents[1] / "pyg_ssgm"
TIMING_COLUMNS = {"pairs_per_s"}  # wall-clock columns of metrics.csv


# --------------------------------------------------------------------------- helpers


class _Payload:
    """Unpickling this creates ``marker``: proof that a file ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` (TensorBoard's append-only event files aside) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "tensorboard" not in p.parts}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def failures(monkeypatch):
    """The exceptions the command lines report (``cli.common.fail``), to check their named type."""
    seen, fail = [], cli.fail

    def spy(error):
        seen.append(error)
        fail(error)

    monkeypatch.setattr(cli, "fail", spy)
    return seen


def assert_refused(result, failures=None, error=None, *mentions):
    """Exit status 2, no traceback, ``mentions`` in the message, and (for errors of ours) the type."""
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.exception!r}\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for text in mentions:
        assert text in result.output, f"{text!r} not in {result.output!r}"
    if error is not None:
        assert len(failures) == 1 and isinstance(failures[0], error), failures


def write_config(path: Path, settings) -> str:
    path.write_text(json.dumps(settings))
    return str(path)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished one-epoch run (config, checkpoint, metrics.csv...); tests work on copies."""
    base = tmp_path_factory.mktemp("trained")
    config = write_config(base / "tiny.json", tiny_settings(base / "run"))
    result = CliRunner().invoke(train_command, ["--config", config, "--no-progress"])
    assert result.exit_code == 0, result.output
    return base / "run"


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """``(run folder, its --config file)``: a private copy of the trained run."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    return run, write_config(tmp_path / "tiny.json", tiny_settings(run))


# --------------------------------------------------------------------------- untrusted files


def _hostile_npz(path: Path, marker: Path) -> None:
    """A split file in the published format (object arrays of names) with a code payload inside."""
    names = np.empty(2, dtype=object)
    names[0] = np.array(["aeroplane/2008_000001_1.xml"], dtype=object)
    names[1] = _Payload(marker)
    np.savez(path, train=names, test=names)


def test_hostile_npz_split_file_runs_no_code(tmp_path):
    good = make_pascal_voc(tmp_path / "good", with_images=False)
    assert read_pascal_voc(good, "train")  # the genuine split (object arrays) is still read

    probe = tmp_path / "probe_ran"  # the payload is live: numpy's pickle loading runs it
    _hostile_npz(tmp_path / "probe.npz", probe)
    with np.load(tmp_path / "probe.npz", allow_pickle=True) as f:
        f["train"]
    assert probe.exists()

    root = make_pascal_voc(tmp_path / "voc", with_images=False)
    marker = tmp_path / "code_ran"
    _hostile_npz(root / "voc2011_pairs.npz", marker)
    for read in (lambda: read_pascal_voc(root, "train"), lambda: load_dataset("pascal_voc", root, "test")):
        with pytest.raises(MalformedAnnotationError, match="voc2011_pairs.npz") as info:
            read()
        assert "Path.touch" in str(info.value) or "refused" in str(info.value)
    assert not marker.exists(), "reading a split file executed pickled code"


UNSAFE_LOADS = [r"allow_pickle\s*=\s*True", r"\bpickle\.loads?\(", r"\byaml\.load\(", r"\byaml\.unsafe_load\(",
                r"\btorch\.load\((?![^)]*weights_only=True)"]


def test_package_source_has_no_unsafe_loads():
    offenders = [f"{path.relative_to(PACKAGE)}: {pattern}" for path in PACKAGE.rglob("*.py")
                 for pattern in UNSAFE_LOADS if re.search(pattern, path.read_text())]
    assert not offenders, offenders


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_malicious_or_corrupt_checkpoint_is_refused_without_unsafe_advice(runner, failures, run_copy, tmp_path):
    run, config = run_copy
    marker = tmp_path / "code_ran"
    evil, corrupt = tmp_path / "evil.pt", tmp_path / "corrupt.pt"
    torch.save({"format_version": 1, "model": {}, "payload": _Payload(marker)}, evil)
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    for path in (evil, corrupt):
        for load in (load_checkpoint, lambda p: load_tensors(p, what="VGG16 weights")):
            with pytest.raises(CheckpointError) as info:
                load(path)
            assert "weights_only" not in str(info.value)
            assert info.value.__cause__ is None and info.value.__suppress_context__  # torch's advice hidden
    result = runner.invoke(evaluate_command, ["--checkpoint", str(evil)])
    assert_refused(result, failures, CheckpointError)
    assert "weights_only" not in result.output

    shutil.copy(evil, run / "checkpoint.pt")  # --resume reads it too
    before = snapshot(run)
    failures.clear()
    result = runner.invoke(train_command, ["--config", config, "--resume", "--no-progress"])
    assert_refused(result, failures, CheckpointError)
    assert "weights_only" not in result.output and snapshot(run) == before
    assert not marker.exists()


def _damage(state):
    """Checkpoints with the format version but missing, mistyped or unknown entries, what the
    error must mention, and which readers need that entry (evaluation ignores the optimiser)."""
    weight = next(k for k, v in state["model"].items() if v.dim() == 2)
    both, evaluation, resume = ("evaluate", "resume"), ("evaluate",), ("resume",)
    yield "missing-entry", {k: v for k, v in state.items() if k != "model_config"}, "model_config", both
    yield "wrong-type", {**state, "model_config": "sixteen wide"}, "model_config", both
    yield "wrong-epoch", {**state, "epoch": "one"}, "epoch", resume
    yield "unknown-model-key", {**state, "model_config": {**state["model_config"], "bogus": 1}}, "bogus", evaluation
    yield "unknown-train-key", {**state, "train_config": {**state["train_config"], "bogus": 1}}, "bogus", evaluation
    yield "size-mismatch", {**state, "model": {**state["model"], weight: torch.zeros(3, 3)}}, weight, both


def test_damaged_checkpoint_entries_are_named(runner, failures, run_copy, tmp_path):
    run, config = run_copy
    state = load_checkpoint(run / "checkpoint.pt")
    state.pop("format_version")
    for name, damaged, mention, readers in _damage(state):
        path = save_checkpoint(damaged, tmp_path / name / "checkpoint.pt")
        if "evaluate" in readers:
            failures.clear()
            assert_refused(runner.invoke(evaluate_command, ["--checkpoint", str(path)]), failures, CheckpointError,
                           mention)
            if name != "unknown-train-key":  # the model alone is rebuilt by load_model
                with pytest.raises(CheckpointError, match=re.escape(mention)):
                    load_model(path)
        if "resume" in readers:
            with pytest.raises(CheckpointError, match=re.escape(mention)):
                make_trainer(path.parent).fit(resume=True)


def test_checkpoints_of_format_1_are_still_read(run_copy, tmp_path):
    """Format 1 kept the loss and inference settings in ``model_config``: such a checkpoint still
    evaluates to the same predictions and resumes, its settings sorted into their sections."""
    run, _ = run_copy
    state = load_checkpoint(run / "checkpoint.pt")
    old = {k: v for k, v in state.items() if k not in ("loss_config", "inference_config")}
    old.update(format_version=1, model_config={**state["model_config"], **state["loss_config"],
                                               **state["inference_config"]})
    torch.save(old, run / "checkpoint.pt")
    predictor, settings = load_model(run / "checkpoint.pt")
    current, _ = load_model(save_checkpoint({k: v for k, v in state.items() if k != "format_version"},
                                            tmp_path / "current.pt"))
    assert predictor.config == current.config and settings.loss.to_dict() == state["loss_config"]
    batch = next(iter(pair_loader(RealPairs(make_trainer(tmp_path / "x").splits["test"]), 4)))
    assert all(torch.equal(a, b) for a, b in zip(predictor(batch), current(batch)))
    make_trainer(run, epochs=2).fit(resume=True)
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 2


def test_a_stored_choice_of_a_pool_without_the_re_matching_still_loads(run_copy):
    """Before the config refused it, the choice could keep the pool after switching the epipolar
    re-matching off (it did nothing): such a checkpoint loads, with the pool off."""
    run, _ = run_copy
    state = load_checkpoint(run / "checkpoint.pt")
    state["chosen_inference"] = {**state["chosen_inference"], "epipolar": False, "epipolar_pool": True}
    torch.save(state, run / "checkpoint.pt")
    predictor, _ = load_model(run / "checkpoint.pt")
    assert predictor.config.epipolar_pool is False and predictor.config.epipolar is False


def test_evaluation_needs_no_optimiser_state(runner, run_copy, tmp_path):
    run, _ = run_copy
    state = load_checkpoint(run / "checkpoint.pt")
    model_only = {k: state[k] for k in ("model", "model_config", "train_config", "synthetic_config")}
    path = save_checkpoint(model_only, tmp_path / "model_only.pt")
    result = runner.invoke(evaluate_command, ["--checkpoint", str(path), "--max-pairs-per-category", "1"])
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- interruption


@pytest.mark.parametrize("interrupted_epoch", [1, 2])
def test_ctrl_c_during_validation_then_resume_keeps_every_row(tmp_path, monkeypatch, interrupted_epoch):
    dropout = {"dropout": 0.1}  # dropout draws from the RNG: the resumed run must draw the same
    straight = make_trainer(tmp_path / "a", model=dropout, epochs=2)
    straight.fit()

    run = make_trainer(tmp_path / "b", model=dropout, epochs=2)
    completion, calls = trainer_module.completion_quality, [0]

    def ctrl_c_inside_validation(*args, **kwargs):  # after the matching part of validation ran
        calls[0] += 1
        if calls[0] == interrupted_epoch:
            raise KeyboardInterrupt
        return completion(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "completion_quality", ctrl_c_inside_validation)
    with pytest.raises(KeyboardInterrupt):
        run.fit()
    monkeypatch.undo()
    rows = read_metrics(tmp_path / "b")
    assert rows[-1]["epoch"] == interrupted_epoch and "train_loss" in rows[-1]  # training half already there

    resumed = make_trainer(tmp_path / "b", model=dropout, epochs=2)
    resumed.fit(resume=True)
    rows_a, rows_b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert [r["epoch"] for r in rows_b] == [1, 2]
    for ra, rb in zip(rows_a, rows_b):
        assert set(ra) == set(rb), "a validation column is missing after the resume"
        for key in set(ra) - TIMING_COLUMNS:
            assert rb[key] == pytest.approx(ra[key], rel=1e-6, abs=1e-9, nan_ok=True), (ra["epoch"], key)
    for key, value in straight.model.state_dict().items():  # and the run went on exactly
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_writes_are_atomic_and_stale_temporaries_are_removed(tmp_path, run_copy):
    path = tmp_path / "ckpt" / "checkpoint.pt"
    save_checkpoint({"epoch": 1}, path)
    stale = [path.parent / f".checkpoint.pt.killed{i}.tmp" for i in range(3)]
    for p in stale:
        p.write_bytes(b"\0" * 1000)
    unrelated = path.parent / "notes.tmp"
    unrelated.write_text("not ours")
    save_checkpoint({"epoch": 2}, path)
    assert not any(p.exists() for p in stale) and unrelated.exists()

    def dies_midway(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, dies_midway)
    assert load_checkpoint(path)["epoch"] == 2  # the old file, whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt", "notes.tmp"]

    run, _ = run_copy  # a run cleans the temporaries that killed saves left in its folder
    (run / ".checkpoint.pt.killed.tmp").write_bytes(b"\0" * 1000)
    make_trainer(run, epochs=2).fit(resume=True)
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- resume settings


@pytest.mark.parametrize("args,change", [
    (["--seed", "7"], "train.seed: 0 -> 7"),
    (["--set", "synthetic.num_train=10"], "synthetic.num_train: 6 -> 10"),
    (["--hidden-channels", "8"], "model.hidden_channels: 16 -> 8"),
    (["--lr", "0.01"], "train.lr: 0.002 -> 0.01"),
    (["--set", "drop_rate=0.1"], "train.drop_rate: 0.2 -> 0.1"),  # stored: the drop the tiny data gave
])
def test_resume_refuses_settings_that_change_the_run(runner, failures, run_copy, args, change):
    run, config = run_copy
    before = snapshot(run)
    result = runner.invoke(train_command, ["--config", config, "--resume", "--epochs", "2", "--no-progress", *args])
    assert_refused(result, failures, ConfigError, change, "--output-dir")
    assert snapshot(run) == before  # config.json, checkpoint and metrics.csv untouched


def test_resume_allows_settings_that_cannot_change_the_run(runner, failures, run_copy):
    run, config = run_copy
    harmless = ["--epochs", "2", "--device", "cpu", "--set", "num_workers=0", "--set", "eval_every=1"]
    result = runner.invoke(train_command, ["--config", config, "--resume", "--no-progress", *harmless])
    assert result.exit_code == 0, result.output
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2]
    # the way the refusal message suggests: the run's own config.json
    result = runner.invoke(train_command, ["--config", str(run / "config.json"), "--resume", "--epochs", "3",
                                           "--no-progress"])
    assert result.exit_code == 0, result.output
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2, 3]
    before = snapshot(run)
    assert_refused(runner.invoke(train_command, ["--config", config, "--resume", "--epochs", "2"]), failures,
                   ConfigError, "cannot shorten")
    assert snapshot(run) == before


def test_resume_of_a_run_saved_before_a_setting_existed(runner, failures, run_copy):
    """A run saved before ``pseudo_ratio``, ``outlier_region`` and ``intact_rate`` existed trained
    as ``INTRODUCED`` says: the outlier region and the intact pairs it used are today's defaults, so
    only the ratio differs, and the refusal names the ``--set`` that restores it (its config.json
    lacks the key too)."""
    run, _ = run_copy
    state = load_checkpoint(run / "checkpoint.pt")
    config = json.loads((run / "config.json").read_text())
    for stored in (state["train_config"], config["train"]):
        del stored["pseudo_ratio"], stored["outlier_region"], stored["intact_rate"]
    save_checkpoint(state, run / "checkpoint.pt")
    (run / "config.json").write_text(json.dumps(config))
    own = ["--config", str(run / "config.json"), "--output-dir", str(run), "--resume", "--epochs", "2", "--no-progress"]
    before = snapshot(run)
    result = runner.invoke(train_command, own)
    assert_refused(result, failures, ConfigError, "train.pseudo_ratio: None -> 1.0", "--set train.pseudo_ratio=null")
    assert "outlier_region" not in result.output and "intact_rate" not in result.output
    assert snapshot(run) == before
    result = runner.invoke(train_command, [*own, "--set", "train.pseudo_ratio=null"])
    assert result.exit_code == 0, result.output
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2]


def test_a_run_saved_before_a_setting_existed_loads_as_it_ran(run_copy):
    """Settings added since a run was saved load with the value that does what the run did
    (``INTRODUCED``), in its settings and in its stored choice, not with today's defaults."""
    run, _ = run_copy
    predictor, settings = load_model(run / "checkpoint.pt")
    assert predictor.config.count_per_pair and settings.inference.count_per_pair  # today's default
    state = load_checkpoint(run / "checkpoint.pt")
    for stored in (state["inference_config"], state.get("chosen_inference") or {}):
        for key in ("count_per_pair", "keypoint_prior"):
            stored.pop(key, None)
    save_checkpoint(state, run / "checkpoint.pt")
    predictor, settings = load_model(run / "checkpoint.pt")
    for config in (predictor.config, settings.inference):
        assert config.count_per_pair is False and config.keypoint_prior == 0.0


# --------------------------------------------------------------------------- silent wrong results


def test_make_pair_refuses_instances_of_different_categories():
    names = [f"kp{i}" for i in range(4)]  # Willow names every category's points kp0..kp9
    car = KeypointInstance(torch.rand(4, 2) * 100, names, category="Car")
    duck = KeypointInstance(torch.rand(4, 2) * 100, names, category="Duck")
    with pytest.raises(InvalidInputError, match="different categories"):
        make_pair(car, duck)
    assert make_pair(car, duck, allow_different_categories=True).y.size(1) == 4  # on request only
    assert make_pair(car, car).y.size(1) == 4


FLOAT_FIELDS = [(cls, f.name) for cls in (TrainConfig, ModelConfig, LossConfig, InferenceConfig, SyntheticConfig,
                                          PairGenerator, GeometricAugmentation)
                for f in fields(cls) if f.type == "float"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("cls,name", FLOAT_FIELDS, ids=[f"{c.__name__}.{n}" for c, n in FLOAT_FIELDS])
def test_non_finite_float_settings_are_refused(cls, name, value):
    with pytest.raises(ConfigError, match=name):
        cls(**{name: value})


BAD_INSTANCES = {
    "pos-string": dict(pos="abc"),
    "pos-ragged": dict(pos=[[0.0, 1.0], [2.0]]),
    "pos-text": dict(pos=[[0.0, "a"], [1.0, 2.0]]),
    "pos-complex": dict(pos=np.array([[1 + 2j, 0], [3, 4]])),
    "pos-bool": dict(pos=[[True, False], [False, True]]),
    "pos-huge": dict(pos=[[1e20, 0.0], [0.0, 1.0]]),
    "pos-collapses-in-float32": dict(pos=np.array([[1e12, 0.0], [1e12 + 0.1, 0.0]])),
    "names-string": dict(names="ab"),
    "names-unhashable": dict(names=[["a"], "b"]),
    "x-string": dict(x="ab"),
    "x-complex": dict(x=np.ones((2, 3), dtype=complex)),
}


@pytest.mark.parametrize("bad", BAD_INSTANCES.values(), ids=BAD_INSTANCES.keys())
def test_keypoint_instance_refuses_coercions(bad):
    with pytest.raises(InvalidInputError):
        KeypointInstance(**{"pos": [[0.0, 0.0], [1.0, 1.0]], "names": ["a", "b"], **bad})


def test_pair_generator_and_augmentation_refuse_wrong_types():
    with pytest.raises(ConfigError, match="drop_rate"):
        PairGenerator(drop_rate="0.5")
    with pytest.raises(ConfigError, match="rotation"):
        GeometricAugmentation(rotation="30")


def test_evaluation_counts_must_be_positive(tiny_data):
    for bad in (0, -2):
        with pytest.raises(InvalidInputError, match="max_pairs_per_category"):
            evaluate_matching(lambda batch: [], tiny_data.test, max_pairs_per_category=bad)
    with pytest.raises(InvalidInputError, match="batch_size"):
        pair_loader(RealPairs(tiny_data.test), batch_size=0)


@pytest.mark.parametrize("args,mention", [
    (["--max-pairs-per-category", "-2"], "--max-pairs-per-category"),
    (["--max-pairs-per-category", "0"], "--max-pairs-per-category"),
    (["--batch-size", "0"], "--batch-size"),
])
def test_evaluate_refuses_bad_counts_before_any_work(runner, tmp_path, args, mention):
    out = tmp_path / "results.json"
    result = runner.invoke(evaluate_command, ["--solver", "hungarian", "--output", str(out), *args])
    assert_refused(result, None, None, mention)
    assert "RealPairs" not in result.output and not out.exists()


# --------------------------------------------------------------------------- named errors


@pytest.mark.parametrize("args,mention", [
    (["--set", "weight_decay=-1"], "weight_decay"),
    (["--set", "grad_clip=NaN"], "grad_clip"),
    (["--set", "temperature=Infinity"], "temperature"),
    (["--set", "jitter=NaN"], "jitter"),
    (["--set", 'drop_rate="0.5"'], "drop_rate"),
    (["--seed", str(2 ** 64)], "seed"),
    (["--seed", "-1"], "seed"),
    (["--device", "foo"], "device"),
    (["--output-dir", ""], "output_dir"),
])
def test_bad_train_settings_are_named_errors(runner, failures, tmp_path, monkeypatch, args, mention):
    config = write_config(tmp_path / "tiny.json", tiny_settings(tmp_path / "out"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = runner.invoke(train_command, ["--config", config, "--no-progress", *args])
    assert_refused(result, failures, ConfigError, mention)
    assert not list(cwd.iterdir())  # nothing written, not even into the current folder
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name,content,mention", [
    ("latin1.yaml", "epochs: 1  # caf\xe9\n".encode("latin-1"), "UTF-8"),
    ("section.yaml", b"model: 5\n", "'model' section must be a mapping"),
    ("section.json", b'{"train": [1, 2]}', "'train' section must be a mapping"),
])
def test_config_file_problems_are_named_errors(runner, failures, tmp_path, name, content, mention):
    path = tmp_path / name
    path.write_bytes(content)
    result = runner.invoke(train_command, ["--config", str(path), "--no-progress"])
    assert_refused(result, failures, ConfigError, mention)
    assert "unknown setting" not in result.output


def test_output_paths_are_checked_before_any_work(runner, failures, tmp_path, monkeypatch):
    config = write_config(tmp_path / "tiny.json", tiny_settings(tmp_path / "unused"))
    a_file = tmp_path / "a_file"
    a_file.write_text("precious")
    for output_dir in (a_file, a_file / "run"):
        failures.clear()
        result = runner.invoke(train_command, ["--config", config, "--output-dir", str(output_dir), "--no-progress"])
        assert_refused(result, failures, OutputPathError, str(a_file))
    with pytest.raises(OutputPathError):
        make_trainer(a_file).fit()
    assert a_file.read_text() == "precious"

    monkeypatch.setattr(evaluate_module, "evaluate_matching", lambda *a, **k: pytest.fail("evaluation ran"))
    for output in (tmp_path, a_file / "results.json"):
        failures.clear()
        result = runner.invoke(evaluate_command, ["--solver", "hungarian", "--output", str(output)])
        assert_refused(result, failures, OutputPathError, str(output))
    assert a_file.read_text() == "precious"


def test_corrupt_metrics_csv_on_resume_is_a_named_error(runner, failures, run_copy):
    run, config = run_copy
    for garbage in (b"\xff\xfe\x00garbage", b"epoch,train_loss\n1,abc\n", b"epoch,train_loss\n1,2,3\n"):
        (run / "metrics.csv").write_bytes(garbage)
        before = snapshot(run)
        with pytest.raises(MetricsLogError, match="metrics.csv"):
            read_metrics(run)
        failures.clear()
        result = runner.invoke(train_command, ["--config", config, "--resume", "--epochs", "2", "--no-progress"])
        assert_refused(result, failures, MetricsLogError, "metrics.csv")
        assert snapshot(run) == before  # the log and the checkpoint as they were


def test_reader_problems_are_named_errors(tmp_path):
    cub = make_cub(tmp_path / "cub", with_images=False)
    parts = cub / "CUB_200_2011" / "parts" / "parts.txt"
    parts.write_bytes(parts.read_bytes().replace(b"left eye", b"left \xe9il"))  # latin-1, not UTF-8
    with pytest.raises(MalformedAnnotationError, match="parts.txt.*UTF-8"):
        read_cub(cub)

    spair = make_spair(tmp_path / "spair", with_images=False) / "SPair-71k"
    layout = spair / "Layout" / "large" / "trn.txt"
    layout.write_bytes(b"\xff" + layout.read_bytes())
    with pytest.raises(MalformedAnnotationError, match="trn.txt.*UTF-8"):
        read_spair(spair, "train")
    annotation = next((spair / "ImageAnnotation").rglob("*.json"))
    annotation.write_bytes(b'{"kps": "\xff"}')
    with pytest.raises(MalformedAnnotationError, match="UTF-8"):
        read_spair_json(annotation)
    annotation.write_text("[" * 200_000 + "]" * 200_000)  # RecursionError in json
    with pytest.raises(MalformedAnnotationError, match="nested"):
        read_spair_json(annotation)


# --------------------------------------------------------------------------- hostile cases (issue 23)


def _bmp(path: Path, seed: int, size=(40, 48)) -> str:
    """An uncompressed picture: new pixels of the same size give a file of the same size."""
    from PIL import Image

    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return str(path)


def _cache_case(tmp_path, **cfg):
    """Two instances on 48 x 40 picture files, and random-weight features cached under ``tmp_path``."""
    pytest.importorskip("PIL")
    insts = [KeypointInstance(torch.tensor([[4.0, 5.0], [30.0, 20.0], [12.0, 33.0]]) + i, ["a", "b", "c"],
                              image=_bmp(tmp_path / f"{i}.bmp", i), id=f"img{i}") for i in range(2)]
    options = dict(weights="random", stages=("stage3",), image_size=32, num_views=1, cache_dir=str(tmp_path / "cache"))
    return insts, FeatureConfig(**{**options, **cfg})


def _features(insts, cfg):
    return attach_features(insts, cfg, "toy", progress=False)


def _bomb_png(path: Path, width: int, height: int) -> Path:
    """A PNG of a few dozen bytes whose header declares ``width x height`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def _geometry_instances(count: int, names, category: str = "object", seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [KeypointInstance(torch.rand(len(names), 2, generator=gen) * 100, list(names), category=category,
                             id=f"{category}{seed}_{i}") for i in range(count)]


def _own_settings(output_dir, **train_options) -> Settings:
    """The tiny settings for a run on one's own splits (no synthetic section)."""
    values = tiny_settings(output_dir, **train_options)
    values.pop("synthetic")
    return Settings.from_dict(values)


def test_feature_cache_verifies_what_it_serves(tmp_path):
    insts, cfg = _cache_case(tmp_path)
    truth = _features(insts, cfg)
    folder = next(cfg.cache_path().iterdir())
    orig = sorted(folder.glob("*-orig.pt"))
    assert len(orig) == 2 and len(list(folder.glob("*.pt"))) == 4
    first, second = (next(p for p in orig if p.name.startswith(image_key(inst, i, "toy", False)))
                     for i, inst in enumerate(insts))

    def served():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = _features(insts, cfg)
        return out, [str(w.message) for w in caught if "cached image-feature" in str(w.message)]

    # 1. tensor bytes changed inside a well-formed file (its zip CRC is wrong; torch does not check it)
    data = first.read_bytes()
    x_bytes = truth[0].x.to(torch.float32).numpy().tobytes()
    at = data.index(x_bytes[:16])
    first.write_bytes(data[:at] + bytes(16) + data[at + 16:])
    # 2. a well-formed entry of zeros planted under the right name (with or without a digest)
    torch.save({"x": torch.zeros_like(truth[1].x), "sha256": "0" * 64}, second)
    out, warned = served()
    assert torch.equal(out[0].x, truth[0].x) and torch.equal(out[1].x, truth[1].x)  # recomputed, not served
    assert warned and "2 cached image-feature file(s)" in warned[0]
    out, warned = served()
    assert not warned  # and written back whole

    # 3. new pixels, same file size, modification time restored: another image
    path = Path(insts[0].image)
    stat = path.stat()
    _bmp(path, seed=99)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    changed = _features(insts, cfg)
    fresh = _features(insts, dataclasses.replace(cfg, cache_dir=str(tmp_path / "fresh")))
    assert not torch.equal(changed[0].x, truth[0].x) and torch.equal(changed[0].x, fresh[0].x)
    assert torch.equal(changed[1].x, truth[1].x)

    # 4. temporaries of killed writes: removed once old enough to be nobody's write in progress
    old, young = folder / f".{first.name}.killed.tmp", folder / f".{second.name}.inflight.tmp"
    for p in (old, young):
        p.write_bytes(b"half a tensor")
    os.utime(old, (0, 0))
    _features(insts, cfg)
    assert not old.exists() and young.exists()


def test_feature_values_and_views_do_not_depend_on_the_cache_format(tmp_path):
    """Only the cache's keys changed: the values are those computed without any cache, and the
    views are still seeded from the image's path, size and mtime (as they were)."""
    insts, cfg = _cache_case(tmp_path, batch_size=1)  # one image per backbone call, as below
    out = _features(insts, cfg)
    loaded = load_instance_image(insts[0], cfg.image_size, False)
    net = build_backbone(cfg)
    with torch.no_grad():
        x = net(loaded.image[None], loaded.pos, torch.zeros(3, dtype=torch.long))
        gen = torch.Generator().manual_seed(view_seed(view_seed_key(insts[0], 0, "toy", False), cfg.seed, 0))
        view = cfg.view.sample(32, 32, loaded.pos, gen)
        x_v = net(view.apply_image(loaded.image)[None], view.apply_points(loaded.pos), torch.zeros(3, dtype=torch.long))
    assert torch.equal(out[0].x, x) and torch.equal(out[0].extra["views"][0][1], x_v)
    assert image_identity(insts[0])[0] == "file" and str(Path(insts[0].image).resolve()) in image_identity(insts[0])


def test_decompression_bomb_is_a_named_error(runner, failures, tmp_path, monkeypatch):
    insts, cfg = _cache_case(tmp_path)
    for size in ((20000, 20000), (10000, 10000)):  # beyond Pillow's error limit; between its warning and error
        bomb = _bomb_png(tmp_path / f"bomb{size[0]}.png", *size)
        assert bomb.stat().st_size < 100
        with pytest.raises(InvalidInputError, match=r"bomb\d+\.png.*too large to decode safely") as info:
            _features([insts[0], dataclasses.replace(insts[1], image=str(bomb))], cfg)
        assert "img1" in str(info.value) and "MAX_IMAGE_PIXELS" in str(info.value)

    root = make_willow(tmp_path / "willow")
    _bomb_png(next((root / "WILLOW-ObjectClass" / "Car").glob("*.png")), 20000, 20000)
    monkeypatch.setenv("PYG_SSGM_CACHE", str(tmp_path / "cache"))
    result = runner.invoke(train_command, ["--dataset", "willow", "--root", str(root), "--features",
                                           "efficientnet_lite0", "--backbone-weights", "random", "--set",
                                           "features.image_size=32", "--epochs", "1", "--output-dir",
                                           str(tmp_path / "run"), "--no-progress"])
    assert_refused(result, failures, InvalidInputError, "too large to decode safely")


def test_keypoints_far_outside_the_image_are_refused(tmp_path):
    insts, cfg = _cache_case(tmp_path)  # 48 x 40 pictures
    far = dataclasses.replace(insts[1], pos=torch.tensor([[4.0, 5.0], [1e6, 20.0], [12.0, 33.0]]))
    with pytest.raises(InvalidInputError, match=r"keypoint 'b' \(#1\) of instance 'img1' is at \(1e\+06, 20\)"):
        _features([insts[0], far], cfg)
    # a little outside (within 10 % of the side) takes the border's feature, as documented
    near = dataclasses.replace(insts[1], pos=torch.tensor([[-2.0, 5.0], [50.0, 20.0], [12.0, 43.0]]))
    assert _features([near], cfg)[0].x.shape == (3, cfg.out_channels)


def test_backbone_options_without_a_backbone_are_refused(runner, failures, tmp_path):
    with pytest.raises(ConfigError, match="without a backbone.*--features efficientnet_lite0"):
        Settings.from_dict({"features": {"weights": "my_weights.pt"}})
    config = write_config(tmp_path / "tiny.json", tiny_settings(tmp_path / "run"))
    result = runner.invoke(train_command, ["--config", config, "--backbone-weights", "w.pt", "--no-progress"])
    assert_refused(result, failures, ConfigError, "--features efficientnet_lite0")
    assert not (tmp_path / "run").exists()
    # what stays: backbone none is off (whatever else the section holds), a named backbone is on
    assert Settings.from_dict({"features": {"backbone": "none"}}).features is None
    assert Settings.from_dict({"features": {"backbone": "none", "weights": "w.pt"}}).features is None
    assert Settings.from_dict(preset("willow_images")).features.backbone == "efficientnet_lite0"
    assert Settings.from_dict({"features": {"backbone": "vgg16", "weights": "w.pt"}}).features.weights == "w.pt"


def test_threads_above_the_usable_cores_are_capped_with_a_note(runner, tmp_path, capsys):
    before, cores = torch.get_num_threads(), usable_cores()
    try:
        assert apply_thread_policy(1000) == cores and torch.get_num_threads() == cores
        assert f"threads=1000 asks for more threads than the {cores} cores" in capsys.readouterr().err
        assert apply_thread_policy(cores) == cores and "note" not in capsys.readouterr().err  # as given
        assert make_trainer(tmp_path / "run", threads=1000).experiment.threads == cores  # TrainConfig.threads
        result = runner.invoke(evaluate_command, ["--solver", "hungarian", "--threads", "1000",
                                                  "--max-pairs-per-category", "1"])
        assert result.exit_code == 0 and f"using {cores}" in result.output
    finally:
        torch.set_num_threads(before)


def test_completion_ceiling_refuses_an_unknown_preset_as_usage(monkeypatch, capsys):
    script = PACKAGE.parent / "benchmarks" / "completion_ceiling.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--preset", "nope"])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(script), run_name="__main__")
    err = capsys.readouterr().err
    assert info.value.code == 2 and "invalid choice: 'nope'" in err and "Traceback" not in err


def test_names_of_different_types_are_refused(tmp_path):
    pos = torch.rand(4, 2) * 100
    ints = KeypointInstance(pos, [0, 1, 2, 3], id="a")
    strs = KeypointInstance(pos, ["0", "1", "2", "3"], id="b")
    with pytest.raises(InvalidInputError, match=r"'a' are int but those of the target instance 'b' are str"):
        make_pair(ints, strs)
    assert make_pair(ints, KeypointInstance(pos, [np.int64(i) for i in range(4)])).y.size(1) == 4  # one type
    assert make_pair(strs, KeypointInstance(pos, ["0", None, "2", "x"])).y.size(1) == 2
    splits = {"train": [strs, strs], "test": [strs, ints]}
    with pytest.raises(InvalidInputError, match=r"splits\['test'\]\[1\]"):
        check_splits(splits)
    settings = Settings.from_dict(tiny_settings(tmp_path / "run"))
    with pytest.raises(InvalidInputError, match="names match only when equal"):
        train(settings, splits, progress=False)  # before any work
    assert not (tmp_path / "run").exists()
    # names are compared within a category only: another category may name its parts otherwise
    check_splits({"train": [ints], "test": [KeypointInstance(pos, ["a", "b", "c", "d"], category="other"), ints]})


def test_training_without_test_pairs_trains_validates_and_says_so(tmp_path):
    names = [f"k{j}" for j in range(6)]
    train_split, val = _geometry_instances(6, names), _geometry_instances(3, names, seed=1)
    for k, test in enumerate(([], None, _geometry_instances(1, names, seed=2))):
        splits = {"train": train_split, "val": val, **({} if test is None else {"test": test})}
        run = tmp_path / f"run{k}"
        _, results = train(_own_settings(run, epochs=2), splits, progress=False)
        assert set(results) - {"inference", "inference_choice"} == {"not_tested"}
        assert "test split" in results["not_tested"]
        assert [r["epoch"] for r in read_metrics(run)] == [1, 2] and all("val_f1" in r for r in read_metrics(run))
        assert json.loads((run / "test_results.json").read_text()) == results
        assert format_results(results).startswith("Nothing was tested: the test split")


def test_node_features_of_different_widths_are_refused_before_any_work(tmp_path):
    names = [f"k{j}" for j in range(5)]
    plain = _geometry_instances(4, names)
    wide = [dataclasses.replace(inst, x=torch.rand(5, 8)) for inst in plain]
    for splits, mention in (
        ({"train": wide[:3] + [dataclasses.replace(plain[3], x=torch.rand(5, 3))], "test": wide}, "x of width 3"),
        ({"train": wide, "test": wide[:1] + plain[1:2]}, r"splits\['test'\]\[1\] \('object0_1'\) has no x"),
    ):
        with pytest.raises(InvalidInputError, match=mention):
            train(_own_settings(tmp_path / "run"), splits, progress=False)
        assert not (tmp_path / "run").exists()


def test_a_new_run_never_replaces_an_existing_one_without_asking(runner, failures, run_copy, tmp_path):
    run, config = run_copy
    before = snapshot(run)
    result = runner.invoke(train_command, ["--config", config, "--no-progress"])
    assert_refused(result, failures, OutputPathError, "already holds a run", "--resume", "--output-dir", "--overwrite")
    settings = _own_settings(run)
    with pytest.raises(OutputPathError, match="checkpoint.pt, metrics.csv, config.json"):
        train(settings, {"train": _geometry_instances(3, "abcd")}, progress=False)
    with pytest.raises(OutputPathError):
        make_trainer(run).fit()
    with pytest.raises(ConfigError, match="give one of them"):
        make_trainer(run).fit(resume=True, overwrite=True)
    assert snapshot(run) == before
    own = tmp_path / "mine"  # a folder holding only the user's own config.json is not replaced either
    own.mkdir()
    (own / "config.json").write_text("{}")
    with pytest.raises(OutputPathError, match="config.json"):
        make_trainer(own).fit()
    assert (own / "config.json").read_text() == "{}"

    (run / "notes.txt").write_text("kept")  # asked: the old run's files go, the user's others stay
    make_trainer(run, epochs=1, seed=1).fit(overwrite=True)
    assert [r["epoch"] for r in read_metrics(run)] == [1] and (run / "notes.txt").read_text() == "kept"
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 1


def test_intersection_pairs_without_a_common_keypoint_are_skipped_and_counted(tmp_path):
    a, b, c = (KeypointInstance(torch.rand(4, 2) * 100, list(names), id=i)
               for i, names in (("a", "abcd"), ("b", "efgh"), ("c", "abch")))
    for predict in (ClassicalMatcher("hungarian"), None):
        if predict is None:  # the trainer's own test pass, after all epochs
            _, results = train(_own_settings(tmp_path / "run", test_pairs_per_category=None),
                               {"train": _geometry_instances(4, "abcdefgh"), "test": [a, b, c]}, progress=False)
        else:
            results = evaluate_matching(predict, [a, b, c])
        inter, unf = results["intersection"], results["unfiltered"]
        assert (inter.skipped, inter.mean.num_pairs, unf.skipped, unf.mean.num_pairs) == (1, 2, 0, 3)
        assert "1 of 3 pairs skipped: no keypoint in common" in format_results(results)
    assert json.loads((tmp_path / "run" / "test_results.json").read_text())["intersection"]["skipped"] == 1
    nothing = evaluate_matching(ClassicalMatcher("hungarian"), [a, b])["intersection"]
    assert nothing.skipped == 1 and nothing.mean.num_pairs == 0 and nothing.mean.recall != nothing.mean.recall
    assert isinstance(nothing, MatchingReport) and "no pair to score" in str(nothing)


def test_progress_bars_count_pairs_and_images_in_one_unit(tmp_path, capsys, tiny_data):
    evaluate_matching(ClassicalMatcher("hungarian"), tiny_data.test, batch_size=2, desc="test pairs")
    err = capsys.readouterr().err
    pairs = len(RealPairs(tiny_data.test))  # 3 instances of each of 2 classes: 6 pairs, in 3 batches
    for setting in ("unfiltered", "intersection"):
        totals = set(re.findall(rf"test pairs, {setting}:.*?\d+/(\d+)", err))
        assert totals == {str(pairs)}, (setting, totals)
    assert "pair/s" in err and "s/pair" not in err

    make_trainer(tmp_path / "run").fit()  # no bar without progress
    assert "val pairs" not in capsys.readouterr().err
    trainer = make_trainer(tmp_path / "run2")
    trainer.progress = True
    trainer.fit()
    assert "val pairs, unfiltered" in capsys.readouterr().err

    insts, cfg = _cache_case(tmp_path)
    more = [dataclasses.replace(inst, pos=inst.pos + 2) for inst in insts]  # two more images to compute
    with_image_features({"train": insts, "val": more[:1], "test": more[1:]}, cfg, "toy")
    err = capsys.readouterr().err
    assert set(re.findall(r"image features:.*?\d+/(\d+)", err)) == {"4"}  # one bar over every split's images
    assert "img/s" in err and "s/img" not in err


# --------------------------------------------------------------------------- structure


def _imports(path: Path) -> set:
    """Absolute names of the pyg_ssgm modules ``path`` imports, at any depth of its code."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = ".".join(parts[:-1])  # what a relative import starts from, for __init__.py too
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            names |= {target} | {f"{target}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return {n.removesuffix(".__init__") for n in names if n.startswith("pyg_ssgm")}


#: The command lines and the entry shims above them; nothing else may import them.
ENTRY_POINTS = {"pyg_ssgm/train.py", "pyg_ssgm/evaluate.py", "pyg_ssgm/benchmark.py", "pyg_ssgm/__main__.py"}
#: Imports flow data -> nn / matching / features -> config -> model -> evaluation -> experiment -> trainer ->
#: benchmarking -> cli: each layer may not import those above it.
_ORDER = ["pyg_ssgm.data", "pyg_ssgm.nn", "pyg_ssgm.config", "pyg_ssgm.model", "pyg_ssgm.evaluation",
          "pyg_ssgm.experiment", "pyg_ssgm.trainer", "pyg_ssgm.benchmarking"]
LAYERS = {layer: tuple(_ORDER[k + 1:]) for k, layer in enumerate(_ORDER)}
LAYERS["pyg_ssgm.data"] += ("pyg_ssgm.nn", "pyg_ssgm.matching", "pyg_ssgm.features")
LAYERS["pyg_ssgm.matching"] = LAYERS["pyg_ssgm.nn"]
LAYERS["pyg_ssgm.features"] = LAYERS["pyg_ssgm.nn"]


def test_imports_flow_one_way():
    problems = []
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE.parent))
        imported = _imports(path)
        if rel not in ENTRY_POINTS and not rel.startswith("pyg_ssgm/cli/"):
            problems += [f"{rel} imports {n}" for n in imported
                         if n.startswith("pyg_ssgm.cli") or n in ("pyg_ssgm.train", "pyg_ssgm.evaluate",
                                                                   "pyg_ssgm.benchmark", "pyg_ssgm.__main__")]
        module = rel[:-3].replace("/", ".")
        for layer, above in LAYERS.items():
            if module == layer or module.startswith(layer + "."):
                problems += [f"{rel} imports {n}" for n in imported if n.startswith(above)]
    assert not problems, problems


def test_console_scripts_resolve():
    import importlib

    scripts = re.findall(r'"ssgm-[\w-]+=([\w.]+):(\w+)"', (PACKAGE.parent / "setup.py").read_text())
    assert len(scripts) >= 2
    for module, function in scripts:
        assert callable(getattr(importlib.import_module(module), function)), (module, function)
