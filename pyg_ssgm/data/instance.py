"""One annotated object: the unit every dataset reader yields and every pair is made from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidInputError


@dataclass
class KeypointInstance:
    r"""An annotated object instance: named keypoints and, optionally, an image and features.

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
        pos = torch.as_tensor(np.asarray(self.pos) if not isinstance(self.pos, Tensor) else self.pos)
        if pos.dim() != 2 or pos.size(-1) != 2:
            raise InvalidInputError(f"pos must have shape [N, 2], got {tuple(pos.shape)}{where}.")
        pos = pos.to(torch.get_default_dtype())
        if not torch.isfinite(pos).all():
            raise InvalidInputError(f"pos contains NaN or infinite coordinates{where}; drop those points instead.")
        self.pos = pos
        self.names = list(self.names)
        if len(self.names) != pos.size(0):
            raise InvalidInputError(
                f"got {pos.size(0)} positions but {len(self.names)} names{where}; give one name per keypoint."
            )
        named = [n for n in self.names if n is not None]
        if len(set(named)) != len(named):
            dup = sorted({n for n in named if named.count(n) > 1})
            raise InvalidInputError(f"keypoint names must be unique within an instance{where}; repeated: {dup}.")
        if self.x is not None:
            x = torch.as_tensor(self.x, dtype=torch.get_default_dtype())
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
