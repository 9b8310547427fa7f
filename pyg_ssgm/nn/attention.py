"""Multi-head scaled dot-product attention along the edges of a (bipartite) graph."""
import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric import is_debug_enabled
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.utils import softmax

from ..errors import ConfigError, InvalidInputError


class GraphAttention(MessagePassing):
    r"""Multi-head scaled dot-product attention from source nodes (keys, values) to destination
    nodes (queries), restricted to the edges of a bipartite ``edge_index``.

    For a destination node :math:`i`, a head :math:`h` of width :math:`d = D / H` and the incoming
    edges :math:`j \to i`:

    .. math::
        \alpha^{h}_{ij} = \operatorname*{softmax}_{j \in \mathcal{N}(i)} \left(
        \frac{(\mathbf{W}^{h}_q \mathbf{x}_i)^{\top}
        (\mathbf{W}^{h}_k \mathbf{x}_j + \mathbf{W}^{h}_e \mathbf{e}_{ji})}{\sqrt{d}} \right),
        \qquad
        \mathbf{x}^{\prime}_i = \mathbf{W}_o \, \big\Vert_{h=1}^{H}
        \sum_{j \in \mathcal{N}(i)} \alpha^{h}_{ij} \, \mathbf{W}^{h}_v \mathbf{x}_j ,

    where :math:`\Vert` concatenates the heads. The edge term :math:`\mathbf{W}_e \mathbf{e}_{ji}`
    exists only when ``edge_dim`` is set; it enters the keys only (not the values), so it decides
    *who* is listened to, not *what* is heard. Over a complete bipartite graph this computes the same
    function as ``torch.nn.MultiheadAttention`` given the same weights; over sparse edges it is
    :class:`~torch_geometric.nn.conv.TransformerConv`-style attention without the root/skip term:
    residuals are the caller's business (see
    :class:`~pyg_ssgm.nn.query_decoder.QueryDecoderLayer`).

    A destination node with no incoming edge receives the zero vector (no NaN, no bias).

    Shapes and dtypes are checked on every call; that ``edge_index`` stays within the nodes is
    checked only in PyG's debug mode (``with torch_geometric.debug():``), since it reads the tensor
    and so waits for the device.

    Args:
        in_channels (int or tuple): Size of the node features, or ``(src_channels, dst_channels)``
            when sources and destinations differ.
        out_channels (int): Size :math:`D` of the output; must be divisible by ``heads``.
        heads (int, optional): Number of attention heads :math:`H`. (default: ``1``)
        dropout (float, optional): Dropout probability on the normalised attention weights.
            (default: ``0.0``)
        edge_dim (int, optional): Size of the edge features added to the keys. (default: ``None``)
        bias (bool, optional): Learn additive biases in the projections. (default: ``True``)

    Shapes:
        - **input:** ``x = (x_src [N_src, F_src], x_dst [N_dst, F_dst])`` (or one tensor for both),
          ``edge_index [2, E]`` (row 0 indexes sources, row 1 destinations),
          ``edge_attr [E, edge_dim]`` (optional)
        - **output:** ``[N_dst, D]``, or ``([N_dst, D], (edge_index [2, E], alpha [E, H]))`` when
          ``return_attention_weights`` is true. ``alpha`` is taken before attention dropout.
    """

    def __init__(
        self,
        in_channels: Union[int, Tuple[int, int]],
        out_channels: int,
        heads: int = 1,
        dropout: float = 0.0,
        edge_dim: Optional[int] = None,
        bias: bool = True,
        **kwargs,
    ):
        kwargs.setdefault("aggr", "add")
        super().__init__(node_dim=0, **kwargs)
        if heads < 1 or out_channels < 1 or out_channels % heads != 0:
            raise ConfigError(
                f"out_channels ({out_channels}) must be a positive multiple of heads ({heads}).")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.head_channels = out_channels // heads
        self.dropout = dropout
        self.edge_dim = edge_dim
        self._alpha: Optional[Tensor] = None

        src_channels, dst_channels = (in_channels, in_channels) if isinstance(in_channels, int) else in_channels
        self.src_channels, self.dst_channels = src_channels, dst_channels
        init = dict(weight_initializer="glorot", bias_initializer="zeros")
        self.lin_query = Linear(dst_channels, out_channels, bias=bias, **init)
        self.lin_key = Linear(src_channels, out_channels, bias=bias, **init)
        self.lin_value = Linear(src_channels, out_channels, bias=bias, **init)
        if edge_dim is not None:
            self.lin_edge = Linear(edge_dim, out_channels, bias=False, weight_initializer="glorot")
        else:
            self.register_parameter("lin_edge", None)
        self.lin_out = Linear(out_channels, out_channels, bias=bias, **init)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin_query.reset_parameters()
        self.lin_key.reset_parameters()
        self.lin_value.reset_parameters()
        if self.lin_edge is not None:
            self.lin_edge.reset_parameters()
        self.lin_out.reset_parameters()

    def _check(self, x_src: Tensor, x_dst: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor]) -> None:
        """Shapes and dtypes only: these checks read no tensor value, so they cost no host sync."""
        for name, t, c in (("x_src", x_src, self.src_channels), ("x_dst", x_dst, self.dst_channels)):
            if t.dim() != 2 or (c != -1 and t.size(-1) != c):
                raise InvalidInputError(
                    f"{self}: {name} must have shape [num_nodes, {c}], got {list(t.shape)}.")
        if edge_index.dim() != 2 or edge_index.size(0) != 2 or edge_index.dtype != torch.long:
            raise InvalidInputError(
                f"{self}: edge_index must be a long tensor of shape [2, E], got "
                f"{edge_index.dtype} {list(edge_index.shape)}.")
        num_edges = edge_index.size(1)
        if self.lin_edge is not None:
            if edge_attr is None:
                raise InvalidInputError(f"{self}: edge_dim={self.edge_dim}, so edge_attr is required.")
            if edge_attr.dim() != 2 or edge_attr.shape != (num_edges, self.edge_dim):
                raise InvalidInputError(
                    f"{self}: edge_attr must have shape [E={num_edges}, {self.edge_dim}], got "
                    f"{list(edge_attr.shape)}.")
        elif edge_attr is not None:
            raise InvalidInputError(
                f"{self}: edge_attr was given but the layer has no edge_dim; build it with "
                f"edge_dim={edge_attr.size(-1)} or pass edge_attr=None.")

    def _check_edge_range(self, num_src: int, num_dst: int, edge_index: Tensor) -> None:
        """Every edge joins an existing source to an existing destination. Reads ``edge_index``
        (a host sync), so :meth:`forward` runs it only in PyG's debug mode."""
        if edge_index.size(1) == 0:
            return
        lo = int(edge_index.min())
        src_max, dst_max = int(edge_index[0].max()), int(edge_index[1].max())
        if lo < 0 or src_max >= num_src or dst_max >= num_dst:
            raise InvalidInputError(
                f"{self}: edge_index out of range: row 0 must index the {num_src} source "
                f"nodes and row 1 the {num_dst} destination nodes (got min {lo}, "
                f"max source {src_max}, max destination {dst_max}).")

    def forward(
        self,
        x: Union[Tensor, Tuple[Tensor, Tensor]],
        edge_index: Tensor,
        edge_attr: Optional[Tensor] = None,
        return_attention_weights: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, Tuple[Tensor, Tensor]]]:
        r"""Attend from every destination node to its incoming source nodes.

        Args:
            x (Tensor or (Tensor, Tensor)): ``(x_src, x_dst)``, or one tensor used as both.
            edge_index (Tensor): ``[2, E]``; row 0 source (key/value) indices, row 1 destination
                (query) indices.
            edge_attr (Tensor, optional): ``[E, edge_dim]`` edge features added to the keys.
            return_attention_weights (bool, optional): Also return ``(edge_index, alpha)`` with
                ``alpha [E, heads]`` (softmax-normalised per destination, before dropout).
        """
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        self._check(x_src, x_dst, edge_index, edge_attr)
        if is_debug_enabled():  # value checks sync with the device: off the hot path, as in PyG
            self._check_edge_range(x_src.size(0), x_dst.size(0), edge_index)
        H, C = self.heads, self.head_channels
        query = self.lin_query(x_dst).view(-1, H, C)
        key = self.lin_key(x_src).view(-1, H, C)
        value = self.lin_value(x_src).view(-1, H, C)

        # propagate_type: (query: Tensor, key: Tensor, value: Tensor, edge_attr: OptTensor)
        out = self.propagate(edge_index, query=query, key=key, value=value, edge_attr=edge_attr,
                             size=(x_src.size(0), x_dst.size(0)))
        alpha = self._alpha
        self._alpha = None

        out = self.lin_out(out.reshape(-1, H * C))
        # A destination without incoming edge aggregated nothing: keep it exactly zero (the output
        # bias would otherwise make it a constant, indistinguishable from a real message).
        has_edge = torch.zeros(x_dst.size(0), dtype=torch.bool, device=out.device)
        has_edge[edge_index[1]] = True
        out = out * has_edge.unsqueeze(-1).to(out.dtype)

        if return_attention_weights:
            assert alpha is not None
            return out, (edge_index, alpha)
        return out

    def message(self, query_i: Tensor, key_j: Tensor, value_j: Tensor, edge_attr: Optional[Tensor],
                index: Tensor, ptr: Optional[Tensor], size_i: Optional[int]) -> Tensor:
        if self.lin_edge is not None:
            assert edge_attr is not None
            key_j = key_j + self.lin_edge(edge_attr).view(-1, self.heads, self.head_channels)
        alpha = (query_i * key_j).sum(dim=-1) / math.sqrt(self.head_channels)  # [E, H]
        alpha = softmax(alpha, index, ptr, size_i)
        self._alpha = alpha
        alpha = F.dropout(alpha, p=self.dropout, training=self.training)
        return value_j * alpha.unsqueeze(-1)

    def __repr__(self) -> str:
        edge = f", edge_dim={self.edge_dim}" if self.edge_dim is not None else ""
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"heads={self.heads}{edge})")
