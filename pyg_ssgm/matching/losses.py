r"""Matching losses on dense padded matchings ``[B, N1, N2]`` (sizes ``n1``, ``n2``).

All of them ignore padding and are defined for *partial* ground truth: a row or column
of ``X_gt`` may be all zero (that node has no partner), and the loss then asks for it
to stay unmatched.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InvalidInputError
from .dense import size_mask

_REDUCTIONS = ("mean", "sum", "none")


def _prepare(X: Tensor, X_gt: Tensor, n1: Tensor, n2: Tensor, name: str):
    if X.dim() != 3 or X_gt.shape != X.shape:
        raise InvalidInputError(f"{name} and X_gt must both have shape [B, N1, N2], "
                                f"got {tuple(X.shape)} and {tuple(X_gt.shape)}")
    n1 = torch.as_tensor(n1, dtype=torch.long, device=X.device)
    n2 = torch.as_tensor(n2, dtype=torch.long, device=X.device)
    if n1.shape != (X.size(0),) or n2.shape != (X.size(0),):
        raise InvalidInputError(f"n1, n2 must have shape [B] = [{X.size(0)}]")
    if X.size(0) and (bool(((n1 < 0) | (n1 > X.size(1))).any()) or bool(((n2 < 0) | (n2 > X.size(2))).any())):
        raise InvalidInputError("n1/n2 out of range of the padded sizes")
    mask = size_mask(n1, n2, X.size(1), X.size(2))
    return n1, n2, mask, X_gt.to(X.dtype)


def _reduce(per_pair: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        # mean over pairs; an empty batch gives 0 (and keeps the graph).
        return per_pair.mean() if per_pair.numel() else per_pair.sum()
    if reduction == "sum":
        return per_pair.sum()
    return per_pair


def hamming_loss(
    X: Tensor,
    X_gt: Tensor,
    n1: Tensor,
    n2: Tensor,
    reduction: str = "mean",
    normalize: bool = True,
) -> Tensor:
    r"""Hamming distance between a (blackbox-differentiated) matching and the truth.

    .. math::
        L_b = \frac{1}{\max(|M^{gt}_b|, 1)} \sum_{i < n_1, j < n_2}
              X_{ij}(1 - X^{gt}_{ij}) + X^{gt}_{ij}(1 - X_{ij})

    = (false matches + missed matches) / number of true matches of pair ``b``
    (``normalize=False``: the raw count, as in BB-GM). For a perfect bijection it is
    ``2 * (1 - accuracy)``; with partial ground truth it also counts every match made
    for a node that has no partner. The gradient w.r.t. ``X`` is :math:`(1 - 2X^{gt})/|M^{gt}_b|`,
    so with :func:`~pyg_ssgm.matching.blackbox_hungarian` the perturbation is
    :math:`\lambda / |M^{gt}_b|` per entry (and a further ``1/B`` with ``'mean'``):
    tune ``lambda_val`` with that in mind.

    Args:
        X, X_gt: ``[B, N1, N2]`` predicted (binary or soft) and true matchings.
        reduction: ``'mean'`` over pairs, ``'sum'``, or ``'none'`` (``[B]``).
    """
    if reduction not in _REDUCTIONS:
        raise InvalidInputError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    n1, n2, mask, X_gt = _prepare(X, X_gt, n1, n2, "X")
    m = mask.to(X.dtype)
    err = (X * (1 - X_gt) + X_gt * (1 - X)) * m
    per_pair = err.sum((1, 2))
    if normalize:
        per_pair = per_pair / (X_gt * m).sum((1, 2)).clamp(min=1)
    return _reduce(per_pair, reduction)


def matching_cross_entropy(
    P: Tensor,
    X_gt: Tensor,
    n1: Tensor,
    n2: Tensor,
    reduction: str = "mean",
) -> Tensor:
    r"""Binary cross-entropy between a soft matching (Sinkhorn output) and the truth.

    .. math::
        L_b = -\frac{1}{\max(n_{1,b}, 1)} \sum_{i < n_1, j < n_2}
              X^{gt}_{ij} \log P_{ij} + (1 - X^{gt}_{ij}) \log (1 - P_{ij})

    pygmtools' ``permutation_loss`` per pair (normalised by the number of source
    nodes), but without assuming a permutation: an all-zero row of ``X_gt`` pushes the
    row's mass into the unmatched slack (use :func:`~pyg_ssgm.matching.sinkhorn` with
    unmatched scores for partial ground truth). ``log`` is clamped at -100 (PyTorch's
    BCE), so exact 0/1 entries of ``P`` don't give infinities.

    Args:
        P: ``[B, N1, N2]`` in ``[0, 1]`` (values are clamped to it: Sinkhorn may overshoot 1
            by rounding). X_gt: ``[B, N1, N2]`` binary.
        reduction: ``'mean'`` over pairs, ``'sum'``, or ``'none'`` (``[B]``).
    """
    if reduction not in _REDUCTIONS:
        raise InvalidInputError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    n1, n2, mask, X_gt = _prepare(P, X_gt, n1, n2, "P")
    if not bool(torch.isfinite(P.detach()[mask]).all()):
        raise InvalidInputError("P has NaN or infinite entries inside the valid sizes")
    bce = F.binary_cross_entropy(P.clamp(0.0, 1.0), X_gt.clamp(0.0, 1.0), reduction="none")
    per_pair = (bce * mask.to(P.dtype)).sum((1, 2)) / n1.clamp(min=1).to(P.dtype)
    return _reduce(per_pair, reduction)


def info_nce(
    h_s: Tensor,
    h_t: Tensor,
    pairs: Tensor,
    temperature: float = 0.1,
    batch_s: Optional[Tensor] = None,
    batch_t: Optional[Tensor] = None,
    symmetric: bool = True,
) -> Tensor:
    r"""Contrastive InfoNCE loss on node embeddings for known correspondences.

    For each true pair :math:`(i, j)` with cosine similarities
    :math:`s_{ik} = \cos(h^s_i, h^t_k) / T`:

    .. math::
        \ell_{ij} = -\log \frac{\exp s_{ij}}{\sum_{k} \exp s_{ik}},

    averaged over the pairs; with ``symmetric`` the target-to-source direction is added
    and the two averaged. Negatives ``k`` are all target nodes of the *same* graph pair
    when ``batch_s``/``batch_t`` are given (other pairs are unrelated objects), else all
    rows of ``h_t``; nodes without partner are negatives too.

    Args:
        h_s, h_t: ``[N_s, D]``, ``[N_t, D]`` node embeddings (normalised here).
        pairs: long ``[2, M]`` global indices (row 0 into ``h_s``, row 1 into ``h_t``).
        temperature: :math:`T > 0`.
    Returns:
        a scalar; 0 (with the graph intact) when ``M = 0``.
    """
    if h_s.dim() != 2 or h_t.dim() != 2 or h_s.size(1) != h_t.size(1):
        raise InvalidInputError(f"h_s, h_t must be [N_s, D], [N_t, D], got {tuple(h_s.shape)}, {tuple(h_t.shape)}")
    if pairs.dim() != 2 or pairs.size(0) != 2 or pairs.dtype != torch.long:
        raise InvalidInputError(f"pairs must be a long [2, M] tensor, got {tuple(pairs.shape)} {pairs.dtype}")
    if not temperature > 0:
        raise InvalidInputError(f"temperature must be > 0, got {temperature}")
    if (batch_s is None) != (batch_t is None):
        raise InvalidInputError("give both batch_s and batch_t or neither")
    if pairs.size(1) == 0:
        return (h_s.sum() + h_t.sum()) * 0.0
    if int(pairs.min()) < 0 or int(pairs[0].max()) >= h_s.size(0) or int(pairs[1].max()) >= h_t.size(0):
        raise InvalidInputError("pairs has indices outside h_s / h_t")
    zs, zt = F.normalize(h_s, dim=-1), F.normalize(h_t, dim=-1)
    i, j = pairs[0], pairs[1]
    # Only the M rows we need: [M, N_t] and [M, N_s], not the full N_s x N_t matrix.
    logits_st = zs[i] @ zt.t() / temperature
    logits_ts = zt[j] @ zs.t() / temperature
    if batch_s is not None:
        logits_st = logits_st.masked_fill(batch_s[i].view(-1, 1) != batch_t.view(1, -1), float("-inf"))
        logits_ts = logits_ts.masked_fill(batch_t[j].view(-1, 1) != batch_s.view(1, -1), float("-inf"))
    loss = F.cross_entropy(logits_st, j)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits_ts, i))
    return loss
