"""Settings chosen on a real dataset's *validation* split, for the examples and the benchmark.

Each preset is a dict of ``train`` / ``model`` / ``features`` sections (as in a ``--config``
file); everything it does not name keeps its default. Every value below was chosen on Willow's
validation split (15 pairs per class, the last 6 of the 20 training images of each class), never
on the test split; ``benchmarks/results/willow.md`` has the numbers behind each choice.

* ``pseudo_labels``: the training split's unlabelled real pairs with cycle-consistent
  pseudo-labels (validation 0.832 -> 0.872 without, 0.908 with the shape-context node features).
* ``shape_context_weight`` (geometry only) / ``appearance_weight`` (with images): the raw
  descriptors' cosines fused late into the affinity (0.908 -> 0.939; 0.968 with images).
* ``use_appearance=False`` with images: the learned encoder sees geometry only; given the
  descriptors as input it fits the 70 training images and falls to 0.76 on validation.
"""
from __future__ import annotations

import copy
from typing import Any, Dict

Preset = Dict[str, Dict[str, Any]]

WILLOW_GEOMETRY: Preset = {
    "train": {"pseudo_labels": True},
    "model": {"shape_context_weight": 20.0},
}

WILLOW_IMAGES: Preset = {
    "train": {"pseudo_labels": True, "feature_noise": 0.0},
    "model": {"appearance_weight": 40.0, "use_appearance": False},
    "features": {"backbone": "efficientnet_lite0"},
}

PRESETS: Dict[str, Preset] = {"willow_geometry": WILLOW_GEOMETRY, "willow_images": WILLOW_IMAGES}


def preset(name: str) -> Preset:
    """A copy of preset ``name`` (see :data:`PRESETS`)."""
    from .errors import ConfigError

    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {sorted(PRESETS)}.")
    return copy.deepcopy(PRESETS[name])


__all__ = ["PRESETS", "preset", "WILLOW_GEOMETRY", "WILLOW_IMAGES"]
