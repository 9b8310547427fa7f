"""Settings chosen on a real dataset's *validation* split, for the examples and the benchmark.

Each preset is a dict of ``train`` / ``model`` / ``features`` sections (as in a ``--config``
file); everything it does not name keeps its default. Every value was chosen on the dataset's
validation split, never on its test split.

**Willow** (15 validation pairs per class, the last 6 of the 20 training images of each class;
``benchmarks/results/willow.md`` has the numbers behind each choice):

* ``pseudo_labels``: the training split's unlabelled real pairs with cycle-consistent
  pseudo-labels (validation 0.832 -> 0.872 without, 0.908 with the shape-context node features).
* ``shape_context_weight`` (geometry only) / ``appearance_weight`` (with images): the raw
  descriptors' cosines fused late into the affinity (0.908 -> 0.939; 0.968 with images).
* ``use_appearance=False`` with images: the learned encoder sees geometry only; given the
  descriptors as input it fits the 70 training images and falls to 0.79 on validation.
* ``coherence_rounds = 0``: the non-rigid refinement that keeps large graphs matched (the
  default, 8 rounds) does not help Willow's 10-node graphs: validation 0.932 without / 0.920
  with it (geometry), 0.965 / 0.964 (images); ``benchmarks/results/willow_coherence.md``.

**CUB-200-2011** (geometry only: no images; 600 validation pairs, 3 per class, from the last 10 %
of each class's training images; unfiltered macro F1 after 3 epochs, seed 0;
``benchmarks/results/cub_validation.md``, ``python benchmarks/validation_choice.py``):

* ``pseudo_labels``: generated pairs only 0.454 (best ``shape_context_weight``, 10) -> 0.481
  with the pseudo-labelled real pairs (intersection accuracy 0.530 -> 0.584). An epoch then
  holds about 8x more pairs (the cycle-consistent RRWM pairs of the training split), 7 min on
  2 busy CPU cores instead of 1.
* ``shape_context_weight = 0``: late fusion of the raw shape context *hurts* on CUB with the
  pseudo-labels (0.481 at 0, 0.465 / 0.459 / 0.448 at 10 / 20 / 40): with 15 parts, a fifth of
  them missing and birds in every pose, the raw descriptor of a part changes with the parts that
  are absent.
* For reference, learning-free RRWM (full matching) scores 0.494 F1 / 0.607 accuracy on the same
  validation pairs: on CUB geometry alone SSGM does not beat it.
"""
from __future__ import annotations

import copy
from typing import Any, Dict

Preset = Dict[str, Dict[str, Any]]

WILLOW_GEOMETRY: Preset = {
    "train": {"pseudo_labels": True},
    "model": {"shape_context_weight": 20.0, "coherence_rounds": 0},
}

WILLOW_IMAGES: Preset = {
    "train": {"pseudo_labels": True, "feature_noise": 0.0},
    "model": {"appearance_weight": 40.0, "use_appearance": False, "coherence_rounds": 0},
    "features": {"backbone": "efficientnet_lite0"},
}

CUB: Preset = {
    "train": {"pseudo_labels": True, "epochs": 3},
    "model": {"shape_context_weight": 0.0},
}

PRESETS: Dict[str, Preset] = {"willow_geometry": WILLOW_GEOMETRY, "willow_images": WILLOW_IMAGES, "cub": CUB}


def preset(name: str) -> Preset:
    """A copy of preset ``name`` (see :data:`PRESETS`)."""
    from .errors import ConfigError

    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {sorted(PRESETS)}.")
    return copy.deepcopy(PRESETS[name])


__all__ = ["PRESETS", "preset", "WILLOW_GEOMETRY", "WILLOW_IMAGES", "CUB"]
