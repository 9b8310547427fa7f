"""The scripts under ``benchmarks/``: the measurement functions the README quotes, what they may
import, and how they answer bad options."""
import ast
import importlib
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
])
def test_bad_options_are_argparse_errors(script, argv, message, monkeypatch, capsys):
    module = importlib.import_module(script)
    monkeypatch.setattr(sys, "argv", [f"benchmarks/{script}.py", *argv])
    with pytest.raises(SystemExit) as exc:
        module.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "error:" in err and message in err and "Traceback" not in err
