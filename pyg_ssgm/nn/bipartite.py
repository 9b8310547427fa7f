r"""Complete bipartite ``edge_index``es per graph of a PyG batch: every source node of a graph to
every destination node of the same graph, the edges over which the query decoder and the
"learned" rebuilder attend."""
from typing import Optional

import torch
from torch import Tensor
from torch_geometric import is_debug_enabled
from torch_geometric.utils import cumsum

from ..errors import InvalidInputError


def check_batch_vector(name: str, batch: Tensor, num_nodes: Optional[int] = None) -> None:
    """Raise :class:`InvalidInputError` unless ``batch`` is a long ``[num_nodes]`` vector (shape and
    dtype only, no host sync; ``num_nodes=None`` accepts any length)."""
    if not isinstance(batch, Tensor) or batch.dim() != 1 or batch.dtype != torch.long:
        what = f"{batch.dtype} {list(batch.shape)}" if isinstance(batch, Tensor) else type(batch).__name__
        raise InvalidInputError(f"{name} must be a 1-D long tensor of graph ids, got {what}.")
    if num_nodes is not None and batch.numel() != num_nodes:
        raise InvalidInputError(
            f"{name} has {batch.numel()} entries but its features have {num_nodes} rows; pass the "
            f"batch vector of those same nodes (one graph id per node).")


def check_graph_ids(name: str, batch: Tensor, num_graphs: Optional[int] = None) -> None:
    """Raise :class:`InvalidInputError` unless the ids of ``batch`` lie in ``[0, num_graphs)``.
    Reads the tensor (a host sync): callers run it only in PyG's debug mode."""
    if batch.numel() > 0:
        lo, hi = int(batch.min()), int(batch.max())
        if lo < 0 or (num_graphs is not None and hi >= num_graphs):
            bound = f"[0, {num_graphs})" if num_graphs is not None else "[0, inf)"
            raise InvalidInputError(
                f"{name} holds graph ids in [{lo}, {hi}], outside {bound}; check num_graphs.")


def full_bipartite(batch_src: Tensor, batch_dst: Tensor, num_graphs: Optional[int] = None) -> Tensor:
    r"""Connect every source node to every destination node of the same graph.

    Returns the ``edge_index [2, E]`` (row 0 indexes sources, row 1 destinations) of the disjoint
    union of complete bipartite graphs :math:`K_{n^{src}_g, n^{dst}_g}`, one per graph id
    :math:`g`, so :math:`E = \sum_g n^{src}_g n^{dst}_g`. Edges are sorted by destination, then by
    source index. Vectorised (no Python loop over graphs); the batch vectors need not be sorted,
    and a graph may have no node on either side (it then contributes no edge).

    Args:
        batch_src (Tensor): long ``[N_src]``, graph id of each source node.
        batch_dst (Tensor): long ``[N_dst]``, graph id of each destination node.
        num_graphs (int, optional): number of graphs; inferred from the largest id if ``None``,
            which reads the batch vectors and so waits for the device: pass it to avoid that sync.
    """
    for name, batch in (("batch_src", batch_src), ("batch_dst", batch_dst)):
        check_batch_vector(name, batch)
        if is_debug_enabled():
            check_graph_ids(name, batch, num_graphs)
    device = batch_dst.device
    if batch_src.device != device:
        raise InvalidInputError(
            f"batch_src is on {batch_src.device} but batch_dst on {device}; move them to one device.")
    if num_graphs is None:
        num_graphs = 1 + max(int(batch_src.max()) if batch_src.numel() else -1,
                             int(batch_dst.max()) if batch_dst.numel() else -1)
    count_src = torch.bincount(batch_src, minlength=num_graphs)[:num_graphs]
    ptr_src = cumsum(count_src)[:-1]  # first position of each graph in sorted order
    perm_src = torch.argsort(batch_src, stable=True)  # source nodes grouped by graph

    deg = count_src[batch_dst]  # number of incoming edges of each destination
    num_edges = int(deg.sum())
    dst = torch.repeat_interleave(torch.arange(batch_dst.numel(), device=device), deg,
                                  output_size=num_edges)
    first_edge = cumsum(deg)[:-1]
    offset = torch.arange(num_edges, device=device) - torch.repeat_interleave(
        first_edge, deg, output_size=num_edges)
    start = torch.repeat_interleave(ptr_src[batch_dst], deg, output_size=num_edges)
    src = perm_src[start + offset]
    return torch.stack([src, dst])


__all__ = ["full_bipartite", "check_batch_vector", "check_graph_ids"]
