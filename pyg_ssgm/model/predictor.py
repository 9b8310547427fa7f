r"""From the network's affinity to correspondences: the partial matching (Hungarian, or RRWM over
the rebuilt edges), the mirror test, and the nodes the model says each graph lacks."""
from __future__ import annotations

import copy
from contextlib import contextmanager
from functools import cached_property
from dataclasses import dataclass, replace
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.profiler import record_function
from torch_geometric.data import Batch
from torch_geometric.utils import cumsum, to_dense_batch

from ..catalog import COMPLETION_SOURCES
from ..config import InferenceConfig, LossConfig
from ..data import PairData, mirrored, subset_pair
from ..data.pair_data import pair_field
from ..errors import ConfigError
from ..matching import (QUADRATIC_SOLVERS, dense_connectivity, hungarian, partial_hungarian, quadratic_affinity,
                        sinkhorn, size_mask, solve_quadratic, threshold_to_unmatch)
from ..matching.epipolar import epipolar_rematch_blocks
from ..nn.alignment import apply_affine, dual_softmax, fit_affine
from ..nn.rebuild import CompletedGraph
from .completion import paired_existence
from .network import SSGM
from .output import Completion, GeneratedNodes, GeneratedPoints, SSGMOutput


@dataclass
class Prediction:
    """One orientation's matching of a batch: the network's ``output``, the discrete matching
    ``X [B, N1, N2]`` over the completed graphs, and ``pairs``, per pair the long ``[2, K]``
    real-to-real correspondences (local indices; a real node matched to a generated node has no
    partner)."""

    output: SSGMOutput
    X: Tensor
    pairs: List[Tensor]


class Oriented(NamedTuple):
    """A batch matched as :meth:`Predictor.__call__` matches it: the ``plain`` prediction and, with
    the mirror test, the ``flipped`` one (the target mirrored left-right), and ``keep [B]``, where
    the plain orientation wins (all true without the mirror test)."""

    plain: Prediction
    flipped: Optional[Prediction]
    keep: Tensor

    def pairs(self) -> List[Tensor]:
        """Per pair the long ``[2, K]`` matching of the orientation it keeps."""
        if self.flipped is None:
            return self.plain.pairs
        return [a if k else b for a, b, k in zip(self.plain.pairs, self.flipped.pairs, self.keep.tolist())]


class FirstMatching(NamedTuple):
    """A matching before the epipolar re-matching (:meth:`Predictor.first_matching`): ``X [B, N1,
    N2]``, the per-node unmatched scores it was cut by where they are not all half the threshold
    (the decoder's dustbin, the keypoint doubt; else ``None``), and whether it was quadratic."""

    X: Tensor
    unmatched: Optional[Tuple[Tensor, Tensor]]
    quadratic: bool


class SoftInputs:
    """What every matching of one output reads beside ``S``, computed on first use and once: the
    soft first-order matching (dual softmax of ``S``, in [0, 1]: the quadratic solver's unary term
    and the epipolar re-matching's tie-breaker) and the dense connectivity of both completed
    graphs (the quadratic solver's edges), and the quadratic affinity matrices built from them. A
    pool of first matchings shares one."""

    def __init__(self, out: SSGMOutput):
        self.out = out
        self._affinities: Dict[Tuple[float, bool, float], Tensor] = {}

    def quadratic_affinity(self, node_weight: float, align: bool, edge_sigma: float) -> Tensor:
        """:func:`~pyg_ssgm.matching.quadratic_affinity` of the soft matching over the completed
        graphs, the target aligned on the source or as it is; built once per setting (RRWM and
        IPFP of the pool solve the same one)."""
        key = (node_weight, align, edge_sigma)
        if key not in self._affinities:
            out = self.out
            pos_t = apply_affine(out.alignment, out.pos_t) if align else out.pos_t
            self._affinities[key] = quadratic_affinity(self.unary, out.n1, out.n2, out.pos_s, pos_t,
                                                       *self.connectivity, node_weight=node_weight,
                                                       edge_sigma=edge_sigma)
        return self._affinities[key]

    @cached_property
    def unary(self) -> Tensor:
        S = self.out.S.detach()
        return dual_softmax(S, size_mask(self.out.n1, self.out.n2, S.size(1), S.size(2)))

    @cached_property
    def connectivity(self) -> Tuple[Tensor, ...]:
        out, B = self.out, self.out.S.size(0)
        return _connectivity(out.completed_s, out.edges_s, B) + _connectivity(out.completed_t, out.edges_t, B)


#: The first matchings that ``InferenceConfig.epipolar_pool`` adds as seeds of the epipolar
#: re-matching (each as a change of the solver settings; the one configured is not repeated): the
#: linear assignment of the learned affinity, cut by the threshold, which seeds the geometry best
#: at small turns, and the whole quadratic assignment over the rebuilt edges with the learned unary
#: term (edges aligned) and without (edges as they are), which do at large ones, the latter by RRWM
#: and by IPFP (which climbs to another peak of the same objective where a turn leaves several).
EPIPOLAR_POOL = ({"solver": "hungarian"},
                 {"solver": "rrwm", "qap_node_weight": 1.0, "qap_align": True, "qap_partial": False},
                 {"solver": "rrwm", "qap_node_weight": 0.0, "qap_align": False, "qap_partial": False},
                 {"solver": "ipfp", "qap_node_weight": 0.0, "qap_align": False, "qap_partial": False})


def seeded_queries(out: SSGMOutput, side: str) -> Tensor:
    """Long ``[B, N]``, ``N`` the largest real node count of the *other* graph: for each of its real
    nodes, the index (into ``out.queries_<side>``) of the query of ``side`` seeded from it; -1
    where none was (and on padding)."""
    queries, seeds = (out.queries_s, out.seeds_s) if side == "s" else (out.queries_t, out.seeds_t)
    counts_other = out.num_real_t if side == "s" else out.num_real_s
    index = torch.full((counts_other.numel(), int(counts_other.max())), -1, dtype=torch.long, device=seeds.device)
    valid = seeds >= 0
    index[queries.batch[valid], (seeds - cumsum(counts_other)[queries.batch])[valid]] = valid.nonzero().view(-1)
    return index


def _seeded_logits(out: SSGMOutput, side: str, shape) -> Tensor:
    """``shape`` = ``[B, N]`` (the other graph's completed size): at each node of the other graph a
    query of ``side`` was seeded from, that query's existence logit (detached); 0 elsewhere."""
    index = seeded_queries(out, side)
    logit = (out.queries_s if side == "s" else out.queries_t).exist_logit.detach()
    logits = logit.new_zeros(shape)
    logits[:, :index.size(1)] = torch.where(index >= 0, logit[index.clamp(min=0)], logits.new_zeros(()))
    return logits


def _kept(probability: Tensor, threshold: float, at_least: int = 3) -> Tensor:
    """Ascending indices of the points whose ``probability`` reaches ``threshold``, or of the
    ``at_least`` most probable ones where fewer do (all of a smaller graph)."""
    keep = probability >= threshold
    if int(keep.sum()) < min(at_least, probability.numel()):
        keep[probability.topk(min(at_least, probability.numel())).indices] = True
    return keep.nonzero().view(-1)


def _real_masks(out: SSGMOutput) -> Tuple[Tensor, Tensor]:
    """``[B, N1]`` / ``[B, N2]``: which nodes of the dense completed graphs of ``out.S`` are real."""
    _, N1, N2 = out.S.shape
    return (torch.arange(N1, device=out.S.device) < out.num_real_s.unsqueeze(1),
            torch.arange(N2, device=out.S.device) < out.num_real_t.unsqueeze(1))


def _connectivity(graph: CompletedGraph, edge_index: Tensor, num_graphs: int) -> Tuple[Tensor, Tensor]:
    counts = torch.bincount(graph.batch, minlength=num_graphs)
    return dense_connectivity(edge_index, graph.batch, cumsum(counts), num_graphs)


class Predictor:
    r"""``predictor(batch)``: the predicted partial matching of each pair, a list of long ``[2, K]``
    tensors (local node indices), as ``config`` says (:class:`~pyg_ssgm.config.InferenceConfig`).

    The network runs in eval mode with the inference settings; a pair is matched only where its
    affinity beats the learned threshold and its partner is a real node. With
    ``keypoint_threshold`` (and a model with a keypoint filter), the points the filter rejects are
    removed first and stay unmatched (:meth:`keypoints`; :meth:`match`, :meth:`orient` and
    :meth:`complete` take the batch as given); with ``keypoint_prior``, the points kept pay their
    doubt to be matched (:meth:`unmatched_scores`). With ``mirror_test``,
    the target is also matched mirrored left-right, and each pair keeps the orientation of the
    higher :meth:`objective`. The model's training flag is restored afterwards.
    """

    def __init__(self, model: SSGM, config: Optional[InferenceConfig] = None):
        self.model = model
        self.config = config or InferenceConfig()

    @torch.no_grad()
    def __call__(self, data) -> List[Tensor]:
        filtering = self.config.keypoint_threshold > 0 or self.keypoint_prior() > 0
        if filtering and self.model.keypoint_filter is not None:
            data, kept = self.keypoints(data)
            return [torch.stack([ks[m[0]], kt[m[1]]]) for m, (ks, kt) in zip(self.orient(data).pairs(), kept)]
        return self.orient(data).pairs()

    @torch.no_grad()
    def keypoints(self, data) -> Tuple[Batch, List[Tuple[Tensor, Tensor]]]:
        r"""``data`` without the points the model's keypoint filter rejects (probability under
        ``keypoint_threshold``; each graph keeps its three most probable points at least), its
        edges rebuilt over the points kept; and per pair the original local indices of the source
        and the target points kept (what :meth:`__call__` maps its matching back through). With
        ``keypoint_prior``, the batch carries each point's :math:`-\log p` as ``doubt_s`` and
        ``doubt_t`` (read by :meth:`match`)."""
        with self._evaluating():
            logit_s, logit_t = (self.model.keypoint_filter(data[f"x_{side}"], data[f"pos_{side}"],
                                                          data[f"x_{side}_batch"], data.num_graphs) for side in "st")
        kept, whole, doubt_s, doubt_t = [], [], [], []
        weighed = self.keypoint_prior() > 0
        for b in range(data.num_graphs):
            ls, lt = logit_s[data.x_s_ptr[b]:data.x_s_ptr[b + 1]], logit_t[data.x_t_ptr[b]:data.x_t_ptr[b + 1]]
            ks = _kept(torch.sigmoid(ls), self.config.keypoint_threshold)
            kt = _kept(torch.sigmoid(lt), self.config.keypoint_threshold)
            kept.append((ks, kt))
            whole.append(ks.numel() == ls.numel() and kt.numel() == lt.numel())
            if weighed:
                doubt_s.append(F.softplus(-ls[ks]))  # -log sigmoid(l), stable
                doubt_t.append(F.softplus(-lt[kt]))
        if all(whole):  # nothing removed: the batch as it is (a shallow copy, to carry the doubt)
            batch = copy.copy(data)
        else:  # only the pairs that lost points are rebuilt
            pairs = [data.get_example(b) if whole[b] else subset_pair(data.get_example(b).cpu(), ks.cpu(), kt.cpu())
                     for b, (ks, kt) in enumerate(kept)]
            batch = Batch.from_data_list(pairs, follow_batch=PairData.FOLLOW_BATCH).to(data.x_s.device)
        if weighed:
            batch.doubt_s, batch.doubt_t = torch.cat(doubt_s), torch.cat(doubt_t)
        return batch, kept

    @contextmanager
    def _evaluating(self) -> Iterator[None]:
        """The model in eval mode for the block, its training flag restored afterwards."""
        was_training = self.model.training
        if was_training:  # switching modes walks every submodule: not free on a single pair
            self.model.eval()
        try:
            yield
        finally:
            if was_training:
                self.model.train()

    @torch.no_grad()
    def orient(self, data) -> Oriented:
        """Both orientations of the mirror test (only the plain one without it) and, per pair,
        which one :meth:`__call__` keeps."""
        c = self.config
        with self._evaluating():
            plain = self.match(data)
            if not c.mirror_test:
                return Oriented(plain, None, torch.ones(plain.X.size(0), dtype=torch.bool, device=plain.X.device))
            flipped = self.match(mirrored(data, "t"))
            orientation = flipped
            if self.model.config.mirror_aware:
                # Told that the target is mirrored, the model leaves the parts the mirror exchanges
                # unmatched, which lowers the objective of the flipped orientation just where it is
                # the right one (CUB validation F1 0.673 deciding with it, 0.737 without): the
                # orientation is decided by the flipped pass that is not told.
                orientation = self.match(mirrored(data, "t", tell=False))
            return Oriented(plain, flipped, self.objective(plain) >= self.objective(orientation))

    @torch.no_grad()
    def match(self, data, return_attention: bool = False) -> Prediction:
        """The network's output on ``data`` as it stands (no mirror test) and its matching. The
        model should be in eval mode (:meth:`__call__` takes care of it)."""
        out = self.model(data, inference=self.config, return_attention=return_attention)
        if getattr(data, "doubt_s", None) is not None:  # set by keypoints()
            out = replace(out, keypoint_doubt=(
                to_dense_batch(data.doubt_s, data.x_s_batch, max_num_nodes=out.S.size(1), batch_size=out.S.size(0))[0],
                to_dense_batch(data.doubt_t, data.x_t_batch, max_num_nodes=out.S.size(2), batch_size=out.S.size(0))[0]))
        with record_function("ssgm.solver"):
            X = self.solve(out)
        B = out.S.size(0)
        # Real nodes come first in each completed graph, so their local indices are unchanged.
        pairs = [X[b, :out.num_real_s[b], :out.num_real_t[b]].nonzero().t() for b in range(B)]
        return Prediction(out, X, pairs)

    def solve(self, out: SSGMOutput) -> Tensor:
        """The discrete partial matching ``X [B, N1, N2]`` of ``out``: the linear assignment of
        :math:`S - t` (a pair is matched only where its affinity beats the threshold :math:`t`),
        or with ``solver="rrwm"`` / ``"ipfp"`` the second-order matching of
        :mod:`pyg_ssgm.matching.quadratic` (pairs larger than ``qap_max_nodes`` fall back), cut
        by the threshold unless ``qap_partial`` is off; with ``epipolar``, re-matched under the
        epipolar geometry it implies (with ``epipolar_pool``, the best of those of the first
        matchings of :data:`EPIPOLAR_POOL` too) and cut as it was (:meth:`epipolar_verified`)."""
        c, inputs = self.config, SoftInputs(out)
        first = self.first_matching(out, c, inputs)
        if not c.epipolar:
            return first.X
        S = out.S.detach()
        pool = [self.first_matching(out, replace(c, **seed), inputs).X for seed in EPIPOLAR_POOL
                if c.epipolar_pool and any(getattr(c, k) != v for k, v in seed.items())]
        X = self.epipolar_verified(out, first.X, inputs.unary, pool)
        # cut as the matching was cut (the partial assignments match exactly the pairs whose
        # affinity beats their two unmatched scores); a whole quadratic matching stays whole
        if first.quadratic and not c.qap_partial:
            return X
        if first.unmatched is not None:
            return X * (S >= first.unmatched[0].unsqueeze(2) + first.unmatched[1].unsqueeze(1))
        return X * (S >= self.threshold(out))

    def first_matching(self, out: SSGMOutput, c: InferenceConfig,
                       inputs: Optional[SoftInputs] = None) -> FirstMatching:
        """The matching of ``out`` under the solver settings of ``c`` (the threshold and the dustbin
        as configured; :meth:`solve` without the epipolar re-matching), with what its cut needs;
        ``inputs``: ``out``'s, where several matchings of it are made."""
        S, threshold = out.S.detach(), self.threshold(out)
        inputs = inputs or SoftInputs(out)
        quadratic = c.solver in QUADRATIC_SOLVERS and max(S.size(1), S.size(2)) <= c.qap_max_nodes
        # per-node unmatched scores where some node's differs from half the threshold (the
        # quadratic matching never reads the decoder's dustbin)
        dustbin = not quadratic and c.dustbin_weight > 0 and out.queries_s is not None
        per_node = self.unmatched_scores(out, dustbin=dustbin) \
            if dustbin or (out.keypoint_doubt is not None and self.keypoint_prior() > 0) else None
        if quadratic:
            # the soft first-order matching as unary term, edge agreement over the completed
            # graphs (the target aligned on the source, or as it is)
            K = inputs.quadratic_affinity(c.qap_node_weight, c.qap_align, c.qap_edge_sigma)
            # (RRWM's answer is relaxed, IPFP's already discrete: the Hungarian projects either)
            relaxed = solve_quadratic(K, out.n1, out.n2, S.size(1), S.size(2), c.solver)
            X = hungarian(relaxed.to(S.dtype), out.n1, out.n2)
            if not c.qap_partial:
                return FirstMatching(X, None, True)
            cut = threshold if per_node is None else per_node[0].unsqueeze(2) + per_node[1].unsqueeze(1)
            return FirstMatching(X * (S >= cut), per_node, True)
        if per_node is not None:
            return FirstMatching(hungarian(S, out.n1, out.n2, *per_node), per_node, False)
        return FirstMatching(partial_hungarian(S, out.n1, out.n2, threshold), None, False)

    def epipolar_verified(self, out: SSGMOutput, X: Tensor, soft: Tensor, pool: Sequence[Tensor] = ()) -> Tensor:
        """``X`` re-matched, pair by pair, under the epipolar geometry of its real-to-real pairs
        (:func:`~pyg_ssgm.matching.epipolar.epipolar_rematch`, ``soft`` breaking ties; each
        matching of ``pool`` seeding it too), uncut. Real nodes matched to a generated node in
        ``X`` keep that match; a pair where no seed has enough matched points keeps ``X``."""
        n1, n2 = out.num_real_s.tolist(), out.num_real_t.tolist()
        # the real nodes not matched to a generated node
        rows = [(X[b, :n1[b], n2[b]:].sum(1) == 0).nonzero().view(-1) for b in range(X.size(0))]
        cols = [(X[b, n1[b]:, :n2[b]].sum(0) == 0).nonzero().view(-1) for b in range(X.size(0))]
        return epipolar_rematch_blocks(X, soft, out.pos_s, out.pos_t, rows, cols, self.config.epipolar_threshold,
                                       alternatives=pool)

    def threshold(self, out: SSGMOutput) -> Tensor:
        """The unmatched threshold the matching uses, in the units of ``out.S``: the learned one
        plus ``threshold_shift`` (given in the threshold's cosine units, hence divided by the
        learned temperature as the affinity is)."""
        threshold = out.threshold.detach()
        shift = self.config.threshold_shift
        return threshold + shift / self.model.temperature.detach() if shift else threshold

    def keypoint_prior(self) -> float:
        """``config.keypoint_prior`` for this model: 0 without a keypoint filter; where unset, its
        default for the filter the model has."""
        filt = self.model.keypoint_filter
        return 0.0 if filt is None else self.config.resolved_keypoint_prior(filt.in_channels > 0)

    def unmatched_scores(self, out: SSGMOutput, dustbin: bool = True) -> Tuple[Tensor, Tensor]:
        r"""``[B, N1]`` and ``[B, N2]``: each node's score for staying unmatched in the partial
        assignment. Half the learned threshold :math:`t` each, so that a pair is matched where its
        affinity beats :math:`t`; with ``dustbin_weight`` :math:`\beta > 0` (and ``dustbin``),
        plus :math:`\beta` times the existence logit of the query of the other graph seeded from
        the node: the decoder's belief that the node's partner is missing there, so that the
        decoder decides who stays unmatched (a node no query was seeded from keeps :math:`t / 2`);
        with ``keypoint_prior`` :math:`\gamma > 0`, plus :math:`\gamma` times the node's doubt
        :math:`-\log p` (``out.keypoint_doubt``), in the units of :math:`S` as the threshold
        shift is."""
        u1, u2 = threshold_to_unmatch(self.threshold(out), out.S)
        beta, gamma = self.config.dustbin_weight, self.keypoint_prior()
        if dustbin and beta > 0 and out.queries_s is not None:
            u1 = u1 + beta * _seeded_logits(out, "t", u1.shape)
            u2 = u2 + beta * _seeded_logits(out, "s", u2.shape)
        if gamma > 0 and out.keypoint_doubt is not None:
            scale = gamma / self.model.temperature.detach()
            u1, u2 = u1 + scale * out.keypoint_doubt[0], u2 + scale * out.keypoint_doubt[1]
        return u1, u2

    def alone_probability(self, out: SSGMOutput) -> Tuple[Tensor, Tensor]:
        r"""``[B, N1]`` and ``[B, N2]``: the probability that each node of the completed graphs has
        no *real* partner, under the soft matching the model is trained with: Sinkhorn over
        :math:`S` with the unmatched scores (:meth:`unmatched_scores`) as slack, the default
        loss's half-steps (``LossConfig.sinkhorn_iter``), less the mass on the other graph's real
        nodes. Unlike the best affinity, it knows that two nodes cannot both take one partner (a
        node that loses its best partner to another is alone, however high its affinity)."""
        S = out.S.detach().double()
        u1, u2 = self.unmatched_scores(out)
        P = sinkhorn(S, out.n1, out.n2, max_iter=LossConfig.sinkhorn_iter, unmatch1=u1.double(), unmatch2=u2.double())
        real_s, real_t = _real_masks(out)
        P = P * (real_s.unsqueeze(2) & real_t.unsqueeze(1))
        return ((1 - P.sum(2)).clamp(0, 1).to(out.S.dtype) * real_s,
                (1 - P.sum(1)).clamp(0, 1).to(out.S.dtype) * real_t)

    def objective(self, prediction: Prediction) -> Tensor:
        """``[B]`` value of each pair's partial matching, the quantity the solver maximises: the sum
        over matched pairs (generated nodes included) of the affinity minus the two nodes'
        unmatched scores (:meth:`unmatched_scores`: half the threshold each, plus the decoder's
        dustbin and the keypoint doubt where they are configured)."""
        out, X = prediction.output, prediction.X
        u1, u2 = self.unmatched_scores(out)
        return ((out.S - u1.unsqueeze(2) - u2.unsqueeze(1)) * X).sum((1, 2))

    @torch.no_grad()
    def generated_nodes(self, prediction: Prediction, completion_source: Optional[str] = None,
                        exist_threshold: Optional[float] = None
                        ) -> Tuple[Optional[GeneratedNodes], Optional[GeneratedNodes]]:
        r"""The nodes the model generates for the source and the target graph of each pair (what its
        completion says each side lacks), decided as ``completion_source`` says (default: the
        configuration's), whether or not ``generate_at_inference`` let them into the matching.
        ``None`` for a side without queries under "queries".

        * "queries": the decoder's queries that exist: with ``exist_threshold``, those whose
          existence probability passes it (-1 takes every query, e.g. to score their places
          alone); by default, as one count per pair decides (``InferenceConfig.count_per_pair``,
          :func:`~pyg_ssgm.model.completion.paired_existence`), else those that pass the model's
          threshold; confidence:
          the existence probability :math:`\sigma(\text{logit})`; partner: the node of the other
          graph the query is seeded from (``SSGMOutput.seeds_*``; -1 for an unseeded query);
        * "matching": one node per real node of the other graph that the matching leaves without a
          real partner, where the affine map fitted to the real matched pairs takes it (a fit to the
          hard matching, not to the consensus' diffuse soft one); partner: that node; confidence:
          the probability that that node has no real partner in this graph
          (:meth:`alone_probability`);
        * "seeded": the nodes of "matching" (the matching decides who lacks a partner: its
          one-to-one constraint counts better than any per-node score), each put where the
          decoder's query seeded from its partner places it; the affine map where no query was
          seeded from that node.
        """
        source = completion_source or self.config.completion_source
        if source not in COMPLETION_SOURCES:
            raise ConfigError(f"completion_source={source!r} is invalid: must be one of {list(COMPLETION_SOURCES)}.")
        out = prediction.output
        if source == "queries":
            if out.queries_s is None:
                return None, None
            if exist_threshold is None and self.config.count_per_pair:
                keep = paired_existence(out.queries_s, out.queries_t, out.num_real_s, out.num_real_t,
                                        self.model.config.exist_threshold)
            else:
                threshold = self.model.config.exist_threshold if exist_threshold is None else exist_threshold
                keep = tuple(torch.sigmoid(q.exist_logit) > threshold for q in (out.queries_s, out.queries_t))
            return queried_nodes(out, "s", keep[0]), queried_nodes(out, "t", keep[1])
        nodes = transferred_nodes(prediction.X, out.pos_s, out.pos_t, *_real_masks(out), *self.alone_probability(out))
        if source == "seeded" and out.queries_s is not None:
            nodes = tuple(placed_by_queries(n, out, side) for n, side in zip(nodes, "st"))
        return nodes

    @torch.no_grad()
    def complete(self, data, completion_source: Optional[str] = None,
                 exist_threshold: Optional[float] = None) -> List[Completion]:
        """Per pair of ``data``, the completed graphs: the matching ``predictor(data)`` returns
        (the orientation the mirror test keeps) and the points each graph lacks, as
        :meth:`generated_nodes` decides them (``completion_source``: default the configuration's),
        with their partner and confidence, in each graph's pixel frame (the network's normalised
        positions times the graph's scale plus its centre; a mirrored target's x turned back).
        ``exist_threshold``: that of the queries (default: the model's)."""
        return self.completions(self.orient(data), data, completion_source, exist_threshold)

    @torch.no_grad()
    def completions(self, oriented: Oriented, data, completion_source: Optional[str] = None,
                    exist_threshold: Optional[float] = None) -> List[Completion]:
        """:meth:`complete` of an :meth:`orient` result already computed (e.g. to read both
        completion sources off the same matching)."""
        runs = [(oriented.plain, False)] + ([(oriented.flipped, True)] if oriented.flipped is not None else [])
        per_run = [self._pixel_points(prediction, flipped, completion_source, exist_threshold)
                   for prediction, flipped in runs]
        pairs, keep = oriented.pairs(), oriented.keep.tolist()
        result = []
        for b, matches in enumerate(pairs):
            run = 0 if keep[b] else 1
            source, target = per_run[run][0][b], per_run[run][1][b]
            result.append(Completion(matches, source, target, mirrored=run == 1,
                                     names_s=pair_field(data, "names_s", b), names_t=pair_field(data, "names_t", b),
                                     category=pair_field(data, "category", b)))
        return result

    def _pixel_points(self, prediction: Prediction, flipped: bool, completion_source: Optional[str],
                      exist_threshold: Optional[float]) -> Tuple[List[GeneratedPoints], List[GeneratedPoints]]:
        """Per side, per pair, the generated points of ``prediction`` in the pixel frame."""
        out = prediction.output
        B = out.S.size(0)
        sides = []
        for side, nodes, enc in zip("st", self.generated_nodes(prediction, completion_source, exist_threshold),
                                    (out.encoded_s, out.encoded_t)):
            if nodes is None:
                empty = enc.pos.new_zeros(0)
                sides.append([GeneratedPoints(enc.pos.new_zeros(0, 2), empty.long(), empty)] * B)
                continue
            pos = nodes.pos * enc.scale[nodes.batch].unsqueeze(-1) + enc.center[nodes.batch]
            if side == "t" and flipped:  # the mirrored pass saw -x: back to the target's own frame
                pos = pos * pos.new_tensor([-1.0, 1.0])
            partner = nodes.partner if nodes.partner is not None else torch.full_like(nodes.batch, -1)
            confidence = (nodes.confidence if nodes.confidence is not None
                          else pos.new_full(nodes.batch.shape, float("nan")))
            sides.append([GeneratedPoints(pos[mine], partner[mine], confidence[mine])
                          for mine in (nodes.batch == b for b in range(B))])
        return sides[0], sides[1]


def queried_nodes(out: SSGMOutput, side: str, keep: Tensor) -> GeneratedNodes:
    """``completion_source="queries"``: the queries of ``side`` that exist (``keep``, a mask over
    them), with their existence probability as confidence and the node of the other graph each
    stands for (see :meth:`Predictor.generated_nodes`)."""
    q = out.queries_s if side == "s" else out.queries_t
    prob = torch.sigmoid(q.exist_logit)
    # the node each query was seeded from (the network records it with the queries), as a local
    # index of the other graph
    seed = out.seeds_s if side == "s" else out.seeds_t
    first = cumsum(out.num_real_t if side == "s" else out.num_real_s)
    partner = torch.where(seed >= 0, seed - first[q.batch], seed)[keep]
    return GeneratedNodes(q.pos[keep], q.batch[keep], partner, prob[keep])


def placed_by_queries(nodes: GeneratedNodes, out: SSGMOutput, side: str) -> GeneratedNodes:
    """``nodes`` of ``side`` (each with its ``partner`` in the other graph), moved to the position
    of the query of ``side`` seeded from that partner, where there is one."""
    q = out.queries_s if side == "s" else out.queries_t
    chosen = seeded_queries(out, side)[nodes.batch, nodes.partner]
    pos = torch.where((chosen >= 0).unsqueeze(-1), q.pos[chosen.clamp(min=0)].to(nodes.pos.dtype), nodes.pos)
    return nodes._replace(pos=pos)


def transferred_nodes(X: Tensor, P_s: Tensor, P_t: Tensor, real_s: Tensor, real_t: Tensor,
                      alone_s: Optional[Tensor] = None, alone_t: Optional[Tensor] = None
                      ) -> Tuple[GeneratedNodes, GeneratedNodes]:
    r"""``completion_source="matching"``: each side gets one node per real node of the other graph
    that the matching ``X`` leaves without a real partner, where the affine map fitted to the real
    matched pairs takes it. ``real_s [B, N1]`` / ``real_t [B, N2]`` mark the real nodes of the
    dense completed graphs ``P_s`` / ``P_t`` (each in its own frame). Each node's partner is the
    node it stands for; its confidence, where given, the probability that that node has no real
    partner: ``alone_t [B, N2]`` for the nodes the source lacks, ``alone_s [B, N1]`` for those the
    target lacks (:meth:`Predictor.alone_probability`)."""
    X = X.to(P_s.dtype) * (real_s.unsqueeze(2) & real_t.unsqueeze(1))
    lacks_s, lacks_t = real_t & (X.sum(1) == 0), real_s & (X.sum(2) == 0)
    into_s = apply_affine(fit_affine(X, P_s, P_t), P_t)
    into_t = apply_affine(fit_affine(X.transpose(1, 2), P_t, P_s), P_s)
    where_s, where_t = lacks_s.nonzero(), lacks_t.nonzero()
    conf_s = None if alone_t is None else alone_t[lacks_s]
    conf_t = None if alone_s is None else alone_s[lacks_t]
    return (GeneratedNodes(into_s[lacks_s], where_s[:, 0], where_s[:, 1], conf_s),
            GeneratedNodes(into_t[lacks_t], where_t[:, 0], where_t[:, 1], conf_t))


__all__ = ["Predictor", "Prediction", "Oriented", "transferred_nodes", "queried_nodes", "placed_by_queries",
           "seeded_queries"]
