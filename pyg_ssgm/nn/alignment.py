"""Geometric consensus: the affine map between two graphs implied by a soft matching."""
from __future__ import annotations

import torch
from torch import Tensor


def dual_softmax(S: Tensor, mask: Tensor) -> Tensor:
    r"""A cheap soft matching :math:`P = \mathrm{softmax}_{row}(S) \odot \mathrm{softmax}_{col}(S)`
    (as in LoFTR) over the valid entries ``mask [B, N1, N2]``; padded entries are 0."""
    # A large finite fill, not -inf: a fully padded row would give NaN (and NaN gradients).
    S = S.masked_fill(~mask, -1e4)
    P = torch.softmax(S, dim=2) * torch.softmax(S, dim=1)
    return P.masked_fill(~mask, 0.0)


def fit_affine(P: Tensor, pos_s: Tensor, pos_t: Tensor, ridge: float = 1e-2) -> Tensor:
    r"""Weighted least-squares affine map from target to source coordinates.

    Minimises :math:`\sum_{ij} P_{ij} \lVert [p^t_j, 1] A - p^s_i \rVert^2 + \rho \lVert A - A_0 \rVert^2`
    over :math:`A \in \mathbb{R}^{3 \times 2}` for each pair of the batch, where :math:`A_0` is the
    identity map: the ridge term keeps the solution defined when the soft matching is degenerate
    (all weight on fewer than 3 points). ``P [B, N1, N2]``, ``pos_s [B, N1, 2]``,
    ``pos_t [B, N2, 2]`` (padding must carry zero weight). Returns ``A [B, 3, 2]``.
    """
    B = P.size(0)
    X = torch.cat([pos_t, pos_t.new_ones(pos_t.shape[:-1] + (1,))], dim=-1)  # [B, N2, 3]
    w_t = P.sum(1)  # [B, N2] total weight of each target point
    XtWX = X.transpose(1, 2) @ (w_t.unsqueeze(-1) * X)  # [B, 3, 3]
    XtWY = X.transpose(1, 2) @ (P.transpose(1, 2) @ pos_s)  # [B, 3, 2]
    eye = torch.eye(3, dtype=P.dtype, device=P.device).expand(B, 3, 3)
    A0 = torch.eye(3, 2, dtype=P.dtype, device=P.device).expand(B, 3, 2)
    return torch.linalg.solve(XtWX + ridge * eye, XtWY + ridge * A0)


def apply_affine(A: Tensor, pos: Tensor) -> Tensor:
    """``pos [B, N, 2]`` mapped by ``A [B, 3, 2]``."""
    return pos @ A[:, :2] + A[:, 2:3]


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """``[B, N1, N2]`` squared Euclidean distances, written out so the gradient stays finite where
    two points coincide (the gradient of ``cdist`` is undefined at distance 0)."""
    return (a.unsqueeze(2) - b.unsqueeze(1)).pow(2).sum(-1)
