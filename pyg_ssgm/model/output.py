"""What the network returns (:class:`SSGMOutput`) and the pieces it is made of."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, NamedTuple, Optional, Tuple

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


@dataclass
class SSGMOutput:
    """What :meth:`SSGM.forward <pyg_ssgm.SSGM.forward>` returns for a batch of ``B`` pairs.

    ``S [B, N1, N2]`` is the affinity over the *completed* graphs (``n1``, ``n2`` nodes, the
    first ``num_real_s[b]`` / ``num_real_t[b]`` of them real, the rest generated); a pair is worth
    matching where its affinity exceeds ``threshold`` (the learned unmatched threshold, in the
    units of ``S``). ``pos_s`` / ``pos_t`` are the completed graphs' dense positions, each in its
    own normalised frame, and ``alignment`` the affine map from the target's frame to the
    source's. In training, ``targets``, ``assignment`` and ``included`` record, per side ("s",
    "t"), the nodes it lacks, the queries assigned to them, and which queries joined the graph.
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
    targets: Optional[Dict[str, CompletionTargets]] = None
    assignment: Optional[Dict[str, Assignment]] = None
    included: Optional[Dict[str, Tensor]] = None

    @property
    def num_generated_s(self) -> Tensor:
        return self.n1 - self.num_real_s

    @property
    def num_generated_t(self) -> Tensor:
        return self.n2 - self.num_real_t

    def side(self, side: str) -> Tuple[EncodedGraph, Optional[QueryOutput]]:
        """The encoded graph and the queries of ``side`` ("s" or "t")."""
        return (self.encoded_s, self.queries_s) if side == "s" else (self.encoded_t, self.queries_t)


__all__ = ["EncodedGraph", "CompletionTargets", "Assignment", "GeneratedNodes", "SSGMOutput"]
