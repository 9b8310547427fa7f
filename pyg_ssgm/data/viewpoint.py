r"""Rigid objects seen from turning viewpoints: a test of out-of-plane rotation, generated in memory.

The real sets this imitates film one rigid object (a toy house, a hotel) while it turns: the
same landmarks in every frame, and pairs of frames further apart in angle are harder, because an
out-of-plane rotation moves near and far points by different amounts (parallax), which no planar
(affine) map follows. Here each category is one random object:

* **object**: ``K ~ U{min_points..max_points}`` landmarks on the surface of a house-like solid
  (a box of random width, depth and height under a gabled roof): its 8 + 2 corners first, then
  points drawn uniformly on its faces, named ``"p00"``, ``"p01"``, ...;
* **frames**: ``num_frames`` views whose yaw (rotation about the vertical axis) runs evenly from 0
  to ``max_angle`` degrees, the camera at ``elevation`` degrees above the horizon and
  ``distance`` object radii away, with a pinhole projection (perspective: nearer points spread
  more) to ``image_size`` pixels; each projected landmark gets Gaussian noise of ``jitter``
  object radii (annotation noise);
* **occlusion**: ``hidden`` landmarks of each frame, drawn at random, are absent (0: complete
  pairs, every landmark in every frame).

Splits interleave the frames of each object: frame ``f`` is in test if ``f % 3 == 0``, in val if
``f % 3 == 2`` and in train otherwise, so every split spans the whole range of angles. Each
instance records its yaw in degrees in ``extra["yaw"]``: :func:`viewpoint_pairs` bins the real
pairs of a split by how far apart their views are. Every draw comes from a generator seeded by
``(seed, object, frame, aspect)``: the data are the same whatever else runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from ..errors import ConfigError
from ..validation import check_at_least, check_field_types
from .instance import KeypointInstance

SPLITS = ("train", "val", "test")
_SHAPE, _NOISE, _HIDDEN = range(3)


@dataclass
class ViewpointConfig:
    """Every knob of the viewpoint data (see the module docstring); angles in degrees, lengths in
    object radii (the landmarks' RMS distance to their centroid is 1)."""

    num_objects: int = 4
    min_points: int = 20
    max_points: int = 30
    num_frames: int = 91
    max_angle: float = 90.0
    elevation: float = 15.0
    distance: float = 5.0
    jitter: float = 0.01
    hidden: int = 0
    image_size: float = 480.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_field_types(self)
        check_at_least(self, 1, "num_objects")
        check_at_least(self, 10, "min_points", note="an object needs its 10 corners")
        if self.max_points < self.min_points:
            raise ConfigError(f"max_points ({self.max_points}) must be >= min_points ({self.min_points}).")
        check_at_least(self, 3, "num_frames", note="one frame per split at least")
        check_at_least(self, 0, "max_angle", "elevation", "jitter")
        if not self.distance > 1.5:
            raise ConfigError(f"distance must be > 1.5 object radii (the camera outside the object), "
                              f"got {self.distance}.")
        if not 0 <= self.hidden <= self.min_points - 3:
            raise ConfigError(f"hidden must be in [0, min_points - 3] (a graph needs 3 landmarks), got {self.hidden}.")


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def house(rng: np.random.Generator, num_points: int) -> np.ndarray:
    """``[num_points, 3]`` landmarks (x right, y up, z towards the camera at yaw 0) on a box of
    random proportions under a gabled roof: its 10 corners, then uniform points on its faces;
    centred, RMS radius 1."""
    w, d, h = rng.uniform(0.8, 1.6), rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.2)
    roof = rng.uniform(0.3, 0.8)
    corners = [(x, y, z) for x in (-w, w) for y in (0.0, h) for z in (-d, d)] + [(0.0, h + roof, -d),
                                                                                 (0.0, h + roof, d)]
    # faces as (origin, edge u, edge v): the 4 walls and the 2 roof slopes
    faces = [((-w, 0, d), (2 * w, 0, 0), (0, h, 0)), ((-w, 0, -d), (2 * w, 0, 0), (0, h, 0)),
             ((-w, 0, -d), (0, 0, 2 * d), (0, h, 0)), ((w, 0, -d), (0, 0, 2 * d), (0, h, 0)),
             ((-w, h, -d), (w, roof, 0), (0, 0, 2 * d)), ((w, h, -d), (-w, roof, 0), (0, 0, 2 * d))]
    areas = np.array([np.linalg.norm(np.cross(u, v)) for _, u, v in faces])
    points = list(corners)
    for k in rng.choice(len(faces), size=max(num_points - len(corners), 0), p=areas / areas.sum()):
        origin, u, v = (np.asarray(t, dtype=float) for t in faces[k])
        a, b = rng.uniform(0.05, 0.95, size=2)
        points.append(origin + a * u + b * v)
    pts = np.asarray(points[:num_points], dtype=float)
    pts -= pts.mean(0)
    return pts / np.sqrt((pts ** 2).sum(1).mean())


def project(points: np.ndarray, yaw: float, elevation: float, distance: float, image_size: float) -> np.ndarray:
    r"""Pinhole projection of ``points [N, 3]`` seen from yaw ``yaw`` and ``elevation`` (degrees),
    the camera ``distance`` radii from the centre and looking at it; focal length chosen so an
    object of radius 1 spans about half the image. Returns pixels ``[N, 2]`` (y down)."""
    a, e = math.radians(yaw), math.radians(elevation)
    turn = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    tilt = np.array([[1, 0, 0], [0, math.cos(e), -math.sin(e)], [0, math.sin(e), math.cos(e)]])
    cam = points @ turn.T @ tilt.T
    depth = distance - cam[:, 2]
    focal = 0.25 * image_size * distance
    return np.stack([image_size / 2 + focal * cam[:, 0] / depth, image_size / 2 - focal * cam[:, 1] / depth], 1)


def load_viewpoint(config: ViewpointConfig = None) -> Dict[str, List[KeypointInstance]]:
    """``{"train", "val", "test"}`` lists of frames of every object (see the module docstring)."""
    cfg = config or ViewpointConfig()
    splits: Dict[str, List[KeypointInstance]] = {name: [] for name in SPLITS}
    for o in range(cfg.num_objects):
        rng = _rng(cfg.seed, o, _SHAPE)
        points = house(rng, int(rng.integers(cfg.min_points, cfg.max_points + 1)))
        names = [f"p{k:02d}" for k in range(len(points))]
        for f in range(cfg.num_frames):
            yaw = cfg.max_angle * f / (cfg.num_frames - 1)
            pos = project(points, yaw, cfg.elevation, cfg.distance, cfg.image_size)
            pos = pos + _rng(cfg.seed, o, f, _NOISE).standard_normal(pos.shape) * cfg.jitter * 0.25 * cfg.image_size
            keep = np.arange(len(points))
            if cfg.hidden:
                keep = np.sort(_rng(cfg.seed, o, f, _HIDDEN).permutation(len(points))[cfg.hidden:])
            split = "test" if f % 3 == 0 else "val" if f % 3 == 2 else "train"
            splits[split].append(KeypointInstance(torch.from_numpy(pos[keep].astype(np.float32)),
                                                  [names[k] for k in keep], category=f"house{o}",
                                                  id=f"house{o}/{f:03d}", extra={"yaw": yaw}))
    return splits


def viewpoint_pairs(instances: Sequence[KeypointInstance], bins: Sequence[float]) -> Dict[Tuple[float, float],
                                                                                           List[Tuple[int, int]]]:
    """The real pairs ``(i, j)`` of ``instances`` (same object, ``i < j``) by the angle between
    their views, ``bins`` the edges in degrees: ``{(low, high): pairs with low <= angle < high}``,
    the last bin closed (``low <= angle <= high``: the two ends of a 0-90 degree turn are a pair)."""
    out: Dict[Tuple[float, float], List[Tuple[int, int]]] = {(lo, hi): [] for lo, hi in zip(bins[:-1], bins[1:])}
    last = bins[-1]
    for i, a in enumerate(instances):
        for j in range(i + 1, len(instances)):
            b = instances[j]
            if a.category != b.category:
                continue
            gap = abs(a.extra["yaw"] - b.extra["yaw"])
            for lo, hi in out:
                if lo <= gap < hi or gap == hi == last:
                    out[(lo, hi)].append((i, j))
    return out


__all__ = ["ViewpointConfig", "load_viewpoint", "viewpoint_pairs", "house", "project"]
