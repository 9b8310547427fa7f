"""Conversions between PyG's sparse correspondence layout and dense padded matchings.

Conventions used throughout :mod:`pyg_ssgm.matching`:

* a batch of ``B`` pairs is a dense padded tensor ``X`` of shape ``[B, N1, N2]``
  with true sizes ``n1``, ``n2`` (long ``[B]``); entries ``X[b, i, j]`` with
  ``i >= n1[b]`` or ``j >= n2[b]`` are padding;
* a correspondence set is a long ``[2, K]`` tensor, row 0 source nodes, row 1
  target nodes (the layout of ``PairData.y``), either in *global* indices of a
  PyG ``Batch`` (offset by ``__inc__``) or in *local* indices of one pair.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import Tensor
from torch_geometric.utils import cumsum

from ..errors import InvalidInputError


def size_mask(n1: Tensor, n2: Tensor, N1: int, N2: int) -> Tensor:
    r"""Boolean mask ``[B, N1, N2]`` of the valid (non-padding) entries:
    ``mask[b, i, j] = (i < n1[b]) & (j < n2[b])``."""
    rows = torch.arange(N1, device=n1.device).view(1, -1, 1) < n1.view(-1, 1, 1)
    cols = torch.arange(N2, device=n2.device).view(1, 1, -1) < n2.view(-1, 1, 1)
    return rows & cols


def batch_sizes(batch: Tensor, num_graphs: Optional[int] = None) -> Tensor:
    """Number of nodes of each graph given a PyG ``batch`` vector (long ``[B]``)."""
    if num_graphs is None:
        num_graphs = int(batch.max()) + 1 if batch.numel() > 0 else 0
    return torch.bincount(batch, minlength=num_graphs)


def _ptr(batch: Tensor, num_graphs: int, name: str) -> Tensor:
    """Start offset of every graph, checking that ``batch`` is sorted as PyG makes it."""
    if batch.dim() != 1 or batch.dtype != torch.long:
        raise InvalidInputError(f"{name} must be a 1-D long tensor, got {tuple(batch.shape)} {batch.dtype}")
    if batch.numel() > 0:
        if bool((batch[1:] < batch[:-1]).any()):
            raise InvalidInputError(f"{name} must be sorted (graphs stored contiguously, as in a PyG Batch)")
        if int(batch.min()) < 0 or int(batch.max()) >= num_graphs:
            raise InvalidInputError(f"{name} has graph ids outside [0, {num_graphs})")
    counts = torch.bincount(batch, minlength=num_graphs)
    return cumsum(counts)[:-1]


def pairs_to_dense(
    y: Tensor,
    batch_s: Tensor,
    batch_t: Tensor,
    n1max: Optional[int] = None,
    n2max: Optional[int] = None,
    num_graphs: Optional[int] = None,
) -> Tensor:
    r"""Dense ground-truth matching ``X_gt [B, N1, N2]`` from batched correspondences.

    Args:
        y: long ``[2, M]`` correspondences in *global* (batched) node indices:
            ``y[0]`` indexes the source nodes (``batch_s``), ``y[1]`` the target nodes.
        batch_s, batch_t: PyG batch vectors of the source / target nodes (sorted).
        n1max, n2max: padded sizes; default the largest graph of each side.
        num_graphs: ``B``; default ``max(batch) + 1`` over both sides.

    ``X_gt[b, i, j] = 1`` iff local source node ``i`` of pair ``b`` corresponds to local
    target node ``j``; rows / columns of nodes without a partner stay zero.
    """
    if y.dim() != 2 or y.size(0) != 2 or y.dtype != torch.long:
        raise InvalidInputError(f"y must be a long tensor of shape [2, M], got {tuple(y.shape)} {y.dtype}")
    if num_graphs is None:
        num_graphs = max(int(batch_s.max()) + 1 if batch_s.numel() else 0,
                         int(batch_t.max()) + 1 if batch_t.numel() else 0)
    ptr_s, ptr_t = _ptr(batch_s, num_graphs, "batch_s"), _ptr(batch_t, num_graphs, "batch_t")
    n1 = torch.bincount(batch_s, minlength=num_graphs)
    n2 = torch.bincount(batch_t, minlength=num_graphs)
    N1 = int(n1.max()) if num_graphs > 0 else 0
    N2 = int(n2.max()) if num_graphs > 0 else 0
    n1max = N1 if n1max is None else n1max
    n2max = N2 if n2max is None else n2max
    if n1max < N1 or n2max < N2:
        raise InvalidInputError(f"n1max/n2max ({n1max}, {n2max}) smaller than the largest graph ({N1}, {N2})")

    X = torch.zeros(num_graphs, n1max, n2max, device=y.device)
    if y.size(1) == 0:
        return X
    if int(y[0].min()) < 0 or int(y[0].max()) >= batch_s.numel() \
            or int(y[1].min()) < 0 or int(y[1].max()) >= batch_t.numel():
        raise InvalidInputError("y has node indices outside the source/target node ranges")
    b = batch_s[y[0]]
    if bool((b != batch_t[y[1]]).any()):
        raise InvalidInputError("y links nodes of different pairs (batch_s[y[0]] != batch_t[y[1]])")
    X[b, y[0] - ptr_s[b], y[1] - ptr_t[b]] = 1.0
    return X


def pairs_list_to_dense(
    ys: Sequence[Tensor],
    n1: Tensor,
    n2: Tensor,
    n1max: Optional[int] = None,
    n2max: Optional[int] = None,
) -> Tensor:
    """Per-pair variant of :func:`pairs_to_dense`: ``ys[b]`` is a long ``[2, K_b]``
    tensor of *local* indices of pair ``b``; returns ``X_gt [B, N1, N2]``."""
    n1, n2 = torch.as_tensor(n1, dtype=torch.long), torch.as_tensor(n2, dtype=torch.long)
    if len(ys) != n1.numel() or n1.shape != n2.shape:
        raise InvalidInputError(f"got {len(ys)} correspondence tensors for {n1.numel()} / {n2.numel()} sizes")
    n1max = int(n1.max()) if n1max is None and len(ys) else (n1max or 0)
    n2max = int(n2.max()) if n2max is None and len(ys) else (n2max or 0)
    if len(ys) and (n1max < int(n1.max()) or n2max < int(n2.max())):
        raise InvalidInputError(f"n1max/n2max ({n1max}, {n2max}) smaller than the largest sizes")
    device = ys[0].device if len(ys) else n1.device
    X = torch.zeros(len(ys), n1max, n2max, device=device)
    for b, yb in enumerate(ys):  # building ground truth: a host-side loop is fine here
        if yb.dim() != 2 or yb.size(0) != 2:
            raise InvalidInputError(f"ys[{b}] must have shape [2, K], got {tuple(yb.shape)}")
        if yb.numel() and (int(yb.min()) < 0 or int(yb[0].max()) >= int(n1[b]) or int(yb[1].max()) >= int(n2[b])):
            raise InvalidInputError(f"ys[{b}] has indices outside the pair's sizes ({int(n1[b])}, {int(n2[b])})")
        X[b, yb[0], yb[1]] = 1.0
    return X


def dense_to_pairs(X: Tensor, n1: Tensor, n2: Tensor, threshold: float = 0.5) -> List[Tensor]:
    """Per pair, the long ``[2, K]`` tensor of *local* indices ``(i, j)`` with
    ``X[b, i, j] > threshold`` inside the valid sizes (padding is ignored)."""
    if X.dim() != 3:
        raise InvalidInputError(f"X must have shape [B, N1, N2], got {tuple(X.shape)}")
    n1 = torch.as_tensor(n1, dtype=torch.long, device=X.device)
    n2 = torch.as_tensor(n2, dtype=torch.long, device=X.device)
    hit = (X > threshold) & size_mask(n1, n2, X.size(1), X.size(2))
    b, i, j = hit.nonzero(as_tuple=True)  # sorted by b: one nonzero for the whole batch
    counts = torch.bincount(b, minlength=X.size(0)).tolist()
    return list(torch.stack([i, j]).split(counts, dim=1))
