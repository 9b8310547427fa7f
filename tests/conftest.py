"""Small shared fixtures for the model, trainer and CLI tests.

Everything here is tiny on purpose (the test machine has few cores): two categories of 6-8
keypoints, 8-dimensional appearance features and a 16-wide model. ``tests/`` has no
``__init__.py``; helper modules such as ``fixtures_native`` are imported as plain modules.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Dict, List, NamedTuple

import pytest
import torch
from torch_geometric.data import Batch

from pyg_ssgm import SSGM, Criterion, ModelConfig, Predictor, Settings
from pyg_ssgm.data import PairData, PairGenerator, make_pair
from pyg_ssgm.config import merge, split_sections
from pyg_ssgm.experiment import build, build_model
from pyg_ssgm.data.synthetic import SyntheticConfig, SyntheticKeypoints

FEATURE_DIM = 8

#: The smallest synthetic dataset that still has real cross-instance pairs in every split.
TINY_SYNTHETIC = dict(num_categories=2, num_train=6, num_val=2, num_test=3, min_keypoints=6,
                      max_keypoints=8, feature_dim=FEATURE_DIM)

#: A small model: wide enough to learn something, small enough to run in milliseconds.
TINY_MODEL = dict(hidden_channels=16, heads=2, encoder_layers=2, num_queries=4, decoder_layers=1)


def tiny_synthetic_config(**overrides) -> SyntheticConfig:
    return SyntheticConfig(**{**TINY_SYNTHETIC, **overrides})


def tiny_settings_of(**overrides) -> Settings:
    """Settings of a tiny model; ``overrides`` are flat names of any section (model, loss, inference)."""
    return Settings.from_dict({"model": {"in_channels": FEATURE_DIM, **TINY_MODEL}, **overrides})


def tiny_model_config(**overrides) -> ModelConfig:
    return tiny_settings_of(**overrides).model


class Tiny(NamedTuple):
    """A tiny network with its criterion and predictor."""

    model: SSGM
    criterion: Criterion
    predictor: Predictor


def tiny(seed: int = 0, **overrides) -> Tiny:
    """A tiny model, its criterion and its predictor, the network seeded with ``seed``."""
    torch.manual_seed(seed)
    return Tiny(*build_model(tiny_settings_of(**overrides)))


def tiny_model(seed: int = 0, **overrides) -> SSGM:
    return tiny(seed, **overrides).model


def to_batch(pairs: List[PairData]) -> Batch:
    return Batch.from_data_list(pairs, follow_batch=PairData.FOLLOW_BATCH)


def tiny_settings(output_dir, **train_overrides) -> Dict[str, dict]:
    """Sectioned settings (as in a ``--config`` file) for a training run of a few seconds."""
    train = dict(epochs=1, batch_size=4, output_dir=str(output_dir), val_pairs_per_category=2,
                 test_pairs_per_category=2, seed=0)
    train.update(train_overrides)
    return {"train": train, "model": dict(TINY_MODEL),
            "synthetic": {k: v for k, v in asdict(tiny_synthetic_config()).items() if k in TINY_SYNTHETIC}}


def make_trainer(output_dir, model=None, **train):
    """A :class:`~pyg_ssgm.trainer.Trainer` of the tiny settings (``train`` overrides its train
    section); ``model``: flat settings of the model, the loss or the inference."""
    from pyg_ssgm.trainer import Trainer

    settings = merge(split_sections(tiny_settings(output_dir, **train)), split_sections(model or {}))
    return Trainer(build(Settings.from_dict(settings), progress=False), progress=False)


@pytest.fixture
def one_thread():
    """Run the test with torch on one thread (the test machine's cores are few and shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_data() -> SyntheticKeypoints:
    return SyntheticKeypoints(tiny_synthetic_config())


@pytest.fixture(scope="session")
def generated_pairs(tiny_data) -> List[PairData]:
    """Six self-supervised pairs (with completion targets) of training instances, seeded."""
    gen = PairGenerator(drop_rate=0.3)
    return [gen(inst, torch.Generator().manual_seed(i)) for i, inst in enumerate(tiny_data.train[:6])]


@pytest.fixture(scope="session")
def real_pairs(tiny_data) -> List[PairData]:
    """Real cross-instance test pairs (ground truth from names, nothing filtered), both categories."""
    by_cat: Dict[str, list] = {}
    for inst in tiny_data.test:
        by_cat.setdefault(inst.category, []).append(inst)
    pairs = []
    for insts in by_cat.values():
        pairs += [make_pair(insts[0], insts[1]), make_pair(insts[1], insts[2]), make_pair(insts[2], insts[0])]
    return pairs


@pytest.fixture
def generated_batch(generated_pairs) -> Batch:
    return to_batch(generated_pairs[:4])


@pytest.fixture
def real_batch(real_pairs) -> Batch:
    return to_batch(real_pairs)
