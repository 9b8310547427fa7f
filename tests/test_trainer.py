"""Tests of the training loop: exact resume (after an epoch and mid-epoch), checkpoints,
metrics.csv, supervised mode, the epoch sampler and data-parallel training under torchrun."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import make_trainer, tiny_settings
from pyg_ssgm import Settings, build
from pyg_ssgm.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from pyg_ssgm.data.datasets import EpochSampler, LabelledPairs
from pyg_ssgm.errors import CheckpointError, ConfigError
from pyg_ssgm.metrics_log import read_metrics
from pyg_ssgm.trainer import Trainer

# Columns of metrics.csv that depend on wall-clock time, not on the computation.
TIMING_COLUMNS = {"pairs_per_s"}


def assert_same_state(a: Trainer, b: Trainer) -> None:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"model tensors differ after resume: {different}"
    oa, ob = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert oa.keys() == ob.keys()
    for k in oa:
        for name, value in oa[k].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(ob[k][name])), f"optimizer {k}.{name}"
    assert (a.epoch, a.step) == (b.epoch, b.step)


def assert_same_metrics(dir_a, dir_b, epochs=None) -> None:
    rows_a, rows_b = read_metrics(dir_a), read_metrics(dir_b)
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b):
        if epochs is not None and ra["epoch"] not in epochs:
            continue
        keys = set(ra) - TIMING_COLUMNS
        assert keys == set(rb) - TIMING_COLUMNS
        for k in keys:
            assert ra[k] == pytest.approx(rb[k], rel=1e-6, abs=1e-9, nan_ok=True), f"epoch {ra['epoch']}: {k}"


def interrupt_at(trainer: Trainer, monkeypatch, stop: int) -> None:
    """Make the ``stop``-th training forward (0-based, counted over the whole run) raise
    KeyboardInterrupt, as a Ctrl-C in the middle of an epoch would."""
    forward, calls = trainer.model.forward, [0]

    def patched(*args, **kwargs):
        if kwargs.get("inference") is None and len(args) < 2:  # a training forward, not a prediction
            if calls[0] == stop:
                raise KeyboardInterrupt
            calls[0] += 1
        return forward(*args, **kwargs)

    monkeypatch.setattr(trainer.model, "forward", patched)


# --------------------------------------------------------------------------- resume


def test_resume_after_an_epoch_equals_an_uninterrupted_run(tmp_path):
    straight = make_trainer(tmp_path / "a", epochs=2)
    results_a = straight.fit()

    first = make_trainer(tmp_path / "b", epochs=1)
    first.fit()
    assert load_checkpoint(first.checkpoint_path)["epoch"] == 1
    resumed = make_trainer(tmp_path / "b", epochs=2)
    results_b = resumed.fit(resume=True)

    assert_same_state(straight, resumed)
    assert_same_metrics(tmp_path / "a", tmp_path / "b")
    assert [r["epoch"] for r in read_metrics(tmp_path / "b")] == [1, 2]
    assert results_a["unfiltered"].mean.f1 == results_b["unfiltered"].mean.f1
    assert json.loads((tmp_path / "a" / "test_results.json").read_text()) == \
        json.loads((tmp_path / "b" / "test_results.json").read_text())


# 12 training instances and as many pseudo-labelled real pairs, batch 4: 6 steps per epoch.
# Interrupt at step 1 of epoch 1 and at step 2 of epoch 2.
@pytest.mark.parametrize("epoch,step", [(0, 1), (1, 2)], ids=["epoch1-step1", "epoch2-step2"])
def test_resume_after_an_interruption_mid_epoch_equals_an_uninterrupted_run(tmp_path, monkeypatch, epoch, step):
    straight = make_trainer(tmp_path / "a", epochs=2)
    straight.fit()
    steps = len(straight.loader)
    assert steps == 6  # the pseudo-labelled pairs are part of the run that is resumed
    stop = epoch * steps + step

    interrupted = make_trainer(tmp_path / "b", epochs=2)
    interrupt_at(interrupted, monkeypatch, stop)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    state = load_checkpoint(interrupted.checkpoint_path)
    assert (state["epoch"], state["step"]) == (epoch, step)
    assert not (tmp_path / "b" / "test_results.json").exists()
    monkeypatch.undo()

    resumed = make_trainer(tmp_path / "b", epochs=2)
    resumed.fit(resume=True)
    assert_same_state(straight, resumed)
    # epochs finished before the interruption keep their row
    assert [r["epoch"] for r in read_metrics(tmp_path / "b")] == [1, 2]
    assert_same_metrics(tmp_path / "a", tmp_path / "b", epochs={e for e in (1, 2) if e <= epoch})


def test_mid_epoch_resume_is_exact_with_dropout(tmp_path, monkeypatch):
    model = {"dropout": 0.2}
    straight = make_trainer(tmp_path / "a", model=model, epochs=2)
    straight.fit()
    interrupted = make_trainer(tmp_path / "b", model=model, epochs=2)
    interrupt_at(interrupted, monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    monkeypatch.undo()
    resumed = make_trainer(tmp_path / "b", model=model, epochs=2)
    resumed.fit(resume=True)
    assert_same_state(straight, resumed)


def test_resume_after_an_epoch_is_exact_with_dropout(tmp_path):
    model = {"dropout": 0.2}
    straight = make_trainer(tmp_path / "a", model=model, epochs=2)
    straight.fit()
    make_trainer(tmp_path / "b", model=model, epochs=1).fit()
    resumed = make_trainer(tmp_path / "b", model=model, epochs=2)
    resumed.fit(resume=True)
    assert_same_state(straight, resumed)


def test_metrics_row_of_an_interrupted_epoch_covers_the_whole_epoch(tmp_path, monkeypatch):
    make_trainer(tmp_path / "a", epochs=1).fit()
    interrupted = make_trainer(tmp_path / "b", epochs=1)
    interrupt_at(interrupted, monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    monkeypatch.undo()
    make_trainer(tmp_path / "b", epochs=1).fit(resume=True)
    assert_same_metrics(tmp_path / "a", tmp_path / "b")


def test_resume_needs_a_checkpoint_and_the_same_model_config(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        make_trainer(tmp_path / "none").fit(resume=True)
    make_trainer(tmp_path / "run", epochs=1).fit()
    other = make_trainer(tmp_path / "run", model={"hidden_channels": 8}, epochs=2)
    with pytest.raises(ConfigError, match="model.hidden_channels: 16 -> 8"):
        other.fit(resume=True)


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "ckpt" / "checkpoint.pt"
    save_checkpoint({"model": {"w": torch.arange(3.0)}, "epoch": 1}, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]  # no temporary left
    state = load_checkpoint(path)
    assert state["format_version"] == FORMAT_VERSION and state["epoch"] == 1
    assert torch.equal(state["model"]["w"], torch.arange(3.0))

    # A crash while writing leaves the previous checkpoint intact and no temporary file.
    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"model": {"w": torch.zeros(3)}, "epoch": 2}, path)
    monkeypatch.undo()
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]
    assert load_checkpoint(path)["epoch"] == 1


def test_training_run_leaves_no_temporary_files(tmp_path):
    make_trainer(tmp_path, epochs=1).fit()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")], names
    assert {"checkpoint.pt", "metrics.csv", "config.json", "test_results.json"} <= set(names)


class _Payload:
    """Unpickling this would run code (creates a marker file): weights_only must refuse it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_checkpoint_loading_refuses_arbitrary_objects(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    torch.save({"format_version": FORMAT_VERSION, "model": {}, "payload": _Payload(marker)}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists(), "loading a checkpoint executed pickled code"

    with open(tmp_path / "plain.pkl", "wb") as f:  # a plain pickle, not a torch file
        pickle.dump(_Payload(marker), f)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "plain.pkl")
    assert not marker.exists()


def test_checkpoint_loading_errors_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "corrupt.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")  # a torch file, not ours
    with pytest.raises(CheckpointError, match="not a pyg_ssgm checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


# --------------------------------------------------------------------------- metrics, modes


def test_metrics_csv_has_one_row_per_epoch(tmp_path):
    trainer = make_trainer(tmp_path, epochs=3, eval_every=2)
    results = trainer.fit()
    rows = read_metrics(tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for row in rows:
        for key in ("train_loss", "train_match", "train_exist", "train_pos", "train_feat",
                    "train_oversmoothing", "pairs_per_s"):
            assert key in row and row[key] == row[key], f"{key} missing or NaN in {row}"
        assert -1.0 <= row["train_oversmoothing"] <= 1.0
    assert "val_f1" not in rows[0]  # eval_every=2: epoch 1 is not validated...
    for row in rows[1:]:  # ...epoch 2 is, and the last epoch always is
        assert 0.0 <= row["val_f1"] <= 1.0
        assert 0.0 <= row["val_count_acc"] <= 1.0
    assert 0.0 <= results["unfiltered"].mean.f1 <= 1.0
    saved = json.loads((tmp_path / "test_results.json").read_text())
    assert saved["unfiltered"]["mean"]["f1"] == results["unfiltered"].mean.f1
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["train"]["epochs"] == 3 and config["model"]["hidden_channels"] == 16


@pytest.mark.parametrize("matching_loss", ["sinkhorn", "hamming"])
def test_supervised_mode_runs(tmp_path, matching_loss):
    trainer = make_trainer(tmp_path, model={"matching_loss": matching_loss}, epochs=1, supervised=True)
    assert isinstance(trainer.experiment.pairs, LabelledPairs)
    results = trainer.fit()
    rows = read_metrics(tmp_path)
    assert len(rows) == 1 and rows[0]["train_loss"] == rows[0]["train_loss"]
    assert 0.0 <= results["unfiltered"].mean.f1 <= 1.0


def test_labelled_pairs_are_same_category_and_reproducible(tiny_data):
    ds = LabelledPairs(tiny_data.train, seed=3)
    ds.set_epoch(1)
    a = [ds[i] for i in range(len(ds))]
    b = [ds[i] for i in range(len(ds))]
    for p, q, inst in zip(a, b, tiny_data.train):
        assert p.category == inst.category
        assert torch.equal(p.y, q.y) and torch.equal(p.pos_t, q.pos_t)
        assert not torch.equal(p.pos_s, p.pos_t) or p.pos_s.shape != p.pos_t.shape  # another instance
        assert p.comp_pos_s.size(0) == p.num_nodes_t - p.y.size(1)  # target nodes without partner
        assert p.comp_pos_t.size(0) == p.num_nodes_s - p.y.size(1)
    with pytest.raises(ConfigError):
        LabelledPairs([tiny_data.train[0]])  # no second instance of any category


@pytest.mark.parametrize("size,world_size", [(12, 2), (13, 2), (10, 3), (5, 1)])
def test_epoch_sampler_shards_cover_the_dataset(size, world_size):
    shards = [list(EpochSampler(size, seed=7, rank=r, world_size=world_size)) for r in range(world_size)]
    per_rank = -(-size // world_size)
    assert all(len(s) == per_rank == len(EpochSampler(size, 7, r, world_size)) for r, s in enumerate(shards))
    everything = sorted(i for s in shards for i in s)
    assert set(everything) == set(range(size))  # every index, padding repeats a few
    assert len(everything) == per_rank * world_size
    again = EpochSampler(size, seed=7, rank=0, world_size=world_size)
    assert list(again) == shards[0]
    again.set_epoch(1)
    if size > 3:
        assert list(again) != shards[0]


def test_train_config_validation():
    from pyg_ssgm.config import TrainConfig

    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="dataset"):
        TrainConfig(dataset="imagenet")
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=0.0)
    with pytest.raises(ConfigError, match="mirror_rate"):
        TrainConfig(mirror_rate=-0.1)
    with pytest.raises(ConfigError, match="intact_rate"):
        TrainConfig(intact_rate=1.5)


def test_mirror_pairs_go_with_a_model_told_about_them(tmp_path):
    """A model trained on mirror pairs must be told which pairs they are (or it would learn to
    unmatch the eyes of every pair), and a mirror-aware model needs mirror pairs to learn from."""
    trainer = make_trainer(tmp_path, mirror_rate=0.5, pseudo_labels=False)
    assert trainer.model.config.mirror_aware and trainer.model.mirror_shift is not None
    assert trainer.settings.model.mirror_aware  # derived, and recorded as such
    with pytest.raises(ConfigError, match="mirror_rate > 0"):
        build(Settings.from_dict({"output_dir": str(tmp_path), "mirror_aware": True}))
    with pytest.raises(ConfigError, match="pseudo_labels=false"):  # pseudo-labels are on by default
        build(Settings.from_dict({"mirror_rate": 0.5, "output_dir": str(tmp_path)}))
    with pytest.raises(ConfigError, match="mirror_aware"):  # a value given is refused, never rewritten
        make_trainer(tmp_path, model={"mirror_aware": False}, mirror_rate=0.5, pseudo_labels=False)
    supervised = make_trainer(tmp_path, mirror_rate=0.5, supervised=True)  # generates no pair: ignored
    assert not supervised.model.config.mirror_aware


def test_in_channels_comes_from_the_data_and_a_wrong_value_is_refused(tmp_path):
    trainer = make_trainer(tmp_path)
    assert trainer.settings.model.in_channels == 8 == trainer.model.config.in_channels  # the tiny data's x
    with pytest.raises(ConfigError, match="in_channels is 5 but the training instances carry 8"):
        make_trainer(tmp_path, model={"in_channels": 5})


# --------------------------------------------------------------------------- distributed


def _gloo_available() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_gloo_available()


@pytest.mark.skipif(not _gloo_available(), reason="torch.distributed with gloo is not available")
def test_torchrun_data_parallel_training_on_cpu(tmp_path):
    settings = tiny_settings(tmp_path / "out", epochs=2)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(settings))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "pyg_ssgm.train", "--config", str(config), "--set", "val_pairs_per_category=1",
           "--device", "cpu", "--no-progress"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    out = tmp_path / "out"
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 2 and state["step"] == 0
    assert state["train_config"]["val_pairs_per_category"] == 1
    assert [r["epoch"] for r in read_metrics(out)] == [1, 2]  # written once, by rank 0
    assert (out / "test_results.json").exists()
    assert proc.stdout.count("Unfiltered real pairs") == 1  # printed by rank 0 only
