"""The runnable examples (examples/*.py) train, evaluate and draw with tiny settings.

``synthetic.py`` runs as a user runs it, in a subprocess; the real-data examples run in process
(their ``main(argv)``) on the tiny native-format datasets of ``fixtures_native``.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fixtures_native import make_cub, make_pascal_voc, make_spair, make_willow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
REAL = ["willow", "pascal_voc", "spair71k", "cub"]
TINY_ARGS = ["--epochs", "1", "--tiny", "--num-pictures", "1"]
PICTURES = ["generated_0_completion.png", "generated_0_matches.png", "real_0_matches.png", "real_0_matrices.png",
            "training_curves.png"]


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _voc_split_with_test_pairs(root: Path) -> None:
    """The fixture's standard split has one test object per category, hence no real test pair;
    write one with two test objects per category (same file format)."""
    split = {"train": {"aeroplane": ["2008_000001_1", "2008_000002_1"], "car": ["2009_000001_1", "2009_000004_1"]},
             "test": {"aeroplane": ["2008_000003_1", "2008_000003_2"], "car": ["2009_000002_1", "2009_000003_1"]}}
    arrays = {}
    for name, per_cat in split.items():
        arr = np.empty(len(per_cat), dtype=object)
        for i, cat in enumerate(sorted(per_cat)):
            arr[i] = np.array([f"{cat}/{stem}.xml" for stem in per_cat[cat]], dtype=object)
        arrays[name] = arr
    np.savez(root / "voc2011_pairs.npz", **arrays)


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("data")
    voc = make_pascal_voc(base / "PascalVOC")
    _voc_split_with_test_pairs(voc)
    return {
        # Willow's standard split puts the first 20 images of a category in training: 24 leave 4 to test.
        "willow": make_willow(base / "willow", num_per_category=24),
        "pascal_voc": voc,
        "spair71k": make_spair(base / "spair"),
        "cub": make_cub(base / "cub"),
    }


def test_synthetic_example_runs_out_of_the_box(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / "synthetic.py"), *TINY_ARGS, "--output-dir", str(out),
                           "--set", "synthetic.num_test=3", "--set", "test_pairs_per_category=3"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "unfiltered F1" in proc.stdout and "intersection accuracy" in proc.stdout
    assert sorted(p.name for p in (out / "pictures").iterdir()) == sorted(PICTURES)
    assert (out / "checkpoint.pt").is_file() and (out / "metrics.csv").is_file()


def test_synthetic_example_rejects_unknown_settings(capsys, tmp_path):
    module = load_example("synthetic")
    assert module.main(["--epochs", "1", "--set", "no_such_setting=1", "--output-dir", str(tmp_path)]) == 2
    assert "unknown setting 'no_such_setting'" in capsys.readouterr().err


@pytest.mark.parametrize("name", REAL)
def test_real_data_example_on_native_fixture(name, data_roots, tmp_path, capsys):
    module = load_example(name)
    out = tmp_path / "run"
    assert module.main([str(data_roots[name]), *TINY_ARGS, "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Unfiltered real pairs" in printed and "Intersection setting" in printed
    assert "unfiltered F1" in printed
    assert f"Checkpoint: {out / 'checkpoint.pt'}" in printed  # where the checkpoint went
    if name == "willow":  # which preset, and why: the fixture has its images
        assert "Preset willow_images (images found" in printed
    assert sorted(p.name for p in (out / "pictures").iterdir()) == sorted(PICTURES)


@pytest.mark.parametrize("name", ["synthetic", *REAL])
def test_every_example_option_has_a_help_text(name, capsys):
    module = load_example(name)
    with pytest.raises(SystemExit):
        module.main(["--help"])
    assert "training epochs (default:" in capsys.readouterr().out
    parser = module.build_parser(module.__doc__, name, epochs=1, root="data/x")  # the options they share
    assert [a.dest for a in parser._actions if not a.help] == []


def test_willow_example_root_matches_the_readme_and_says_why_geometry(tmp_path, capsys):
    module = load_example("willow")
    assert module.ROOT == "data/WillowObject"
    readme = (EXAMPLES.parent / "README.md").read_text() + (EXAMPLES / "README.md").read_text()
    assert f"examples/willow.py {module.ROOT}" in readme
    assert module.main([str(tmp_path / "missing"), "--epochs", "1", "--output-dir", str(tmp_path / "run")]) == 1
    assert f"Preset willow_geometry (no .png images under {tmp_path / 'missing'}" in capsys.readouterr().out


def test_cub_to_coco_converts_every_part_faithfully(tmp_path, capsys):
    from pyg_ssgm.data.readers import read_coco_file, read_cub

    root = make_cub(tmp_path / "cub", with_images=False)
    module = load_example("cub_to_coco")
    assert module.main([str(root), str(tmp_path / "cub.json")]) == 0
    coco, cub = read_coco_file(tmp_path / "cub.json"), read_cub(root, "all")
    assert [(i.category, i.names, i.pos.tolist(), i.extra["bbox"]) for i in coco] == \
        [(i.category, i.names, i.pos.tolist(), i.extra["bbox"]) for i in cub]
    assert coco[0].extra["sides"]["left eye"] == "right eye"  # declared flip_pairs
    assert module.main([str(root), str(tmp_path / "split"), "--split-files"]) == 0
    assert len(read_coco_file(tmp_path / "split" / "train.json")) == len(read_cub(root, "train"))
    assert len(read_coco_file(tmp_path / "split" / "test.json")) == len(read_cub(root, "test"))
    assert module.main([str(tmp_path / "missing"), str(tmp_path / "x.json")]) == 1
    assert "never downloads" in capsys.readouterr().err


@pytest.mark.parametrize("name, url", [
    ("willow", "WILLOW-ObjectClass_dataset.zip"),
    ("pascal_voc", "voc2011_keypoints_Feb2012.tgz"),
    ("spair71k", "SPair-71k.tar.gz"),
    ("cub", "cub_200_2011"),
])
def test_real_data_example_says_how_to_get_the_data(name, url, tmp_path, capsys):
    module = load_example(name)
    assert module.main([str(tmp_path / "missing"), "--epochs", "1", "--output-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "was not found" in err and url in err and "never downloads" in err
