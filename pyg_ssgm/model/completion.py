"""What each graph lacks and how the queries complete it: the completion targets of a generated
pair, the assignment of queries to them (training), and the completed graphs."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..matching import SetMatcher
from ..nn.query_decoder import QueryOutput
from ..nn.rebuild import CompletedGraph, complete_graph
from .output import Assignment, CompletionTargets, EncodedGraph


def completion_targets(data, side: str, own: EncodedGraph, other: EncodedGraph) -> Optional[CompletionTargets]:
    """The nodes that ``side`` lacks, in its normalised frame, with the (detached) embedding of the
    node of the other side each stands for; ``None`` when the batch carries no completion targets
    (real pairs)."""
    pos = getattr(data, f"comp_pos_{side}", None)
    if pos is None:
        return None
    batch = getattr(data, f"comp_pos_{side}_batch")
    index = getattr(data, f"comp_index_{side}")
    pos = (pos - own.center[batch]) / own.scale[batch].unsqueeze(-1)
    return CompletionTargets(pos, other.h[index].detach(), batch, index)


def assign_queries(matcher: SetMatcher, queries: QueryOutput, seed: Tensor, targets: CompletionTargets,
                   num_graphs: int) -> Assignment:
    """Queries for the completion targets: a target goes to the query seeded from the node it
    stands for (an anchor, as in DINO's query selection); targets whose node was not selected go
    to the remaining queries by the DETR Hungarian ``matcher`` (existence + position + feature cost)."""
    anchored = seed.unsqueeze(1) == targets.partner.unsqueeze(0)  # [Q_total, C_total]
    q_idx, c_idx = anchored.nonzero(as_tuple=True)
    free_q, free_c = ~anchored.any(1), ~anchored.any(0)
    if free_q.any() and free_c.any():
        fq, fc = free_q.nonzero().view(-1), free_c.nonzero().view(-1)
        sub_q, sub_c = matcher(queries.exist_logit[fq], queries.pos[fq], queries.feat[fq], queries.batch[fq],
                               targets.pos[fc], targets.feat[fc], targets.batch[fc], num_graphs)
        q_idx, c_idx = torch.cat([q_idx, fq[sub_q]]), torch.cat([c_idx, fc[sub_c]])
    return Assignment(q_idx, c_idx)


def complete(enc: EncodedGraph, queries: Optional[QueryOutput], exist_threshold: float, generate: bool = True,
             force: Optional[Tensor] = None) -> Tuple[CompletedGraph, Optional[Tensor]]:
    """The completed graphs of one side: its real nodes, then the queries whose existence
    probability passes ``exist_threshold`` (none when ``generate`` is off), plus those in
    ``force`` (training: the queries assigned to a real missing node always take part). Returns
    the graph and the mask of the queries it includes (``None`` without queries)."""
    if queries is None:
        empty = enc.h.new_zeros(0, enc.h.size(1))
        return complete_graph(enc.h, enc.pos, enc.batch, empty, enc.pos.new_zeros(0, 2), enc.batch.new_zeros(0)), None
    include = torch.sigmoid(queries.exist_logit) > exist_threshold
    if not generate:
        include = torch.zeros_like(include)
    if force is not None:
        include = include.clone()
        include[force] = True
    graph = complete_graph(enc.h, enc.pos, enc.batch, queries.feat[include], queries.pos[include],
                           queries.batch[include])
    return graph, include


__all__ = ["completion_targets", "assign_queries", "complete"]
