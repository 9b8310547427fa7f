r"""SSGM, the network: encode both graphs, align them, generate what each lacks, rebuild the
completed graphs and score every pair of their nodes.

.. code-block:: text

    PairData batch ─┬─ source: NodeFeatures ─ GraphEncoder ─ h_s ─┐
                    └─ target: NodeFeatures ─ GraphEncoder ─ h_t ─┤  affine consensus: A, matchability
                       QueryDecoder(h_s | h_t) → queries_s: exist, pos, feat (nodes the source lacks)
                       QueryDecoder(h_t | h_s) → queries_t
                       completed graph = real nodes + queries that exist; GraphRebuilder refines
                       S = cos(h_s, h_t) / T - w |p_s - A p_t|^2, then the coherence rounds
                       (optional) neighbourhood consensus over the rebuilt edges corrects S

The network computes no loss (:class:`~pyg_ssgm.Criterion`) and solves no matching
(:class:`~pyg_ssgm.Predictor`): a real node matched to a *generated* node of the other side has no
partner there, and the predictor keeps only the real-to-real pairs.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import record_function
from torch_geometric.utils import to_dense_batch

from ..config import InferenceConfig, ModelConfig
from ..errors import ConfigError, InvalidInputError
from ..matching import SetMatcher
from ..nn.affinity import geometric_affinity, late_fusion
from ..nn.alignment import apply_affine
from ..nn.consensus import Consensus, affine_consensus
from ..nn.diagnostics import mean_pairwise_cosine
from ..nn.encoder import GraphEncoder
from ..nn.features import NodeFeatures, normalize_positions
from ..nn.keypoint_filter import KeypointFilter
from ..nn.neighbour_consensus import NeighbourConsensus
from ..nn.query_decoder import QueryDecoder, QueryOutput
from ..nn.query_selection import anchor_positions, query_counts, select_queries
from ..nn.rebuild import CompletedGraph, GraphRebuilder
from ..nn.shape_context import sparse_shape_context
from .completion import assign_queries, complete, completion_targets
from .output import EncodedGraph, SSGMOutput


def check_pair_batch(data, in_channels: int) -> int:
    """The number of pairs of ``data``, or an :class:`InvalidInputError` saying what is wrong with
    it: fields missing, non-finite positions, feature widths that differ, empty graphs."""
    for side in "st":
        for key in (f"pos_{side}", f"x_{side}", f"edge_index_{side}", f"x_{side}_batch"):
            if getattr(data, key, None) is None:
                raise InvalidInputError(f"the batch has no '{key}'; build batches with Batch.from_data_list(pairs, "
                                        "follow_batch=PairData.FOLLOW_BATCH) or pyg_ssgm.data.pair_loader.")
        if not torch.isfinite(getattr(data, f"pos_{side}")).all():
            raise InvalidInputError(f"pos_{side} contains NaN or infinite coordinates.")
    if data.x_s.size(-1) != data.x_t.size(-1):
        raise InvalidInputError(f"the source graphs carry {data.x_s.size(-1)} appearance features per node and the "
                                f"target graphs {data.x_t.size(-1)}; both need the same number (the model expects "
                                f"{in_channels}).")
    B = data.num_graphs
    for side in "st":
        counts = torch.bincount(getattr(data, f"x_{side}_batch"), minlength=B)
        if (counts == 0).any():
            empty = (counts == 0).nonzero().view(-1).tolist()
            raise InvalidInputError(f"pairs {empty} have an empty {'source' if side == 's' else 'target'} graph; "
                                    "every graph needs at least one keypoint.")
    return B


class SSGM(nn.Module):
    r"""Self-supervised generative partial graph matching (see the module docstring).

    ``model(batch)`` takes a PyG batch of :class:`~pyg_ssgm.data.PairData` (made with
    ``follow_batch=PairData.FOLLOW_BATCH``) and returns an :class:`SSGMOutput`. Without
    ``inference`` it runs as in training: the alignment rounds of training, every existing query in
    the completed graph, and, where the batch carries completion targets (generated pairs), the
    queries assigned to them by ``matcher`` forced in. With an :class:`InferenceConfig` it runs
    as that configuration says (alignment rounds, generated nodes on or off, late-fused raw terms).

    Args:
        config: the network's parts and sizes; ``in_channels`` must be set (the composition root
            :func:`pyg_ssgm.build` takes it from the data).
        matcher: assigns queries to missing nodes in training (default: ``SetMatcher()``).
    """

    def __init__(self, config: ModelConfig, matcher: Optional[SetMatcher] = None):
        super().__init__()
        if config.in_channels is None:
            raise ConfigError("ModelConfig.in_channels is None: set it to the number of appearance features per "
                              "node of your data (0: geometry only), or build the model with pyg_ssgm.build, which "
                              "takes it from the data.")
        self.config = c = config
        self.features = NodeFeatures(c.in_channels, c.hidden_channels, c.use_appearance, c.use_geometry,
                                     c.shape_context)
        self.encoder = GraphEncoder(c.hidden_channels, c.encoder_layers, c.heads, edge_dim=2, dropout=c.dropout)
        self.decoder = (QueryDecoder(c.hidden_channels, c.num_queries, c.decoder_layers, c.heads, c.dropout)
                        if c.completion else None)
        # How well each node is matched on the other side (best and second-best cosine, distance
        # to the nearest aligned node): lets the decoder find the nodes that have no partner.
        self.matchability = nn.Linear(3, c.hidden_channels) if c.completion else None
        self.query_select = nn.Linear(c.hidden_channels, c.hidden_channels) if c.completion else None
        self.rebuilder = GraphRebuilder(c.hidden_channels, c.structure, c.heads, c.knn_k)
        # Where a pair faces its mirror image, a shift of each target node's input features computed
        # from them: what the mirror means depends on the node (an eye loses its partner, a beak
        # keeps it), which one vector added to every node cannot say.
        self.mirror_shift = (nn.Sequential(nn.Linear(c.hidden_channels, c.hidden_channels), nn.ReLU(),
                                           nn.Linear(c.hidden_channels, c.hidden_channels))
                             if c.mirror_aware else None)
        self.neighbour_consensus = (NeighbourConsensus(c.neighbour_consensus_channels, c.neighbour_consensus_steps)
                                    if c.neighbour_consensus_steps > 0 else None)
        # Whether each point is a keypoint at all: read by the predictor, before any graph is built.
        # (a filter without descriptors reads the geometry whatever the setting: there is nothing else)
        self.keypoint_filter = (KeypointFilter(c.in_channels, geometry=bool(c.keypoint_filter_geometry)
                                               or not c.in_channels, memory=bool(c.keypoint_filter_memory))
                                if c.keypoint_filter else None)
        self.matcher = matcher or SetMatcher()
        # Learned in log space so the temperature stays positive; the threshold is in cosine units.
        self.log_temperature = nn.Parameter(torch.tensor(float(c.temperature)).log())
        self.match_threshold = nn.Parameter(torch.tensor(float(c.match_threshold)))
        # Weight of the geometric term of the affinity (squared distance after alignment), log space.
        self.log_geometric_weight = nn.Parameter(torch.tensor(float(c.geometric_weight)).clamp(min=1e-6).log(),
                                                 requires_grad=c.geometric_weight > 0)

    def reset_parameters(self) -> None:
        for module in (self.features, self.encoder, self.decoder, self.matchability, self.query_select,
                       self.rebuilder, self.neighbour_consensus, self.keypoint_filter):
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

    def forward(self, data, inference: Optional[InferenceConfig] = None,
                return_attention: bool = False) -> SSGMOutput:
        c, B = self.config, check_pair_batch(data, self.config.in_channels)
        training = inference is None
        with record_function("ssgm.encode"):
            enc_s, enc_t = self.encode(data, B, shape_context=not training and inference.shape_context_weight > 0)
        with record_function("ssgm.consensus"):
            rounds = (c.consensus_iterations if training or inference.inference_consensus_iterations is None
                      else inference.inference_consensus_iterations)
            consensus = affine_consensus(enc_s.h, enc_s.pos, enc_s.batch, enc_t.h, enc_t.pos, enc_t.batch, B,
                                         self.temperature, self.log_geometric_weight, rounds,
                                         self._fused(enc_s, enc_t, B, inference))
        queries_s = queries_t = seed_s = seed_t = targets = assignment = None
        if self.decoder is not None:
            with record_function("ssgm.decode"):
                (queries_s, seed_s), (queries_t, seed_t) = self.decode(enc_s, enc_t, consensus, B, return_attention)
            if training:
                targets, assignment = {}, {}
                for side, q, seed, own, other in (("s", queries_s, seed_s, enc_s, enc_t),
                                                  ("t", queries_t, seed_t, enc_t, enc_s)):
                    tgt = completion_targets(data, side, own, other)
                    if tgt is not None:
                        targets[side], assignment[side] = tgt, assign_queries(self.matcher, q, seed, tgt, B)
        generate = training or inference.generate_at_inference
        force = {side: a.query for side, a in (assignment or {}).items()}
        comp_s, included_s = complete(enc_s, queries_s, c.exist_threshold, generate, force.get("s"))
        comp_t, included_t = complete(enc_t, queries_t, c.exist_threshold, generate, force.get("t"))
        with record_function("ssgm.rebuild"):
            h_s, edges_s, h_t, edges_t = self.rebuild(comp_s, comp_t, B)
        with record_function("ssgm.affinity"):
            S, P_s, P_t, n1, n2 = self.affinity(h_s, comp_s, h_t, comp_t, consensus, enc_s, enc_t, B, inference)
        S_initial = None
        if self.neighbour_consensus is not None:
            with record_function("ssgm.neighbour_consensus"):
                S_initial, S = S, self.neighbour_consensus(S, comp_s.batch, edges_s, comp_t.batch, edges_t)
        return SSGMOutput(
            S=S, threshold=self.match_threshold / self.temperature, n1=n1, n2=n2,
            num_real_s=torch.bincount(enc_s.batch, minlength=B), num_real_t=torch.bincount(enc_t.batch, minlength=B),
            pos_s=P_s, pos_t=P_t, alignment=consensus.A_ts, encoded_s=enc_s, encoded_t=enc_t, completed_s=comp_s,
            completed_t=comp_t, edges_s=edges_s, edges_t=edges_t,
            oversmoothing=0.5 * (mean_pairwise_cosine(enc_s.h, enc_s.batch, B)
                                 + mean_pairwise_cosine(enc_t.h, enc_t.batch, B)),
            queries_s=queries_s, queries_t=queries_t, seeds_s=seed_s, seeds_t=seed_t, targets=targets,
            assignment=assignment, S_initial=S_initial,
            included={"s": included_s, "t": included_t} if training else None,
            keypoint_logits=(self.keypoint_filter(torch.cat([data.x_s, data.x_t]), torch.cat([data.pos_s, data.pos_t]),
                                                  torch.cat([data.x_s_batch, data.x_t_batch + B]), 2 * B)
                             if training and self.keypoint_filter is not None else None))

    # ------------------------------------------------------------------ stages
    def encode(self, data, num_graphs: int, shape_context: bool = False) -> Tuple[EncodedGraph, EncodedGraph]:
        """Both graphs of every pair, encoded in one pass: the target graphs follow the source
        graphs as graphs ``B .. 2B-1``. Nothing crosses from one graph to another (per-graph
        normalisation, message passing along each graph's edges), so this is the same as encoding
        each side alone, at half the calls: what a single pair costs is mostly per-call overhead.
        ``shape_context``: compute the raw shape context even where no node feature uses it (for
        late fusion); it costs O(N^2) per graph."""
        B, n_s = num_graphs, data.pos_s.size(0)
        pos = torch.cat([data.pos_s, data.pos_t])
        x = torch.cat([data.x_s, data.x_t])
        batch = torch.cat([data.x_s_batch, data.x_t_batch + B])
        edge_index = torch.cat([data.edge_index_s, data.edge_index_t + n_s], dim=1)
        pos_norm, center, scale = normalize_positions(pos, batch, 2 * B)
        # Edge attributes from the normalised positions (the same quantity PairData stores).
        edge_attr = pos_norm[edge_index[1]] - pos_norm[edge_index[0]]
        context = (sparse_shape_context(pos_norm, batch, 2 * B) if self.features.use_shape_context or shape_context
                   else pos_norm.new_zeros(pos_norm.size(0), 0))
        h = self.features(x, pos_norm, edge_index, context)
        mirror = getattr(data, "mirror", None)
        if self.mirror_shift is not None and mirror is not None:
            # The target's nodes only, before message passing, so the shift reaches the neighbours.
            h_t = h[n_s:]
            h = torch.cat([h[:n_s], h_t + mirror[data.x_t_batch].to(h.dtype).unsqueeze(-1) * self.mirror_shift(h_t)])
        h = self.encoder(h, edge_index, edge_attr)

        def side(nodes: slice, graphs: slice, offset: int) -> EncodedGraph:
            return EncodedGraph(h[nodes], x[nodes], context[nodes], pos_norm[nodes], batch[nodes] - offset,
                                center[graphs], scale[graphs])

        return side(slice(0, n_s), slice(0, B), 0), side(slice(n_s, None), slice(B, None), B)

    def _fused(self, enc_s: EncodedGraph, enc_t: EncodedGraph, num_graphs: int,
               inference: Optional[InferenceConfig], n1: Optional[int] = None, n2: Optional[int] = None):
        """The late-fused raw terms at inference (:func:`~pyg_ssgm.nn.affinity.late_fusion`); 0 in training."""
        if inference is None:
            return 0.0
        terms = ((inference.appearance_weight, enc_s.x, enc_t.x),
                 (inference.shape_context_weight, enc_s.shape_context, enc_t.shape_context))
        return late_fusion(terms, enc_s.batch, enc_t.batch, num_graphs, n1, n2)

    def decode(self, enc_s: EncodedGraph, enc_t: EncodedGraph, consensus: Consensus, num_graphs: int,
               return_attention: bool = False) -> Tuple[Tuple[QueryOutput, Tensor], Tuple[QueryOutput, Tensor]]:
        """The queries of both sides and the node each is seeded from. Each graph's queries start
        from the least matched nodes of the other graph and predict their position as that node's,
        mapped into their own frame by the alignment, plus the residual of the position head."""
        c, B = self.config, num_graphs
        ctx_s = enc_s.h + self.matchability(consensus.match_s)
        ctx_t = enc_t.h + self.matchability(consensus.match_t)
        count_s = query_counts(enc_t.batch, B, c.num_queries, c.query_fraction)
        count_t = query_counts(enc_s.batch, B, c.num_queries, c.query_fraction)
        init_s, seed_s = select_queries(self.query_select, ctx_t, consensus.match_t, enc_t.batch, B, count_s)
        init_t, seed_t = select_queries(self.query_select, ctx_s, consensus.match_s, enc_s.batch, B, count_t)
        if return_attention:  # one call per side, so that each side's attention keeps its own indexing
            queries_s = self.decoder(ctx_s, enc_s.batch, ctx_t, enc_t.batch, B, query_init=init_s,
                                     num_queries=count_s, return_attention=True)
            queries_t = self.decoder(ctx_t, enc_t.batch, ctx_s, enc_s.batch, B, query_init=init_t,
                                     num_queries=count_t, return_attention=True)
        else:  # both sides in one call, the target graphs as graphs B .. 2B-1: half the overhead
            q = self.decoder(torch.cat([ctx_s, ctx_t]), torch.cat([enc_s.batch, enc_t.batch + B]),
                             torch.cat([ctx_t, ctx_s]), torch.cat([enc_t.batch, enc_s.batch + B]), 2 * B,
                             query_init=torch.cat([init_s, init_t]), num_queries=torch.cat([count_s, count_t]))
            first = q.batch < B
            queries_s, queries_t = (
                q._replace(embedding=q.embedding[m], batch=q.batch[m] - offset, exist_logit=q.exist_logit[m],
                           pos=q.pos[m], feat=q.feat[m]) for m, offset in ((first, 0), (~first, B)))
        queries_s = queries_s._replace(pos=queries_s.pos + anchor_positions(seed_s, enc_t.pos, enc_t.batch,
                                                                            consensus.A_ts))
        queries_t = queries_t._replace(pos=queries_t.pos + anchor_positions(seed_t, enc_s.pos, enc_s.batch,
                                                                            consensus.A_st))
        return (queries_s, seed_s), (queries_t, seed_t)

    def rebuild(self, comp_s: CompletedGraph, comp_t: CompletedGraph, num_graphs: int):
        """New edges and refined embeddings of both completed graphs in one rebuilder call (the
        target graphs as graphs ``B .. 2B-1``). Returns ``h_s, edges_s, h_t, edges_t``, each side's
        ``edge_index`` in its own node numbering."""
        n_s = comp_s.h.size(0)
        h, edges = self.rebuilder(torch.cat([comp_s.h, comp_t.h]), torch.cat([comp_s.pos, comp_t.pos]),
                                  torch.cat([comp_s.batch, comp_t.batch + num_graphs]), 2 * num_graphs)
        on_s = edges[0] < n_s
        return h[:n_s], edges[:, on_s], h[n_s:], edges[:, ~on_s] - n_s

    def affinity(self, h_s: Tensor, comp_s: CompletedGraph, h_t: Tensor, comp_t: CompletedGraph,
                 consensus: Consensus, enc_s: EncodedGraph, enc_t: EncodedGraph, num_graphs: int,
                 inference: Optional[InferenceConfig]):
        r"""``S [B, N1, N2]`` over the completed graphs: the cosine of the refined embeddings over
        the temperature, plus the late-fused raw terms at inference, minus the geometric
        disagreement once the target is aligned on the source
        (:func:`~pyg_ssgm.nn.affinity.geometric_affinity`). Also returns the dense positions
        (each graph in its own frame) and the node counts ``n1``, ``n2``."""
        c, B = self.config, num_graphs
        H_s, mask_s = to_dense_batch(F.normalize(h_s, dim=-1), comp_s.batch, batch_size=B)
        H_t, mask_t = to_dense_batch(F.normalize(h_t, dim=-1), comp_t.batch, batch_size=B)
        P_s, _ = to_dense_batch(comp_s.pos, comp_s.batch, batch_size=B)
        P_t, _ = to_dense_batch(comp_t.pos, comp_t.batch, batch_size=B)
        P_t_aligned = apply_affine(consensus.A_ts, P_t)
        S_nodes = H_s @ H_t.transpose(1, 2) / self.temperature + self._fused(enc_s, enc_t, B, inference,
                                                                              H_s.size(1), H_t.size(1))
        S = geometric_affinity(S_nodes, P_s, P_t_aligned, mask_s, mask_t, self.log_geometric_weight.exp(),
                               c.coherence_rounds, c.coherence_bandwidth, c.coherence_weight)
        return S, P_s, P_t, mask_s.sum(1), mask_t.sum(1)


__all__ = ["SSGM", "check_pair_batch"]
