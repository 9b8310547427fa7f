"""Affine maps between two point sets: the weighted least-squares fit, and applying it.

The data layer fits one to a real pair's true correspondences (the completion targets of
:func:`~pyg_ssgm.data.generator.add_completion_targets`); the network fits one to a soft matching
(:mod:`pyg_ssgm.nn.alignment`, which re-exports both functions). Both use this one fit.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["fit_affine", "apply_affine"]


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
