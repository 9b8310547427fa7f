r"""SSGM: the whole self-supervised, generative, partial graph matching model in one file.

.. code-block:: text

    PairData batch ─┬─ source: NodeFeatures ─ GraphEncoder ─ h_s ─┐
                    └─ target: NodeFeatures ─ GraphEncoder ─ h_t ─┤
                       QueryDecoder(h_s | h_t) → queries_s: exist, pos, feat (nodes the source lacks)
                       QueryDecoder(h_t | h_s) → queries_t
                       completed graph = kept nodes + queries that exist; GraphRebuilder refines
                       S = cos(h_s, h_t) / T - w |p_s - A p_t|^2 (+ raw descriptor cosines at inference)
                       coherence rounds: S = cos / T - w' |p_s + d(p_s) - A p_t|^2 / spacing^2, where
                           d is the neighbourhood's displacement under the soft matching of S
                       → partial Hungarian (or RRWM over the rebuilt edges) → real-to-real pairs

A real node matched to a *generated* node of the other side has no partner there: generated
nodes are the "outlier sinks" that make the matching partial. Pairs whose similarity is below a
learned threshold stay unmatched as well.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

from .config import SSGMConfig
from .data.pair_data import mirrored
from .errors import InvalidInputError
from .matching import (SetMatcher, blackbox_hungarian, dense_connectivity, hamming_loss, hungarian, info_nce,
                       matching_cross_entropy, partial_hungarian, rrwm_refine, set_prediction_loss, sinkhorn,
                       size_mask, threshold_to_unmatch)
from .nn.alignment import (apply_affine, coherence_kernel, coherent_positions, dual_softmax, fit_affine,
                           node_spacing, squared_distances)
from .nn.diagnostics import mean_pairwise_cosine
from .nn.encoder import GraphEncoder
from .nn.features import NodeFeatures, normalize_positions
from .nn.query_decoder import QueryDecoder, QueryOutput
from .nn.rebuild import CompletedGraph, GraphRebuilder, complete_graph
from .nn.shape_context import sparse_shape_context


class EncodedGraph(NamedTuple):
    h: Tensor  # [N, C] encoder output
    x: Tensor  # [N, F] raw appearance descriptors (F = 0: geometry only)
    shape_context: Tensor  # [N, 40] raw shape context of the normalised positions ([N, 0] when unused)
    pos: Tensor  # [N, 2] normalised positions
    batch: Tensor  # [N]
    center: Tensor  # [B, 2]
    scale: Tensor  # [B]


class GeneratedNodes(NamedTuple):
    """The nodes the model generates for one side of each pair (see ``completion_source``)."""
    pos: Tensor  # [M, 2] in the graph's normalised frame (see EncodedGraph.center / scale)
    batch: Tensor  # [M] the pair each belongs to


class Consensus(NamedTuple):
    A_ts: Tensor  # [B, 3, 2] affine map from target to source (normalised) coordinates
    A_st: Tensor  # [B, 3, 2] from source to target
    match_s: Tensor  # [N_s, 3] best / second-best cosine to the target, distance to it once aligned
    match_t: Tensor  # [N_t, 3]


@dataclass
class SSGMOutput:
    """What :meth:`SSGM.forward` returns for a batch of ``B`` pairs.

    ``pairs[b]`` (long ``[2, K]``, local node indices) is the predicted partial matching of pair
    ``b``. ``S`` / ``X`` are the affinity and discrete matching over the *completed* graphs
    (``n1``, ``n2`` nodes; the first ``num_real_s[b]`` / ``num_real_t[b]`` are the real ones).
    ``losses`` holds the training losses (``"loss"`` is the total) when they were computed.
    :meth:`SSGM.generated_nodes` reads from it the nodes the model generates for each side.
    """

    pairs: List[Tensor]
    S: Tensor
    X: Tensor
    n1: Tensor
    n2: Tensor
    num_real_s: Tensor
    num_real_t: Tensor
    num_generated_s: Tensor
    num_generated_t: Tensor
    oversmoothing: Tensor
    queries_s: Optional[QueryOutput] = None
    queries_t: Optional[QueryOutput] = None
    completed_s: Optional[CompletedGraph] = None
    completed_t: Optional[CompletedGraph] = None
    encoded_s: Optional[EncodedGraph] = None
    encoded_t: Optional[EncodedGraph] = None
    losses: Dict[str, Tensor] = field(default_factory=dict)


class SSGM(nn.Module):
    r"""Self-supervised generative partial graph matching (see the module docstring).

    ``model(batch)`` takes a PyG batch of :class:`~pyg_ssgm.data.PairData` (made with
    ``follow_batch=PairData.FOLLOW_BATCH``) and returns an :class:`SSGMOutput`; in training mode,
    or with ``compute_loss=True``, it also computes the losses from the batch's ground truth:
    ``y`` and, for generated pairs, the completion targets. ``model.predict(batch)`` returns the
    list of predicted correspondences only.
    """

    def __init__(self, config: Optional[SSGMConfig] = None, **overrides):
        super().__init__()
        config = config or SSGMConfig()
        if overrides:
            config = SSGMConfig.from_dict({**config.to_dict(), **overrides})
        self.config = c = config
        self.features = NodeFeatures(c.in_channels, c.hidden_channels, c.use_appearance, c.use_geometry,
                                     c.shape_context)
        self.encoder = GraphEncoder(c.hidden_channels, c.encoder_layers, c.heads, edge_dim=2, dropout=c.dropout)
        self.decoder = (QueryDecoder(c.hidden_channels, c.num_queries, c.decoder_layers, c.heads, c.dropout)
                        if c.completion else None)
        # How well each node is matched on the other side (best and second-best cosine, distance
        # to the nearest aligned node): lets the decoder find the nodes that have no partner,
        # i.e. how many are missing.
        self.matchability = nn.Linear(3, c.hidden_channels) if c.completion else None
        # Query selection (two-stage DETR): each graph's queries start from the nodes of the other
        # graph whose best cosine similarity to it is lowest, the likeliest to be missing from it.
        self.query_select = nn.Linear(c.hidden_channels, c.hidden_channels) if c.completion else None
        self.rebuilder = GraphRebuilder(c.hidden_channels, c.structure, c.heads, c.knn_k)
        # Where a pair faces its mirror image (mirror_aware), a shift of each target node's input
        # features computed from them: what the mirror means depends on the node (an eye loses its
        # partner, a beak keeps it), which one vector added to every node cannot say.
        self.mirror_shift = (nn.Sequential(nn.Linear(c.hidden_channels, c.hidden_channels), nn.ReLU(),
                                           nn.Linear(c.hidden_channels, c.hidden_channels))
                             if c.mirror_aware else None)
        self.set_matcher = SetMatcher(c.cost_exist, c.cost_pos, c.cost_feat)
        # Learned in log space so the temperature stays positive; the threshold is in cosine units.
        self.log_temperature = nn.Parameter(torch.tensor(float(c.temperature)).log())
        self.match_threshold = nn.Parameter(torch.tensor(float(c.match_threshold)))
        # Weight of the geometric term of the affinity (squared distance after alignment), log space.
        self.log_geometric_weight = nn.Parameter(torch.tensor(float(c.geometric_weight)).clamp(min=1e-6).log(),
                                                 requires_grad=c.geometric_weight > 0)

    def reset_parameters(self) -> None:
        for module in (self.features, self.encoder, self.decoder, self.matchability, self.query_select,
                       self.rebuilder):
            if module is not None:
                module.reset_parameters()
        for layer in self.mirror_shift or ():
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        with torch.no_grad():
            self.log_temperature.fill_(float(self.config.temperature)).log_()
            self.match_threshold.fill_(float(self.config.match_threshold))
            self.log_geometric_weight.fill_(max(float(self.config.geometric_weight), 1e-6)).log_()

    @property
    def temperature(self) -> Tensor:
        return self.log_temperature.exp()

    # ------------------------------------------------------------------ stages
    def _check(self, data) -> int:
        for side in "st":
            for key in (f"pos_{side}", f"x_{side}", f"edge_index_{side}", f"x_{side}_batch"):
                if getattr(data, key, None) is None:
                    raise InvalidInputError(
                        f"the batch has no '{key}'; build batches with Batch.from_data_list(pairs, "
                        "follow_batch=PairData.FOLLOW_BATCH) or pyg_ssgm.data.pair_loader."
                    )
            pos = getattr(data, f"pos_{side}")
            if not torch.isfinite(pos).all():
                raise InvalidInputError(f"pos_{side} contains NaN or infinite coordinates.")
        if data.x_s.size(-1) != data.x_t.size(-1):
            raise InvalidInputError(f"the source graphs carry {data.x_s.size(-1)} appearance features per node and "
                                    f"the target graphs {data.x_t.size(-1)}; both need the same number (the model "
                                    f"expects {self.config.in_channels}).")
        B = data.num_graphs
        for side in "st":
            counts = torch.bincount(getattr(data, f"x_{side}_batch"), minlength=B)
            if (counts == 0).any():
                empty = (counts == 0).nonzero().view(-1).tolist()
                raise InvalidInputError(f"pairs {empty} have an empty {'source' if side == 's' else 'target'} "
                                        "graph; every graph needs at least one keypoint.")
        return B

    def encode(self, data, num_graphs: int) -> Tuple[EncodedGraph, EncodedGraph]:
        """Both graphs of every pair, encoded in one pass: the target graphs follow the source
        graphs as graphs ``B .. 2B-1``. Nothing crosses from one graph to another (per-graph
        normalisation, message passing along each graph's edges), so this is the same as encoding
        each side alone, at half the calls: what a single pair costs is mostly per-call overhead."""
        B, n_s = num_graphs, data.pos_s.size(0)
        pos = torch.cat([data.pos_s, data.pos_t])
        x = torch.cat([data.x_s, data.x_t])
        batch = torch.cat([data.x_s_batch, data.x_t_batch + B])
        edge_index = torch.cat([data.edge_index_s, data.edge_index_t + n_s], dim=1)
        pos_norm, center, scale = normalize_positions(pos, batch, 2 * B)
        # Edge attributes from the normalised positions (the same quantity PairData stores).
        edge_attr = pos_norm[edge_index[1]] - pos_norm[edge_index[0]]
        # Only where a node feature or the late-fused term uses it: it costs O(N^2) per graph.
        shape_context = (sparse_shape_context(pos_norm, batch, 2 * B)
                         if self.features.use_shape_context or self.config.shape_context_weight > 0
                         else pos_norm.new_zeros(pos_norm.size(0), 0))
        h = self.features(x, pos_norm, edge_index, shape_context)
        mirror = getattr(data, "mirror", None)
        if self.mirror_shift is not None and mirror is not None:
            # The target's nodes only, before message passing, so the shift reaches the neighbours.
            h_t = h[n_s:]
            h = torch.cat([h[:n_s], h_t + mirror[data.x_t_batch].to(h.dtype).unsqueeze(-1) * self.mirror_shift(h_t)])
        h = self.encoder(h, edge_index, edge_attr)

        def side(nodes: slice, graphs: slice, offset: int) -> EncodedGraph:
            return EncodedGraph(h[nodes], x[nodes], shape_context[nodes], pos_norm[nodes], batch[nodes] - offset,
                                center[graphs], scale[graphs])

        return side(slice(0, n_s), slice(0, B), 0), side(slice(n_s, None), slice(B, None), B)

    def _consensus(self, enc_s: EncodedGraph, enc_t: EncodedGraph, num_graphs: int) -> Consensus:
        """Soft matching of the encoder embeddings, the affine maps it implies between the two
        frames, and per node its matchability: best and second-best cosine similarity to the other
        graph, and the distance to the nearest node of the other graph once aligned."""
        H_s, mask_s = to_dense_batch(F.normalize(enc_s.h, dim=-1), enc_s.batch, batch_size=num_graphs)
        H_t, mask_t = to_dense_batch(F.normalize(enc_t.h, dim=-1), enc_t.batch, batch_size=num_graphs)
        P_s, _ = to_dense_batch(enc_s.pos, enc_s.batch, batch_size=num_graphs)
        P_t, _ = to_dense_batch(enc_t.pos, enc_t.batch, batch_size=num_graphs)
        mask = mask_s.unsqueeze(2) & mask_t.unsqueeze(1)
        cos = H_s @ H_t.transpose(1, 2)
        logits = cos / self.temperature + self._raw_affinity(enc_s, enc_t, num_graphs, P_s.size(1), P_t.size(1))
        P = dual_softmax(logits, mask)
        A_ts = fit_affine(P, P_s, P_t)
        c = self.config
        iterations = (c.consensus_iterations if self.training or c.inference_consensus_iterations is None
                      else c.inference_consensus_iterations)
        for _ in range(iterations - 1):
            # Re-weigh the soft matching by the current alignment, then re-fit: correspondences
            # that disagree with the geometry lose their say (a soft, differentiable RANSAC).
            P = dual_softmax(logits - self.log_geometric_weight.exp() * squared_distances(P_s, apply_affine(A_ts, P_t)),
                             mask)
            A_ts = fit_affine(P, P_s, P_t)
        A_st = fit_affine(P.transpose(1, 2), P_t, P_s)
        dist = squared_distances(P_s, apply_affine(A_ts, P_t)).detach().sqrt().masked_fill(~mask, float("inf"))
        cos = cos.detach().masked_fill(~mask, -1.0)

        def features(sim: Tensor, d: Tensor, dim: int, node_mask: Tensor) -> Tensor:
            k = min(2, sim.size(dim))
            top = sim.topk(k, dim=dim).values if k else sim.new_full(sim.shape[:dim] + (0,) + sim.shape[dim + 1:], -1.0)
            if k < 2:
                top = torch.cat([top] + [torch.full_like(sim.narrow(dim, 0, 1), -1.0)] * (2 - k), dim=dim)
            nearest = d.detach().amin(dim=dim, keepdim=True).clamp(max=4.0)
            return torch.cat([top, nearest], dim=dim).movedim(dim, -1)[node_mask]

        return Consensus(A_ts, A_st, features(cos, dist, 2, mask_s), features(cos, dist, 1, mask_t))

    def _raw_affinity(self, enc_s: EncodedGraph, enc_t: EncodedGraph, num_graphs: int, n1: int, n2: int):
        r""":math:`w_a \cos(x_i, x_j) + w_c \cos(c_i, c_j)` of the raw appearance descriptors
        :math:`x` and shape contexts :math:`c`, ``[B, n1, n2]`` with the real nodes first
        (generated nodes and padding get 0); ``0.0`` when both terms are off.

        *Late fusion*: the terms enter the affinity at inference (``eval()`` mode) only, with fixed
        weights chosen on validation. Trained together with them, the learned embeddings lean on
        the raw terms and come out weaker, and a learned weight sinks (the embeddings fit the
        training pairs better than raw descriptors do), while the raw descriptors are what carries
        over to new instances. On Willow validation (benchmarks/results/willow_ablation.md): 0.908
        without, 0.936-0.939 with the shape-context term, 0.968 with the appearance term fused late
        (0.931 in a development run with it trained in)."""
        c, out = self.config, 0.0
        if self.training:
            return out
        terms = ((c.appearance_weight, enc_s.x, enc_t.x),
                 (c.shape_context_weight, enc_s.shape_context, enc_t.shape_context))
        for weight, d_s, d_t in terms:
            if weight <= 0 or d_s.size(-1) == 0:
                continue
            D_s, _ = to_dense_batch(F.normalize(d_s, dim=-1), enc_s.batch, batch_size=num_graphs, max_num_nodes=n1)
            D_t, _ = to_dense_batch(F.normalize(d_t, dim=-1), enc_t.batch, batch_size=num_graphs, max_num_nodes=n2)
            out = out + weight * (D_s @ D_t.transpose(1, 2))
        return out

    def _num_queries(self, batch_other: Tensor, num_graphs: int) -> Tensor:
        """Queries of each graph, long ``[B]``: ``num_queries``, or ``query_fraction`` of the size of
        the other graph of its pair where that is more (a graph lacks a share of the other's nodes,
        not a fixed number of them)."""
        c = self.config
        size_other = torch.bincount(batch_other, minlength=num_graphs)
        return (c.query_fraction * size_other).ceil().long().clamp(min=c.num_queries)

    def _query_init(self, ctx_other: Tensor, best_other: Tensor, batch_other: Tensor, num_graphs: int,
                    counts: Tensor):
        """Query selection. Returns ``init [sum(counts), C]`` (query ``k`` of graph ``b`` starts
        from the ``k``-th least matched node of the other graph of pair ``b``; zeros when that graph
        has fewer than ``counts[b]`` nodes) and ``seed``, the global index of that node (-1: none)."""
        C, Q = ctx_other.size(1), int(counts.max()) if counts.numel() else 0
        H, mask = to_dense_batch(ctx_other, batch_other, batch_size=num_graphs)
        score, _ = to_dense_batch(best_other[:, 0], batch_other, batch_size=num_graphs, fill_value=float("inf"))
        k = min(Q, H.size(1))
        init = H.new_zeros(num_graphs, Q, C)
        seed = torch.full((num_graphs, Q), -1, dtype=torch.long, device=H.device)
        if k > 0:
            order = score.topk(k, dim=1, largest=False).indices
            picked = torch.gather(H, 1, order.unsqueeze(-1).expand(-1, -1, C))
            valid = torch.gather(mask, 1, order)
            init[:, :k] = self.query_select(picked) * valid.unsqueeze(-1)
            ptr = torch.cat([batch_other.new_zeros(1), torch.bincount(batch_other, minlength=num_graphs).cumsum(0)])
            seed[:, :k] = torch.where(valid, order + ptr[:-1].unsqueeze(1), seed[:, :k])
        keep = torch.arange(Q, device=H.device).unsqueeze(0) < counts.unsqueeze(1)
        return init[keep], seed[keep]

    def _decode(self, ctx_s: Tensor, batch_s: Tensor, ctx_t: Tensor, batch_t: Tensor, num_graphs: int,
                init: Tuple[Tensor, Tensor], counts: Tuple[Tensor, Tensor], return_attention: bool = False):
        """The queries of both sides: one decoder call over ``2B`` graphs, the target graphs as
        graphs ``B .. 2B-1`` (queries attend within their own pair only, so this equals one call per
        side, at half the overhead). With ``return_attention``, one call per side, so that each
        side's attention maps keep their own indexing."""
        B = num_graphs
        if return_attention:
            return (self.decoder(ctx_s, batch_s, ctx_t, batch_t, B, query_init=init[0], num_queries=counts[0],
                                 return_attention=True),
                    self.decoder(ctx_t, batch_t, ctx_s, batch_s, B, query_init=init[1], num_queries=counts[1],
                                 return_attention=True))
        q = self.decoder(torch.cat([ctx_s, ctx_t]), torch.cat([batch_s, batch_t + B]),
                         torch.cat([ctx_t, ctx_s]), torch.cat([batch_t, batch_s + B]), 2 * B,
                         query_init=torch.cat(init), num_queries=torch.cat(counts))
        first = q.batch < B
        return tuple(q._replace(embedding=q.embedding[m], batch=q.batch[m] - offset, exist_logit=q.exist_logit[m],
                                pos=q.pos[m], feat=q.feat[m])
                     for m, offset in ((first, 0), (~first, B)))

    def _rebuild(self, comp_s: CompletedGraph, comp_t: CompletedGraph, num_graphs: int):
        """New edges and refined embeddings of both completed graphs in one rebuilder call (the
        target graphs as graphs ``B .. 2B-1``, as in :meth:`_decode`). Returns ``h_s, edges_s, h_t,
        edges_t``, each side's ``edge_index`` in its own node numbering."""
        n_s = comp_s.h.size(0)
        h, edges = self.rebuilder(torch.cat([comp_s.h, comp_t.h]), torch.cat([comp_s.pos, comp_t.pos]),
                                  torch.cat([comp_s.batch, comp_t.batch + num_graphs]), 2 * num_graphs)
        on_s = edges[0] < n_s
        return h[:n_s], edges[:, on_s], h[n_s:], edges[:, ~on_s] - n_s

    def _assign(self, q: QueryOutput, seed: Tensor, tgt, num_graphs: int):
        """Queries for completion targets: a target goes to the query seeded from the node it stands
        for (an anchor, as in DINO's query selection); targets whose node was not selected go to the
        remaining queries by the DETR Hungarian matcher (existence + position + feature cost)."""
        tgt_pos, tgt_feat, tgt_batch, partner = tgt
        anchored_q = seed.unsqueeze(1) == partner.unsqueeze(0)  # [Q_total, C_total]
        q_idx, c_idx = anchored_q.nonzero(as_tuple=True)
        free_q = ~anchored_q.any(1)
        free_c = ~anchored_q.any(0)
        if free_q.any() and free_c.any():
            fq, fc = free_q.nonzero().view(-1), free_c.nonzero().view(-1)
            sub_q, sub_c = self.set_matcher(q.exist_logit[fq], q.pos[fq], q.feat[fq], q.batch[fq],
                                            tgt_pos[fc], tgt_feat[fc], tgt_batch[fc], num_graphs)
            q_idx, c_idx = torch.cat([q_idx, fq[sub_q]]), torch.cat([c_idx, fc[sub_c]])
        return q_idx, c_idx

    def _anchor_pos(self, seed: Tensor, other: EncodedGraph, A: Tensor) -> Tensor:
        """Position in the own frame of each query's seed node (0 for unseeded queries)."""
        valid = seed >= 0
        index = seed.clamp(min=0)
        graph = other.batch[index]
        mapped = other.pos[index].unsqueeze(1) @ A[graph, :2] + A[graph, 2:3]
        return mapped.squeeze(1) * valid.unsqueeze(-1)

    def _completion_targets(self, data, side: str, own: EncodedGraph, other: EncodedGraph):
        """Normalised positions, features (the embedding of the node they stand for) and graph
        of the nodes that ``side`` lacks; ``None`` when the batch carries no completion targets."""
        pos = getattr(data, f"comp_pos_{side}", None)
        if pos is None:
            return None
        batch = getattr(data, f"comp_pos_{side}_batch")
        index = getattr(data, f"comp_index_{side}")
        pos = (pos - own.center[batch]) / own.scale[batch].unsqueeze(-1)
        return pos, other.h[index].detach(), batch, index

    def _complete(self, enc: EncodedGraph, queries: Optional[QueryOutput], force: Optional[Tensor]):
        if queries is None:
            empty = enc.h.new_zeros(0, enc.h.size(1))
            return complete_graph(enc.h, enc.pos, enc.batch, empty, enc.pos.new_zeros(0, 2),
                                  enc.batch.new_zeros(0)), None
        include = torch.sigmoid(queries.exist_logit) > self.config.exist_threshold
        if not self.training and not self.config.generate_at_inference:
            include = torch.zeros_like(include)
        if force is not None:  # training: the queries assigned to a real missing node always take part
            include = include.clone()
            include[force] = True
        graph = complete_graph(enc.h, enc.pos, enc.batch, queries.feat[include], queries.pos[include],
                               queries.batch[include])
        return graph, include

    # ------------------------------------------------------------------ forward
    def forward(self, data, compute_loss: Optional[bool] = None, return_attention: bool = False) -> SSGMOutput:
        B = self._check(data)
        enc_s, enc_t = self.encode(data, B)
        compute_loss = self.training if compute_loss is None else compute_loss

        queries_s = queries_t = None
        consensus = self._consensus(enc_s, enc_t, B)
        assign: Dict[str, tuple] = {}
        targets: Dict[str, tuple] = {}
        if self.decoder is not None:
            ctx_s = enc_s.h + self.matchability(consensus.match_s)
            ctx_t = enc_t.h + self.matchability(consensus.match_t)
            count_s, count_t = self._num_queries(enc_t.batch, B), self._num_queries(enc_s.batch, B)
            init_s, seed_s = self._query_init(ctx_t, consensus.match_t, enc_t.batch, B, count_s)
            init_t, seed_t = self._query_init(ctx_s, consensus.match_s, enc_s.batch, B, count_t)
            queries_s, queries_t = self._decode(ctx_s, enc_s.batch, ctx_t, enc_t.batch, B, (init_s, init_t),
                                                (count_s, count_t), return_attention)
            # A query seeded from a node of the other graph predicts its position as that node's
            # position mapped into its own frame, plus the residual of the position head.
            queries_s = queries_s._replace(pos=queries_s.pos + self._anchor_pos(seed_s, enc_t, consensus.A_ts))
            queries_t = queries_t._replace(pos=queries_t.pos + self._anchor_pos(seed_t, enc_s, consensus.A_st))
            if compute_loss:
                for side, q, seed, own, other in (("s", queries_s, seed_s, enc_s, enc_t),
                                                  ("t", queries_t, seed_t, enc_t, enc_s)):
                    tgt = self._completion_targets(data, side, own, other)
                    if tgt is not None:
                        targets[side] = tgt
                        assign[side] = self._assign(q, seed, tgt, B)
        comp_s, include_s = self._complete(enc_s, queries_s, assign["s"][0] if "s" in assign else None)
        comp_t, include_t = self._complete(enc_t, queries_t, assign["t"][0] if "t" in assign else None)
        h_s, edges_s, h_t, edges_t = self._rebuild(comp_s, comp_t, B)

        H_s, mask_s = to_dense_batch(F.normalize(h_s, dim=-1), comp_s.batch, batch_size=B)
        H_t, mask_t = to_dense_batch(F.normalize(h_t, dim=-1), comp_t.batch, batch_size=B)
        P_s, _ = to_dense_batch(comp_s.pos, comp_s.batch, batch_size=B)
        P_t, _ = to_dense_batch(comp_t.pos, comp_t.batch, batch_size=B)
        n1, n2 = mask_s.sum(1), mask_t.sum(1)
        # Appearance and geometric consensus: cosine similarity minus the squared distance between
        # the nodes once the target is aligned on the source (second-order consistency, cheaply),
        # plus, at inference, the late-fused raw descriptor terms; then the non-rigid rounds.
        P_t_aligned = apply_affine(consensus.A_ts, P_t)
        S_nodes = H_s @ H_t.transpose(1, 2) / self.temperature + self._raw_affinity(enc_s, enc_t, B, H_s.size(1),
                                                                                       H_t.size(1))
        geometric_weight = self.log_geometric_weight.exp()
        S = S_nodes - geometric_weight * squared_distances(P_s, P_t_aligned)
        c = self.config
        if c.coherence_rounds > 0:
            # Non-rigid refinement. The affine residual is of the size of the deformation, which
            # exceeds the spacing of a dense graph's nodes; the residual left after following the
            # neighbourhood's displacement does not. Bandwidth and residual are measured in node
            # spacings, so the term means the same for 10 nodes as for 500.
            within_s = squared_distances(P_s, P_s)  # one N x N matrix for both the unit and the kernel
            spacing = node_spacing(P_s, mask_s, distances=within_s)
            kernel = coherence_kernel(P_s, mask_s, c.coherence_bandwidth * spacing, distances=within_s)
            pair_mask = mask_s.unsqueeze(2) & mask_t.unsqueeze(1)
            for _ in range(c.coherence_rounds):
                expected = coherent_positions(dual_softmax(S, pair_mask), P_s, P_t_aligned, kernel)
                residual = squared_distances(expected, P_t_aligned) / spacing.pow(2).view(-1, 1, 1)
                S = S_nodes - geometric_weight * c.coherence_weight * residual
        threshold = self.match_threshold / self.temperature
        with torch.no_grad():
            if self.config.solver == "rrwm" and max(S.size(1), S.size(2)) <= self.config.qap_max_nodes:
                X = self._quadratic_matching(S.detach(), mask_s, mask_t, n1, n2, P_s, P_t_aligned,
                                             (comp_s, edges_s), (comp_t, edges_t), threshold.detach(), B)
            else:
                X = partial_hungarian(S.detach(), n1, n2, threshold.detach())
        num_real_s = torch.bincount(enc_s.batch, minlength=B)
        num_real_t = torch.bincount(enc_t.batch, minlength=B)
        # Real nodes come first in each completed graph, so their local indices are unchanged.
        pairs = [X[b, :num_real_s[b], :num_real_t[b]].nonzero().t() for b in range(B)]

        out = SSGMOutput(
            pairs=pairs, S=S, X=X, n1=n1, n2=n2, num_real_s=num_real_s, num_real_t=num_real_t,
            num_generated_s=n1 - num_real_s, num_generated_t=n2 - num_real_t,
            oversmoothing=0.5 * (mean_pairwise_cosine(enc_s.h, enc_s.batch, B)
                                 + mean_pairwise_cosine(enc_t.h, enc_t.batch, B)),
            queries_s=queries_s, queries_t=queries_t, completed_s=comp_s, completed_t=comp_t,
            encoded_s=enc_s, encoded_t=enc_t,
        )
        if compute_loss:
            out.losses = self._losses(data, out, S, threshold, targets, assign,
                                      {"s": include_s, "t": include_t}, h_s, h_t)
        return out

    @torch.no_grad()
    def generated_nodes(self, out: SSGMOutput) -> Tuple[Optional[GeneratedNodes], Optional[GeneratedNodes]]:
        """The nodes the model generates for the source and the target graph of each pair of
        ``out`` (what its completion says each side lacks), decided as ``completion_source`` says,
        whether or not ``generate_at_inference`` let them into the matching. ``None`` for a side
        without queries under "queries". Computed on demand: matching needs none of it."""
        if self.config.completion_source == "queries":
            def queried(q: Optional[QueryOutput]) -> Optional[GeneratedNodes]:
                if q is None:
                    return None
                keep = torch.sigmoid(q.exist_logit) > self.config.exist_threshold
                return GeneratedNodes(q.pos[keep], q.batch[keep])

            return queried(out.queries_s), queried(out.queries_t)
        B = out.X.size(0)
        P_s, _ = to_dense_batch(out.completed_s.pos, out.completed_s.batch, batch_size=B, max_num_nodes=out.X.size(1))
        P_t, _ = to_dense_batch(out.completed_t.pos, out.completed_t.batch, batch_size=B, max_num_nodes=out.X.size(2))
        real_s = torch.arange(out.X.size(1), device=out.X.device) < out.num_real_s.unsqueeze(1)
        real_t = torch.arange(out.X.size(2), device=out.X.device) < out.num_real_t.unsqueeze(1)
        return self._transferred_nodes(out.X, P_s, P_t, real_s, real_t)

    def _transferred_nodes(self, X: Tensor, P_s: Tensor, P_t: Tensor, real_s: Tensor,
                           real_t: Tensor) -> Tuple[GeneratedNodes, GeneratedNodes]:
        """``completion_source="matching"``: existence decided with the matching. Each side gets
        one node per real node of the other graph that the matching ``X`` leaves without a real
        partner, where the affine map fitted to the real matched pairs takes it: a fit to the hard
        matching, not to the consensus' diffuse soft one. ``real_s [B, N1]`` / ``real_t [B, N2]``
        mark the real nodes of the dense completed graphs ``P_s`` / ``P_t``."""
        X = X.to(P_s.dtype) * (real_s.unsqueeze(2) & real_t.unsqueeze(1))
        lacks_s, lacks_t = real_t & (X.sum(1) == 0), real_s & (X.sum(2) == 0)
        into_s = apply_affine(fit_affine(X, P_s, P_t), P_t)
        into_t = apply_affine(fit_affine(X.transpose(1, 2), P_t, P_s), P_s)
        return (GeneratedNodes(into_s[lacks_s], lacks_s.nonzero()[:, 0]),
                GeneratedNodes(into_t[lacks_t], lacks_t.nonzero()[:, 0]))

    def _quadratic_matching(self, S: Tensor, mask_s: Tensor, mask_t: Tensor, n1: Tensor, n2: Tensor, P_s: Tensor,
                            P_t_aligned: Tensor, graph_s, graph_t, threshold: Tensor, num_graphs: int) -> Tensor:
        """The matching of :mod:`pyg_ssgm.matching.quadratic`: the soft first-order matching
        (dual softmax of ``S``, in [0, 1]) as unary term, edge agreement over the completed graphs
        (target aligned on the source), RRWM, then the Hungarian discretisation. A pair whose
        affinity is below the threshold stays unmatched, as in the first-order matching."""
        conns = []
        for comp, edge_index in (graph_s, graph_t):
            counts = torch.bincount(comp.batch, minlength=num_graphs)
            ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
            conns += list(dense_connectivity(edge_index, comp.batch, ptr, num_graphs))
        mask = mask_s.unsqueeze(2) & mask_t.unsqueeze(1)
        soft = rrwm_refine(dual_softmax(S, mask), n1, n2, P_s, P_t_aligned, *conns,
                           node_weight=self.config.qap_node_weight, edge_sigma=self.config.qap_edge_sigma)
        X = hungarian(soft.to(S.dtype), n1, n2)
        return X * (S >= threshold).to(X.dtype)

    @torch.no_grad()
    def predict(self, data) -> List[Tensor]:
        """The predicted partial matching of each pair: a list of long ``[2, K]`` tensors. With
        ``mirror_test``, the target is also matched mirrored left-right, and each pair keeps the
        matching of the higher :meth:`objective`."""
        was_training = self.training
        if was_training:  # switching modes walks every submodule: not free on a single pair
            self.eval()
        try:
            out = self(data, compute_loss=False)
            if not self.config.mirror_test:
                return out.pairs
            told = mirrored(data, "t")
            flipped = self(told, compute_loss=False)
            orientation = flipped
            if self.config.mirror_aware:
                # Told that the target is mirrored, the model leaves the parts the mirror exchanges
                # unmatched, which lowers the objective of the flipped orientation just where it is
                # the right one (CUB validation F1 0.673 deciding with it, 0.737 without): the
                # orientation is decided by the flipped pass that is not told.
                orientation = self(mirrored(data, "t", tell=False), compute_loss=False)
            keep = self.objective(out) >= self.objective(orientation)
            return [a if k else b for a, b, k in zip(out.pairs, flipped.pairs, keep.tolist())]
        finally:
            if was_training:
                self.train()

    @torch.no_grad()
    def objective(self, out: SSGMOutput) -> Tensor:
        """``[B]`` value of each pair's partial matching, the quantity the solver maximises: the sum
        over matched pairs (generated nodes included) of the affinity minus the unmatched threshold."""
        threshold = self.match_threshold / self.temperature
        return ((out.S - threshold) * out.X).sum((1, 2))

    # ------------------------------------------------------------------ losses
    def _ground_truth(self, data, out: SSGMOutput, assign, include) -> Tensor:
        """Binary ``[B, N1, N2]`` truth over the completed graphs: real pairs from ``y``, and each
        generated node assigned to a missing node paired with the real node it stands for."""
        B, N1, N2 = out.S.shape
        X_gt = out.S.new_zeros(B, N1, N2)
        ptr_s = torch.cat([out.num_real_s.new_zeros(1), out.num_real_s.cumsum(0)])
        ptr_t = torch.cat([out.num_real_t.new_zeros(1), out.num_real_t.cumsum(0)])
        y = data.y
        if y is not None and y.numel():
            b = out.encoded_s.batch[y[0]]
            X_gt[b, y[0] - ptr_s[b], y[1] - ptr_t[b]] = 1.0
        for side in ("s", "t"):
            if side not in assign:
                continue
            q_idx, c_idx = assign[side]
            partner = getattr(data, f"comp_index_{side}")[c_idx]  # global real index on the other side
            # local index of the assigned query in its completed graph: after the real nodes,
            # in the order of the included queries of that graph
            inc = include[side]
            queries = out.queries_s if side == "s" else out.queries_t
            rank = torch.cumsum(inc.long(), 0) - 1
            first = torch.zeros(B + 1, dtype=torch.long, device=inc.device)
            first[1:] = torch.bincount(queries.batch[inc], minlength=B).cumsum(0)
            b = queries.batch[q_idx]
            real = out.num_real_s if side == "s" else out.num_real_t
            gen_local = real[b] + rank[q_idx] - first[b]
            other_ptr = ptr_t if side == "s" else ptr_s
            if side == "s":
                X_gt[b, gen_local, partner - other_ptr[b]] = 1.0
            else:
                X_gt[b, partner - other_ptr[b], gen_local] = 1.0
        return X_gt

    def _matching_loss(self, S: Tensor, X_gt: Tensor, n1: Tensor, n2: Tensor, threshold: Tensor) -> Tensor:
        c = self.config
        u1, u2 = threshold_to_unmatch(threshold, S)
        if c.matching_loss == "sinkhorn":
            P = sinkhorn(S, n1, n2, max_iter=c.sinkhorn_iter, unmatch1=u1, unmatch2=u2)
            return matching_cross_entropy(P, X_gt, n1, n2)
        # The Hamming loss is summed over entries and averaged over pairs, so dL/dX is +-1/B;
        # scaling lambda by B makes ``bb_lambda`` the perturbation of S in similarity units.
        B = S.size(0)
        Xb = blackbox_hungarian(S, n1, n2, c.bb_lambda * B, u1, u2)
        return hamming_loss(Xb, X_gt, n1, n2, reduction="sum", normalize=False) / B

    def _losses(self, data, out: SSGMOutput, S: Tensor, threshold: Tensor, targets, assign, include,
                h_s: Tensor, h_t: Tensor) -> Dict[str, Tensor]:
        c = self.config
        X_gt = self._ground_truth(data, out, assign, include)
        loss_match = self._matching_loss(S, X_gt, out.n1, out.n2, threshold)
        losses = {"match": loss_match}
        total = c.weight_match * loss_match
        if c.weight_match_real > 0:
            # Real nodes come first in each completed graph: the leading block is the matching
            # among real nodes, where a node whose partner was generated has an empty row.
            N1, N2 = int(out.num_real_s.max()), int(out.num_real_t.max())
            # (the block may reach into the generated rows of pairs with fewer real nodes: masked)
            X_real = X_gt[:, :N1, :N2] * size_mask(out.num_real_s, out.num_real_t, N1, N2)
            losses["match_real"] = self._matching_loss(S[:, :N1, :N2], X_real, out.num_real_s, out.num_real_t,
                                                       threshold)
            total = total + c.weight_match_real * losses["match_real"]
        for side in assign:
            q = out.queries_s if side == "s" else out.queries_t
            tgt_pos, tgt_feat, _, _ = targets[side]
            part = set_prediction_loss(q.exist_logit, q.pos, q.feat, assign[side][0], assign[side][1],
                                       tgt_pos, tgt_feat, eos_weight=c.eos_weight, weight_exist=c.weight_exist,
                                       weight_pos=c.weight_pos, weight_feat=c.weight_feat)
            for key in ("loss_exist", "loss_pos", "loss_feat"):
                name = key[5:]
                losses[name] = losses.get(name, 0.0) + part[key] / 2
            total = total + part["loss"] / 2
        if c.weight_contrastive > 0 and data.y is not None and data.y.numel():
            enc_s, enc_t = out.encoded_s, out.encoded_t
            losses["contrastive"] = info_nce(enc_s.h, enc_t.h, data.y, c.temperature, enc_s.batch, enc_t.batch)
            total = total + c.weight_contrastive * losses["contrastive"]
        losses["loss"] = total
        return losses
