"""Graph structure from keypoint coordinates: Delaunay edges (with fallbacks) and edge attributes."""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import Delaunay, QhullError
from torch import Tensor
from torch_geometric.utils import coalesce, to_undirected

from ..errors import InvalidInputError

# Relative tolerance under which a point set counts as collinear (its second singular value
# is this small compared with the first). Qhull would otherwise fail, or return slivers.
_COLLINEAR_TOL = 1e-7


def _chain_edges(pos: np.ndarray) -> np.ndarray:
    """Connect points in their order along the principal direction (collinear fallback)."""
    centered = pos - pos.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    order = np.argsort(centered @ vt[0], kind="stable")
    return np.stack([order[:-1], order[1:]])


def _triangulation_edges(p: np.ndarray) -> np.ndarray:
    """Directed Delaunay edges ``[2, E]`` of one point set ``p [n, 2]`` (n >= 2), with the
    fallbacks of :func:`delaunay_edges`; each edge appears at least once."""
    n = p.shape[0]
    if n == 2:
        return np.array([[0], [1]])
    sv = np.linalg.svd(p - p.mean(0, keepdims=True), compute_uv=False)
    if sv[0] == 0 or sv[1] <= _COLLINEAR_TOL * sv[0]:
        return _chain_edges(p)
    if n == 3:  # a triangle; Qhull needs at least 4 points for its initial simplex
        return np.array([[0, 1, 2], [1, 2, 0]])
    try:
        simplices = Delaunay(p, qhull_options="QJ").simplices
    except QhullError:  # pragma: no cover - QJ makes this very unlikely
        return _chain_edges(p)
    return np.concatenate([simplices[:, [0, 1]], simplices[:, [1, 2]], simplices[:, [2, 0]]]).T


def delaunay_edges(pos: Tensor, batch: Tensor | None = None) -> Tensor:
    r"""Undirected Delaunay triangulation edges of 2-D point sets, as ``edge_index [2, E]``.

    With ``batch`` (sorted, as PyG batches are) each graph is triangulated on its own and no edge
    crosses graphs; the result equals the graphs' own edge sets, offset and concatenated. Each
    undirected edge appears in both directions. Fallbacks, so that every input gives a usable
    graph: no edge for 0 or 1 point, one edge for 2 points, the triangle for 3, a chain along the
    line for collinear points (Qhull cannot triangulate them), and joggled input (``QJ``) for
    duplicates so that every point is a vertex of the triangulation.
    """
    n = pos.size(0)
    p = pos.detach().cpu().double().numpy()
    # Qhull runs per point set on the CPU; everything else is done once for the whole batch,
    # which is what makes a batch of 32 small graphs several times cheaper than 32 calls.
    if batch is None:
        bounds = [0, n]
    else:
        b = batch.detach().cpu()
        if b.shape != (n,) or (b.numel() and (int(b.min()) < 0 or bool((b[1:] < b[:-1]).any()))):
            raise InvalidInputError(f"batch must be a sorted vector of {n} non-negative graph ids (one per point, "
                                    f"graph by graph, as PyG batches are), got shape {list(b.shape)}.")
        bounds = np.concatenate([[0], np.cumsum(torch.bincount(b, minlength=1).numpy())]).tolist()
    parts = [_triangulation_edges(p[a:b]) + a for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= 2]
    if not parts:
        return torch.empty(2, 0, dtype=torch.long, device=pos.device)
    edge_index = torch.as_tensor(np.concatenate(parts, axis=1), dtype=torch.long, device=pos.device)
    return coalesce(to_undirected(edge_index, num_nodes=n), num_nodes=n)


def knn_edges(pos: Tensor, k: int, batch: Tensor | None = None) -> Tensor:
    """Symmetric k-nearest-neighbour edges (within each graph of ``batch``), no self-loops."""
    n = pos.size(0)
    if n < 2 or k < 1:
        return torch.empty(2, 0, dtype=torch.long, device=pos.device)
    batch = torch.zeros(n, dtype=torch.long, device=pos.device) if batch is None else batch
    dist = torch.cdist(pos, pos)
    dist = dist.masked_fill(batch.view(-1, 1) != batch.view(1, -1), float("inf"))
    dist.fill_diagonal_(float("inf"))
    k = min(k, n - 1)
    nbr_dist, nbr = dist.topk(k, dim=1, largest=False)
    row = torch.arange(n, device=pos.device).view(-1, 1).expand(-1, k)
    keep = torch.isfinite(nbr_dist)
    edge_index = torch.stack([nbr[keep], row[keep]])
    return coalesce(to_undirected(edge_index, num_nodes=n), num_nodes=n)


def graph_scale(pos: Tensor) -> Tensor:
    """A robust size of a point set: root mean squared distance to the centroid (1 if degenerate)."""
    if pos.size(0) == 0:
        return pos.new_ones(())
    scale = (pos - pos.mean(0, keepdim=True)).pow(2).sum(-1).mean().sqrt()
    return torch.where(scale > 1e-8, scale, torch.ones_like(scale))


def edge_attributes(pos: Tensor, edge_index: Tensor, scale: Tensor | float | None = None) -> Tensor:
    r"""Relative position of each edge, :math:`(p_j - p_i) / s` for an edge :math:`i \to j`.

    Dividing by the graph's scale :math:`s` makes the attribute independent of the image size,
    so models transfer between datasets whose coordinates are in pixels of different images.
    """
    src, dst = edge_index
    scale = graph_scale(pos) if scale is None else scale
    return (pos[dst] - pos[src]) / scale
