"""Protocols that make real pairs *more* partial: outliers (clutter) and extra dropped parts.

Both act on lists of :class:`~pyg_ssgm.data.KeypointInstance` and are deterministic per image:
the random numbers of an instance come from a generator seeded by ``(seed, category, id)`` (its
position in the list when it has no ``id``), so an image is perturbed the same way whichever
split or subset it is read in, and the test pairs of every method see the same points.

* :func:`add_outliers` (Willow with outliers): ``num`` points per image drawn uniformly inside the
  axis-aligned bounding box of the image's own keypoints (``region="box"``, mostly on the object),
  or inside the whole image (``region="image"``, as ThinkMatch's ``RAND_OUTLIER`` draws them for
  the AFAT protocol: mostly background), unnamed (``names`` entry ``None``), so they have no
  partner in any pair and a matcher must leave them unmatched.
* :func:`drop_parts` (the "how partial" sweep on CUB): every keypoint removed independently with
  probability ``share``, on top of what the annotation already lacks.
* :func:`perturb_splits`: both, on every split of a ``{"train", "val", "test"}`` dict, the way
  training (``TrainConfig.outliers`` / ``extra_drop``) and the benchmark apply them.

Geometry only: outliers get no descriptors. An instance that already carries features ``x`` is
refused (sample the image features *after* adding the outliers).
"""
from __future__ import annotations

import os
import zlib
from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..catalog import OUTLIER_REGIONS
from ..errors import InvalidInputError, require
from .instance import KeypointInstance

__all__ = ["add_outliers", "drop_parts", "perturb_splits", "MIN_KEPT"]

#: :func:`drop_parts` keeps at least this many keypoints of an image (or all it has, if fewer):
#: a graph needs a triangle for its Delaunay edges.
MIN_KEPT = 3


def _generator(seed: int, what: str, inst: KeypointInstance, index: int) -> torch.Generator:
    key = f"{what}/{seed}/{inst.category}/{inst.id if inst.id is not None else f'#{index}'}"
    return torch.Generator().manual_seed(zlib.crc32(key.encode()))


def uniform_in_box(pos: Tensor, num: int, generator: Optional[torch.Generator] = None,
                   draw_dtype: Optional[torch.dtype] = None) -> Tensor:
    """``num`` points uniform in the axis-aligned bounding box of ``pos [N, 2]`` (N >= 1), in
    ``pos``'s dtype; the uniform numbers are drawn in ``draw_dtype`` (default ``pos``'s)."""
    low, high = pos.min(0).values, pos.max(0).values
    u = torch.rand(num, 2, generator=generator, dtype=draw_dtype or pos.dtype)
    return (low.to(u.dtype) + u * (high - low).to(u.dtype)).to(pos.dtype)


def image_size(inst: KeypointInstance) -> Tuple[int, int]:
    """``(width, height)`` in pixels of ``inst.image`` (a path: only the file's header is read;
    or an ``H x W (x C)`` array). Raises :class:`~pyg_ssgm.errors.InvalidInputError` where the
    instance has no image or it cannot be read."""
    if inst.image is None:
        raise InvalidInputError(f"instance {inst.id!r} has no image, so outliers cannot be drawn inside it: give "
                                "each instance its image (path or array), or draw them in the keypoints' box "
                                "(region 'box').")
    if isinstance(inst.image, (str, os.PathLike)):
        Image = require("PIL.Image", "images")
        try:
            with Image.open(inst.image) as img:
                return img.size
        except (OSError, Image.UnidentifiedImageError) as error:
            raise InvalidInputError(f"the image of instance {inst.id!r} ({str(inst.image)!r}) cannot be read "
                                    f"({error}); outliers inside the image need its size.") from None
    shape = tuple(getattr(inst.image, "shape", ()))
    if len(shape) < 2:
        raise InvalidInputError(f"the image of instance {inst.id!r} must be a path or an H x W (x C) array, got "
                                f"{type(inst.image).__name__} of shape {shape}.")
    return int(shape[1]), int(shape[0])


def _check_instances(instances: Sequence[KeypointInstance], what: str) -> None:
    bad = [type(i).__name__ for i in instances if not isinstance(i, KeypointInstance)]
    if bad:
        raise InvalidInputError(f"{what} takes a list of KeypointInstance, got a {bad[0]}.")


def add_outliers(instances: Sequence[KeypointInstance], num: int, seed: int = 0,
                 region: str = "box") -> List[KeypointInstance]:
    """Copies of ``instances``, each with ``num`` unnamed outlier points appended.

    The points are uniform in the bounding box of the instance's keypoints (``region="box"``) or
    in its whole image (``region="image"``: ``[0, width] x [0, height]`` pixels, the size read
    from ``inst.image``), with ``names`` ``None``: no partner. Deterministic per image (see the
    module docstring). ``num == 0`` returns the instances unchanged. Raises
    :class:`~pyg_ssgm.errors.InvalidInputError` for a negative ``num``, an unknown ``region``, an
    instance without keypoints, one without a readable image under ``region="image"``, or one
    that already carries features ``x``.
    """
    if not isinstance(num, int) or num < 0:
        raise InvalidInputError(f"num (outliers per image) must be an integer >= 0, got {num!r}.")
    if region not in OUTLIER_REGIONS:
        raise InvalidInputError(f"region must be one of {OUTLIER_REGIONS} (where the outliers are drawn), "
                                f"got {region!r}.")
    _check_instances(instances, "add_outliers")
    if num == 0:
        return list(instances)
    out = []
    for index, inst in enumerate(instances):
        if inst.x is not None:
            raise InvalidInputError(
                f"instance {inst.id!r} already has features x; outliers are geometry only: add them before "
                "sampling image features, or drop the features.")
        if region == "box" and inst.pos.size(0) == 0:
            raise InvalidInputError(f"instance {inst.id!r} has no keypoints: outliers are drawn inside the "
                                    "bounding box of its keypoints.")
        # The box of the keypoints, or the image's corners: the same draw either way.
        corners = inst.pos if region == "box" else inst.pos.new_tensor([[0.0, 0.0], list(image_size(inst))])
        points = uniform_in_box(corners, num, _generator(seed, "outliers", inst, index), draw_dtype=torch.float64)
        out.append(replace(inst, pos=torch.cat([inst.pos, points]), names=list(inst.names) + [None] * num,
                           extra=dict(inst.extra)))
    return out


def drop_parts(instances: Sequence[KeypointInstance], share: float, seed: int = 0) -> List[KeypointInstance]:
    """Copies of ``instances`` with every keypoint removed independently with probability ``share``.

    An image keeps at least :data:`MIN_KEPT` keypoints (all of them when it has fewer): where the
    draw would leave fewer, the surviving ones are topped up from the dropped ones in a random
    order. Deterministic per image. ``share == 0`` returns the instances unchanged.
    """
    if not isinstance(share, (int, float)) or not 0.0 <= share < 1.0:
        raise InvalidInputError(f"share (extra dropped parts) must be in [0, 1), got {share!r}.")
    _check_instances(instances, "drop_parts")
    if share == 0:
        return list(instances)
    out = []
    for index, inst in enumerate(instances):
        n = inst.pos.size(0)
        gen = _generator(seed, "drop", inst, index)
        keep = torch.rand(n, generator=gen) >= share
        missing = min(MIN_KEPT, n) - int(keep.sum())
        if missing > 0:
            dropped = (~keep).nonzero().flatten()
            keep[dropped[torch.randperm(dropped.numel(), generator=gen)[:missing]]] = True
        idx = keep.nonzero().flatten()
        out.append(replace(inst, pos=inst.pos[idx], names=[inst.names[i] for i in idx.tolist()],
                           x=inst.x[idx] if inst.x is not None else None, extra=dict(inst.extra)))
    return out


def perturb_splits(splits: Dict[str, List[KeypointInstance]], outliers: int = 0, extra_drop: float = 0.0,
                   seed: int = 0, outlier_region: str = "box") -> Dict[str, List[KeypointInstance]]:
    """Every split of ``splits`` with :func:`drop_parts` (``extra_drop``) then :func:`add_outliers`
    (``outliers`` in ``outlier_region``) applied; unchanged when both are 0."""
    if not outliers and not extra_drop:
        return splits
    return {name: add_outliers(drop_parts(items, extra_drop, seed), outliers, seed, outlier_region)
            for name, items in splits.items()}
