"""Left and right keypoints: what a mirror image swaps.

A bird facing left shows its left eye; mirrored, it is a bird facing right whose visible eye sits
in the same place but is, by the annotation's convention, its *right* eye. So the keypoints of a
mirror image are the same points with "left" and "right" exchanged in their names (the flip index
of human pose estimation's horizontal flip), and a pair of mirror-image birds has no eye in common.

**Spelled sides.** A name is cut into words at every character that is not a letter or a digit
and where the case changes (``leftEye`` -> ``left`` ``Eye``; ``LEye`` -> ``L`` ``Eye``, OpenPose's
spelling). The words ``left`` / ``right`` (any case) are sides, and so are the single letters
``l`` / ``r`` (any case) when the name has another word made of letters: ``left_eye``,
``left eye``, ``left-eye``, ``LeftEye``, ``leftEye``, ``eye_left``, ``LEFT_EYE``, ``l_eye``,
``L_eye``, ``eye_l``, ``LEye`` all name a left eye, while ``l``, ``r``, ``tail``, ``leftmost``,
``L1`` or ``r2`` have no side. Swapping keeps the spelling: ``left_eye`` -> ``right_eye``,
``LeftEye`` -> ``RightEye``, ``l_eye`` -> ``r_eye``, ``LEFT_EYE`` -> ``RIGHT_EYE``.

**Declared sides.** Data whose names follow no such convention (or follow it by accident) declares
its pairs instead: ``sides``, a mapping of each keypoint name to its counterpart (both ways), as
the COCO reader builds from a category's ``flip_pairs`` and stores in ``extra["sides"]`` of each
instance. Then exactly the declared names swap, whatever their spelling, and every other name
stays itself.
"""
from __future__ import annotations

import re
from typing import Dict, Hashable, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..errors import InvalidInputError

#: Where :func:`~pyg_ssgm.data.KeypointInstance` keeps a declared mapping (``extra[SIDES_KEY]``).
SIDES_KEY = "sides"

# One word of a name: a run of capitals before a capitalised word (the "L" of "LEye"), a
# capitalised or lower-case word, a run of capitals, or a number. Separators match nothing.
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_COUNTERPART = {"left": "right", "right": "left", "l": "r", "r": "l"}


def _side_words(name: str) -> List[Tuple[int, int]]:
    """The spans of the words of ``name`` that name a side (empty when it has none)."""
    words = list(_WORD.finditer(name))
    spans = []
    for word in words:
        text = word.group(0).lower()
        if text in ("left", "right"):
            spans.append(word.span())
        elif text in ("l", "r") and any(w is not word and w.group(0).isalpha() for w in words):
            # a lone letter is a side only beside a word ("l_eye"), never on its own ("l", "r2")
            spans.append(word.span())
    return spans


def _swap_word(word: str) -> str:
    """The other side, in the spelling of ``word``: ``left`` -> ``right``, ``Left`` -> ``Right``,
    ``LEFT`` -> ``RIGHT``, ``l`` -> ``r``, ``L`` -> ``R``."""
    other = _COUNTERPART[word.lower()]
    if word.isupper():
        return other.upper()
    return other.capitalize() if word[0].isupper() else other


def has_side(name: Optional[Hashable], sides: Optional[Mapping] = None) -> bool:
    """Whether a mirror image gives ``name`` another name (its counterpart), by ``sides`` when
    declared, else by its spelling."""
    return swap_sides(name, sides) != name


def swap_sides(name: Optional[Hashable], sides: Optional[Mapping] = None) -> Optional[Hashable]:
    """``name`` as a mirror image names it: its declared counterpart (``sides``, when given: any
    name it does not list stays itself), else ``name`` with its side words exchanged in their own
    spelling ("left_eye" -> "right_eye", "LEye" -> "REye"). A name without a side, a name that is
    not a string, and ``None`` (an unnamed point) are returned as they are."""
    if name is None:
        return None
    if sides is not None:
        return sides.get(name, name)
    if not isinstance(name, str):
        return name
    out, end = [], 0
    for start, stop in _side_words(name):
        out += [name[end:start], _swap_word(name[start:stop])]
        end = stop
    return "".join(out) + name[end:]


def mirror_identity(names: Sequence[Optional[Hashable]], sides: Optional[Mapping] = None) -> Tensor:
    """For each keypoint of one instance, the index of the keypoint it becomes in the mirror
    image: its left/right counterpart ("left eye" -> the instance's "right eye"; by ``sides`` when
    declared, see :func:`swap_sides`), itself where the name has no side, and ``-1`` where the
    counterpart is not annotated (the other eye of a bird seen from the side) or the point is
    unnamed. Long ``[N]``; an involution where defined."""
    index = {name: k for k, name in enumerate(names) if name is not None}
    return torch.tensor([index.get(swap_sides(name, sides), -1) if name is not None else -1 for name in names],
                        dtype=torch.long)


def declared_sides(pairs: Iterable[Sequence[Hashable]], names: Sequence[Hashable]) -> Dict[Hashable, Hashable]:
    """The mapping of :func:`swap_sides` from declared pairs of counterpart names (``[["left_eye",
    "right_eye"], ...]``), checked against the keypoint ``names`` they pair: each pair holds two
    different known names, and no name is in two pairs. Raises
    :class:`~pyg_ssgm.errors.InvalidInputError` saying which pair is wrong."""
    known, sides = set(names), {}
    for k, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or len(pair) != 2:
            raise InvalidInputError(f"pair {k} must be two keypoint names, got {pair!r}.")
        a, b = pair
        unknown = [n for n in (a, b) if n not in known]
        if unknown:
            raise InvalidInputError(f"pair {k} {list(pair)!r} names {unknown!r}, which are not keypoints "
                                    f"(the keypoints: {list(names)!r}).")
        if a == b:
            raise InvalidInputError(f"pair {k} pairs {a!r} with itself; list only the names that a mirror "
                                    "exchanges (the others stay themselves).")
        for n in (a, b):
            if n in sides:
                raise InvalidInputError(f"pair {k} {list(pair)!r}: {n!r} is already paired with {sides[n]!r}.")
        sides[a], sides[b] = b, a
    return sides


__all__ = ["SIDES_KEY", "swap_sides", "mirror_identity", "has_side", "declared_sides"]
