"""Random geometric transforms that make the two copies of a generated pair differ."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..validation import check_field_types
from ..errors import ConfigError
from .graph import graph_scale


def _uniform(low: float, high: float, generator: Optional[torch.Generator]) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


@dataclass
class GeometricAugmentation:
    r"""A random planar transform, sampled independently for each side of a generated pair.

    The transform acts about the centroid :math:`c` of the points:
    :math:`p' = P\big(A (D(p) - c)\big) + c + t`, with :math:`A = R(\theta)\,H(\gamma)\,
    \mathrm{diag}(s\,a, s/a)`, a rotation, a shear and an (an)isotropic scale, :math:`t` a
    translation, :math:`P` an optional mild perspective division and :math:`D` an optional smooth
    non-rigid warp, :math:`D(p) = p + \sum_m w_m \exp(-\lVert p - a_m \rVert^2 / 2\sigma^2)`
    (Gaussian RBF displacement field; anchors :math:`a_m` drawn among the points, weights
    :math:`w_m \sim \mathcal{N}(0, \delta^2 I)`): an affine copy of one instance shows how two
    views of it differ, a warped copy also a little of how two instances do (a bird turning its
    head). Then each observed point is jittered by Gaussian noise. Every magnitude is relative to
    the point set's scale, and setting it to 0 (or the range to ``(1, 1)``) switches that part off.

    *Out-of-plane rotation* (``out_of_plane`` > 0): the points are lifted to a pseudo-3D surface,
    a smooth depth field :math:`z(p) = \sum_m d_m \exp(-\lVert p - b_m \rVert^2 / 2\sigma^2)`
    (anchors among the points, :math:`d_m \sim \mathcal{N}(0, \zeta^2)`, :math:`\zeta` =
    ``depth``), turned by :math:`\phi \sim U(\pm` ``out_of_plane`` :math:`)` about a random axis
    :math:`u` of the image plane and projected back: with :math:`v \perp u`,
    :math:`p \mapsto (p \cdot u) u + (p \cdot v \cos\phi - z(p) \sin\phi) v`. The component
    across the axis shrinks (foreshortening) and near and far points shift by different amounts
    (parallax): what a turning rigid object shows, and what no planar map follows. The depth is a
    field over the plane, so the kept nodes and the completion targets of a pair turn alike.

    Args:
        rotation: maximum rotation angle in degrees (uniform in ``[-rotation, rotation]``).
        scale: range of the isotropic scale factor.
        anisotropy: maximum log-ratio of the two axis scales (0 keeps the aspect ratio).
        shear: maximum shear factor.
        translation: maximum translation, as a fraction of the point set's scale.
        perspective: maximum perspective coefficient (relative to the scale); 0 is affine.
        jitter: standard deviation of the per-point noise, as a fraction of the scale.
        deformation: standard deviation :math:`\delta` of the warp's displacement weights, as a
            fraction of the scale; 0 (the default) keeps the transform affine (or projective).
        deformation_bandwidth: the warp's length scale :math:`\sigma`, as a fraction of the
            scale: large values bend the whole set, small ones move single points.
        deformation_anchors: number of RBF anchors :math:`a_m`.
        out_of_plane: maximum out-of-plane rotation in degrees (0: off).
        depth: standard deviation :math:`\zeta` of the pseudo depth, as a fraction of the scale
            (its bandwidth is ``deformation_bandwidth``).
    """

    rotation: float = 30.0
    scale: Tuple[float, float] = (0.8, 1.2)
    anisotropy: float = 0.1
    shear: float = 0.1
    translation: float = 0.2
    perspective: float = 0.0
    jitter: float = 0.02
    deformation: float = 0.0
    deformation_bandwidth: float = 0.5
    deformation_anchors: int = 4
    out_of_plane: float = 0.0
    depth: float = 0.5

    def __post_init__(self) -> None:
        check_field_types(self)  # a string or NaN magnitude: a named error (NaN passes every `< 0`)
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise ConfigError(f"scale must be a range (low, high) with 0 < low <= high, got {self.scale}.")
        for name in ("rotation", "anisotropy", "shear", "translation", "perspective", "jitter", "deformation",
                     "out_of_plane", "depth"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (0 switches it off), got {getattr(self, name)}.")
        if self.deformation_bandwidth <= 0:
            raise ConfigError(f"deformation_bandwidth must be > 0, got {self.deformation_bandwidth}.")
        if self.deformation_anchors < 1:
            raise ConfigError(f"deformation_anchors must be >= 1, got {self.deformation_anchors}.")

    @classmethod
    def identity(cls) -> "GeometricAugmentation":
        """An augmentation that changes nothing."""
        return cls(rotation=0.0, scale=(1.0, 1.0), anisotropy=0.0, shear=0.0, translation=0.0, jitter=0.0)

    def sample(self, pos: Tensor, generator: Optional[torch.Generator] = None) -> "PlanarTransform":
        """Draw one transform for the point set ``pos`` (its centroid and scale anchor it)."""
        theta = math.radians(_uniform(-self.rotation, self.rotation, generator))
        s = _uniform(*self.scale, generator)
        a = math.exp(_uniform(-self.anisotropy, self.anisotropy, generator) / 2)
        g = _uniform(-self.shear, self.shear, generator)
        rot = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        shear = torch.tensor([[1.0, g], [0.0, 1.0]])
        matrix = rot @ shear @ torch.diag(torch.tensor([s * a, s / a]))
        size = graph_scale(pos).item() if pos.numel() else 1.0
        shift = (torch.rand(2, generator=generator) * 2 - 1) * self.translation * size
        persp = (torch.rand(2, generator=generator) * 2 - 1) * self.perspective / size
        center = pos.mean(0) if pos.numel() else torch.zeros(2)
        # The warp draws its random numbers last and only when on, so that an affine augmentation
        # samples exactly the transforms it did before the warp existed.
        anchors = weights = None
        if self.deformation > 0 and pos.size(0) > 0:
            anchors = pos[torch.randint(pos.size(0), (self.deformation_anchors,), generator=generator)]
            weights = torch.randn(self.deformation_anchors, 2, generator=generator, dtype=pos.dtype)
            weights = weights * self.deformation * size
        # Likewise the out-of-plane rotation: drawn last, and only when on.
        turn = None
        if self.out_of_plane > 0 and pos.size(0) > 0:
            axis = _uniform(0.0, math.pi, generator)
            angle = math.radians(_uniform(-self.out_of_plane, self.out_of_plane, generator))
            depth_anchors = pos[torch.randint(pos.size(0), (self.deformation_anchors,), generator=generator)]
            depths = torch.randn(self.deformation_anchors, generator=generator, dtype=pos.dtype) * self.depth * size
            turn = OutOfPlane(pos.new_tensor([math.cos(axis), math.sin(axis)]), angle, depth_anchors, depths)
        return PlanarTransform(matrix.to(pos.dtype), center.to(pos.dtype), shift.to(pos.dtype),
                               persp.to(pos.dtype), self.jitter * size, anchors, weights,
                               self.deformation_bandwidth * size, turn)


@dataclass
class OutOfPlane:
    """A sampled out-of-plane rotation: the in-plane ``axis`` (unit ``[2]``), the ``angle`` in
    radians, and the pseudo depth field (``anchors [M, 2]``, ``depths [M]``; see
    :class:`GeometricAugmentation`)."""

    axis: Tensor
    angle: float
    anchors: Tensor
    depths: Tensor

    def apply(self, pos: Tensor, center: Tensor, bandwidth: float) -> Tensor:
        sq = (pos.unsqueeze(1) - self.anchors.unsqueeze(0)).pow(2).sum(-1)
        z = torch.exp(-sq / (2 * bandwidth ** 2)) @ self.depths
        across = torch.stack([-self.axis[1], self.axis[0]])
        local = pos - center
        along, perpendicular = local @ self.axis, local @ across
        turned = perpendicular * math.cos(self.angle) - z * math.sin(self.angle)
        return center + along.unsqueeze(-1) * self.axis + turned.unsqueeze(-1) * across


@dataclass
class PlanarTransform:
    """One sampled transform; :meth:`apply` maps points, :meth:`jitter` adds the per-point noise.
    The warp is a field over the plane (``anchors``, ``weights``, ``bandwidth``; ``None``: no warp),
    so any subset of the points it was sampled for maps consistently: the kept nodes and the
    completion targets of a pair are warped alike."""

    matrix: Tensor
    center: Tensor
    shift: Tensor
    perspective: Tensor
    jitter_std: float
    anchors: Optional[Tensor] = None
    weights: Optional[Tensor] = None
    bandwidth: float = 1.0
    turn: Optional[OutOfPlane] = None

    def warp(self, pos: Tensor) -> Tensor:
        if self.turn is not None:
            pos = self.turn.apply(pos, self.center, self.bandwidth)
        if self.anchors is None:
            return pos
        sq = (pos.unsqueeze(1) - self.anchors.unsqueeze(0)).pow(2).sum(-1)
        return pos + torch.exp(-sq / (2 * self.bandwidth ** 2)) @ self.weights

    def apply(self, pos: Tensor) -> Tensor:
        local = (self.warp(pos) - self.center) @ self.matrix.T
        # Mild perspective: divide by 1 + <w, p>; clamped so no point crosses the horizon.
        denom = (1 + local @ self.perspective).clamp(min=0.5).unsqueeze(-1)
        return local / denom + self.center + self.shift

    def jitter(self, pos: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        if self.jitter_std == 0:
            return pos
        return pos + torch.randn(pos.shape, generator=generator, dtype=pos.dtype) * self.jitter_std
