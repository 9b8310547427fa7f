"""What each graph lacks and how the queries complete it: the completion targets of a generated
pair, the assignment of queries to them (training), how many each side of a pair lacks
(inference), and the completed graphs."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch

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


def paired_existence(queries_s: QueryOutput, queries_t: QueryOutput, num_real_s: Tensor, num_real_t: Tensor,
                     exist_threshold: float) -> Tuple[Tensor, Tensor]:
    r"""Which queries of each side exist, decided as one count per pair.

    Each real node of a graph either has a partner in the other graph or is one the other graph
    lacks, so with :math:`c` nodes in common the source lacks :math:`n_t - c` and the target
    :math:`n_s - c`: the two counts are one number. With :math:`\ell` the existence logits less
    :math:`\mathrm{logit}(\tau)` (``exist_threshold``) and :math:`F(k)` the sum of a side's
    :math:`k` largest, the log-likelihood of "the top :math:`k` queries exist, the others not"
    is :math:`F(k)` up to a constant, and

    .. math::
        c^\star = \arg\max_{0 \le c \le \min(n_s, n_t)} F_s(n_t - c) + F_t(n_s - c);

    the :math:`n_t - c^\star` most probable queries of the source exist (all of them where it has
    fewer), and the :math:`n_s - c^\star` of the target. Each side alone, the same likelihood
    keeps the queries above :math:`\tau`; together, each side's evidence corrects the other's.
    (Unnamed points, outliers, break the premise: they are lacked by no graph.) Returns bool
    masks over ``queries_s`` and ``queries_t``."""
    B = num_real_s.numel()
    bias = math.log(exist_threshold / (1 - exist_threshold))
    ranked, cumulative = [], []
    for q in (queries_s, queries_t):
        L, mask = to_dense_batch(q.exist_logit - bias, q.batch, batch_size=B, fill_value=float("-inf"))
        order = L.argsort(dim=1, descending=True)
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(L.size(1), device=L.device).expand_as(order))
        ranked.append(rank[mask])
        # F(k), k = 0..Q; beyond a graph's own queries every one of them exists (F stays at F(Q))
        top = torch.gather(L, 1, order).masked_fill(~torch.gather(mask, 1, order), 0.0)
        cumulative.append((torch.cat([top.new_zeros(B, 1), top.cumsum(1)], 1), mask.sum(1)))
    (F_s, count_s), (F_t, count_t) = cumulative
    common = torch.arange(int(torch.minimum(num_real_s, num_real_t).max()) + 1, device=F_s.device)
    k_s = (num_real_t.unsqueeze(1) - common).clamp(min=0)  # [B, C]: what the source lacks for each c
    k_t = (num_real_s.unsqueeze(1) - common).clamp(min=0)
    value = (torch.gather(F_s, 1, torch.minimum(k_s, count_s.unsqueeze(1)))
             + torch.gather(F_t, 1, torch.minimum(k_t, count_t.unsqueeze(1))))
    value = value.masked_fill(common > torch.minimum(num_real_s, num_real_t).unsqueeze(1), float("-inf"))
    # ties (both sides lacking more than they have queries) go to the most nodes in common
    best = common.numel() - 1 - value.flip(1).argmax(1)
    lack_s = num_real_t - best
    lack_t = num_real_s - best
    return ranked[0] < lack_s[queries_s.batch], ranked[1] < lack_t[queries_t.batch]


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


__all__ = ["completion_targets", "assign_queries", "paired_existence", "complete"]
