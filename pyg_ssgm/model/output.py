"""What the network returns (:class:`SSGMOutput`) and the pieces it is made of."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from torch import Tensor

from ..nn.query_decoder import QueryOutput
from ..nn.rebuild import CompletedGraph


class EncodedGraph(NamedTuple):
    """The real nodes of one side of every pair, after the encoder."""

    h: Tensor  #: ``[N, C]`` encoder output
    x: Tensor  #: ``[N, F]`` raw appearance descriptors (F = 0: geometry only)
    shape_context: Tensor  #: ``[N, 40]`` raw shape context of the normalised positions (``[N, 0]`` when unused)
    pos: Tensor  #: ``[N, 2]`` normalised positions (centred, divided by the RMS radius)
    batch: Tensor  #: ``[N]``
    center: Tensor  #: ``[B, 2]``
    scale: Tensor  #: ``[B]``


class CompletionTargets(NamedTuple):
    """The nodes one side of a generated pair lacks (training only)."""

    pos: Tensor  #: ``[C, 2]`` in the side's normalised frame
    feat: Tensor  #: ``[C, D]`` embedding (detached) of the node of the other side each stands for
    batch: Tensor  #: ``[C]``
    partner: Tensor  #: ``[C]`` global index of that node on the other side


class Assignment(NamedTuple):
    """Which query stands for which missing node of one side (training only)."""

    query: Tensor  #: ``[K]`` global query index
    target: Tensor  #: ``[K]`` index into the side's :class:`CompletionTargets`


class GeneratedNodes(NamedTuple):
    """The nodes the model generates for one side of each pair (see ``completion_source``)."""

    pos: Tensor  #: ``[M, 2]`` in the graph's normalised frame (see ``EncodedGraph.center`` / ``scale``)
    batch: Tensor  #: ``[M]`` the pair each belongs to
    #: ``[M]`` long: local index, in the *other* graph of its pair, of the real node each one stands
    #: for (-1: none known); ``None`` where not computed
    partner: Optional[Tensor] = None
    #: ``[M]`` in [0, 1]: how sure the model is that the node is missing (see
    #: :meth:`Predictor.generated_nodes <pyg_ssgm.Predictor.generated_nodes>`); ``None`` where not computed
    confidence: Optional[Tensor] = None


class GeneratedPoints(NamedTuple):
    """The points one graph of one pair lacks, as the model generates them, in that graph's pixel
    frame (the frame of its keypoints)."""

    pos: Tensor  #: ``[M, 2]`` positions
    partner: Tensor  #: ``[M]`` long: local index of the node of the other graph each stands for (-1: unknown)
    confidence: Tensor  #: ``[M]`` in [0, 1]


def _name(names: Optional[Sequence[Any]], index: int) -> Any:
    return None if names is None or index < 0 else names[index]


@dataclass
class Completion:
    """One pair's completed graphs, as :meth:`Predictor.complete <pyg_ssgm.Predictor.complete>`
    returns them: the matching and the points each graph lacks.

    ``matches`` is the long ``[2, K]`` real-to-real matching (local indices, row 0 source, row 1
    target), the one ``predictor(batch)`` returns. ``source`` holds the points the *source* lacks
    (in the source's pixel frame, each standing for a target node: ``partner`` indexes the target),
    ``target`` those the target lacks (partners in the source). ``mirrored``: the mirror test kept
    the target's mirror image (the positions are in the target's own frame all the same).
    ``names_s`` / ``names_t`` are the pair's keypoint names where it has them.
    """

    matches: Tensor
    source: GeneratedPoints
    target: GeneratedPoints
    mirrored: bool = False
    names_s: Optional[List[Any]] = None
    names_t: Optional[List[Any]] = None
    category: Optional[str] = None

    def to_dict(self, source_id: Any = None, target_id: Any = None) -> Dict[str, Any]:
        """A JSON-friendly dict: the two instance ids, the matches by name (by index where a point
        has no name) and, per side, the generated points with their partner's name and index,
        position and confidence."""
        def label(names, index: int) -> Any:
            name = _name(names, index)
            return f"#{index}" if name is None else name

        def points(side: GeneratedPoints, partner_names) -> List[Dict[str, Any]]:
            return [{"partner": None if int(j) < 0 else label(partner_names, int(j)), "partner_index": int(j),
                     "position": [float(x), float(y)], "confidence": float(c)}
                    for (x, y), j, c in zip(side.pos.tolist(), side.partner.tolist(), side.confidence.tolist())]

        return {"source_id": source_id, "target_id": target_id, "category": self.category,
                "mirrored": self.mirrored,
                "matches": [[label(self.names_s, i), label(self.names_t, j)] for i, j in self.matches.t().tolist()],
                "generated": {"source": points(self.source, self.names_t),
                              "target": points(self.target, self.names_s)}}


@dataclass
class SSGMOutput:
    r"""What :meth:`SSGM.forward <pyg_ssgm.SSGM.forward>` returns for a batch of ``B`` pairs.

    ``S [B, N1, N2]`` is the affinity over the *completed* graphs (``n1``, ``n2`` nodes, the
    first ``num_real_s[b]`` / ``num_real_t[b]`` of them real, the rest generated); a pair is worth
    matching where its affinity exceeds ``threshold`` (the learned unmatched threshold, in the
    units of ``S``). ``pos_s`` / ``pos_t`` are the completed graphs' dense positions, each in its
    own normalised frame, and ``alignment`` the affine map from the target's frame to the
    source's. ``seeds_s`` / ``seeds_t`` give, for each query of a side, the global index of the
    node of the *other* side it was seeded from (-1: none): the node whose partner that query
    stands for when it exists. In training, ``targets``, ``assignment`` and ``included`` record,
    per side ("s", "t"), the nodes it lacks, the queries assigned to them, and which queries
    joined the graph. ``S_initial``: the affinity before the neighbourhood consensus, where the
    model has one (``None`` otherwise); the loss scores it too, as DGMC does, so that the consensus
    starts from a matching worth correcting. ``keypoint_logits``: in training, where the model has
    a keypoint filter, the logit ``[N_s + N_t]`` that each point (source points, then target
    points) is a keypoint rather than clutter. ``keypoint_doubt``: at inference, where the
    predictor weighs the keypoint filter's probability :math:`p` in the matching
    (``InferenceConfig.keypoint_prior``), :math:`-\log p` of each node of the dense completed
    graphs (``[B, N1]``, ``[B, N2]``; 0 on generated nodes and padding); the network leaves it
    ``None``.
    """

    S: Tensor
    threshold: Tensor
    n1: Tensor
    n2: Tensor
    num_real_s: Tensor
    num_real_t: Tensor
    pos_s: Tensor
    pos_t: Tensor
    alignment: Tensor
    encoded_s: EncodedGraph
    encoded_t: EncodedGraph
    completed_s: CompletedGraph
    completed_t: CompletedGraph
    edges_s: Tensor
    edges_t: Tensor
    oversmoothing: Tensor
    queries_s: Optional[QueryOutput] = None
    queries_t: Optional[QueryOutput] = None
    seeds_s: Optional[Tensor] = None
    seeds_t: Optional[Tensor] = None
    targets: Optional[Dict[str, CompletionTargets]] = None
    assignment: Optional[Dict[str, Assignment]] = None
    included: Optional[Dict[str, Tensor]] = None
    S_initial: Optional[Tensor] = None
    keypoint_logits: Optional[Tensor] = None
    keypoint_doubt: Optional[Tuple[Tensor, Tensor]] = None

    @property
    def num_generated_s(self) -> Tensor:
        return self.n1 - self.num_real_s

    @property
    def num_generated_t(self) -> Tensor:
        return self.n2 - self.num_real_t

    def side(self, side: str) -> Tuple[EncodedGraph, Optional[QueryOutput]]:
        """The encoded graph and the queries of ``side`` ("s" or "t")."""
        return (self.encoded_s, self.queries_s) if side == "s" else (self.encoded_t, self.queries_t)


__all__ = ["EncodedGraph", "CompletionTargets", "Assignment", "GeneratedNodes", "GeneratedPoints", "Completion",
           "SSGMOutput"]
