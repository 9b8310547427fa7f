"""The guarantees of docs/guarantees.md: bad input, interruption and untrusted files.

Each test feeds one class of bad input through the public API or the command lines and checks
the named error of :mod:`pyg_ssgm.errors` (through the CLI too: ``_fail`` is spied on), a message
that says what to fix, and that no file already on disk was changed. Everything is tiny:
synthetic data, one or two epochs, a 16-wide model.
"""
from __future__ import annotations

import ast
import json
import re
import shutil
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
from fixtures_native import make_cub, make_pascal_voc, make_spair
from pyg_ssgm.checkpoint import load_checkpoint, load_tensors, save_checkpoint
from pyg_ssgm.cli.evaluate import evaluate_command
from pyg_ssgm.cli.train import train_command
from pyg_ssgm.config import InferenceConfig, LossConfig, ModelConfig, TrainConfig
from pyg_ssgm.data import GeometricAugmentation, KeypointInstance, PairGenerator, RealPairs, make_pair, pair_loader
from pyg_ssgm.data.readers import load_dataset, read_cub, read_pascal_voc, read_spair, read_spair_json
from pyg_ssgm.data.synthetic import SyntheticConfig
from pyg_ssgm.errors import (CheckpointError, ConfigError, InvalidInputError, MalformedAnnotationError,
                             MetricsLogError, OutputPathError)
from pyg_ssgm.evaluation import evaluate_matching
from pyg_ssgm.experiment import load_model
from pyg_ssgm.files import atomic_write
from pyg_ssgm.metrics_log import read_metrics

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
    assert settings.inference == current.config and settings.loss.to_dict() == state["loss_config"]
    batch = next(iter(pair_loader(RealPairs(make_trainer(tmp_path / "x").splits["test"]), 4)))
    assert all(torch.equal(a, b) for a, b in zip(predictor(batch), current(batch)))
    make_trainer(run, epochs=2).fit(resume=True)
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 2


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
def test_bad_train_settings_are_named_errors(runner, failures, tmp_path, args, mention):
    config = write_config(tmp_path / "tiny.json", tiny_settings(tmp_path / "out"))
    with runner.isolated_filesystem(temp_dir=tmp_path) as cwd:
        result = runner.invoke(train_command, ["--config", config, "--no-progress", *args])
        assert_refused(result, failures, ConfigError, mention)
        assert not list(Path(cwd).iterdir())  # nothing written, not even into the current folder
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
