r"""From the network's affinity to correspondences: the partial matching (Hungarian, or RRWM over
the rebuilt edges), the mirror test, and the nodes the model says each graph lacks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import Tensor
from torch.profiler import record_function

from ..config import InferenceConfig
from ..data.pair_data import mirrored
from ..matching import dense_connectivity, hungarian, partial_hungarian, rrwm_refine, size_mask
from ..nn.alignment import apply_affine, dual_softmax, fit_affine
from ..nn.rebuild import CompletedGraph
from .network import SSGM
from .output import GeneratedNodes, SSGMOutput


@dataclass
class Prediction:
    """One orientation's matching of a batch: the network's ``output``, the discrete matching
    ``X [B, N1, N2]`` over the completed graphs, and ``pairs``, per pair the long ``[2, K]``
    real-to-real correspondences (local indices; a real node matched to a generated node has no
    partner)."""

    output: SSGMOutput
    X: Tensor
    pairs: List[Tensor]


def _connectivity(graph: CompletedGraph, edge_index: Tensor, num_graphs: int) -> Tuple[Tensor, Tensor]:
    counts = torch.bincount(graph.batch, minlength=num_graphs)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return dense_connectivity(edge_index, graph.batch, ptr, num_graphs)


class Predictor:
    r"""``predictor(batch)``: the predicted partial matching of each pair, a list of long ``[2, K]``
    tensors (local node indices), as ``config`` says (:class:`~pyg_ssgm.config.InferenceConfig`).

    The network runs in eval mode with the inference settings; a pair is matched only where its
    affinity beats the learned threshold and its partner is a real node. With ``mirror_test``,
    the target is also matched mirrored left-right, and each pair keeps the orientation of the
    higher :meth:`objective`. The model's training flag is restored afterwards.
    """

    def __init__(self, model: SSGM, config: Optional[InferenceConfig] = None):
        self.model = model
        self.config = config or InferenceConfig()

    @torch.no_grad()
    def __call__(self, data) -> List[Tensor]:
        c = self.config
        was_training = self.model.training
        if was_training:  # switching modes walks every submodule: not free on a single pair
            self.model.eval()
        try:
            plain = self.match(data)
            if not c.mirror_test:
                return plain.pairs
            flipped = self.match(mirrored(data, "t"))
            orientation = flipped
            if self.model.config.mirror_aware:
                # Told that the target is mirrored, the model leaves the parts the mirror exchanges
                # unmatched, which lowers the objective of the flipped orientation just where it is
                # the right one (CUB validation F1 0.673 deciding with it, 0.737 without): the
                # orientation is decided by the flipped pass that is not told.
                orientation = self.match(mirrored(data, "t", tell=False))
            keep = self.objective(plain) >= self.objective(orientation)
            return [a if k else b for a, b, k in zip(plain.pairs, flipped.pairs, keep.tolist())]
        finally:
            if was_training:
                self.model.train()

    @torch.no_grad()
    def match(self, data, return_attention: bool = False) -> Prediction:
        """The network's output on ``data`` as it stands (no mirror test) and its matching. The
        model should be in eval mode (:meth:`__call__` takes care of it)."""
        out = self.model(data, inference=self.config, return_attention=return_attention)
        with record_function("ssgm.solver"):
            X = self.solve(out)
        B = out.S.size(0)
        # Real nodes come first in each completed graph, so their local indices are unchanged.
        pairs = [X[b, :out.num_real_s[b], :out.num_real_t[b]].nonzero().t() for b in range(B)]
        return Prediction(out, X, pairs)

    def solve(self, out: SSGMOutput) -> Tensor:
        """The discrete partial matching ``X [B, N1, N2]`` of ``out``: the linear assignment of
        :math:`S - t` (a pair is matched only where its affinity beats the threshold :math:`t`),
        or with ``solver="rrwm"`` the second-order matching of
        :mod:`pyg_ssgm.matching.quadratic` (pairs larger than ``qap_max_nodes`` fall back)."""
        S, threshold = out.S.detach(), out.threshold.detach()
        c = self.config
        if c.solver == "rrwm" and max(S.size(1), S.size(2)) <= c.qap_max_nodes:
            B = S.size(0)
            conns = _connectivity(out.completed_s, out.edges_s, B) + _connectivity(out.completed_t, out.edges_t, B)
            mask = size_mask(out.n1, out.n2, S.size(1), S.size(2))
            # the soft first-order matching (dual softmax of S, in [0, 1]) as unary term, edge
            # agreement over the completed graphs (the target aligned on the source, or as it is)
            pos_t = apply_affine(out.alignment, out.pos_t) if c.qap_align else out.pos_t
            soft = rrwm_refine(dual_softmax(S, mask), out.n1, out.n2, out.pos_s, pos_t, *conns,
                               node_weight=c.qap_node_weight, edge_sigma=c.qap_edge_sigma)
            X = hungarian(soft.to(S.dtype), out.n1, out.n2)
            return X * (S >= threshold).to(X.dtype)
        return partial_hungarian(S, out.n1, out.n2, threshold)

    @staticmethod
    def objective(prediction: Prediction) -> Tensor:
        """``[B]`` value of each pair's partial matching, the quantity the solver maximises: the sum
        over matched pairs (generated nodes included) of the affinity minus the unmatched threshold."""
        out = prediction.output
        return ((out.S - out.threshold) * prediction.X).sum((1, 2))

    @torch.no_grad()
    def generated_nodes(self, prediction: Prediction) -> Tuple[Optional[GeneratedNodes], Optional[GeneratedNodes]]:
        """The nodes the model generates for the source and the target graph of each pair (what its
        completion says each side lacks), decided as ``completion_source`` says, whether or not
        ``generate_at_inference`` let them into the matching. ``None`` for a side without queries
        under "queries".

        * "queries": the decoder's queries whose existence passes ``exist_threshold``;
        * "matching": one node per real node of the other graph that the matching leaves without a
          real partner, where the affine map fitted to the real matched pairs takes it (a fit to the
          hard matching, not to the consensus' diffuse soft one).
        """
        out = prediction.output
        if self.config.completion_source == "queries":
            def queried(q) -> Optional[GeneratedNodes]:
                if q is None:
                    return None
                keep = torch.sigmoid(q.exist_logit) > self.model.config.exist_threshold
                return GeneratedNodes(q.pos[keep], q.batch[keep])

            return queried(out.queries_s), queried(out.queries_t)
        X = prediction.X
        real_s = torch.arange(X.size(1), device=X.device) < out.num_real_s.unsqueeze(1)
        real_t = torch.arange(X.size(2), device=X.device) < out.num_real_t.unsqueeze(1)
        return transferred_nodes(X, out.pos_s, out.pos_t, real_s, real_t)


def transferred_nodes(X: Tensor, P_s: Tensor, P_t: Tensor, real_s: Tensor,
                      real_t: Tensor) -> Tuple[GeneratedNodes, GeneratedNodes]:
    """``completion_source="matching"``: each side gets one node per real node of the other graph
    that the matching ``X`` leaves without a real partner, where the affine map fitted to the real
    matched pairs takes it. ``real_s [B, N1]`` / ``real_t [B, N2]`` mark the real nodes of the
    dense completed graphs ``P_s`` / ``P_t`` (each in its own frame)."""
    X = X.to(P_s.dtype) * (real_s.unsqueeze(2) & real_t.unsqueeze(1))
    lacks_s, lacks_t = real_t & (X.sum(1) == 0), real_s & (X.sum(2) == 0)
    into_s = apply_affine(fit_affine(X, P_s, P_t), P_t)
    into_t = apply_affine(fit_affine(X.transpose(1, 2), P_t, P_s), P_s)
    return (GeneratedNodes(into_s[lacks_s], lacks_s.nonzero()[:, 0]),
            GeneratedNodes(into_t[lacks_t], lacks_t.nonzero()[:, 0]))


__all__ = ["Predictor", "Prediction", "transferred_nodes"]
