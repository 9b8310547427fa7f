"""The measurement functions of the scripts under ``benchmarks/`` that the README quotes."""
import sys
from pathlib import Path

import pytest
import torch

from pyg_ssgm.data import GeometricAugmentation, PairGenerator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
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
