r"""Neighbourhood consensus (DGMC, Fey et al., ICLR 2020): the matching of a node is corrected by
how its neighbours are matched, a second-order agreement learned end to end.

Given the affinity :math:`S` between the nodes of two (completed) graphs, each step draws random
node colours :math:`R_s \sim \mathcal N(0, I)` on the source, carries them to the target through
the current soft matching :math:`P = \mathrm{DS}(S)` (dual softmax over the valid pairs), lets one
graph network :math:`\psi` spread them along each graph's own edges, and scores every pair by how
alike the two neighbourhoods' colours came out:

.. math::
    R_t = P^\top R_s, \qquad O_s = \psi(R_s, E_s), \quad O_t = \psi(R_t, E_t), \qquad
    S \leftarrow S + \phi(O_{s,i} - O_{t,j}).

Where :math:`i \leftrightarrow j` is right, their neighbours are matched to each other and carry
the same colours, so :math:`O_{s,i} \approx O_{t,j}`; the MLP :math:`\phi` learns how much that
agreement is worth. The colours are random, so :math:`\psi` cannot learn the nodes themselves: it
learns only to compare neighbourhoods. (Measured in docs/results.md: +0.3 F1 points on Willow's
test pairs; it loses with outliers, on CUB and under large viewpoint changes, where the soft
matching it starts from is poor. Off by default.)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import GINConv
from torch_geometric.utils import to_dense_batch

from .alignment import dual_softmax


def _mlp(channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, out_channels))


class NeighbourConsensus(nn.Module):
    r"""``steps`` rounds of neighbourhood consensus over ``[B, N1, N2]`` affinities (see the
    module docstring), with ``channels`` random colours per node and a ``layers``-deep GIN as
    :math:`\psi` (its layers' outputs concatenated, so near and far neighbours both speak).

    :math:`\phi`'s last layer starts at zero: an untrained consensus leaves :math:`S` unchanged.
    In training the colours are fresh normal draws; in evaluation mode they are a fixed table
    indexed by each node's place in its graph, so a pair's result neither varies between calls
    nor depends on the other pairs of its batch.
    """

    def __init__(self, channels: int = 32, steps: int = 2, layers: int = 2, max_nodes: int = 4096):
        super().__init__()
        self.channels, self.steps, self.layers = channels, steps, layers
        self.convs = nn.ModuleList(GINConv(_mlp(channels, channels), train_eps=True) for _ in range(layers))
        self.score = _mlp(channels * layers, 1)
        generator = torch.Generator().manual_seed(0)
        self.register_buffer("colours", torch.randn(max_nodes, channels, generator=generator), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()
        for layer in self.score:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        nn.init.zeros_(self.score[-1].weight)
        nn.init.zeros_(self.score[-1].bias)

    def spread(self, colours: Tensor, edge_index: Tensor) -> Tensor:
        """:math:`\\psi`: the colours passed along ``edge_index``, every layer's output kept."""
        outs = []
        for conv in self.convs:
            colours = torch.relu(conv(colours, edge_index))
            outs.append(colours)
        return torch.cat(outs, dim=-1)

    def draw(self, mask: Tensor, dtype: torch.dtype) -> Tensor:
        """Colours ``[B, N1, channels]`` of the source nodes (0 on padding). The fixed table repeats
        past ``max_nodes`` nodes: colours only need to differ between neighbours."""
        B, N1 = mask.shape
        if self.training:
            colours = torch.randn(B, N1, self.channels, device=mask.device, dtype=dtype)
        else:
            index = torch.arange(N1, device=mask.device) % self.colours.size(0)
            colours = self.colours[index].to(dtype).unsqueeze(0).expand(B, -1, -1)
        return colours * mask.unsqueeze(-1)

    def forward(self, S: Tensor, batch_s: Tensor, edge_index_s: Tensor, batch_t: Tensor,
                edge_index_t: Tensor) -> Tensor:
        r"""The refined affinities ``[B, N1, N2]``.

        Args:
            S: affinities over the nodes of each pair (padding anywhere outside ``mask``).
            batch_s, batch_t: graph of each node, PyG-batched (the dense rows of ``S`` in order).
            edge_index_s, edge_index_t: each side's edges, in its own node numbering.
        """
        B, N1, N2 = S.shape
        mask_s = to_dense_batch(batch_s, batch_s, batch_size=B, max_num_nodes=N1)[1]
        mask_t = to_dense_batch(batch_t, batch_t, batch_size=B, max_num_nodes=N2)[1]
        mask = mask_s.unsqueeze(2) & mask_t.unsqueeze(1)
        for _ in range(self.steps):
            R_s = self.draw(mask_s, S.dtype)
            R_t = dual_softmax(S, mask).transpose(1, 2) @ R_s
            O_s = to_dense_batch(self.spread(R_s[mask_s], edge_index_s), batch_s, batch_size=B, max_num_nodes=N1)[0]
            O_t = to_dense_batch(self.spread(R_t[mask_t], edge_index_t), batch_t, batch_size=B, max_num_nodes=N2)[0]
            S = S + self.score(O_s.unsqueeze(2) - O_t.unsqueeze(1)).squeeze(-1).masked_fill(~mask, 0.0)
        return S

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, steps={self.steps}, layers={self.layers})"


__all__ = ["NeighbourConsensus"]
