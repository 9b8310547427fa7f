"""What a benchmark run depends on: :class:`BenchmarkConfig` with its quick / full presets, and the
classical methods compared (:data:`CLASSICAL`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from ..catalog import DATASETS, OUTLIER_REGIONS
from ..errors import ConfigError
from ..validation import check_choice, parse_device, resolve_device

__all__ = ["BenchmarkConfig", "CLASSICAL", "QAP_SOLVERS", "PUBLISHED", "PUBLISHED_PARTIAL"]


#: Classical methods of the accuracy table: key -> (solver, description of its affinity).
CLASSICAL: Dict[str, Tuple[str, str]] = {
    "hungarian": ("hungarian", "Hungarian (node affinity)"),
    "sm": ("sm", "SM (Delaunay edge affinity)"),
    "rrwm": ("rrwm", "RRWM (Delaunay edge affinity)"),
    "ipfp": ("ipfp", "IPFP (Delaunay edge affinity)"),
}
QAP_SOLVERS = ("sm", "rrwm", "ipfp")

#: Published Willow ObjectClass results (intersection accuracy, %), quoted, not measured here:
#: (method, labels, features, accuracy, note). Their protocols differ in details (split offsets,
#: crops, trained on which images); they are anchors, not rows of the same table.
PUBLISHED: Dict[str, Tuple[Tuple[str, str, str, float, str], ...]] = {
    "willow": (
        ("BB-GM (Rolinek et al., ECCV 2020)", "correspondences", "VGG16", 97.2, ""),
        ("NGM-v2 (Wang et al., TPAMI 2021)", "correspondences", "VGG16", 97.5, ""),
        ("IPCA-GM (Wang et al., TPAMI 2020)", "correspondences", "VGG16", 90.1, ""),
        ("PCA-GM (Wang et al., ICCV 2019)", "correspondences", "VGG16", 87.4, ""),
        ("GANN-MGM (Wang et al., TPAMI 2023)", "none", "VGG16", 99.1,
         "multi-graph, trained on the test images themselves"),
    ),
}

#: Published results in a partial setting with outliers (F1, %), quoted, not measured here:
#: (method, labels, features, F1 as quoted, note). A different protocol from our
#: ``--outliers`` one (their outliers, features, pairs and splits differ): an anchor, not a row.
PUBLISHED_PARTIAL: Dict[str, Tuple[Tuple[str, str, str, str, str], ...]] = {
    "willow": (
        ("GCAN-AFAT (partial)", "correspondences", "VGG16", "82.3 / 83.7",
         "10 random outliers per image; their outlier protocol, not ours"),
    ),
}


@dataclass
class BenchmarkConfig:
    """Everything a benchmark run depends on. :meth:`quick_preset` / :meth:`full_preset` give the
    two documented settings; invalid values raise :class:`~pyg_ssgm.errors.ConfigError`.

    Accuracy: ``dataset`` / ``root`` (as for training), ``epochs`` of each SSGM variant (``None``:
    ``TrainConfig``'s default), at most ``test_pairs_per_category`` / ``val_pairs_per_category``
    real pairs per class (``None``: all), evaluation ``batch_size``; ``image_features``: on a
    real dataset whose images are there, add the image-feature rows (Willow: its validated
    presets, :mod:`pyg_ssgm.presets`); ``synthetic``: fields of
    :class:`~pyg_ssgm.data.synthetic.SyntheticConfig` replacing the embedded data's defaults (for
    the accuracy table; ``None``: the embedded data as ``pyg_ssgm.train`` uses it).
    ``outliers`` / ``extra_drop``: harder real data for every split, training included
    (:mod:`pyg_ssgm.data.perturb`: unnamed points per image inside its keypoints' bounding box;
    share of annotated keypoints removed per image), e.g. Willow with 2 or 4 outliers;
    ``outlier_region``: ``"image"`` draws them anywhere in the image instead (the AFAT protocol's).

    Speed: ``sizes`` (keypoints per graph), ``batch_sizes``, ``drop_rates`` (share of missing
    keypoints per graph, swept at ``drop_size`` keypoints and the largest batch size), timing
    ``repeats`` after ``warmup`` calls, and more until the timed calls add up to ``min_time_s``
    (a warm-up call longer than ``long_call_s`` counts as the single measurement);
    ``max_affinity_gib``: SM / RRWM / IPFP are skipped where the dense affinity matrix ``K`` of one
    batch (float64, ``B (n1 n2)^2`` entries) would exceed it.
    """

    quick: bool = False
    dataset: str = "synthetic"
    root: Optional[str] = None
    device: str = "cpu"
    output_dir: str = "benchmarks/results"
    seed: int = 0
    epochs: Optional[int] = None
    skip_accuracy: bool = False
    skip_speed: bool = False
    test_pairs_per_category: Optional[int] = None
    val_pairs_per_category: Optional[int] = 60
    batch_size: int = 32
    sizes: Tuple[int, ...] = (10, 20, 50, 100, 200, 500)
    batch_sizes: Tuple[int, ...] = (1, 16)
    drop_rates: Tuple[float, ...] = (0.1, 0.3, 0.5)
    drop_size: int = 50
    repeats: int = 5
    min_time_s: float = 0.5
    warmup: int = 2
    long_call_s: float = 2.0
    max_affinity_gib: float = 1.0
    progress: bool = True
    synthetic: Optional[Dict[str, Any]] = None
    image_features: bool = True
    outliers: int = 0
    outlier_region: str = "box"
    extra_drop: float = 0.0

    @classmethod
    def quick_preset(cls, **overrides) -> "BenchmarkConfig":
        """Tiny training, few pairs, 3 repeats: both tables in a few minutes on 2 CPU cores."""
        values = dict(quick=True, epochs=3, test_pairs_per_category=10, val_pairs_per_category=10,
                      batch_sizes=(1, 8), repeats=3, warmup=1, long_call_s=1.0, max_affinity_gib=0.5,
                      min_time_s=0.1)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def full_preset(cls, **overrides) -> "BenchmarkConfig":
        """The reported setting: default training, all test pairs, 5 repeats."""
        return cls(**{k: v for k, v in overrides.items() if v is not None})

    def __post_init__(self) -> None:
        self.sizes = tuple(self.sizes)
        self.batch_sizes = tuple(self.batch_sizes)
        self.drop_rates = tuple(float(d) for d in self.drop_rates)
        if self.dataset not in DATASETS:
            raise ConfigError(f"dataset must be one of {DATASETS}, got {self.dataset!r}.")
        if self.dataset == "synthetic" and self.root is not None:
            raise ConfigError("the synthetic dataset is generated in memory; do not pass --root.")
        if self.dataset != "synthetic" and self.root is None:
            raise ConfigError(f"dataset {self.dataset!r} is read from disk: pass its root directory (--root).")
        if self.skip_accuracy and self.skip_speed:
            raise ConfigError("--skip-accuracy and --skip-speed together leave nothing to run.")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}.")
        for name in ("test_pairs_per_category", "val_pairs_per_category"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1 (or None for all pairs), got {value}.")
        if self.batch_size < 1 or self.repeats < 1 or self.warmup < 0 or not self.min_time_s >= 0:
            raise ConfigError("batch_size and repeats must be >= 1, warmup and min_time_s >= 0.")
        if not self.sizes or any(not isinstance(n, (int, np.integer)) or n < 3 for n in self.sizes):
            raise ConfigError(f"sizes must be integers >= 3 (a keypoint graph needs a triangle), got {self.sizes}.")
        if not self.batch_sizes or any(not isinstance(b, (int, np.integer)) or b < 1 for b in self.batch_sizes):
            raise ConfigError(f"batch sizes must be integers >= 1, got {self.batch_sizes}.")
        self.sizes = tuple(sorted(set(self.sizes)))  # ascending: ratios are against the smallest
        self.batch_sizes = tuple(sorted(set(self.batch_sizes)))
        if any(not 0.0 <= d < 1.0 for d in self.drop_rates):
            raise ConfigError(f"drop rates must lie in [0, 1), got {self.drop_rates}.")
        if self.drop_size < 3:
            raise ConfigError(f"drop_size must be >= 3, got {self.drop_size}.")
        if not self.max_affinity_gib > 0 or not self.long_call_s > 0:
            raise ConfigError("max_affinity_gib and long_call_s must be > 0.")
        if parse_device(self.device).type not in ("cpu", "cuda"):
            raise ConfigError(f"device must be cpu, cuda, cuda:N or auto, got {self.device!r}.")
        if self.outliers < 0:
            raise ConfigError(f"outliers (unnamed points added per image) must be >= 0, got {self.outliers}.")
        check_choice(self, "outlier_region", OUTLIER_REGIONS)
        if not 0.0 <= self.extra_drop < 1.0:
            raise ConfigError(f"extra_drop (share of keypoints removed per image) must be in [0, 1), "
                              f"got {self.extra_drop}.")
        if (self.outliers or self.extra_drop) and self.dataset == "synthetic":
            raise ConfigError("outliers / extra_drop apply to a real dataset (--dataset willow, cub, ...).")
        if self.synthetic is not None:
            if self.dataset != "synthetic":
                raise ConfigError("synthetic settings only apply to dataset 'synthetic'.")
            self.synthetic_config()  # validates the fields

    def synthetic_config(self):
        """The :class:`~pyg_ssgm.data.synthetic.SyntheticConfig` of the accuracy data (``None``: defaults)."""
        from ..data.synthetic import SyntheticConfig

        if self.synthetic is None:
            return None
        unknown = sorted(set(self.synthetic) - set(SyntheticConfig.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown SyntheticConfig field(s) {unknown}.")
        return SyntheticConfig(**self.synthetic)

    @property
    def name(self) -> str:
        """File stem of the results: dataset, quick/full, device, and which parts ran."""
        parts = [self.dataset]
        if self.outliers:
            parts.append(f"outliers{self.outliers}" + ("image" if self.outlier_region == "image" else ""))
        if self.extra_drop:
            parts.append(f"drop{round(100 * self.extra_drop)}")
        parts.append("quick" if self.quick else "full")
        if self.resolved_device().type == "cuda":
            parts.append("cuda")
        if self.skip_accuracy:
            parts.append("speed")
        elif self.skip_speed:
            parts.append("accuracy")
        return "_".join(parts)

    def resolved_device(self) -> torch.device:
        """The device to run on (``auto``: CUDA when available); a :class:`ConfigError` for an absent GPU."""
        return resolve_device(self.device)
