r"""DETR-style set matching of completion queries to the nodes a graph lacks.

Each graph ``g`` of a batch has ``Q_g`` queries (existence logit, 2-D position, feature)
and ``C_g`` completion targets (the nodes dropped from this copy: position and
feature of the real node each one stands for). As in DETR (Carion et al. 2020,
``models/matcher.py``), queries and targets are paired by a minimum-cost bipartite
matching, computed without gradient, and the set-prediction loss is evaluated on that
pairing. Everything is in PyG's sparse layout: ``query_batch``/``tgt_batch`` vectors
(sorted), global indices in and out.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from ..errors import InvalidInputError
from .dense import _ptr


def _to_dense(x: Tensor, batch: Tensor, ptr: Tensor, num_graphs: int, max_n: int) -> Tensor:
    """``[N, F]`` rows grouped by ``batch`` -> zero-padded ``[num_graphs, max_n, F]``."""
    out = x.new_zeros(num_graphs, max_n, x.size(-1))
    local = torch.arange(x.size(0), device=x.device) - ptr[batch]
    out[batch, local] = x
    return out


def _check_rows(t: Optional[Tensor], n: int, name: str, width: Optional[int] = None) -> None:
    if t is None:
        return
    if t.dim() != 2 or t.size(0) != n or (width is not None and t.size(1) != width):
        want = f"[{n}, {width if width is not None else 'D'}]"
        raise InvalidInputError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t.detach()).all()):
        raise InvalidInputError(f"{name} has NaN or infinite entries")


class SetMatcher(nn.Module):
    r"""Hungarian matcher between completion queries and completion targets.

    Cost of assigning query ``q`` to target ``c`` of the same graph (minimised):

    .. math::
        C_{qc} = - w_{exist}\, \sigma(\ell_q) + w_{pos}\, \lVert p_q - p^*_c \rVert_1
                 + w_{feat}\, (1 - \cos(f_q, f^*_c)),

    the DETR recipe with the class probability replaced by the existence probability.
    Per graph, :func:`scipy.optimize.linear_sum_assignment` (which *minimises*) matches
    :math:`\min(Q_g, C_g)` pairs: if there are more targets than queries, ``C_g - Q_g``
    targets stay unmatched (``return_unmatched=True`` reports them); unmatched queries
    are "no object".

    Args:
        cost_exist, cost_pos, cost_feat: the weights :math:`w` (all >= 0, not all 0).
    """

    def __init__(self, cost_exist: float = 1.0, cost_pos: float = 1.0, cost_feat: float = 1.0):
        super().__init__()
        if min(cost_exist, cost_pos, cost_feat) < 0 or (cost_exist == cost_pos == cost_feat == 0):
            raise InvalidInputError("SetMatcher costs must be >= 0 and not all zero")
        self.cost_exist, self.cost_pos, self.cost_feat = cost_exist, cost_pos, cost_feat

    def extra_repr(self) -> str:
        return f"cost_exist={self.cost_exist}, cost_pos={self.cost_pos}, cost_feat={self.cost_feat}"

    @torch.no_grad()
    def forward(
        self,
        exist_logit: Tensor,
        pos: Tensor,
        feat: Optional[Tensor],
        query_batch: Tensor,
        tgt_pos: Tensor,
        tgt_feat: Optional[Tensor],
        tgt_batch: Tensor,
        num_graphs: int,
        return_unmatched: bool = False,
    ) -> Union[Tuple[Tensor, Tensor], Tuple[Tensor, Tensor, Tensor]]:
        r"""Match queries to targets graph by graph.

        Args:
            exist_logit: ``[Q]`` existence logits of all queries of the batch.
            pos: ``[Q, 2]`` predicted positions; feat: ``[Q, D]`` predicted features
                (``None`` together with ``tgt_feat`` to drop the feature cost).
            query_batch: ``[Q]`` graph of each query (sorted).
            tgt_pos: ``[C, 2]``, tgt_feat: ``[C, D]``, tgt_batch: ``[C]`` (sorted): targets.
            num_graphs: number of graphs ``B`` (graphs may have no query or no target).
            return_unmatched: also return the targets that got no query.

        Returns:
            ``(query_index, target_index)``: long ``[K]`` each, global indices of the
            matched pairs, grouped by graph (``K = sum_g min(Q_g, C_g)``); with
            ``return_unmatched`` also ``unmatched_target`` (long, global, sorted).
        """
        if exist_logit.dim() != 1:
            raise InvalidInputError(f"exist_logit must have shape [Q], got {tuple(exist_logit.shape)}")
        if tgt_pos.dim() != 2:
            raise InvalidInputError(f"tgt_pos must have shape [C, 2], got {tuple(tgt_pos.shape)}")
        Q, C = exist_logit.numel(), tgt_pos.size(0)
        _check_rows(pos, Q, "pos", 2)
        _check_rows(tgt_pos, C, "tgt_pos", 2)
        if (feat is None) != (tgt_feat is None):
            raise InvalidInputError("give both feat and tgt_feat or neither")
        _check_rows(feat, Q, "feat")
        _check_rows(tgt_feat, C, "tgt_feat", feat.size(1) if feat is not None else None)
        if query_batch.shape != (Q,) or tgt_batch.shape != (C,):
            raise InvalidInputError("query_batch / tgt_batch must have one entry per query / target")
        if not bool(torch.isfinite(exist_logit).all()):
            raise InvalidInputError("exist_logit has NaN or infinite entries")
        ptr_q = _ptr(query_batch, num_graphs, "query_batch")
        ptr_c = _ptr(tgt_batch, num_graphs, "tgt_batch")
        nq = torch.bincount(query_batch, minlength=num_graphs)
        nc = torch.bincount(tgt_batch, minlength=num_graphs)
        device = exist_logit.device
        empty = torch.empty(0, dtype=torch.long, device=device)
        if Q == 0 or C == 0 or num_graphs == 0:
            unmatched = torch.arange(C, device=device)
            return (empty, empty, unmatched) if return_unmatched else (empty, empty)

        # Dense per-graph cost [B, Qmax, Cmax], computed on the device in one go.
        Qm, Cm = int(nq.max()), int(nc.max())
        p = _to_dense(pos.float(), query_batch, ptr_q, num_graphs, Qm)
        tp = _to_dense(tgt_pos.float(), tgt_batch, ptr_c, num_graphs, Cm)
        prob = _to_dense(exist_logit.float().sigmoid().view(-1, 1), query_batch, ptr_q, num_graphs, Qm)
        cost = self.cost_pos * torch.cdist(p, tp, p=1) - self.cost_exist * prob
        if feat is not None and self.cost_feat != 0:
            f = _to_dense(F.normalize(feat.float(), dim=-1), query_batch, ptr_q, num_graphs, Qm)
            tf = _to_dense(F.normalize(tgt_feat.float(), dim=-1), tgt_batch, ptr_c, num_graphs, Cm)
            cost = cost + self.cost_feat * (1 - f @ tf.transpose(1, 2))

        # One host copy; scipy per graph, as DETR does per image.
        cost_np = cost.cpu().numpy()
        nq_l, nc_l, pq_l, pc_l = nq.tolist(), nc.tolist(), ptr_q.tolist(), ptr_c.tolist()
        qi, ti = [], []
        for g in range(num_graphs):
            if nq_l[g] == 0 or nc_l[g] == 0:
                continue
            r, c = linear_sum_assignment(cost_np[g, : nq_l[g], : nc_l[g]])  # minimises
            qi.append(r + pq_l[g])
            ti.append(c + pc_l[g])
        query_index = torch.as_tensor(np.concatenate(qi) if qi else np.zeros(0), dtype=torch.long, device=device)
        target_index = torch.as_tensor(np.concatenate(ti) if ti else np.zeros(0), dtype=torch.long, device=device)
        if not return_unmatched:
            return query_index, target_index
        matched = torch.zeros(C, dtype=torch.bool, device=device)
        matched[target_index] = True
        return query_index, target_index, (~matched).nonzero().view(-1)


def set_prediction_loss(
    exist_logit: Tensor,
    pos: Tensor,
    feat: Optional[Tensor],
    query_index: Tensor,
    target_index: Tensor,
    tgt_pos: Tensor,
    tgt_feat: Optional[Tensor],
    eos_weight: float = 0.1,
    weight_exist: float = 1.0,
    weight_pos: float = 1.0,
    weight_feat: float = 1.0,
) -> Dict[str, Tensor]:
    r"""DETR set-prediction loss given a :class:`SetMatcher` assignment.

    * ``loss_exist``: binary cross-entropy of ``exist_logit`` against 1 for matched
      queries and 0 ("no object") for the others; the no-object terms are down-weighted
      by ``eos_weight`` (DETR's ``eos_coef``, 0.1) since most queries are usually empty:
      :math:`\sum_q w_q\, \mathrm{BCE}_q / \sum_q w_q`.
    * ``loss_pos``: :math:`\frac1K \sum_{(q,c)} \lVert p_q - p^*_c \rVert_1`.
    * ``loss_feat``: :math:`\frac1K \sum_{(q,c)} 1 - \cos(f_q, f^*_c)` (0 when ``feat`` is
      ``None``). Gradients flow into ``tgt_feat`` too unless the caller detaches it.
    * ``loss``: ``weight_exist * loss_exist + weight_pos * loss_pos + weight_feat * loss_feat``.

    ``K`` is the number of matched pairs; with ``K = 0`` (or no queries) the terms are
    zeros that still belong to the autograd graph, so ``loss.backward()`` always works.
    Targets left without a query (more targets than queries) contribute nothing.
    """
    Q = exist_logit.numel()
    if query_index.shape != target_index.shape or query_index.dim() != 1:
        raise InvalidInputError("query_index and target_index must be 1-D and of equal length")
    if not 0 <= eos_weight:
        raise InvalidInputError(f"eos_weight must be >= 0, got {eos_weight}")
    K = query_index.numel()
    if K and (int(query_index.min()) < 0 or int(query_index.max()) >= Q
              or int(target_index.min()) < 0 or int(target_index.max()) >= tgt_pos.size(0)):
        raise InvalidInputError("query_index / target_index out of range of the queries / targets")
    zero = exist_logit.sum() * 0.0 + pos.sum() * 0.0  # keeps the graph when there is nothing to fit

    target = torch.zeros_like(exist_logit)
    target[query_index] = 1.0
    weight = torch.full_like(exist_logit, float(eos_weight))
    weight[query_index] = 1.0
    if Q > 0 and float(weight.sum()) > 0:
        bce = F.binary_cross_entropy_with_logits(exist_logit, target, reduction="none")
        loss_exist = (weight * bce).sum() / weight.sum()
    else:
        loss_exist = zero

    if K > 0:
        loss_pos = (pos[query_index] - tgt_pos[target_index]).abs().sum(-1).mean()
    else:
        loss_pos = zero
    if feat is not None and tgt_feat is not None and K > 0:
        loss_feat = (1 - F.cosine_similarity(feat[query_index], tgt_feat[target_index], dim=-1)).mean()
    else:
        loss_feat = zero + (feat.sum() * 0.0 if feat is not None else 0.0)

    loss = weight_exist * loss_exist + weight_pos * loss_pos + weight_feat * loss_feat
    return {"loss": loss, "loss_exist": loss_exist, "loss_pos": loss_pos, "loss_feat": loss_feat}
