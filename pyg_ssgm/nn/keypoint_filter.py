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


class KeypointMemory(nn.Module):
    r"""What the training points looked like, kept to correct the filter's score at inference.

    The directions of the filter's standardised inputs :math:`f_m` of the training points are kept
    with whether each has a name. A point's nearest-neighbour score is

    .. math::
        s_i = \frac{1}{k} \sum_{m \in N_k^+(i)} \cos(f_i, f_m) - \frac{1}{k} \sum_{m \in N_k^-(i)} \cos(f_i, f_m),

    over its ``k`` most similar named (:math:`N_k^+`) and unnamed (:math:`N_k^-`) training points,
    and its logit becomes :math:`a \ell_i + b s_i + c`, the coefficients fitted by a logistic
    regression on the training points themselves, each scored against the *other* training
    instances only (:meth:`fit`). A linear score draws one boundary through the inputs; the
    neighbours see that a car's wheel and a car's window are both keypoints.

    Empty until :meth:`fit`; then ``forward`` applies it. The buffers take the size of what a
    checkpoint holds when loaded.

    Args:
        channels: the filter's input width.
        k: neighbours on each side.
        capacity: at most this many training points are kept (a seeded draw of them beyond).
    """

    def __init__(self, channels: int, k: int = 10, capacity: int = 20000):
        super().__init__()
        self.k, self.capacity = k, capacity
        self.register_buffer("keys", torch.zeros(0, channels))
        self.register_buffer("named", torch.zeros(0, dtype=torch.bool))
        self.register_buffer("coef", torch.tensor([1.0, 0.0, 0.0]))
        self._count_keys()

    def _count_keys(self) -> None:
        # the neighbours each side has, counted once whenever the keys change rather than on every
        # call of score (reading them is a host sync on a GPU)
        num_named = int(self.named.sum())
        self.k_named, self.k_unnamed = min(self.k, num_named), min(self.k, self.named.numel() - num_named)

    @property
    def fitted(self) -> bool:
        return self.keys.size(0) > 0

    def clear(self) -> None:
        self.keys = self.keys.new_zeros(0, self.keys.size(1))
        self.named = self.named.new_zeros(0)
        self.coef = torch.tensor([1.0, 0.0, 0.0], device=self.coef.device)
        self._count_keys()

    def reset_parameters(self) -> None:
        self.clear()

    def score(self, f: Tensor, exclude: Optional[Tensor] = None, owner: Optional[Tensor] = None,
              chunk: int = 2048) -> Tensor:
        """``[N]`` nearest-neighbour scores :math:`s_i` of inputs ``f [N, channels]``; with
        ``exclude [N]`` and ``owner [M]`` (ids of the instance of each point and of each kept point),
        a point's own instance is left out."""
        keys = self.keys  # unit rows: normalised once, when fitted
        out = []
        for start in range(0, f.size(0), chunk):
            sim = F.normalize(f[start:start + chunk], dim=-1) @ keys.t()
            if exclude is not None:
                sim = sim.masked_fill(exclude[start:start + chunk].unsqueeze(1) == owner.unsqueeze(0), -2.0)
            pos = sim.masked_fill(~self.named, -2.0).topk(self.k_named, dim=-1).values.mean(-1)
            neg = sim.masked_fill(self.named, -2.0).topk(self.k_unnamed, dim=-1).values.mean(-1)
            out.append(pos - neg)
        return torch.cat(out)

    @torch.no_grad()
    def fit(self, f: Tensor, named: Tensor, owner: Tensor, logit: Tensor) -> None:
        """Keep the training points' inputs ``f [M, channels]`` and names ``named [M]``, and fit
        :math:`a, b, c` on their logits ``logit [M]``, each point scored against the points of
        other instances (``owner [M]``: its instance) than its own. Without both named and
        unnamed points there is nothing to fit: the memory stays empty."""
        if named.all() or not named.any():
            return self.clear()
        if f.size(0) > self.capacity:
            keep = torch.randperm(f.size(0), generator=torch.Generator().manual_seed(0))[:self.capacity]
            keep = keep.to(f.device)
            f, named, owner, logit = f[keep], named[keep], owner[keep], logit[keep]
        self.keys, self.named = F.normalize(f.detach(), dim=-1), named.clone()
        self._count_keys()
        s = self.score(f, exclude=owner, owner=owner)
        z = torch.stack([logit, s], -1)
        mean, std = z.mean(0), z.std(0).clamp(min=1e-6)
        # from zero (no random draw): an input that does not vary keeps weight 0
        params = torch.zeros(3, dtype=z.dtype, device=z.device, requires_grad=True)
        with torch.enable_grad():
            optimiser = torch.optim.LBFGS([params], max_iter=100)

            def closure():
                optimiser.zero_grad()
                loss = F.binary_cross_entropy_with_logits((z - mean) / std @ params[:2] + params[2], named.to(z.dtype))
                loss.backward()
                return loss
            optimiser.step(closure)
        w, b = params.detach()[:2] / std, params.detach()[2]
        self.coef = torch.stack([w[0], w[1], b - (w * mean).sum()])

    def forward(self, logit: Tensor, f: Tensor) -> Tensor:
        if not self.fitted:
            return logit
        return self.coef[0] * logit + self.coef[1] * self.score(f) + self.coef[2]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("keys", "named"):  # as many points as the checkpoint kept
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._count_keys()


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

    With ``memory``, a :class:`KeypointMemory` of the training points, fitted after training
    (:meth:`remember`), corrects the logit at inference (in eval mode); training never reads it.

    Args:
        in_channels: the descriptors' width (0: geometry alone).
        geometry: also read :func:`point_geometry` (then ``forward`` needs ``pos`` and ``batch``).
        memory: keep a :class:`KeypointMemory`.
    """

    def __init__(self, in_channels: int, geometry: bool = False, memory: bool = False):
        super().__init__()
        self.in_channels, self.geometry = in_channels, geometry
        width = in_channels + (GEOMETRY_CHANNELS if geometry else 0)
        self.norm = nn.BatchNorm1d(width, affine=False)
        self.score = nn.Linear(width, 1)
        self.memory = KeypointMemory(width) if memory else None

    def reset_parameters(self) -> None:
        self.norm.reset_running_stats()
        self.score.reset_parameters()
        if self.memory is not None:
            self.memory.reset_parameters()

    def inputs(self, x: Tensor, pos: Optional[Tensor] = None, batch: Optional[Tensor] = None,
               num_graphs: Optional[int] = None) -> Tensor:
        """The standardised inputs ``[N, width]`` the score reads."""
        if self.geometry:
            x = torch.cat([x, point_geometry(pos, batch, num_graphs)], -1)
        return self.norm(x)

    def forward(self, x: Tensor, pos: Optional[Tensor] = None, batch: Optional[Tensor] = None,
                num_graphs: Optional[int] = None) -> Tensor:
        """``[N]`` logits of the points ``x [N, in_channels]``; with ``geometry``, ``pos [N, 2]`` and
        ``batch [N]`` (the point set of each point, ``num_graphs`` of them) too."""
        f = self.inputs(x, pos, batch, num_graphs)
        logit = self.score(f).squeeze(-1)
        if self.memory is not None and not self.training:
            logit = self.memory(logit, f)
        return logit

    @torch.no_grad()
    def remember(self, x: Tensor, pos: Tensor, batch: Tensor, num_graphs: int, named: Tensor) -> None:
        """Fit the memory (if any) on training points: ``x``, ``pos``, ``batch`` as in ``forward``
        (``batch``: the instance of each point), ``named [N]`` whether each has a name. Reads the
        running statistics (call it in eval mode)."""
        if self.memory is None:
            return
        f = self.inputs(x, pos, batch, num_graphs)
        self.memory.fit(f, named, batch, self.score(f).squeeze(-1))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, geometry={self.geometry}, "
                f"memory={self.memory is not None})")


__all__ = ["KeypointFilter", "KeypointMemory", "point_geometry", "GEOMETRY_CHANNELS"]
