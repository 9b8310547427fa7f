r"""Two-stage query selection (as in Deformable DETR and DINO): each graph's queries start from the
nodes of the *other* graph that are least matched in it, the likeliest to be missing from it."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn
from torch_geometric.utils import cumsum, to_dense_batch


def query_counts(batch_other: Tensor, num_graphs: int, num_queries: int, fraction: float) -> Tensor:
    r"""Queries of each graph, long ``[B]``: :math:`\max(Q, \lceil f\,n^{other}\rceil)`, with
    :math:`Q` = ``num_queries`` and :math:`f` = ``fraction`` (a graph lacks a share of the other
    graph's nodes, not a fixed number of them)."""
    size_other = torch.bincount(batch_other, minlength=num_graphs)
    return (fraction * size_other).ceil().long().clamp(min=num_queries)


def select_queries(project: nn.Module, ctx_other: Tensor, best_other: Tensor, batch_other: Tensor, num_graphs: int,
                   counts: Tensor) -> Tuple[Tensor, Tensor]:
    r"""Initial states of the queries of each graph and the node each one is seeded from.

    Query :math:`k` of graph :math:`b` starts from ``project`` of the :math:`k`-th least matched
    node of the other graph of pair :math:`b` (lowest best cosine, ``best_other[:, 0]``), and
    from zeros where that graph has fewer than ``counts[b]`` nodes. Returns ``init
    [sum(counts), C]`` and ``seed [sum(counts)]``, the global index of the seed node (-1: none).
    """
    C, Q = ctx_other.size(1), int(counts.max()) if counts.numel() else 0
    H, mask = to_dense_batch(ctx_other, batch_other, batch_size=num_graphs)
    score, _ = to_dense_batch(best_other[:, 0], batch_other, batch_size=num_graphs, fill_value=float("inf"))
    k = min(Q, H.size(1))
    init = H.new_zeros(num_graphs, Q, C)
    seed = torch.full((num_graphs, Q), -1, dtype=torch.long, device=H.device)
    if k > 0:
        order = score.topk(k, dim=1, largest=False).indices
        picked = torch.gather(H, 1, order.unsqueeze(-1).expand(-1, -1, C))
        valid = torch.gather(mask, 1, order)
        init[:, :k] = project(picked) * valid.unsqueeze(-1)
        ptr = cumsum(torch.bincount(batch_other, minlength=num_graphs))
        seed[:, :k] = torch.where(valid, order + ptr[:-1].unsqueeze(1), seed[:, :k])
    keep = torch.arange(Q, device=H.device).unsqueeze(0) < counts.unsqueeze(1)
    return init[keep], seed[keep]


def anchor_positions(seed: Tensor, pos_other: Tensor, batch_other: Tensor, A: Tensor) -> Tensor:
    r"""Where each query's seed node lies in the query's own frame, :math:`[p, 1]\,A` with ``A``
    ``[B, 3, 2]`` the map from the other graph's frame; 0 for unseeded queries (``seed < 0``). A
    seeded query predicts its position as this anchor plus the residual of its position head."""
    valid = seed >= 0
    index = seed.clamp(min=0)
    graph = batch_other[index]
    mapped = pos_other[index].unsqueeze(1) @ A[graph, :2] + A[graph, 2:3]
    return mapped.squeeze(1) * valid.unsqueeze(-1)


__all__ = ["query_counts", "select_queries", "anchor_positions"]
