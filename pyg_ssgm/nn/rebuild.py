"""Graph rebuilding: kept nodes plus generated nodes form the completed graph, with new edges."""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import TransformerConv

from ..catalog import STRUCTURES
from ..data.graph import delaunay_edges, knn_edges
from ..errors import ConfigError
from .attention import GraphAttention
from .bipartite import full_bipartite



class CompletedGraph(NamedTuple):
    """The nodes of completed graphs, PyG-batched (sorted by graph, real nodes first)."""

    h: Tensor  # [N, C] node embeddings
    pos: Tensor  # [N, 2] normalised positions (predicted ones for generated nodes)
    batch: Tensor  # [N] graph of each node
    is_generated: Tensor  # [N] bool


def complete_graph(h_real: Tensor, pos_real: Tensor, batch_real: Tensor,
                   h_gen: Tensor, pos_gen: Tensor, batch_gen: Tensor) -> CompletedGraph:
    """Merge real and generated nodes graph by graph, keeping the PyG layout (sorted batch)."""
    h = torch.cat([h_real, h_gen])
    pos = torch.cat([pos_real, pos_gen])
    batch = torch.cat([batch_real, batch_gen])
    is_gen = torch.cat([torch.zeros_like(batch_real, dtype=torch.bool), torch.ones_like(batch_gen, dtype=torch.bool)])
    # Stable sort on (graph, is_generated): real nodes keep their order, generated ones follow.
    order = torch.sort(batch * 2 + is_gen.long(), stable=True).indices
    return CompletedGraph(h[order], pos[order], batch[order], is_gen[order])


def rebuild_edges(pos: Tensor, batch: Tensor, num_graphs: int, structure: str = "delaunay", k: int = 6) -> Tensor:
    """``edge_index`` over completed graphs from (predicted) positions: Delaunay per graph, or k-NN."""
    if structure == "knn":
        return knn_edges(pos.detach(), k, batch)
    return delaunay_edges(pos.detach(), batch)


class GraphRebuilder(nn.Module):
    r"""Refines the embeddings of a completed graph by message passing over its new structure.

    ``structure`` selects where the edges come from:

    * ``"delaunay"`` (default): the Delaunay triangulation of the predicted positions;
    * ``"knn"``: the k nearest neighbours of each node;
    * ``"learned"``: no coordinates at all; every node attends to every node of its graph and
      the attention weights are a soft, differentiable adjacency learned end to end.

    In each case :math:`h \leftarrow \mathrm{LN}(h + \mathrm{ReLU}(\mathrm{conv}(h)))`.
    """

    def __init__(self, channels: int, structure: str = "delaunay", heads: int = 4, k: int = 6):
        super().__init__()
        if structure not in STRUCTURES:
            raise ConfigError(f"structure must be one of {STRUCTURES}, got {structure!r}.")
        self.channels, self.structure, self.heads, self.k = channels, structure, heads, k
        if structure == "learned":
            self.conv = GraphAttention(channels, channels, heads=heads)
        else:
            self.conv = TransformerConv(channels, channels // heads, heads=heads, edge_dim=2, root_weight=True)
        self.norm = nn.LayerNorm(channels)

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()
        self.norm.reset_parameters()

    def forward(self, h: Tensor, pos: Tensor, batch: Tensor, num_graphs: int, return_attention: bool = False):
        """Nodes of completed graphs (a :class:`CompletedGraph`'s ``h [N, C]``, ``pos [N, 2]``,
        ``batch [N]``). Returns the refined embeddings ``[N, C]`` and the ``edge_index`` used (plus,
        with ``return_attention``, the attention weights per edge ``[E, heads]``)."""
        attention: Optional[Tensor] = None
        if self.structure == "learned":
            edge_index = full_bipartite(batch, batch, num_graphs)  # given: no host sync
            out = self.conv((h, h), edge_index, return_attention_weights=return_attention)
            if return_attention:
                out, (edge_index, attention) = out
        else:
            edge_index = rebuild_edges(pos, batch, num_graphs, self.structure, self.k)
            edge_attr = pos[edge_index[1]] - pos[edge_index[0]]
            out = self.conv(h, edge_index, edge_attr, return_attention_weights=return_attention or None)
            if return_attention:
                out, (edge_index, attention) = out
        h = self.norm(h + F.relu(out))
        return (h, edge_index, attention) if return_attention else (h, edge_index)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, structure={self.structure!r})"
