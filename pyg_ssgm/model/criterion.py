r"""The training losses of SSGM (as DETR's ``SetCriterion``): the ground truth over the completed
graphs, the matching loss, the completion's set-prediction loss and the optional terms."""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.utils import cumsum

from ..config import LossConfig
from ..data.pair_data import pair_field
from ..matching import (blackbox_hungarian, hamming_loss, info_nce, matching_cross_entropy, set_prediction_loss,
                        sinkhorn, size_mask, threshold_to_unmatch)
from .output import SSGMOutput


class Criterion(nn.Module):
    r"""``criterion(out, data)``: the losses of one batch (``"loss"`` is the weighted total).

    * ``match``: the matching loss over the completed graphs, against the truth of
      :meth:`ground_truth` (cross-entropy on Sinkhorn, or Hamming on the blackbox Hungarian);
    * ``match_initial``: the same on the affinity before the neighbourhood consensus, where the
      model has one (weighted as ``match``);
    * ``match_real``: the same over the real nodes alone (``weight_match_real > 0``);
    * ``exist``, ``pos``, ``feat``: the DETR set-prediction loss of the queries against the nodes
      each side lacks, averaged over the two sides;
    * ``contrastive``: InfoNCE on the encoder embeddings of the true pairs
      (``weight_contrastive > 0``), at ``contrastive_temperature``.
    * ``keypoint``: where the model has a keypoint filter and the batch names its points, the
      binary cross-entropy of each point's keypoint logit against whether it has a name.

    ``out`` must come from a training forward (no ``inference``), so that it records the
    completion targets and the queries assigned to them.
    """

    def __init__(self, config: Optional[LossConfig] = None, contrastive_temperature: float = 0.1):
        super().__init__()
        self.config = config or LossConfig()
        self.contrastive_temperature = contrastive_temperature

    def ground_truth(self, out: SSGMOutput, data) -> Tensor:
        """Binary ``[B, N1, N2]`` truth over the completed graphs: real pairs from ``y``, and each
        generated node assigned to a missing node paired with the real node it stands for."""
        B, N1, N2 = out.S.shape
        X_gt = out.S.new_zeros(B, N1, N2)
        ptr_s, ptr_t = cumsum(out.num_real_s), cumsum(out.num_real_t)
        y = data.y
        if y is not None and y.numel():
            b = out.encoded_s.batch[y[0]]
            X_gt[b, y[0] - ptr_s[b], y[1] - ptr_t[b]] = 1.0
        for side, assignment in (out.assignment or {}).items():
            partner = getattr(data, f"comp_index_{side}")[assignment.target]  # global real index on the other side
            # local index of the assigned query in its completed graph: after the real nodes, in the
            # order of the included queries of that graph
            included = out.included[side]
            _, queries = out.side(side)
            rank = torch.cumsum(included.long(), 0) - 1
            first = cumsum(torch.bincount(queries.batch[included], minlength=B))
            b = queries.batch[assignment.query]
            real = out.num_real_s if side == "s" else out.num_real_t
            generated = real[b] + rank[assignment.query] - first[b]
            if side == "s":
                X_gt[b, generated, partner - ptr_t[b]] = 1.0
            else:
                X_gt[b, partner - ptr_s[b], generated] = 1.0
        return X_gt

    def matching_loss(self, S: Tensor, X_gt: Tensor, n1: Tensor, n2: Tensor, threshold: Tensor) -> Tensor:
        """Cross-entropy of the Sinkhorn matching, or the Hamming loss of the Hungarian one through
        blackbox differentiation, with the unmatched threshold as slack (partial ground truth)."""
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

    def forward(self, out: SSGMOutput, data) -> Dict[str, Tensor]:
        c = self.config
        X_gt = self.ground_truth(out, data)
        loss_match = self.matching_loss(out.S, X_gt, out.n1, out.n2, out.threshold)
        losses = {"match": loss_match}
        total = c.weight_match * loss_match
        if out.S_initial is not None:
            losses["match_initial"] = self.matching_loss(out.S_initial, X_gt, out.n1, out.n2, out.threshold)
            total = total + c.weight_match * losses["match_initial"]
        if c.weight_match_real > 0:
            # Real nodes come first in each completed graph: the leading block is the matching among
            # real nodes, where a node whose partner was generated has an empty row. (The block may
            # reach into the generated rows of pairs with fewer real nodes: masked.)
            N1, N2 = int(out.num_real_s.max()), int(out.num_real_t.max())
            X_real = X_gt[:, :N1, :N2] * size_mask(out.num_real_s, out.num_real_t, N1, N2)
            losses["match_real"] = self.matching_loss(out.S[:, :N1, :N2], X_real, out.num_real_s, out.num_real_t,
                                                      out.threshold)
            total = total + c.weight_match_real * losses["match_real"]
        for side, assignment in (out.assignment or {}).items():
            _, queries = out.side(side)
            targets = out.targets[side]
            part = set_prediction_loss(queries.exist_logit, queries.pos, queries.feat, assignment.query,
                                       assignment.target, targets.pos, targets.feat, eos_weight=c.eos_weight,
                                       weight_exist=c.weight_exist, weight_pos=c.weight_pos, weight_feat=c.weight_feat)
            for key in ("loss_exist", "loss_pos", "loss_feat"):
                name = key[5:]
                losses[name] = losses.get(name, 0.0) + part[key] / 2
            total = total + part["loss"] / 2
        if c.weight_contrastive > 0 and data.y is not None and data.y.numel():
            enc_s, enc_t = out.encoded_s, out.encoded_t
            losses["contrastive"] = info_nce(enc_s.h, enc_t.h, data.y, self.contrastive_temperature, enc_s.batch,
                                             enc_t.batch)
            total = total + c.weight_contrastive * losses["contrastive"]
        named = _named(data) if out.keypoint_logits is not None else None  # a model without a filter reads no name
        if named is not None:
            losses["keypoint"] = F.binary_cross_entropy_with_logits(out.keypoint_logits, named.to(out.keypoint_logits))
            total = total + c.weight_keypoint * losses["keypoint"]
        losses["loss"] = total
        return losses


def _named(data) -> Optional[Tensor]:
    """Bool ``[N_s + N_t]``: which points of the batch have a name (source points, then target
    points), or ``None`` where the batch carries no names."""
    if getattr(data, "names_s", None) is None or getattr(data, "names_t", None) is None:
        return None
    num_pairs = data.num_graphs if isinstance(data, Batch) else 1
    flat = [n is not None for key in ("names_s", "names_t") for b in range(num_pairs) for n in pair_field(data, key, b)]
    if len(flat) != data.x_s.size(0) + data.x_t.size(0):
        return None
    return torch.tensor(flat, dtype=torch.bool, device=data.x_s.device)


__all__ = ["Criterion"]
