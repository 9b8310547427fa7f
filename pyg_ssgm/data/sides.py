"""Left and right keypoints: what a mirror image swaps.

A bird facing left shows its left eye; mirrored, it is a bird facing right whose visible eye sits
in the same place but is, by the annotation's convention, its *right* eye. So the keypoints of a
mirror image are the same points with "left" and "right" exchanged in their names (the flip index
of human pose estimation's horizontal flip), and a pair of mirror-image birds has no eye in common.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import torch
from torch import Tensor

_SIDE = re.compile(r"\b(left|right)\b", re.IGNORECASE)
_OTHER = {"left": "right", "right": "left", "Left": "Right", "Right": "Left", "LEFT": "RIGHT", "RIGHT": "LEFT"}


def swap_sides(name: Optional[str]) -> Optional[str]:
    """``name`` with the words "left" and "right" exchanged ("left eye" -> "right eye"); a name
    without a side (or ``None``, an unnamed point) is returned as it is."""
    if name is None:
        return None
    return _SIDE.sub(lambda m: _OTHER.get(m.group(0), m.group(0)), name)


def mirror_identity(names: Sequence[Optional[str]]) -> Tensor:
    """For each keypoint of one instance, the index of the keypoint it becomes in the mirror
    image: its left/right counterpart ("left eye" -> the instance's "right eye"), itself where the
    name has no side, and ``-1`` where the counterpart is not annotated (the other eye of a bird
    seen from the side) or the point is unnamed. Long ``[N]``; an involution where defined."""
    index = {name: k for k, name in enumerate(names) if name is not None}
    return torch.tensor([index.get(swap_sides(name), -1) if name is not None else -1 for name in names],
                        dtype=torch.long)


__all__ = ["swap_sides", "mirror_identity"]
