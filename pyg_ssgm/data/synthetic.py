r"""A procedurally generated keypoint dataset: the package's default data, no download needed.

It imitates the real semantic-keypoint benchmarks (Willow ObjectClass, Pascal VOC Keypoints): a few
object categories, each with a fixed set of named keypoints; instances of a category are deformed,
transformed, partly occluded views of the category's shape, whose keypoints carry noisy appearance
features. Every difficulty is a field of :class:`SyntheticConfig`.

Generative model
----------------
Units: a template has RMS radius 0.5 ("object size" 1); every geometric knob below is relative to it.
The final coordinates are pixel-like: ``image_size / 2 + object_size * p``.

For each category ``c`` (``"cat0"``, ``"cat1"``, ...):

* ``K_c ~ U{min_keypoints..max_keypoints}`` keypoints named ``"kp00"``, ``"kp01"``, ...
* template ``T_c in R^{K_c x 2}``: points drawn uniformly in a union of 2-4 random ellipses ("body
  parts"), kept about ``template_min_dist`` apart or more (relaxed if they do not fit), then
  centred and scaled to RMS radius 0.5;
* latent appearance ``mu_{c,k} in R^F`` per keypoint: a uniformly random unit vector.

For each instance of category ``c`` (``F = feature_dim``):

1. **non-rigid deformation** (Gaussian RBF displacement field, smooth and low-frequency):
   ``p_k = T_k + sum_r w_r exp(-||T_k - a_r||^2 / (2 l^2))``, ``a_r`` = ``deformation_centers``
   random template points, ``w_r ~ N(0, deformation^2 I)``, ``l = deformation_bandwidth``;
2. **affine transform**: ``p_k <- s R(theta) H(h) D p_k + t`` with ``theta ~ U(+-rotation)``,
   ``log s ~ U(log scale_range)``, shear ``h ~ U(+-shear)``, ``D`` = mirror in x with probability
   ``flip_prob``, ``t ~ U(+-translation)^2``;
3. **jitter**: ``p_k <- p_k + eps_k``, ``eps_k ~ N(0, jitter^2 I)``;
4. **occlusion**: each keypoint hidden independently with probability ``occlusion_prob``; with
   probability ``region_occlusion_prob`` a coherent occluder (a half-plane or a disc, equally
   likely) additionally hides a fraction ``U(0, region_occlusion_max_fraction)`` of the keypoints,
   namely the ones inside it; hidden points are revealed again at random until at least
   ``min_visible`` are visible. Hidden keypoints are simply absent from the instance;
5. **appearance**: ``x_k = g (mu_k + feature_noise * z_k / sqrt(F)) + b`` with ``z_k ~ N(0, I)``, a
   per-instance gain ``log g ~ N(0, appearance_gain^2)`` and shift ``b ~ N(0, appearance_shift^2 I / F)``
   ("lighting"); noise norms are thus relative to the unit latent norm;
6. **clutter**: ``M ~ U{0..max_clutter}`` unnamed points (name ``None``), uniform in the keypoints'
   bounding box enlarged by ``clutter_margin``, with features drawn exactly like a real keypoint's but
   from a fresh random latent, so they are confusable with real points;
7. the node order is shuffled (``shuffle_nodes``) so no model can read identities off the index.

Reproducibility: every random draw comes from a ``numpy.random.Generator`` whose seed is derived from
``(seed, category, split, instance, aspect)`` by :class:`numpy.random.SeedSequence`. The same config
therefore always gives bitwise the same data, whatever the global RNG state; splits are independent
draws; and changing, say, ``num_train`` or ``feature_noise`` leaves the other splits, or the
geometry, untouched (handy for controlled experiments).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..errors import ConfigError
from .instance import KeypointInstance

SPLITS: Tuple[str, ...] = ("train", "val", "test")

# Stream ids for the independent random aspects of an instance (see the module docstring).
_GEOMETRY, _OCCLUSION, _APPEARANCE, _CLUTTER, _ORDER = range(5)
_TEMPLATE = 99  # stream id of the per-category template / latents


@dataclass
class SyntheticConfig:
    r"""Every knob of the synthetic keypoint dataset (see the module docstring for the model).

    Geometric quantities are relative to the object size (template RMS radius 0.5); probabilities
    are in ``[0, 1]``. Invalid values raise :class:`~pyg_ssgm.errors.ConfigError` on construction.
    """

    # --- size ---------------------------------------------------------------------------------
    num_categories: int = 5
    min_keypoints: int = 10  #: keypoints per category template, drawn in [min, max]
    max_keypoints: int = 20
    num_train: int = 40  #: instances per category and split
    num_val: int = 10
    num_test: int = 20
    feature_dim: int = 32
    seed: int = 0
    # --- template shape -----------------------------------------------------------------------
    template_min_dist: float = 0.12  #: min distance between template keypoints (relaxed if too dense)
    # --- geometry -----------------------------------------------------------------------------
    deformation: float = 0.06  #: std of the RBF displacement weights
    deformation_bandwidth: float = 0.5  #: RBF length scale: large = smooth, low-frequency field
    deformation_centers: int = 4
    rotation: float = 20.0  #: max |rotation| in degrees
    scale_range: Tuple[float, float] = (0.8, 1.25)
    shear: float = 0.1
    flip_prob: float = 0.0  #: probability of a left-right mirror (as in Pascal VOC); names are kept
    translation: float = 0.2
    jitter: float = 0.01
    # --- occlusion ----------------------------------------------------------------------------
    occlusion_prob: float = 0.2
    region_occlusion_prob: float = 0.3
    region_occlusion_max_fraction: float = 0.4
    min_visible: int = 4
    # --- clutter ------------------------------------------------------------------------------
    max_clutter: int = 0  #: unnamed outliers per instance, drawn in [0, max_clutter]
    clutter_margin: float = 0.1
    # --- appearance ---------------------------------------------------------------------------
    feature_noise: float = 1.25  #: instance noise norm relative to the unit latent norm (NN ~65 %)
    appearance_shift: float = 0.3
    appearance_gain: float = 0.1
    # --- output -------------------------------------------------------------------------------
    object_size: float = 80.0  #: pixel-like scale of the output coordinates
    image_size: float = 256.0
    shuffle_nodes: bool = True

    def __post_init__(self) -> None:
        self.scale_range = tuple(self.scale_range)  # accept lists (e.g. from YAML / click)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first field that is out of range."""

        def fail(name: str, allowed: str) -> None:
            raise ConfigError(f"SyntheticConfig.{name}={getattr(self, name)!r} is invalid: {allowed}.")

        for name in ("num_categories", "min_keypoints", "max_keypoints", "num_train", "num_val",
                     "num_test", "feature_dim", "seed", "deformation_centers", "min_visible",
                     "max_clutter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                fail(name, "must be an integer")
            if value < 0:
                fail(name, "must be >= 0")
        for name in ("num_categories", "feature_dim", "deformation_centers"):
            if getattr(self, name) < 1:
                fail(name, "must be >= 1")
        if self.min_keypoints < 3:
            fail("min_keypoints", "must be >= 3 (a keypoint graph needs a triangle)")
        if self.min_keypoints > self.max_keypoints:
            fail("min_keypoints", f"must be <= max_keypoints={self.max_keypoints}")
        if not 1 <= self.min_visible <= self.min_keypoints:
            fail("min_visible", f"must be in [1, min_keypoints={self.min_keypoints}]")

        floats = ("template_min_dist", "deformation", "deformation_bandwidth", "rotation", "shear",
                  "translation", "jitter", "clutter_margin", "feature_noise", "appearance_shift",
                  "appearance_gain", "object_size", "image_size", "flip_prob", "occlusion_prob",
                  "region_occlusion_prob", "region_occlusion_max_fraction")
        for name in floats:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(value):
                fail(name, "must be a finite number")
            if value < 0:
                fail(name, "must be >= 0")
        for name in ("deformation_bandwidth", "object_size"):
            if getattr(self, name) <= 0:
                fail(name, "must be > 0")
        for name in ("flip_prob", "occlusion_prob", "region_occlusion_prob",
                     "region_occlusion_max_fraction"):
            if getattr(self, name) > 1:
                fail(name, "is a probability/fraction and must be in [0, 1]")
        if len(self.scale_range) != 2 or not all(
                isinstance(s, (int, float, np.number)) and math.isfinite(s) and s > 0
                for s in self.scale_range):
            fail("scale_range", "must be two finite numbers (min, max), both > 0")
        if self.scale_range[0] > self.scale_range[1]:
            fail("scale_range", "must be (min, max) with min <= max")

    def num_instances(self, split: str) -> int:
        """Instances per category in ``split``."""
        return {"train": self.num_train, "val": self.num_val, "test": self.num_test}[_check_split(split)]


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is invalid: must be one of {list(SPLITS)}.")
    return split


def _rng(seed: int, *key: int) -> np.random.Generator:
    # A SeedSequence with a spawn key gives statistically independent streams per key, so each
    # (category, split, instance, aspect) has its own stream and knobs do not leak into each other.
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True).clip(min=1e-12)


def _make_template(rng: np.random.Generator, num: int, min_dist: float) -> np.ndarray:
    """``num`` points in a random union of ellipses, roughly ``min_dist`` apart, RMS radius 0.5."""
    num_blobs = int(rng.integers(2, 5))
    centers = rng.uniform(-0.6, 0.6, size=(num_blobs, 2))
    axes = rng.uniform(0.25, 0.7, size=(num_blobs, 2))
    angles = rng.uniform(0, np.pi, size=num_blobs)
    cos, sin = np.cos(angles), np.sin(angles)

    def inside(p: np.ndarray) -> np.ndarray:  # [M, 2] -> [M] bool, in any blob
        d = p[:, None, :] - centers[None]
        u = (d[..., 0] * cos + d[..., 1] * sin) / axes[:, 0]
        v = (-d[..., 0] * sin + d[..., 1] * cos) / axes[:, 1]
        return ((u ** 2 + v ** 2) <= 1).any(axis=1)

    lo, hi = (centers - axes.max(1, keepdims=True)).min(0), (centers + axes.max(1, keepdims=True)).max(0)
    # The template is rescaled afterwards, so measure min_dist in the final units: the union's
    # extent is about 2 * its RMS radius, i.e. 1 after scaling.
    scale = max(hi - lo) / 1.0
    dist = min_dist * scale
    points: List[np.ndarray] = []
    while len(points) < num:
        cand = rng.uniform(lo, hi, size=(256, 2))
        for p in cand[inside(cand)]:
            if not points or np.min(np.linalg.norm(np.asarray(points) - p, axis=1)) >= dist:
                points.append(p)
                if len(points) == num:
                    break
        else:
            dist *= 0.9  # too dense for this shape: relax the spacing rather than loop forever
    pts = np.asarray(points)
    pts = pts - pts.mean(0)
    return pts * (0.5 / np.sqrt((pts ** 2).sum(1).mean()))


class SyntheticKeypoints:
    r"""The synthetic keypoint dataset: templates, latents and the ``train``/``val``/``test`` splits.

    Args:
        config: a :class:`SyntheticConfig` (defaults if ``None``).
        **overrides: fields replacing those of ``config``, e.g. ``SyntheticKeypoints(seed=3)``.

    Attributes:
        splits: ``{"train": [...], "val": [...], "test": [...]}`` lists of :class:`KeypointInstance`,
            ordered by category then index; ids look like ``"cat0/train/0007"``.
        categories: category names ``["cat0", ...]``.
        keypoint_names: per category, its semantic keypoint names ``["kp00", ...]``.
        templates: per category, the canonical keypoint positions ``[K, 2]`` (object units).
        latents: per category, the unit latent appearance vectors ``[K, F]``.

    Building the default dataset takes a fraction of a second, so it is done eagerly.
    """

    def __init__(self, config: Optional[SyntheticConfig] = None, **overrides) -> None:
        config = SyntheticConfig() if config is None else config
        if not isinstance(config, SyntheticConfig):
            raise ConfigError(f"config must be a SyntheticConfig, got {type(config).__name__}.")
        unknown = set(overrides) - {f.name for f in fields(SyntheticConfig)}
        if unknown:
            raise ConfigError(f"unknown SyntheticConfig field(s): {sorted(unknown)}.")
        self.config = replace(config, **overrides)  # replace() re-runs validation
        self.config.validate()  # the passed config may have been mutated after construction
        cfg = self.config

        self.categories: List[str] = [f"cat{c}" for c in range(cfg.num_categories)]
        width = max(2, len(str(cfg.max_keypoints - 1)))
        self.keypoint_names: Dict[str, List[str]] = {}
        self.templates: Dict[str, torch.Tensor] = {}
        self.latents: Dict[str, torch.Tensor] = {}
        self._templates_np: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
        for c, cat in enumerate(self.categories):
            rng = _rng(cfg.seed, c, _TEMPLATE)
            k = int(rng.integers(cfg.min_keypoints, cfg.max_keypoints + 1))
            template = _make_template(rng, k, cfg.template_min_dist)
            latent = _unit_vectors(rng, k, cfg.feature_dim)
            self._templates_np[cat] = (template, latent)
            self.keypoint_names[cat] = [f"kp{i:0{width}d}" for i in range(k)]
            self.templates[cat] = torch.from_numpy(template.astype(np.float32))
            self.latents[cat] = torch.from_numpy(latent.astype(np.float32))

        self.splits: Dict[str, List[KeypointInstance]] = {
            split: [self._instance(c, s, i) for c in range(cfg.num_categories)
                    for i in range(cfg.num_instances(split))]
            for s, split in enumerate(SPLITS)
        }

    @property
    def train(self) -> List[KeypointInstance]:
        return self.splits["train"]

    @property
    def val(self) -> List[KeypointInstance]:
        return self.splits["val"]

    @property
    def test(self) -> List[KeypointInstance]:
        return self.splits["test"]

    def __getitem__(self, split: str) -> List[KeypointInstance]:
        return self.splits[_check_split(split)]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return f"SyntheticKeypoints(categories={len(self.categories)}, {sizes}, seed={self.config.seed})"

    # ------------------------------------------------------------------------------------------
    def _instance(self, c: int, s: int, i: int) -> KeypointInstance:
        cfg = self.config
        cat = self.categories[c]
        template, latent = self._templates_np[cat]
        k, dim = latent.shape
        key = (c, s, i)

        # 1-3: geometry (in object units).
        rng = _rng(cfg.seed, *key, _GEOMETRY)
        anchors = template[rng.integers(0, k, size=cfg.deformation_centers)]
        weights = rng.standard_normal((cfg.deformation_centers, 2)) * cfg.deformation
        sq = ((template[:, None, :] - anchors[None]) ** 2).sum(-1)
        pos = template + np.exp(-sq / (2 * cfg.deformation_bandwidth ** 2)) @ weights
        theta = np.deg2rad(rng.uniform(-cfg.rotation, cfg.rotation))
        scale = np.exp(rng.uniform(*np.log(cfg.scale_range)))
        shear = rng.uniform(-cfg.shear, cfg.shear)
        flip = -1.0 if rng.random() < cfg.flip_prob else 1.0
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        affine = scale * rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([flip, 1.0])
        pos = pos @ affine.T + rng.uniform(-cfg.translation, cfg.translation, size=2)
        pos = pos + rng.standard_normal(pos.shape) * cfg.jitter

        # 4: occlusion. Random + coherent, as in real images (a leg hidden behind the body hides
        # its neighbours too, which is what makes graph structure unstable).
        rng = _rng(cfg.seed, *key, _OCCLUSION)
        visible = rng.random(k) >= cfg.occlusion_prob
        if rng.random() < cfg.region_occlusion_prob:
            num_hidden = int(round(rng.uniform(0, cfg.region_occlusion_max_fraction) * k))
            if rng.random() < 0.5:  # half-plane: the points furthest along a random direction
                phi = rng.uniform(0, 2 * np.pi)
                depth = -(pos @ np.array([np.cos(phi), np.sin(phi)]))
            else:  # disc: the points closest to a random spot on the object
                depth = np.linalg.norm(pos - pos[rng.integers(k)] - rng.normal(0, 0.1, 2), axis=1)
            visible[np.argsort(depth, kind="stable")[:num_hidden]] = False
        hidden = np.flatnonzero(~visible)
        missing = cfg.min_visible - (k - hidden.size)
        if missing > 0:
            visible[rng.choice(hidden, size=missing, replace=False)] = True
        idx = np.flatnonzero(visible)

        # 5: appearance, with a per-instance gain and shift ("lighting") shared by all its points.
        rng = _rng(cfg.seed, *key, _APPEARANCE)
        gain = np.exp(rng.standard_normal() * cfg.appearance_gain)
        shift = rng.standard_normal(dim) * (cfg.appearance_shift / np.sqrt(dim))
        noise = rng.standard_normal((k, dim)) * (cfg.feature_noise / np.sqrt(dim))
        x = gain * (latent + noise) + shift  # noise drawn for all k so occlusion does not shift it
        x = x[idx]
        names: List[Optional[str]] = [self.keypoint_names[cat][j] for j in idx]
        pos_vis = pos[idx]

        # 6: clutter, confusable with real points in both position and appearance.
        if cfg.max_clutter > 0:
            rng = _rng(cfg.seed, *key, _CLUTTER)
            m = int(rng.integers(0, cfg.max_clutter + 1))
            lo, hi = pos.min(0), pos.max(0)
            pad = cfg.clutter_margin * (hi - lo)
            c_pos = rng.uniform(lo - pad, hi + pad, size=(m, 2))
            c_x = gain * (_unit_vectors(rng, m, dim) + rng.standard_normal((m, dim))
                          * (cfg.feature_noise / np.sqrt(dim))) + shift
            pos_vis = np.concatenate([pos_vis, c_pos])
            x = np.concatenate([x, c_x])
            names = names + [None] * m

        # 7: node order.
        order = np.arange(len(names))
        if cfg.shuffle_nodes:
            order = _rng(cfg.seed, *key, _ORDER).permutation(len(names))
        pos_px = cfg.image_size / 2 + cfg.object_size * pos_vis[order]
        return KeypointInstance(
            pos=torch.from_numpy(pos_px.astype(np.float32)),
            names=[names[j] for j in order],
            category=cat,
            x=torch.from_numpy(x[order].astype(np.float32)),
            id=f"{cat}/{SPLITS[s]}/{i:04d}",
        )


def load_synthetic(split: str = "train", config: Optional[SyntheticConfig] = None,
                   **overrides) -> List[KeypointInstance]:
    r"""The instances of one split of the synthetic dataset.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        config: a :class:`SyntheticConfig` (defaults if ``None``).
        **overrides: fields replacing those of ``config``, e.g. ``load_synthetic("test", seed=1)``.
    """
    _check_split(split)
    return SyntheticKeypoints(config, **overrides)[split]


__all__ = ["SyntheticConfig", "SyntheticKeypoints", "load_synthetic", "SPLITS"]
