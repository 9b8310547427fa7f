r"""DETR-style query decoder over PyG-batched, variable-size keypoint graphs (no dense padding).

A fixed set of learned queries per graph attends (1) to the other queries of its graph, (2) to the
nodes of its own graph and (3) to the nodes of the *other* graph of the pair; the final query states
predict, per query, whether it stands for a real node missing from its own graph (or "no object"),
where that node is, and what it looks like.

Every attention is a :class:`~pyg_ssgm.nn.attention.GraphAttention` over a complete bipartite
``edge_index`` built per graph by :func:`full_bipartite`, so graphs of any sizes batch the PyG way.

Shapes and dtypes of the inputs are checked on every call. Checks that read tensor values (graph
ids in range, features finite, query counts positive) make the host wait for the device, so, as in
PyG's own layers, they run only in PyG's debug mode (``with torch_geometric.debug():``).
"""
from typing import Dict, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric import is_debug_enabled
from torch_geometric.utils import cumsum

from ..errors import ConfigError, InvalidInputError
from .attention import GraphAttention
from .bipartite import check_batch_vector, check_graph_ids, full_bipartite

Attention = Tuple[Tensor, Tensor]  # (edge_index [2, E], alpha [E, heads])


def _check_features(name: str, x: Tensor, channels: int) -> None:
    if not isinstance(x, Tensor) or x.dim() != 2 or x.size(-1) != channels:
        what = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InvalidInputError(
            f"{name} must have shape [num_nodes, {channels}] (channels of the decoder), got {what}; "
            f"project the features to {channels} channels first.")
    if not x.is_floating_point():
        raise InvalidInputError(f"{name} must be a floating-point tensor, got {x.dtype}.")


def _check_finite(name: str, x: Tensor) -> None:
    """Reads the tensor (a host sync): callers run it only in PyG's debug mode."""
    if not bool(torch.isfinite(x).all()):
        raise InvalidInputError(
            f"{name} contains NaN or inf; check the encoder output and the input features.")


class QueryDecoderLayer(nn.Module):
    r"""One DETR-style decoder layer for PyG-batched queries (no padding to a dense max size).

    With :math:`\mathbf{p}` the query positional embedding, :math:`\mathrm{Att}(\cdot \to \cdot)` a
    :class:`~pyg_ssgm.nn.attention.GraphAttention` over all (source, query) pairs of the same graph,
    and post-norm placement (the default, as in DETR):

    .. math::
        \mathbf{q} &\leftarrow \mathrm{LN}_1\big(\mathbf{q} + \mathrm{Drop}(
            \mathrm{Att}_{self}(\mathbf{q} + \mathbf{p} \to \mathbf{q} + \mathbf{p}))\big) \\
        \mathbf{q} &\leftarrow \mathrm{LN}_2\big(\mathbf{q} + \mathrm{Drop}(
            \mathrm{Att}_{own}(\mathbf{h}^{own} \to \mathbf{q} + \mathbf{p}))\big) \\
        \mathbf{q} &\leftarrow \mathrm{LN}_3\big(\mathbf{q} + \mathrm{Drop}(
            \mathrm{Att}_{other}(\mathbf{h}^{other} \to \mathbf{q} + \mathbf{p}))\big) \\
        \mathbf{q} &\leftarrow \mathrm{LN}_4\big(\mathbf{q} + \mathrm{Drop}(
            \mathbf{W}_2\,\mathrm{Drop}(\mathrm{ReLU}(\mathbf{W}_1 \mathbf{q})))\big)

    With ``norm_first=True`` (pre-norm) each block is instead
    :math:`\mathbf{q} \leftarrow \mathbf{q} + \mathrm{Drop}(\mathrm{Block}(\mathrm{LN}(\mathbf{q})))`,
    and the caller applies a final LayerNorm (:class:`QueryDecoder` does).

    Design notes:

    * The positional embedding is added to the attention *queries* of all three attentions, and to
      the keys (hence also the values, which share their input) of the self-attention. Node
      embeddings get no positional term: the encoder already put geometry in them.
    * The self-attention does *not* mask a query's attention to itself: a strong self-mask (a node
      forbidden to attend to itself) is known to drive the matching to the identity.
    * Residual + LayerNorm around every block keeps the queries from collapsing onto one vector
      (over-smoothing).

    Args:
        channels (int): Size :math:`C` of queries and node embeddings.
        heads (int, optional): Attention heads; must divide ``channels``. (default: ``4``)
        dropout (float, optional): Dropout on attention weights, residual branches and in the FFN.
            (default: ``0.0``)
        ffn_channels (int, optional): Hidden size of the FFN. (default: ``4 * channels``)
        norm_first (bool, optional): Pre-norm instead of post-norm. (default: ``False``)
    """

    def __init__(self, channels: int, heads: int = 4, dropout: float = 0.0,
                 ffn_channels: Optional[int] = None, norm_first: bool = False):
        super().__init__()
        if channels < 1:
            raise ConfigError(f"channels must be positive, got {channels}.")
        ffn_channels = 4 * channels if ffn_channels is None else ffn_channels
        if ffn_channels < 1:
            raise ConfigError(f"ffn_channels must be positive, got {ffn_channels}.")
        self.channels, self.heads, self.dropout = channels, heads, dropout
        self.ffn_channels, self.norm_first = ffn_channels, norm_first
        self.self_attn = GraphAttention(channels, channels, heads=heads, dropout=dropout)
        self.own_attn = GraphAttention(channels, channels, heads=heads, dropout=dropout)
        self.other_attn = GraphAttention(channels, channels, heads=heads, dropout=dropout)
        self.lin1 = nn.Linear(channels, ffn_channels)
        self.lin2 = nn.Linear(ffn_channels, channels)
        self.norm_self = nn.LayerNorm(channels)
        self.norm_own = nn.LayerNorm(channels)
        self.norm_other = nn.LayerNorm(channels)
        self.norm_ffn = nn.LayerNorm(channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for attn in (self.self_attn, self.own_attn, self.other_attn):
            attn.reset_parameters()
        for lin in (self.lin1, self.lin2):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        for norm in (self.norm_self, self.norm_own, self.norm_other, self.norm_ffn):
            norm.reset_parameters()

    def _ffn(self, q: Tensor) -> Tensor:
        hidden = F.dropout(F.relu(self.lin1(q)), p=self.dropout, training=self.training)
        return self.lin2(hidden)

    def _block(self, q: Tensor, norm: nn.LayerNorm, fn) -> Tuple[Tensor, Optional[Attention]]:
        """Residual + LayerNorm around ``fn`` (which returns ``(out, attention or None)``)."""
        if self.norm_first:
            out, att = fn(norm(q))
            return q + F.dropout(out, p=self.dropout, training=self.training), att
        out, att = fn(q)
        return norm(q + F.dropout(out, p=self.dropout, training=self.training)), att

    def forward(
        self,
        q: Tensor,
        q_batch: Tensor,
        h_own: Tensor,
        own_batch: Tensor,
        h_other: Tensor,
        other_batch: Tensor,
        query_pos: Optional[Tensor] = None,
        return_attention: bool = False,
        *,
        edges: Optional[Dict[str, Tensor]] = None,
    ):
        r"""Update the queries.

        Args:
            q (Tensor): ``[N_q, C]`` query states; ``q_batch`` ``[N_q]`` their graph ids.
            h_own (Tensor): ``[N_own, C]`` nodes of each query's own graph; ``own_batch`` ``[N_own]``.
            h_other (Tensor): ``[N_other, C]`` nodes of the other graph of each pair;
                ``other_batch`` ``[N_other]`` (graph ``g`` of ``other`` is the partner of graph
                ``g`` of ``own``).
            query_pos (Tensor, optional): ``[N_q, C]`` positional embedding of the queries.
            return_attention (bool, optional): Also return a dict ``{"self", "own", "other"}`` of
                ``(edge_index, alpha [E, heads])``; ``edge_index`` row 0 indexes the attended
                (query, own or other) nodes, row 1 the queries.
            edges (dict, optional): Precomputed :func:`full_bipartite` edge indices under the keys
                ``"self"``, ``"own"``, ``"other"`` (for reuse across layers); built if absent.

        Returns:
            ``[N_q, C]`` updated queries, or ``(queries, attention dict)``.
        """
        C = self.channels
        _check_features("q", q, C)
        _check_features("h_own", h_own, C)
        _check_features("h_other", h_other, C)
        if edges is None:  # standalone use: full_bipartite infers num_graphs here (a host sync)
            for name, batch, x in (("q_batch", q_batch, q), ("own_batch", own_batch, h_own),
                                   ("other_batch", other_batch, h_other)):
                check_batch_vector(name, batch, x.size(0))
                if is_debug_enabled():
                    check_graph_ids(name, batch)
            edges = {
                "self": full_bipartite(q_batch, q_batch),
                "own": full_bipartite(own_batch, q_batch),
                "other": full_bipartite(other_batch, q_batch),
            }
        if query_pos is not None and query_pos.shape != q.shape:
            raise InvalidInputError(
                f"query_pos must have the shape of q {list(q.shape)}, got {list(query_pos.shape)}.")

        def with_pos(t: Tensor) -> Tensor:
            return t if query_pos is None else t + query_pos

        def self_attention(t: Tensor):
            t = with_pos(t)
            return self.self_attn((t, t), edges["self"], return_attention_weights=True)

        def own_attention(t: Tensor):
            return self.own_attn((h_own, with_pos(t)), edges["own"], return_attention_weights=True)

        def other_attention(t: Tensor):
            return self.other_attn((h_other, with_pos(t)), edges["other"], return_attention_weights=True)

        q, att_self = self._block(q, self.norm_self, self_attention)
        q, att_own = self._block(q, self.norm_own, own_attention)
        q, att_other = self._block(q, self.norm_other, other_attention)
        q, _ = self._block(q, self.norm_ffn, lambda t: (self._ffn(t), None))
        if return_attention:
            return q, {"self": att_self, "own": att_own, "other": att_other}
        return q

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, heads={self.heads}, "
                f"ffn_channels={self.ffn_channels}, dropout={self.dropout}, "
                f"norm_first={self.norm_first})")


class QueryOutput(NamedTuple):
    """What :class:`QueryDecoder` predicts for the ``Q`` queries of each of ``G`` graphs.

    Queries are laid out graph by graph: rows ``g*Q .. g*Q+Q-1`` belong to graph ``g``.
    """

    embedding: Tensor  #: ``[G*Q, C]`` final query states
    batch: Tensor  #: ``[G*Q]`` long, graph id of each query (sorted ascending)
    exist_logit: Tensor  #: ``[G*Q]`` logit that the query is a real missing node (vs "no object")
    pos: Tensor  #: ``[G*Q, 2]`` position in the own graph's normalised coordinates
    feat: Tensor  #: ``[G*Q, C]`` predicted feature embedding of the missing node
    #: last layer's attention: ``{"self", "own", "other"}`` -> ``(edge_index [2, E], alpha [E, heads])``,
    #: row 0 of ``edge_index`` indexes queries / own nodes / other nodes, row 1 queries; or ``None``.
    attention: Optional[Dict[str, Attention]] = None


class QueryDecoder(nn.Module):
    r"""Learned queries, a stack of :class:`QueryDecoderLayer`, and the per-query heads.

    ``num_queries`` learned queries are shared by all graphs (as in DETR): each has a learned content
    vector (its initial state) and a learned positional embedding (added before every attention).
    Two separate vectors, rather than DETR's zero initial state, give the queries distinct states
    from the first layer on, which works against their collapse onto one vector.

    Heads, applied to the final query states :math:`\mathbf{q}`:

    * existence logit :math:`\mathbf{w}^\top \mathbf{q} + b` (one per query: real missing node, or
      "no object");
    * 2-D position: a 3-layer ReLU MLP with no output activation, in the own graph's normalised
      coordinates (roughly zero-mean, unit-scale);
    * feature embedding: a linear map to ``channels``.

    The module has no side-specific parameters: call it once with (source nodes, target nodes) as
    (own, other) and once with the roles swapped.

    Args:
        channels (int): Size :math:`C` of node embeddings and queries.
        num_queries (int, optional): Queries per graph :math:`Q`. (default: ``8``)
        num_layers (int, optional): Decoder layers. (default: ``2``)
        heads (int, optional): Attention heads; must divide ``channels``. (default: ``4``)
        dropout (float, optional): Dropout of the layers. (default: ``0.0``)
        ffn_channels (int, optional): FFN hidden size. (default: ``4 * channels``)
        norm_first (bool, optional): Pre-norm layers plus a final LayerNorm instead of DETR's
            post-norm. (default: ``False``)
    """

    def __init__(self, channels: int, num_queries: int = 8, num_layers: int = 2, heads: int = 4,
                 dropout: float = 0.0, ffn_channels: Optional[int] = None, norm_first: bool = False):
        super().__init__()
        if num_queries < 1:
            raise ConfigError(f"num_queries must be at least 1, got {num_queries}.")
        if num_layers < 1:
            raise ConfigError(f"num_layers must be at least 1, got {num_layers}.")
        self.channels, self.num_queries, self.num_layers = channels, num_queries, num_layers
        self.heads, self.dropout, self.norm_first = heads, dropout, norm_first
        self.query_content = nn.Parameter(torch.empty(num_queries, channels))
        self.query_pos = nn.Parameter(torch.empty(num_queries, channels))
        self.layers = nn.ModuleList(
            QueryDecoderLayer(channels, heads=heads, dropout=dropout, ffn_channels=ffn_channels,
                              norm_first=norm_first)
            for _ in range(num_layers))
        self.ffn_channels = self.layers[0].ffn_channels
        self.final_norm = nn.LayerNorm(channels) if norm_first else nn.Identity()
        self.exist_head = nn.Linear(channels, 1)
        self.pos_head = nn.Sequential(
            nn.Linear(channels, channels), nn.ReLU(),
            nn.Linear(channels, channels), nn.ReLU(),
            nn.Linear(channels, 2))
        self.feat_head = nn.Linear(channels, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.query_content)
        nn.init.normal_(self.query_pos)
        for layer in self.layers:
            layer.reset_parameters()
        if isinstance(self.final_norm, nn.LayerNorm):
            self.final_norm.reset_parameters()
        for module in (self.exist_head, self.feat_head, *self.pos_head):
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    def forward(
        self,
        h_own: Tensor,
        own_batch: Tensor,
        h_other: Tensor,
        other_batch: Tensor,
        num_graphs: int,
        return_attention: bool = False,
        query_init: Optional[Tensor] = None,
        num_queries: Union[int, Tensor, None] = None,
    ) -> QueryOutput:
        r"""Decode ``num_queries`` queries for each of the ``num_graphs`` own graphs.

        Args:
            h_own (Tensor): ``[N_own, C]`` node embeddings of the graphs the queries complete.
            own_batch (Tensor): long ``[N_own]`` graph ids in ``[0, num_graphs)``.
            h_other (Tensor): ``[N_other, C]`` node embeddings of the partner graphs.
            other_batch (Tensor): long ``[N_other]``; graph ``g`` is the partner of own graph ``g``.
            num_graphs (int): number of pairs ``G`` (graphs may have no node on either side).
            return_attention (bool, optional): fill ``QueryOutput.attention`` (last layer).
            query_init (Tensor, optional): ``[total queries, C]`` added to the learned query contents, for
                queries initialised from selected nodes (two-stage "query selection" as in
                Deformable DETR / DINO). (default: ``None``)
            num_queries (int or Tensor, optional): queries per graph in this call, one number or a
                long ``[G]`` per graph (default: the number of learned queries :math:`Q_0`). Query
                :math:`k` of a graph starts from learned query :math:`k \bmod Q_0`, so the number of
                queries can follow the size of the graphs while the parameters stay fixed.
        """
        C = self.channels
        if isinstance(num_graphs, Tensor):
            num_graphs = int(num_graphs)
        if not isinstance(num_graphs, int) or num_graphs < 0:
            raise InvalidInputError(f"num_graphs must be a non-negative int, got {num_graphs!r}.")
        _check_features("h_own", h_own, C)
        _check_features("h_other", h_other, C)
        check_batch_vector("own_batch", own_batch, h_own.size(0))
        check_batch_vector("other_batch", other_batch, h_other.size(0))
        if is_debug_enabled():  # value checks sync with the device: off the hot path, as in PyG
            check_graph_ids("own_batch", own_batch, num_graphs)
            check_graph_ids("other_batch", other_batch, num_graphs)
            _check_finite("h_own", h_own)
            _check_finite("h_other", h_other)

        device = h_own.device
        counts = self._query_counts(num_queries, num_graphs, device)
        q_batch = torch.arange(num_graphs, device=device).repeat_interleave(counts)
        first = cumsum(counts)[:-1]
        learned = (torch.arange(q_batch.numel(), device=device) - first[q_batch]) % self.num_queries
        q = self.query_content[learned]
        if query_init is not None:
            if query_init.shape != q.shape:
                raise InvalidInputError(f"query_init must have shape [total queries, C] = {list(q.shape)}, "
                                        f"got {list(query_init.shape)}.")
            q = q + query_init
        query_pos = self.query_pos[learned]
        edges = {
            "self": full_bipartite(q_batch, q_batch, num_graphs),
            "own": full_bipartite(own_batch, q_batch, num_graphs),
            "other": full_bipartite(other_batch, q_batch, num_graphs),
        }

        attention = None
        for i, layer in enumerate(self.layers):
            last = i == len(self.layers) - 1
            out = layer(q, q_batch, h_own, own_batch, h_other, other_batch, query_pos,
                        return_attention=return_attention and last, edges=edges)
            q, attention = out if (return_attention and last) else (out, attention)

        q = self.final_norm(q)
        return QueryOutput(embedding=q, batch=q_batch, exist_logit=self.exist_head(q).squeeze(-1),
                           pos=self.pos_head(q), feat=self.feat_head(q),
                           attention=attention if return_attention else None)

    def _query_counts(self, num_queries, num_graphs: int, device) -> Tensor:
        """``num_queries`` (None, an int or a ``[G]`` tensor) as a long ``[G]`` of counts >= 1.
        A tensor's counts are read (a host sync) only in PyG's debug mode."""
        if num_queries is None:
            num_queries = self.num_queries
        if isinstance(num_queries, int) and not isinstance(num_queries, bool):
            valid = num_queries >= 1
            num_queries = torch.full((num_graphs,), num_queries, dtype=torch.long, device=device)
        else:
            valid = (isinstance(num_queries, Tensor) and num_queries.dtype == torch.long
                     and num_queries.shape == (num_graphs,)
                     and not (is_debug_enabled() and bool((num_queries < 1).any())))
        if not valid:
            raise InvalidInputError(f"num_queries must be a positive int or a long tensor of {num_graphs} "
                                    f"positive counts (one per graph), got {num_queries!r}.")
        return num_queries.to(device)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, num_queries={self.num_queries}, "
                f"num_layers={self.num_layers}, heads={self.heads}, ffn_channels={self.ffn_channels}, "
                f"dropout={self.dropout}, norm_first={self.norm_first})")
