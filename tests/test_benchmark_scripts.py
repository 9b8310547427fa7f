"""The scripts under ``benchmarks/``: the measurement functions the README quotes, what they may
import, and how they answer bad options."""
import ast
import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

from pyg_ssgm.data import GeometricAugmentation, PairGenerator

SCRIPTS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(SCRIPTS))
from completion_ceiling import THRESHOLDS, oracle  # noqa: E402


def test_completion_ceiling_is_exact_without_jitter_and_loses_it_with(tiny_data):
    """With the true transform and no jitter, every missing node lands on its true place and
    every count is exact under a small threshold; jitter moves both, which is what the ceiling measures. (Pairs with
    fewer than 3 common nodes do not fix the affine map; the script reports how many there are.)"""
    affine_only = GeometricAugmentation(rotation=30.0, scale=(0.8, 1.2), anisotropy=0.1, shear=0.1, jitter=0.0)
    jittered = GeometricAugmentation(rotation=30.0, scale=(0.8, 1.2), anisotropy=0.1, shear=0.1, jitter=0.1)
    for augmentation, exact in ((affine_only, True), (jittered, False)):
        gen = PairGenerator(drop_rate=0.3, augmentation=augmentation)
        pairs = [gen(inst, torch.Generator().manual_seed(k)) for k, inst in enumerate(tiny_data.train[:12])]
        # the affine map between the copies is fixed by 3 common pairs; fewer leave it open
        results = [oracle(pair) for pair in pairs if pair.y.size(1) >= 3]
        errors = [e for r in results for e in r["errors"]]
        assert errors, "the pairs must lack some nodes"
        if exact:
            assert max(errors) == pytest.approx(0.0, abs=1e-4)
            # (a large threshold can still pair two different nodes that lie close together)
            assert all(r["exact"][THRESHOLDS[0]] for r in results)
        else:
            assert min(errors) > 1e-3
            assert not all(r["exact"][THRESHOLDS[0]] for r in results)


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_scripts_use_the_public_api_only(script):
    """No private name of the package, no other script: each study is a table over
    ``pyg_ssgm.benchmarking.experiments`` and the public API, runnable on its own."""
    others = {p.stem for p in SCRIPTS.glob("*.py")}
    tree = ast.parse((SCRIPTS / script).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module.split(".")[0] not in others, f"{script} imports {node.module}"
            if node.module.startswith("pyg_ssgm"):
                assert not any(part.startswith("_") for part in node.module.split(".")), node.module
                assert not [a.name for a in node.names if a.name.startswith("_")], f"{script}: {node.module}"
        elif isinstance(node, ast.Import):
            assert not [a.name for a in node.names if a.name.split(".")[0] in others], script
    assert "../shared" not in (SCRIPTS / script).read_text()


@pytest.mark.parametrize("script, argv, message", [
    ("completion_ceiling", ["--preset", "nope"], "invalid choice: 'nope'"),
    ("preset_setting", ["--setting", "nope", "--values", "1"], "unknown setting 'nope'"),
    ("preset_setting", ["--setting", "epochs", "--values", "0"], "epochs must be >= 1"),
    ("preset_setting", ["--setting", "deformation", "--values", "0.1", "--inference-only"], "is a train setting"),
    ("preset_setting", ["--setting", "deformation", "--values", "0.1", "--presets", "nope"], "no validation protocol"),
    ("validation_choice", ["--variants", "nope"], "unknown ['nope']"),
    ("inference_alignment", ["ckpt", "--values", "a,b"], "comma-separated"),
    ("partial_sweep", ["--shares", "half"], "comma-separated"),
    ("threads", ["--epochs", "0"], "--epochs"),
    ("leave_one_out", ["--datasets", "willow,nope"], "unknown ['nope']"),
    ("leave_one_out", ["--epochs", "voc=3"], "expected DATASET=VALUE"),
    ("leave_one_out", ["--pairs", "cub=ten"], "invalid parse value"),
    ("viewpoint", ["--bins", "0,a"], "comma-separated"),
    ("viewpoint", ["--epochs", "0"], "must be >= 1"),
    ("generation_choices", ["ckpt", "--weights", "a"], "comma-separated"),
])
def test_bad_options_are_argparse_errors(script, argv, message, monkeypatch, capsys):
    module = importlib.import_module(script)
    monkeypatch.setattr(sys, "argv", [f"benchmarks/{script}.py", *argv])
    with pytest.raises(SystemExit) as exc:
        module.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "error:" in err and message in err and "Traceback" not in err


# ------------------------------------------------------------------ generalisation benchmark
def test_viewpoint_bins_close_the_last_one_and_draw_the_same_pairs_per_object():
    """The two ends of the turn (the largest angle) are a pair of the last bin; each bin keeps at
    most the requested pairs of each object, the same ones on every call."""
    from viewpoint import draw

    from pyg_ssgm.data.viewpoint import ViewpointConfig, load_viewpoint, viewpoint_pairs

    test = load_viewpoint(ViewpointConfig(num_objects=2, min_points=12, max_points=12, num_frames=10))["test"]
    bins = viewpoint_pairs(test, (0, 45, 90))
    assert sum(map(len, bins.values())) == 2 * 6  # 4 test frames per object: every pair in one bin
    ends = [(i, j) for i, j in bins[(45, 90)] if abs(test[i].extra["yaw"] - test[j].extra["yaw"]) == 90]
    assert len(ends) == 2
    labelled = {k: [(i, j, test[i].category) for i, j in v] for k, v in bins.items()}
    drawn = draw(labelled, 2)
    assert drawn == draw(labelled, 2)
    for edges, pairs in drawn.items():
        assert set(pairs) <= set(bins[edges])
        for obj in ("house0", "house1"):
            mine = [p for p in pairs if test[p[0]].category == obj]
            assert len(mine) == min(2, sum(test[i].category == obj for i, _ in bins[edges]))


def test_viewpoint_study_scores_every_method_on_the_same_pairs(tmp_path, monkeypatch, one_thread):
    import viewpoint

    figure = tmp_path / "viewpoint.png"
    monkeypatch.setattr(sys, "argv", ["viewpoint.py", "--epochs", "1", "--objects", "1", "--frames", "7", "--hidden",
                                      "0,3", "--bins", "0,30,50,90", "--out-of-plane", "0", "--pairs-per-object", "2",
                                      "--output-dir", str(tmp_path), "--figure", str(figure)])
    viewpoint.main()
    result = json.loads((tmp_path / "viewpoint.json").read_text())
    # 3 test frames, at 0, 45 and 90 degrees: no pair closer than 30 degrees, so no row for that bin
    assert [(r["hidden"], r["bin"]) for r in result["rows"]] == [(h, b) for h in (0, 3) for b in ([30, 50], [50, 90])]
    for row in result["rows"]:
        methods = row["methods"]
        # the calibrated solvers (4, and the Hungarian and RRWM re-matched) only where landmarks are
        # hidden; the re-matched ones full in both settings; SSGM in both settings
        assert sum(k.endswith("val threshold") for k in methods) == (7 if row["hidden"] else 0)
        assert {k for k in methods if "epipolar" in k} >= {"Hungarian + epipolar, full", "RRWM + epipolar, full",
                                                            "RRWM + Hungarian + IPFP, epipolar pool, full"}
        assert sum(k.startswith("SSGM") for k in methods) == 1
        assert {m["num_pairs"] for m in methods.values()} == {row["num_pairs"]} and row["num_pairs"] >= 1
        assert all(0.0 <= m[k] <= 1.0 for m in methods.values() for k in ("f1", "precision", "recall"))
    assert "## 3 landmarks hidden per frame" in (tmp_path / "viewpoint.md").read_text()
    assert 0 < figure.stat().st_size < 200_000


@pytest.mark.slow  # six small trainings (about 20 s alone on 2 cores)
def test_leave_one_out_trains_every_preset_on_each_dataset(tmp_path, monkeypatch, one_thread):
    """Each preset and the default trained and tested on each dataset, beside RRWM (on CUB also
    with the mirror test), every row of a dataset on the same pairs."""
    import fixtures_native
    import leave_one_out

    monkeypatch.setattr(fixtures_native, "CUB_PER_CLASS", 12)  # training birds enough for pseudo-label cycles
    willow = fixtures_native.make_willow(tmp_path / "willow", num_per_category=24, with_images=False)
    cub = fixtures_native.make_cub(tmp_path / "cub", with_images=False)
    monkeypatch.setattr(sys, "argv", ["leave_one_out.py", "--root", f"willow={willow},cub={cub}", "--epochs",
                                      "willow=1,cub=1", "--pairs", "willow=2,cub=1", "--output-dir", str(tmp_path)])
    leave_one_out.main()
    result = json.loads((tmp_path / "leave_one_out.json").read_text())
    rows = {(r["dataset"], r.get("preset", r["method"])): r for r in result["rows"]}
    assert set(rows) == {(d, p) for d in ("willow", "cub") for p in ("willow_geometry", "cub", None,
                                                                      "RRWM, val threshold")} | {
        ("cub", "RRWM, val threshold, mirror test")}
    assert result["epochs"] == {"willow": 1, "cub": 1} and result["pairs_per_class"] == {"willow": 2, "cub": 1}
    assert rows[("willow", "cub")]["inference"]["mirror_test"]  # the preset's own settings, as chosen on CUB
    assert all(0.0 <= r["f1"] <= 1.0 for r in result["rows"])
    text = (tmp_path / "leave_one_out.md").read_text()
    assert "`willow_geometry` preset (transferred from willow)" in text and "`cub` preset (in-domain)" in text


def test_generation_choices_scores_each_dustbin_weight_and_counts_each_threshold(tmp_path, monkeypatch, one_thread):
    """Every dustbin weight with the generated nodes on and off, every existence threshold's count;
    a lower threshold lets at least as many queries exist."""
    from conftest import make_trainer

    import generation_choices

    make_trainer(tmp_path / "run").fit()
    monkeypatch.setattr(sys, "argv", ["generation_choices.py", str(tmp_path / "run" / "checkpoint.pt"), "--pairs",
                                      "2", "--weights", "0,1", "--thresholds", "0.9,0.01", "--output-dir",
                                      str(tmp_path), "--name", "choices"])
    generation_choices.main()
    rows = json.loads((tmp_path / "choices.json").read_text())["rows"]
    dustbin = [(r["generate_at_inference"], r["dustbin_weight"]) for r in rows if r["study"] == "dustbin"]
    assert dustbin == [(False, 0.0), (False, 1.0), (True, 0.0), (True, 1.0)]
    assert all(0.0 <= r["f1"] <= 1.0 for r in rows if r["study"] == "dustbin")
    high, low = [r for r in rows if r["study"] == "count"]
    assert (high["exist_threshold"], low["exist_threshold"]) == (0.9, 0.01)
    assert low["queries"]["generated_mean"] >= high["queries"]["generated_mean"]
    assert high["num_pairs"] == low["num_pairs"] > 0
    assert "dustbin_weight" in (tmp_path / "choices.md").read_text()
