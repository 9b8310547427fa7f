"""Graph encoder: PyG convolutions over the Delaunay edges with relative positions as edge attributes."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import TransformerConv


class GraphEncoder(nn.Module):
    r"""A shallow stack of residual, layer-normalised ``TransformerConv`` layers:

    .. math::
        h^{(l+1)} = \mathrm{LN}\big(h^{(l)} + \mathrm{Dropout}(\mathrm{ReLU}(
        \mathrm{TransformerConv}(h^{(l)}, E, e)))\big)

    ``TransformerConv`` takes the edge attributes :math:`e_{ij}` (relative positions) inside its
    attention keys and values, so geometry shapes both who is listened to and what is heard. The
    residual and the normalisation keep node embeddings from collapsing onto one vector
    (over-smoothing: the usual way a learned matcher fails, so training logs the mean pairwise
    cosine of the embeddings every epoch), which is also why the default depth is small.
    """

    def __init__(self, channels: int, num_layers: int = 2, heads: int = 4, edge_dim: int = 2,
                 dropout: float = 0.0):
        super().__init__()
        if channels % heads != 0:
            from ..errors import ConfigError

            raise ConfigError(f"hidden channels ({channels}) must be divisible by heads ({heads}).")
        self.channels, self.num_layers, self.heads, self.dropout = channels, num_layers, heads, dropout
        self.convs = nn.ModuleList(
            TransformerConv(channels, channels // heads, heads=heads, edge_dim=edge_dim, root_weight=True)
            for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(num_layers))

    def reset_parameters(self) -> None:
        for conv, norm in zip(self.convs, self.norms):
            conv.reset_parameters()
            norm.reset_parameters()

    def forward(self, h: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        for conv, norm in zip(self.convs, self.norms):
            out = F.relu(conv(h, edge_index, edge_attr))
            h = norm(h + F.dropout(out, p=self.dropout, training=self.training))
        return h

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, num_layers={self.num_layers}, heads={self.heads})"
