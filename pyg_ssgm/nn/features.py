"""Node features: appearance descriptors and geometric encodings, projected to the model width."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter

from ..errors import InvalidInputError
from .shape_context import sparse_shape_context

GEOMETRIC_DIM = 6  # normalised position (2) + mean relative neighbour position (2) + mean edge length + degree
SHAPE_CONTEXT_DIM = 40  # soft log-polar histogram of the other points: 5 radii x 8 angles


def normalize_positions(pos: Tensor, batch: Tensor, num_graphs: int) -> Tuple[Tensor, Tensor, Tensor]:
    r"""Centre each graph on its centroid and divide by its RMS radius.

    Returns ``(pos_norm, center [B, 2], scale [B])``; positions in this frame are what the
    decoder predicts, so completions live in the same unit-free coordinates as the graph.
    """
    center = scatter(pos, batch, dim=0, dim_size=num_graphs, reduce="mean")
    sq = scatter((pos - center[batch]).pow(2).sum(-1), batch, dim=0, dim_size=num_graphs, reduce="mean")
    scale = torch.where(sq > 1e-12, sq.sqrt(), torch.ones_like(sq))
    return (pos - center[batch]) / scale[batch].unsqueeze(-1), center, scale


def geometric_encoding(pos_norm: Tensor, edge_index: Tensor) -> Tensor:
    r"""A rigid-motion-light local shape descriptor per node, from normalised positions:

    :math:`[\,p_i,\ \mathrm{mean}_{j \in N(i)} (p_j - p_i),\ \mathrm{mean}_{j} \|p_j - p_i\|,\ \deg(i) / 10\,]`.
    """
    n = pos_norm.size(0)
    src, dst = edge_index
    rel = pos_norm[src] - pos_norm[dst]
    mean_rel = scatter(rel, dst, dim=0, dim_size=n, reduce="mean")
    mean_len = scatter(rel.norm(dim=-1, keepdim=True), dst, dim=0, dim_size=n, reduce="mean")
    deg = scatter(torch.ones_like(dst, dtype=pos_norm.dtype), dst, dim=0, dim_size=n, reduce="sum")
    return torch.cat([pos_norm, mean_rel, mean_len, deg.unsqueeze(-1) / 10.0], dim=-1)


class NodeFeatures(nn.Module):
    r"""Input embedding :math:`h^{(0)}_i = \mathrm{MLP}([\,\hat{x}_i \,\|\, g_i \,\|\, c_i\,])`.

    :math:`\hat{x}_i` is the appearance descriptor scaled to unit norm (descriptors from different
    backbones or images differ in scale; only their direction should matter), :math:`g_i` the
    :func:`geometric_encoding` and :math:`c_i` the soft log-polar shape context of the whole point
    set seen from node :math:`i` (:func:`~pyg_ssgm.nn.shape_context.shape_context`; on Willow it
    alone matches 90 % of validation keypoints with a plain Hungarian, where the local encoding
    does not get a learned model there). Appearance or geometry can be switched off, not both;
    ``shape_context=False`` leaves :math:`c_i` out.
    """

    def __init__(self, in_channels: int, out_channels: int, use_appearance: bool = True,
                 use_geometry: bool = True, shape_context: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.use_appearance = use_appearance and in_channels > 0
        self.use_geometry = use_geometry
        self.use_shape_context = use_geometry and shape_context
        width = ((in_channels if self.use_appearance else 0) + (GEOMETRIC_DIM if use_geometry else 0)
                 + (SHAPE_CONTEXT_DIM if self.use_shape_context else 0))
        if width == 0:
            raise InvalidInputError("NodeFeatures needs appearance features (in_channels > 0) or geometry.")
        self.mlp = nn.Sequential(nn.Linear(width, out_channels), nn.ReLU(), nn.Linear(out_channels, out_channels))
        self.norm = nn.LayerNorm(out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        self.norm.reset_parameters()

    def forward(self, x: Tensor, pos_norm: Tensor, edge_index: Tensor,
                shape_context: Optional[Tensor] = None) -> Tensor:
        """``shape_context``: the nodes' :func:`~pyg_ssgm.nn.shape_context.sparse_shape_context`
        (computed here, for one graph, when not given)."""
        if self.use_appearance and x.size(-1) != self.in_channels:
            raise InvalidInputError(
                f"the model expects {self.in_channels} appearance features per node, got {x.size(-1)}; "
                "build the model with in_channels matching the data."
            )
        parts = []
        if self.use_appearance:
            parts.append(F.normalize(x, dim=-1) * (self.in_channels ** 0.5))
        if self.use_geometry:
            parts.append(geometric_encoding(pos_norm, edge_index))
        if self.use_shape_context:
            if shape_context is None:
                shape_context = sparse_shape_context(pos_norm, edge_index.new_zeros(pos_norm.size(0)), 1)
            parts.append(shape_context)
        return self.norm(self.mlp(torch.cat(parts, dim=-1)))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"appearance={self.use_appearance}, geometry={self.use_geometry}, "
                f"shape_context={self.use_shape_context})")
