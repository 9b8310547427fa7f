"""The benchmark's helpers (fits, tables, timing, memory, call counting) and tiny end-to-end runs."""
import json
import math
import time
import types

import numpy as np
import pytest
import torch

import pyg_ssgm.model.predictor as predictor_module
from pyg_ssgm import ModelConfig, Predictor, Settings
from pyg_ssgm import benchmarking as bm
from pyg_ssgm.cli import run
from pyg_ssgm.data import RealPairs, pair_loader
from pyg_ssgm.errors import ConfigError, InvalidInputError
from pyg_ssgm.experiment import build_model


# ------------------------------------------------------------------------------------ exponent fit
@pytest.mark.parametrize("exponent", [0.5, 1.0, 1.7, 2.0, 3.0])
def test_fit_recovers_a_known_exponent(exponent):
    n = np.array([10, 20, 50, 100, 200])
    fit = bm.fit_exponent(n, 3e-4 * n ** exponent)
    assert fit.exponent == pytest.approx(exponent, abs=1e-9)
    assert fit.coefficient == pytest.approx(3e-4, rel=1e-9)
    assert fit.r2 == pytest.approx(1.0) and fit.num_points == 5


def test_fit_is_robust_to_multiplicative_noise():
    rng = np.random.default_rng(0)
    n = np.array([10, 20, 50, 100, 200, 400])
    t = 2e-3 * n ** 1.5 * np.exp(rng.normal(0, 0.05, n.size))
    fit = bm.fit_exponent(n.tolist(), t.tolist())
    assert abs(fit.exponent - 1.5) < 0.1 and fit.r2 > 0.98


@pytest.mark.parametrize("sizes, costs", [([10], [1.0]), ([10, 10], [1.0, 2.0]), ([10, 20], [1.0, -1.0]),
                                          ([10, 20], [1.0, math.nan]), ([10, 20], [1.0])])
def test_fit_rejects_bad_input(sizes, costs):
    with pytest.raises(InvalidInputError):
        bm.fit_exponent(sizes, costs)


# ------------------------------------------------------------------------------------ tables
def test_format_table_is_aligned_markdown():
    text = bm.format_table(["method", "F1", "ms"], [["RRWM", "0.750", None], ["SSGM", "0.9", 12]])
    lines = text.splitlines()
    assert lines[0].startswith("| method") and lines[1] == "|:-------|------:|----:|"
    assert len({len(line) for line in lines}) == 1  # padded to equal width
    assert "n/a" in lines[2] and lines[3].endswith("|  12 |")
    assert bm.format_table(["a", "b"], [[1, 2]], align="rl").splitlines()[1] == "|----:|:----|"


def test_format_table_rejects_ragged_rows_and_bad_alignment():
    with pytest.raises(InvalidInputError):
        bm.format_table(["a", "b"], [[1]])
    with pytest.raises(InvalidInputError):
        bm.format_table(["a", "b"], [[1, 2]], align="lx")


# ------------------------------------------------------------------------------------ timing, memory
def test_time_call_takes_the_median_after_warmup():
    calls = []
    durations = iter([0.0, 0.03, 0.01, 0.02])

    def fn():
        calls.append(1)
        time.sleep(next(durations))
        return len(calls)

    median, times, out = bm.time_call(fn, repeats=3, warmup=1)
    assert len(calls) == 4 and len(times) == 3 and out == 4
    assert median == sorted(times)[1] and 0.015 < median < 0.05


def test_time_call_counts_a_long_warmup_as_the_measurement():
    median, times, _ = bm.time_call(lambda: time.sleep(0.02), repeats=5, warmup=1, long_call_s=0.005)
    assert len(times) == 1 and median >= 0.02


def test_time_call_repeats_short_calls_until_the_minimum_time():
    calls = []
    _, times, _ = bm.time_call(lambda: calls.append(time.sleep(0.005)), repeats=2, warmup=0, min_time_s=0.05)
    # calls until the minimum time, and not one more (a count such as ">= 10" would assume 5 ms
    # sleeps, which a loaded machine stretches)
    assert len(times) == len(calls) >= 2 and sum(times) >= 0.05 > sum(times[:-1])
    _, capped, _ = bm.time_call(lambda: time.sleep(0.005), repeats=2, warmup=0, min_time_s=10.0, max_repeats=4)
    assert len(capped) == 4  # never more than max_repeats
    _, plain, _ = bm.time_call(lambda: None, repeats=3, warmup=0)
    assert len(plain) == 3  # without a minimum time: exactly the repeats


def test_peak_memory_sees_a_large_temporary_tensor():
    pytest.importorskip("psutil")

    def fn():
        x = torch.ones(10_000_000)  # 40 MB, held for a while
        time.sleep(0.05)
        return x.sum()

    peak, method = bm.measure_peak_memory(fn, torch.device("cpu"))
    assert "RSS" in method and 30 * 2 ** 20 < peak < 400 * 2 ** 20


def test_machine_info_describes_cpu_and_torch():
    info = bm.machine_info()
    assert info["cpu_model"] and info["logical_cores"] >= 1 and info["torch"] == torch.__version__
    assert info["torch_threads"] == torch.get_num_threads() and info["device"] == "cpu"


# ------------------------------------------------------------------------------------ call counting
def test_call_counter_counts_times_and_restores():
    owner = types.SimpleNamespace(f=lambda x: x + 1)
    original = owner.f
    with bm.CallCounter({"f": (owner, "f"), "gone": (owner, "missing")}) as counter:
        assert owner.f(1) == 2 and owner.f(2) == 3
    assert counter.counts["f"] == 2 and counter.seconds["f"] >= 0 and counter.missing == ["gone"]
    assert owner.f is original
    with pytest.raises(RuntimeError), bm.CallCounter({"f": (owner, "f")}):
        raise RuntimeError
    assert owner.f is original


def tiny_parts(**model):
    """A tiny network, its criterion and its predictor (8 appearance features)."""
    return build_model(Settings(model=ModelConfig(in_channels=8, hidden_channels=16, heads=2, **model)))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    instances = bm.speed_instances(8, num_instances=4, feature_dim=8)
    batch = next(iter(pair_loader(RealPairs(instances), batch_size=5)))
    model, criterion, predictor = tiny_parts(num_queries=4)
    return model.eval(), criterion, predictor, batch


def test_speed_instances_have_the_requested_size():
    full = bm.speed_instances(12, num_instances=3, feature_dim=4)
    assert all(i.num_nodes == 12 and i.x.shape == (12, 4) for i in full)
    partial = bm.speed_instances(40, missing=0.5, num_instances=3, feature_dim=0)
    assert all(3 <= i.num_nodes < 40 and i.x is None for i in partial)


def test_stage_timer_counts_one_solver_call_per_batch(tiny):
    model, _, predictor, batch = tiny
    original = predictor_module.partial_hungarian
    with bm.StageTimer(torch.device("cpu")) as st:
        for _ in range(3):
            prediction = st.run(lambda: predictor.match(batch))
        assert predictor_module.partial_hungarian is not original
    assert predictor_module.partial_hungarian is original  # only patched inside the block
    assert not torch.autograd._profiler_enabled()  # and profiled only inside it
    assert len(prediction.pairs) == batch.num_graphs == 5
    assert st.calls_per_forward() == {"partial_hungarian": 1.0, "pygmtools.hungarian": 1.0}
    shares = st.shares()
    assert set(shares) == set(bm.StageTimer.STAGES)
    measured = {k: v for k, v in shares.items() if v is not None}
    assert sum(measured.values()) == pytest.approx(1.0) and all(0 <= v <= 1 for v in measured.values())
    assert set(measured) == set(bm.StageTimer.STAGES)  # every stage of a completion model ran
    assert all(shares[k] > 0 for k in ("solver", "encoder", "consensus", "decoder", "rebuild", "affinity"))


def test_stage_timer_restores_after_an_error(tiny):
    _, _, predictor, batch = tiny
    original = predictor_module.partial_hungarian
    with pytest.raises(RuntimeError), bm.StageTimer(torch.device("cpu")) as st:
        st.run(lambda: predictor.match(batch))
        raise RuntimeError
    assert predictor_module.partial_hungarian is original and not torch.autograd._profiler_enabled()


def test_stage_timer_marks_missing_stages():
    model, _, predictor = tiny_parts(completion=False)
    model.eval()
    batch = next(iter(pair_loader(RealPairs(bm.speed_instances(8, num_instances=3, feature_dim=8)), 3)))
    with bm.StageTimer(torch.device("cpu")) as st:
        st.run(lambda: predictor.match(batch))
    assert st.shares()["decoder"] is None and st.shares()["solver"] > 0


def test_training_step_solver_calls_do_not_grow_with_the_batch(tiny):
    model, criterion, _, _ = tiny
    from pyg_ssgm.data import GeneratedPairs, PairGenerator

    instances = bm.speed_instances(8, num_instances=4, feature_dim=8)
    counts = []
    for b in (1, 4):
        batch = next(iter(pair_loader(GeneratedPairs(instances, PairGenerator(drop_rate=0.3)), batch_size=b)))
        step = bm.training_step(model.train(), criterion, batch)
        with bm.CallCounter(bm.training_solver_targets()) as counter:
            losses = step()
        assert torch.isfinite(losses["loss"])
        counts.append({k: v for k, v in counter.counts.items() if not k.startswith("set_matcher")})
    model.eval()
    assert counts[0] == counts[1]
    # one batched Sinkhorn for the matching loss; the training forward solves no assignment
    # (the predictor's Hungarian runs at inference only)
    assert counts[0]["sinkhorn"] == counts[0]["pygmtools.sinkhorn"] == 1
    assert counts[0]["partial_hungarian"] == counts[0]["pygmtools.hungarian"] == counts[0]["blackbox_hungarian"] == 0


# ------------------------------------------------------------------------------------ config and CLI
def test_config_validation_and_names():
    assert bm.BenchmarkConfig.quick_preset().name == "synthetic_quick"
    assert bm.BenchmarkConfig(skip_speed=True).name == "synthetic_full_accuracy"
    assert bm.BenchmarkConfig.quick_preset(repeats=4).repeats == 4
    for bad in (dict(sizes=(2, 10)), dict(batch_sizes=(0,)), dict(drop_rates=(1.0,)), dict(epochs=0),
                dict(skip_accuracy=True, skip_speed=True), dict(dataset="willow"), dict(root="/tmp"),
                dict(dataset="nope"), dict(device="tpu"), dict(synthetic={"no_such_field": 1})):
        with pytest.raises(ConfigError):
            bm.BenchmarkConfig(**bad)


def test_cli_reports_bad_input_as_a_named_error(capsys):
    with pytest.raises(SystemExit) as exc:
        run("benchmark", ["--skip-accuracy", "--skip-speed"])
    assert exc.value.code == 2 and "nothing to run" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run("benchmark", ["--sizes", "ten"])
    assert exc.value.code == 2 and "--sizes" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ end to end
def test_speed_part_end_to_end_on_two_small_sizes(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:  # click's standalone mode exits 0 on success
        run("benchmark", ["--skip-accuracy", "--sizes", "6,10", "--batch-sizes", "1,2", "--repeats", "1",
                          "--drop-rates", "0.3", "--drop-size", "8", "--output-dir", str(tmp_path), "--no-progress"])
    assert exc.value.code == 0
    printed = capsys.readouterr().out
    for title in ("SSGM throughput", "Where SSGM inference time goes", "Classical solvers", "missing keypoints",
                  "Fitted exponent"):
        assert title in printed
    assert "PASS  Hungarian/Sinkhorn calls batched" in printed
    result = json.loads((tmp_path / "synthetic_full_speed.json").read_text())
    command = result["command"]  # the options given, in the command's order
    assert command.startswith("python -m pyg_ssgm benchmark --output-dir ")
    assert "--sizes 6,10 --batch-sizes 1,2" in command
    assert (tmp_path / "synthetic_full_speed.md").read_text().startswith("# pyg_ssgm benchmark")
    speed = result["speed"]
    assert [(r["nodes"], r["batch_size"]) for r in speed["rows"]] == [(6, 1), (6, 2), (10, 1), (10, 2)]
    assert result["machine"]["cpu_model"] and result["accuracy"] is None and not speed["trained_model"]
    for r in speed["rows"]:
        assert r["infer_s"] > 0 and r["train_step_s"] > 0 and r["pairs_per_s"] > 0
        assert r["solver_calls_per_batch"] == {"partial_hungarian": 1.0, "pygmtools.hungarian": 1.0}
        assert set(r["classical"]) == set(bm.CLASSICAL) and all("ms_per_pair" in c for c in r["classical"].values())
        assert 0 <= r["f1_ssgm"] <= 1 and r["infer_peak_bytes"] >= 0
        assert all(c["peak_bytes"] >= 0 for c in r["classical"].values())
    assert [r["infer_rel"] for r in speed["rows"] if r["nodes"] == 6] == [1.0, 1.0]
    assert "exponent" in speed["fits"]["SSGM inference | batch 2"]
    assert {t["status"] for t in result["targets"]} <= {"PASS", "FAIL", "SKIP"}
    by_name = {t["name"]: t for t in result["targets"]}
    assert len(by_name) == 6
    assert by_name["F1 >= 0.95 at 100 and 200 nodes (speed pairs)"]["status"] == "SKIP"  # sizes 6 and 10 only
    rrwm_rows = by_name["SSGM F1 >= RRWM F1 on every row where RRWM runs (sizes and missing shares)"]
    assert rrwm_rows["status"] in ("PASS", "FAIL") and "6n/b1" in rrwm_rows["detail"]
    assert "Peak memory of one batch's inference" in (tmp_path / "synthetic_full_speed.md").read_text()


def test_speed_part_with_single_pair_batches_only():
    """Batch size 1 alone makes only 2 instances per size; the warm-up must still find 2 pairs."""
    cfg = bm.BenchmarkConfig(sizes=(6,), batch_sizes=(1,), drop_rates=(), repeats=1, warmup=0, skip_accuracy=True,
                             progress=False)
    speed = bm.run_speed(cfg, classical=("hungarian",))
    assert [(r["nodes"], r["batch_size"]) for r in speed["rows"]] == [(6, 1)]


def test_affinity_budget_skips_the_quadratic_solvers():
    cfg = bm.BenchmarkConfig(sizes=(6,), batch_sizes=(2,), drop_rates=(), repeats=1, warmup=0, skip_accuracy=True,
                             max_affinity_gib=1e-9, progress=False)
    speed = bm.run_speed(cfg, classical=("hungarian", "rrwm"))
    row = speed["rows"][0]
    assert "skipped" in row["classical"]["rrwm"] and "ms_per_pair" in row["classical"]["hungarian"]
    assert row["rrwm_over_ssgm"] is None and "skip" in bm.format_speed(speed)


def test_accuracy_part_on_a_tiny_dataset(tmp_path):
    cfg = bm.BenchmarkConfig(quick=True, epochs=1, skip_speed=True, test_pairs_per_category=3,
                             val_pairs_per_category=3, progress=False, output_dir=str(tmp_path),
                             synthetic=dict(num_categories=2, num_train=6, num_val=3, num_test=3,
                                            min_keypoints=6, max_keypoints=8))
    result = bm.run_benchmark(cfg, echo=lambda s: None)
    acc = result["accuracy"]
    keys = [m["key"] for m in acc["methods"]]
    assert keys == ["hungarian", "hungarian_calibrated", "sm", "sm_calibrated", "rrwm", "rrwm_calibrated", "ipfp",
                    "ipfp_calibrated", "ssgm", "ssgm_generated_off", "ssgm_supervised", "ssgm_no_completion"]
    assert acc["num_test_pairs"] == 6
    for m in acc["methods"]:
        assert m["unfiltered"]["mean"]["num_pairs"] == 6 and m["intersection"]["mean"]["num_pairs"] == 6
        assert 0 <= m["f1"] <= 1 and m["ms_per_pair"] > 0
    text = (tmp_path / "synthetic_quick_accuracy.md").read_text()
    assert "SSGM supervised" in text and "pretrained" in text and "## Machine" in text
    assert [t["status"] for t in result["targets"]] == ["SKIP"]
    by_key = {m["key"]: m for m in acc["methods"]}
    # the run's settings sections are recorded with each trained row
    assert by_key["ssgm"]["settings"]["train"]["epochs"] == 1
    assert by_key["ssgm_supervised"]["settings"]["train"]["supervised"] is True
    assert by_key["ssgm_no_completion"]["settings"]["model"]["completion"] is False
    assert by_key["ssgm_generated_off"]["validation"]["val_f1"] >= 0


def test_validated_presets_make_the_ssgm_rows():
    from pyg_ssgm.benchmarking.accuracy import VALIDATED_PRESETS, ssgm_variants
    from pyg_ssgm.presets import preset

    for dataset, (geometry, _) in VALIDATED_PRESETS.items():
        rows = {v.key: v for v in ssgm_variants(dataset, images=False)}
        assert set(rows) == {"ssgm", "ssgm_supervised", "ssgm_no_completion"}
        assert rows["ssgm"].settings == preset(geometry)
        assert rows["ssgm_no_completion"].settings["model"]["completion"] is False
        assert rows["ssgm_supervised"].supervised and rows["ssgm_supervised"].settings["train"]["pseudo_labels"] is False
    # CUB has no images: asking for image features still gives the geometry rows
    assert [v.key for v in ssgm_variants("cub", images=True)] == ["ssgm", "ssgm_supervised", "ssgm_no_completion"]
    assert ssgm_variants("synthetic", images=False)[0].settings == {}


# ------------------------------------------------------------------------------------ the studies' helper
def test_variant_settings_layer_preset_overrides_and_train_options():
    from pyg_ssgm.benchmarking.experiments import variant_settings

    sections = variant_settings("cub", {"train": {"epochs": 3}, "shape_context_weight": 5.0}, epochs=5, root="r")
    assert sections["train"]["epochs"] == 5 and sections["train"]["root"] == "r"
    assert sections["train"]["mirror_rate"] == 0.5 and sections["inference"]["mirror_test"] is True  # the preset's
    assert sections["inference"]["shape_context_weight"] == 5.0  # a flat name goes to its section
    assert variant_settings() == {name: {} for name in sections}
    with pytest.raises(ConfigError):
        variant_settings(None, {"no_such_setting": 1})
    with pytest.raises(ConfigError):
        variant_settings("nope")


def test_experiment_helper_trains_scores_and_writes(tmp_path):
    from pathlib import Path

    from pyg_ssgm.benchmarking import experiments as ex

    tiny_data = {"synthetic": dict(num_categories=2, num_train=6, num_val=3, num_test=3, min_keypoints=6,
                                   max_keypoints=8),
                 "model": {"hidden_channels": 16, "heads": 2, "num_queries": 4}}
    run = ex.train_variant(None, tiny_data, epochs=2)
    train = run.settings.train
    assert train.epochs == 2 and train.eval_every == 2 and train.test_pairs_per_category == 1 and run.train_s > 0
    assert not Path(train.output_dir).exists()  # a temporary run folder, removed; the model stays in memory
    assert {"val_f1", "val_intersection_acc", "val_count_acc"} <= set(run.validation)
    assert not run.trainer.model.training
    val = run.splits["val"]
    scores = ex.score(run.predictor, val, generator=train.pair_generator())
    assert {"f1", "precision", "recall", "intersection_accuracy", "per_class", "completion"} <= set(scores)
    assert 0 <= scores["f1"] <= 1 and scores["completion"]["num_pairs"] > 0
    # the trainer validated each epoch with the settings as given, then chose its inference on the
    # same pairs: the predictor scores as the chosen row did, the given settings as the last epoch did
    chosen = [r for r in run.trainer.choice if r["kept"]][-1]
    assert scores["f1"] == pytest.approx(chosen["val_f1"])
    given = ex.score(Predictor(run.predictor.model, run.settings.inference), val)
    assert given["f1"] == pytest.approx(run.validation["val_f1"])
    assert set(ex.score(run.predictor, val, intersection=False)) == {"f1", "precision", "recall"}
    # other inference settings: a new predictor of the same network, the original untouched
    off = ex.with_inference(run.predictor, generate_at_inference=False)
    assert off.model is run.predictor.model and not off.config.generate_at_inference
    assert run.predictor.config.generate_at_inference
    # other parameter-free model settings: a copy with the same weights
    twin = ex.with_model_settings(run.predictor, coherence_rounds=0)
    assert twin.model is not run.predictor.model and twin.model.config.coherence_rounds == 0
    assert run.predictor.model.config.coherence_rounds == ModelConfig().coherence_rounds
    batch = next(iter(pair_loader(RealPairs(val), 4)))
    same = ex.with_model_settings(run.predictor)
    assert all(torch.equal(a, b) for a, b in zip(same(batch), run.predictor(batch)))
    with pytest.raises(RuntimeError):  # a change that alters the parameters cannot share the weights
        ex.with_model_settings(run.predictor, hidden_channels=32)
    assert ex.calibrated_solver("hungarian", val).solver == "hungarian"
    assert ex.calibrated_solver("hungarian", val[:1]).threshold is None  # no pair to calibrate on: full
    study = ex.Study("tiny", tmp_path / "out", command="python benchmarks/tiny.py")
    study.rows.append({"key": "ssgm", **scores})
    path = study.write(["# Tiny", "", ex.per_class_table(
        ["variant"], [{"val_accuracy": scores["intersection_accuracy"], **scores}], lambda r: ["ssgm"])], epochs=2)
    result = json.loads(path.with_suffix(".json").read_text())
    assert result["command"] == "python benchmarks/tiny.py" and result["epochs"] == 2 and result["wall_s"] >= 0
    assert result["rows"][0]["key"] == "ssgm" and path.read_text().startswith("# Tiny\n\n| variant | val acc. |")
