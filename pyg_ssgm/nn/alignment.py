"""Geometric consensus: the affine map between two graphs implied by a soft matching."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

# The affine fit is shared with the data layer (real pairs' completion targets), so it lives
# there; it is re-exported here, where the consensus uses it.
from ..data.affine import apply_affine, fit_affine

__all__ = ["dual_softmax", "fit_affine", "apply_affine", "squared_distances", "coherence_kernel",
           "coherent_positions", "node_spacing"]


def dual_softmax(S: Tensor, mask: Tensor) -> Tensor:
    r"""A cheap soft matching :math:`P = \mathrm{softmax}_{row}(S) \odot \mathrm{softmax}_{col}(S)`
    (as in LoFTR) over the valid entries ``mask [B, N1, N2]``; padded entries are 0."""
    # A large finite fill, not -inf: a fully padded row would give NaN (and NaN gradients).
    S = S.masked_fill(~mask, -1e4)
    P = torch.softmax(S, dim=2) * torch.softmax(S, dim=1)
    return P.masked_fill(~mask, 0.0)


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    r"""``[B, N1, N2]`` squared Euclidean distances as :math:`|a|^2 + |b|^2 - 2 a \cdot b`: a
    polynomial, so the gradient stays finite where two points coincide (that of ``cdist`` is
    undefined at distance 0), and one batched matmul instead of a ``[B, N1, N2, 2]`` difference
    tensor (the cost that dominates at hundreds of nodes). Rounding below 0 is clamped."""
    sq = a.pow(2).sum(-1).unsqueeze(2) + b.pow(2).sum(-1).unsqueeze(1)
    return torch.baddbmm(sq, a, b.transpose(1, 2), alpha=-2).clamp(min=0)


def coherence_kernel(pos_s: Tensor, mask_s: Tensor, bandwidth: Tensor, distances: Optional[Tensor] = None) -> Tensor:
    r"""``K [B, N1, N1]`` of :func:`coherent_positions`: :math:`K_{ik} = e^{-\lVert p^s_i - p^s_k
    \rVert^2 / 2 \sigma^2}` between the real nodes of a graph, 0 on the diagonal (a node's own
    partner is left out) and for padding. ``bandwidth`` :math:`\sigma`: ``[B]``, in the units of
    the positions. It depends on the source positions only: build it once for every round.
    ``distances``: ``squared_distances(pos_s, pos_s)`` where the caller has it already."""
    distances = squared_distances(pos_s, pos_s) if distances is None else distances
    K = torch.exp(-distances / (2 * bandwidth.view(-1, 1, 1) ** 2))
    K = K * (mask_s.unsqueeze(2) & mask_s.unsqueeze(1))
    return K * (1 - torch.eye(K.size(1), dtype=K.dtype, device=K.device))


def coherent_positions(P: Tensor, pos_s: Tensor, pos_t: Tensor, kernel: Tensor) -> Tensor:
    r"""Where each source node should lie in the (aligned) target frame under a smooth, non-rigid
    deformation: the displacement towards its soft partner, averaged over the *other* source
    nodes with a Gaussian kernel in space (motion coherence, as in coherent point drift).

    .. math::
        d_i = \frac{\sum_j P_{ij} p^t_j}{\sum_j P_{ij}} - p^s_i, \qquad
        \hat p_i = p^s_i + \frac{\sum_{k \ne i} K_{ik} m_k d_k}{\sum_{k \ne i} K_{ik} m_k}, \qquad
        m_k = \textstyle\sum_j P_{kj},

    with :math:`K` = ``kernel`` (:func:`coherence_kernel`). A node's own soft partner is left out
    of its estimate, so a wrong partner cannot confirm itself: the estimate comes from the
    neighbourhood. An affine fit leaves a residual of the size of the deformation, which exceeds
    the spacing of the nodes once a graph is dense; this residual shrinks with the spacing, which
    is what keeps the geometric term decisive as graphs grow. ``P [B, N1, N2]`` (padding 0),
    ``pos_s [B, N1, 2]``, ``pos_t [B, N2, 2]``. Cost O(N1^2 + N1 N2).
    """
    mass = P.sum(2)  # [B, N1]
    partner = (P @ pos_t) / mass.clamp(min=1e-9).unsqueeze(-1)
    W = kernel * mass.unsqueeze(1)
    smoothed = (W @ (partner - pos_s)) / W.sum(2, keepdim=True).clamp(min=1e-9)
    return pos_s + smoothed


def node_spacing(pos: Tensor, mask: Tensor, eps: float = 1e-6, distances: Optional[Tensor] = None) -> Tensor:
    """``[B]`` mean distance from each node to its nearest neighbour in its graph (1 for a graph of
    fewer than two nodes, at least ``eps``): the length in which a local residual means the same at
    any graph size. A unit, not a quantity to learn: no gradient flows through it (the square root
    of a zero distance, two nodes on one spot, would make it NaN). ``distances``:
    ``squared_distances(pos, pos)`` where the caller has it already."""
    with torch.no_grad():
        d = squared_distances(pos, pos) if distances is None else distances
        d = d.masked_fill(~(mask.unsqueeze(2) & mask.unsqueeze(1)), float("inf"))
        d = d.masked_fill(torch.eye(d.size(1), dtype=torch.bool, device=d.device), float("inf"))
        nearest = d.amin(2)
        has = torch.isfinite(nearest)
        total = torch.where(has, nearest.sqrt(), torch.zeros_like(nearest)).sum(1)
        count = has.sum(1)
        spacing = torch.where(count > 0, total / count.clamp(min=1), torch.ones_like(total))
        return spacing.clamp(min=eps)
