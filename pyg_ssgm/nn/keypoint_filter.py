r"""Keypoint filter: is a point a keypoint at all, or does it belong to nothing?"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

from .shape_context import shape_context

#: Nearest neighbours whose distances describe a point's isolation.
NEIGHBOURS = 5
#: Width of :func:`point_geometry`: radius, squared radius, mean distance, ``NEIGHBOURS`` distances,
#: and the 5 x 8 shape context.
GEOMETRY_CHANNELS = 3 + NEIGHBOURS + 40


def point_geometry(pos: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    r"""``[N, GEOMETRY_CHANNELS]``: where each point lies in its own point set, in terms that do not
    depend on the set's position or size.

    * the robust radius :math:`r_i = \lVert p_i - m \rVert / \operatorname{med}_j \lVert p_j - m \rVert`
      (:math:`m` the coordinate-wise median: clutter moves it little) and :math:`r_i^2`;
    * the mean distance to the other points, over its median in the set;
    * the log distances to the ``NEIGHBOURS`` nearest points, over the set's median
      nearest-neighbour distance (a set with fewer points repeats its farthest one);
    * the point's shape context (:func:`~pyg_ssgm.nn.shape_context.shape_context`).

    Keypoints of one object are a compact, regular configuration; points that belong to nothing
    tend to lie apart from it or crowd where no part is.
    """
    dense, mask = to_dense_batch(pos.to(torch.float64), batch, batch_size=num_graphs)  # [B, N, 2]
    nan = torch.full_like(dense[..., 0], float("nan"))
    median = dense.masked_fill(~mask.unsqueeze(-1), float("nan")).nanmedian(dim=1).values  # [B, 2]
    radius = (dense - median.unsqueeze(1)).norm(dim=-1)
    radius = radius / _set_median(torch.where(mask, radius, nan)).clamp(min=1e-12).unsqueeze(1)

    others = mask.unsqueeze(1) & mask.unsqueeze(2) & ~torch.eye(dense.size(1), dtype=torch.bool, device=pos.device)
    distance = torch.cdist(dense, dense) * others
    mean = distance.sum(-1) / others.sum(-1).clamp(min=1)
    mean = mean / _set_median(torch.where(mask, mean, nan)).clamp(min=1e-12).unsqueeze(1)
    # the nearest others, as many columns as NEIGHBOURS even in a batch of smaller sets
    distance = F.pad(distance.masked_fill(~others, float("inf")), (0, max(NEIGHBOURS - dense.size(1), 0)),
                     value=float("inf"))
    nearest = distance.sort(dim=-1).values[..., :NEIGHBOURS]
    farthest = nearest.masked_fill(torch.isinf(nearest), 0.0).amax(-1, keepdim=True)
    nearest = torch.where(torch.isinf(nearest), farthest, nearest)  # too few others: repeat the farthest
    spacing = _set_median(torch.where(mask, nearest[..., 0], nan)).clamp(min=1e-12)
    nearest = (nearest / spacing.view(-1, 1, 1)).clamp(min=1e-6).log()

    context = shape_context(dense, mask)
    out = torch.cat([radius.unsqueeze(-1), radius.pow(2).unsqueeze(-1), mean.unsqueeze(-1), nearest, context], -1)
    return out[mask].to(pos.dtype)


def _set_median(values: Tensor) -> Tensor:
    """``[B]``: the median over each row's non-NaN entries (NaN marks padding)."""
    return values.nanmedian(dim=1).values.nan_to_num(1.0)


class KeypointFilter(nn.Module):
    r"""The logit that a point is a keypoint (a part some keypoint name stands for) rather than a
    point that belongs to nothing (an outlier, clutter, a detector's false positive), from its
    appearance descriptor and, with ``geometry``, where it lies in its point set
    (:func:`point_geometry`):

    .. math::
        \ell_i = w^\top \frac{[x_i \,\Vert\, g_i] - \mu}{\sigma} + b,

    with :math:`\mu, \sigma` the inputs' per-channel mean and deviation (batch statistics in
    training, running ones at inference). Trained on the training pairs' points against their
    names (a point without a name is clutter; no correspondence is read), it lets inference remove
    the points it rejects before any graph is built (:class:`~pyg_ssgm.Predictor`,
    ``InferenceConfig.keypoint_threshold``): an outlier removed can neither take a keypoint's
    partner nor bend its neighbours' edges, which a threshold on the pairs after matching cannot
    undo. Linear on purpose: a few hundred training images teach a linear score as much as they
    can teach (a hidden layer ranked better in a probe and matched worse in the model).

    Args:
        in_channels: the descriptors' width (0: geometry alone).
        geometry: also read :func:`point_geometry` (then ``forward`` needs ``pos`` and ``batch``).
    """

    def __init__(self, in_channels: int, geometry: bool = False):
        super().__init__()
        self.in_channels, self.geometry = in_channels, geometry
        width = in_channels + (GEOMETRY_CHANNELS if geometry else 0)
        self.norm = nn.BatchNorm1d(width, affine=False)
        self.score = nn.Linear(width, 1)

    def reset_parameters(self) -> None:
        self.norm.reset_running_stats()
        self.score.reset_parameters()

    def forward(self, x: Tensor, pos: Optional[Tensor] = None, batch: Optional[Tensor] = None,
                num_graphs: Optional[int] = None) -> Tensor:
        """``[N]`` logits of the points ``x [N, in_channels]``; with ``geometry``, ``pos [N, 2]`` and
        ``batch [N]`` (the point set of each point, ``num_graphs`` of them) too."""
        if self.geometry:
            x = torch.cat([x, point_geometry(pos, batch, num_graphs)], -1)
        return self.score(self.norm(x)).squeeze(-1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, geometry={self.geometry})"


__all__ = ["KeypointFilter", "point_geometry", "GEOMETRY_CHANNELS"]
