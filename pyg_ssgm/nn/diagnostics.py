"""Diagnostics that training logs: how close node embeddings are to collapsing (over-smoothing)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import scatter


@torch.no_grad()
def mean_pairwise_cosine(h: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    r"""Mean cosine similarity over pairs of distinct nodes of the same graph, averaged over graphs.

    With :math:`u = \sum_i \hat{h}_i` over a graph of :math:`n` nodes and unit vectors
    :math:`\hat{h}_i`, the sum over ordered pairs :math:`i \neq j` of :math:`\hat{h}_i^\top \hat{h}_j`
    is :math:`\|u\|^2 - n`, so the measure costs :math:`O(N)`. 1 means every node has the same
    embedding (complete over-smoothing); values near 0 mean well spread embeddings.
    """
    h = F.normalize(h, dim=-1)
    u = scatter(h, batch, dim=0, dim_size=num_graphs, reduce="sum")
    n = scatter(torch.ones_like(batch, dtype=h.dtype), batch, dim=0, dim_size=num_graphs, reduce="sum")
    valid = n > 1
    if not valid.any():
        return h.new_zeros(())
    per_graph = (u.pow(2).sum(-1) - n)[valid] / (n * (n - 1))[valid]
    return per_graph.mean()
