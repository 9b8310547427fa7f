r"""Geometric consensus between the two graphs of each pair: the affine maps that a soft matching
of their embeddings implies, and how well each node is matched on the other side."""
from __future__ import annotations

from typing import NamedTuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from .alignment import apply_affine, dual_softmax, fit_affine, squared_distances


class Consensus(NamedTuple):
    A_ts: Tensor  #: ``[B, 3, 2]`` affine map from target to source (normalised) coordinates
    A_st: Tensor  #: ``[B, 3, 2]`` from source to target
    match_s: Tensor  #: ``[N_s, 3]`` best / second-best cosine to the target, distance to it once aligned
    match_t: Tensor  #: ``[N_t, 3]``


def _matchability(sim: Tensor, dist: Tensor, dim: int, node_mask: Tensor) -> Tensor:
    """Per node: its best and second-best similarity along ``dim`` (-1 where the other graph has
    fewer nodes) and its distance to the nearest aligned node of the other graph (at most 4)."""
    k = min(2, sim.size(dim))
    top = sim.topk(k, dim=dim).values if k else sim.new_full(sim.shape[:dim] + (0,) + sim.shape[dim + 1:], -1.0)
    if k < 2:
        top = torch.cat([top] + [torch.full_like(sim.narrow(dim, 0, 1), -1.0)] * (2 - k), dim=dim)
    nearest = dist.detach().amin(dim=dim, keepdim=True).clamp(max=4.0)
    return torch.cat([top, nearest], dim=dim).movedim(dim, -1)[node_mask]


def affine_consensus(h_s: Tensor, pos_s: Tensor, batch_s: Tensor, h_t: Tensor, pos_t: Tensor, batch_t: Tensor,
                     num_graphs: int, temperature: Tensor, log_geometric_weight: Tensor, rounds: int,
                     fused: Union[Tensor, float] = 0.0) -> Consensus:
    r"""Align the target graphs on the source graphs by a soft, differentiable RANSAC.

    With :math:`c_{ij} = \cos(h^s_i, h^t_j)` and :math:`L = c / T + F` (``fused``: late-fused raw
    terms, or 0), the first round fits the affine map :math:`A` to the dual-softmax matching
    :math:`P = \mathrm{DS}(L)` (:func:`~pyg_ssgm.nn.alignment.fit_affine`); each further round
    re-weighs the matching by the alignment, :math:`P = \mathrm{DS}(L - w \lVert p^s_i - A
    p^t_j\rVert^2)`, and re-fits, so correspondences that disagree with the geometry lose their say.
    :math:`w` = ``log_geometric_weight.exp()``. Returns both maps and, per node, its matchability
    (best and second-best cosine, distance to the nearest aligned node): what lets the decoder
    find the nodes without a partner. Positions are in each graph's normalised frame; ``rounds``
    >= 1.
    """
    H_s, mask_s = to_dense_batch(F.normalize(h_s, dim=-1), batch_s, batch_size=num_graphs)
    H_t, mask_t = to_dense_batch(F.normalize(h_t, dim=-1), batch_t, batch_size=num_graphs)
    P_s, _ = to_dense_batch(pos_s, batch_s, batch_size=num_graphs)
    P_t, _ = to_dense_batch(pos_t, batch_t, batch_size=num_graphs)
    mask = mask_s.unsqueeze(2) & mask_t.unsqueeze(1)
    cos = H_s @ H_t.transpose(1, 2)
    logits = cos / temperature + fused
    P = dual_softmax(logits, mask)
    A_ts = fit_affine(P, P_s, P_t)
    for _ in range(rounds - 1):
        P = dual_softmax(logits - log_geometric_weight.exp() * squared_distances(P_s, apply_affine(A_ts, P_t)), mask)
        A_ts = fit_affine(P, P_s, P_t)
    A_st = fit_affine(P.transpose(1, 2), P_t, P_s)
    dist = squared_distances(P_s, apply_affine(A_ts, P_t)).detach().sqrt().masked_fill(~mask, float("inf"))
    cos = cos.detach().masked_fill(~mask, -1.0)
    return Consensus(A_ts, A_st, _matchability(cos, dist, 2, mask_s), _matchability(cos, dist, 1, mask_t))


__all__ = ["Consensus", "affine_consensus"]
