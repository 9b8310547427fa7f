"""One annotated object: the unit every dataset reader yields and every pair is made from."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, FrozenSet, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidInputError

#: Largest accepted coordinate magnitude: the geometry squares distances in float32 (max ~3.4e38),
#: so much larger coordinates overflow to inf and break Delaunay and the affine fits.
MAX_ABS_COORDINATE = 1e15


def _as_real_matrix(value: Any, what: str, where: str) -> Tensor:
    """``value`` as a real (integer or floating) tensor, without silent coercions: a string,
    a ragged list, text entries, booleans or complex numbers are refused with a named error
    (``torch.as_tensor`` would split a string, drop imaginary parts or turn True into 1)."""
    if isinstance(value, (str, bytes)):
        raise InvalidInputError(f"{what} must be an array of numbers, got the string {value!r}{where}.")
    try:
        tensor = value if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError):  # ragged nesting, text or other objects in the array
        raise InvalidInputError(f"{what} must be a rectangular array of numbers{where}; got a "
                                f"{type(value).__name__} that is ragged or holds non-numbers.") from None
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise InvalidInputError(f"{what} must hold real numbers, got dtype {tensor.dtype}{where}.")
    return tensor


def _to_default_dtype(value: Tensor, what: str, where: str) -> Tensor:
    """``value`` in the default float dtype, refusing a conversion that merges distinct rows
    (float64 coordinates 1e12 + 0.1 and 1e12 + 0.2 are one float32 point)."""
    out = value.to(torch.get_default_dtype())
    if value.dtype != out.dtype and value.size(0) > 1:
        if torch.unique(value, dim=0).size(0) != torch.unique(out, dim=0).size(0):
            raise InvalidInputError(
                f"{what} has points that are distinct in {value.dtype} but become identical in {out.dtype}"
                f"{where}: the coordinates are too large for their differences; subtract their mean or rescale.")
    return out


def name_types(names: Sequence[Any]) -> FrozenSet[str]:
    """The types of the keypoint names (``None`` aside), as matching sees them: ``"str"`` for any
    string, ``"int"`` for any integer (Python's or numpy's: ``3 == np.int64(3)``), else the type's
    name. Names of different types never match (``3 != "3"``)."""
    def kind(name: Any) -> str:
        if isinstance(name, str):
            return "str"
        if isinstance(name, numbers.Integral) and not isinstance(name, bool):
            return "int"
        return type(name).__name__

    return frozenset(kind(n) for n in names if n is not None)


def describe_instance(inst: "KeypointInstance", i: int) -> str:
    """How error messages name an instance: by its ``id``, else by its index ``i`` in the input."""
    return f"instance {inst.id!r}" if inst.id is not None else f"instance #{i} (no id)"


def check_name_types(a: "KeypointInstance", b: "KeypointInstance", what_a: str = "the source instance",
                     what_b: str = "the target instance") -> None:
    """Refuse two instances whose keypoint names are of different types (int names in one, str in
    the other): no name of one could equal a name of the other, so every pair of them would have
    no correspondence at all, silently. ``what_a`` / ``what_b`` name them in the message."""
    types_a, types_b = name_types(a.names), name_types(b.names)
    if types_a and types_b and types_a != types_b:
        if a.id is not None:
            what_a = f"{what_a} {a.id!r}"
        if b.id is not None:
            what_b = f"{what_b} {b.id!r}"
        raise InvalidInputError(
            f"the keypoint names of {what_a} are {'/'.join(sorted(types_a))} but those of {what_b} are "
            f"{'/'.join(sorted(types_b))}: names match only when equal (3 != '3'), so these instances would "
            "have no correspondence. Give every instance names of one type, e.g. names=[str(n) for n in names].")


@dataclass
class KeypointInstance:
    r"""An annotated object instance: named keypoints and, optionally, an image and features.

    Construction validates everything and raises :class:`~pyg_ssgm.errors.InvalidInputError`
    rather than coercing: coordinates must be real numbers (no strings, booleans, complex or
    ragged lists), finite, below ``MAX_ABS_COORDINATE`` in magnitude and still distinct once
    stored in the default float dtype; ``names`` must be a list, not a string.

    Args:
        pos: keypoint coordinates, float ``[N, 2]`` (pixels or any unit; ``x`` then ``y``).
        names: ``N`` semantic keypoint names, unique within the instance. ``None`` marks an
            unnamed point (clutter / a detector's false positive): it never has a partner.
        category: the object category (``"car"``, ``"duck"``, ...).
        x: optional per-node features ``[N, F]`` (appearance descriptors).
        image: optional image, as a path or an ``H x W x C`` array.
        id: optional identifier (file name), used in error messages and outputs.

    Invisible keypoints must simply be absent: a point at ``(0, 0)`` is a real point.
    """

    pos: Tensor
    names: List[Optional[str]]
    category: str = "object"
    x: Optional[Tensor] = None
    image: Optional[Union[str, Any]] = None
    id: Optional[str] = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f" (instance {self.id!r})" if self.id is not None else ""
        pos = _as_real_matrix(self.pos, "pos", where)
        if pos.dim() != 2 or pos.size(-1) != 2:
            raise InvalidInputError(f"pos must have shape [N, 2], got {tuple(pos.shape)}{where}.")
        if pos.is_floating_point() and not torch.isfinite(pos).all():
            raise InvalidInputError(f"pos contains NaN or infinite coordinates{where}; drop those points instead.")
        if pos.numel() and pos.abs().max().item() >= MAX_ABS_COORDINATE:
            raise InvalidInputError(f"pos has coordinates of magnitude {pos.abs().max().item():.3g}{where}; "
                                    f"they must stay below {MAX_ABS_COORDINATE:.0e} (rescale them, pixels are fine).")
        self.pos = _to_default_dtype(pos, "pos", where)
        if isinstance(self.names, (str, bytes)):  # list("abc") would make three names
            raise InvalidInputError(f"names must be a list of N keypoint names, got the string {self.names!r}{where}.")
        try:
            self.names = list(self.names)
        except TypeError:
            raise InvalidInputError(f"names must be a list of N keypoint names, got {self.names!r}{where}.") from None
        if len(self.names) != pos.size(0):
            raise InvalidInputError(
                f"got {pos.size(0)} positions but {len(self.names)} names{where}; give one name per keypoint."
            )
        named = [n for n in self.names if n is not None]
        try:
            unique = set(named)
        except TypeError:  # an unhashable name (a list, say) cannot be matched across instances
            raise InvalidInputError(f"keypoint names must be strings (or None), got {named!r}{where}.") from None
        if len(unique) != len(named):
            dup = sorted({n for n in named if named.count(n) > 1})
            raise InvalidInputError(f"keypoint names must be unique within an instance{where}; repeated: {dup}.")
        if self.x is not None:
            x = _as_real_matrix(self.x, "x", where).to(torch.get_default_dtype())
            if x.dim() == 1:
                x = x.unsqueeze(-1)
            if x.dim() != 2 or x.size(0) != pos.size(0):
                raise InvalidInputError(f"x must have shape [N={pos.size(0)}, F], got {tuple(x.shape)}{where}.")
            if not torch.isfinite(x).all():
                raise InvalidInputError(f"x contains NaN or infinite values{where}.")
            self.x = x

    @property
    def num_nodes(self) -> int:
        return self.pos.size(0)

    def subset(self, index: Union[Tensor, Sequence[int]]) -> "KeypointInstance":
        """The instance restricted to the nodes in ``index`` (in that order)."""
        index = torch.as_tensor(index, dtype=torch.long)
        return KeypointInstance(
            pos=self.pos[index],
            names=[self.names[i] for i in index.tolist()],
            category=self.category,
            x=None if self.x is None else self.x[index],
            image=self.image,
            id=self.id,
            extra=dict(self.extra),
        )

    def __repr__(self) -> str:
        feat = "" if self.x is None else f", x=[{self.num_nodes}, {self.x.size(1)}]"
        return f"KeypointInstance(category={self.category!r}, num_nodes={self.num_nodes}{feat}, id={self.id!r})"
