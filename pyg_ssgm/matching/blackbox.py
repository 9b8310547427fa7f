r"""Blackbox differentiation of the Hungarian solver.

Vlastelica et al., "Differentiation of Blackbox Combinatorial Solvers" (ICLR 2020), as
used by BB-GM (Rolínek et al., "Deep Graph Matching via Blackbox Differentiation of
Combinatorial Solvers", ECCV 2020).

For a solver :math:`y(w) = \arg\min_y \langle w, y\rangle` (a *cost* :math:`w`), the
gradient of a loss :math:`L(y)` is replaced by that of a piecewise-linear interpolation:

.. math::
    w' = w + \lambda \frac{\partial L}{\partial y}, \qquad
    \nabla_w L := -\frac{1}{\lambda}\,\bigl(y(w) - y(w')\bigr).

**Sign for a maximising solver.** Here the solver *maximises* a similarity,
:math:`w = -S`. Substituting: :math:`S' = S - \lambda\, \partial L / \partial X` and

.. math::
    \nabla_S L = \frac{1}{\lambda}\,\bigl(X(S) - X(S')\bigr).

Sanity check: :math:`S'` lowers the similarity of entries whose selection would
increase the loss, so :math:`X' = X(S')` is a *better* matching; a descent step
:math:`S \leftarrow S - \eta \nabla_S L = S + \tfrac\eta\lambda (X' - X)` raises the
entries of the better matching and lowers those of the current one.

Partial matching: the unmatched indicators :math:`\bar u^1_i = 1 - \sum_j X_{ij}` are part
of the solution of the augmented LAP, with the unmatched scores as their weights, and
the loss does not depend on them directly; so the same rule gives
:math:`\nabla_{u^1} L = (\bar u^1(S) - \bar u^1(S'))/\lambda`
(and likewise for :math:`u^2`): a learnable threshold is trained by the same signal.

``lambda`` must be comparable to the scale of ``S`` (hence a normalised affinity, with ``lambda``
and the temperature exposed as settings): too small and :math:`X' = X` (zero gradient), too
large and the gradient is that of a different, easier problem.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..errors import InvalidInputError
from .solvers import _solve, check_inputs


def _unmatched_diff(X: Tensor, X_prime: Tensor, dim: int) -> Tensor:
    r""":math:`\bar u(X) - \bar u(X')` with :math:`\bar u = 1 - X\mathbf 1`: the 1s cancel
    (and padded nodes are 0 in both matchings, so their gradient is 0)."""
    return X_prime.sum(dim) - X.sum(dim)


class BlackboxHungarian(torch.autograd.Function):
    r"""``X = hungarian(S, n1, n2, unmatch1, unmatch2)`` with the blackbox backward pass.

    ``apply(S, n1, n2, lambda_val, unmatch1, unmatch2)``; prefer :func:`blackbox_hungarian`,
    which validates the inputs.
    """

    @staticmethod
    def forward(ctx: Any, S: Tensor, n1: Tensor, n2: Tensor, lambda_val: float,
                unmatch1: Optional[Tensor] = None, unmatch2: Optional[Tensor] = None) -> Tensor:
        X = _solve(S, n1, n2, unmatch1, unmatch2)
        ctx.lambda_val = lambda_val
        ctx.save_for_backward(S, n1, n2, X, unmatch1, unmatch2)  # None is allowed
        return X

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> Tuple[Optional[Tensor], ...]:
        S, n1, n2, X, unmatch1, unmatch2 = ctx.saved_tensors
        lam = ctx.lambda_val
        if not bool(torch.isfinite(grad_output).all()):
            raise InvalidInputError("blackbox_hungarian got a NaN/inf gradient from the loss")
        # Maximising solver: cost w = -S, so w + lam * g  <=>  S - lam * g.
        S_prime = S.detach() - lam * grad_output.to(S.dtype)
        X_prime = _solve(S_prime, n1, n2, unmatch1, unmatch2)
        grad_S = (X - X_prime) / lam
        grad_u1 = grad_u2 = None
        if unmatch1 is not None:
            if ctx.needs_input_grad[4]:
                grad_u1 = (_unmatched_diff(X, X_prime, 2) / lam).to(unmatch1.dtype)
            if ctx.needs_input_grad[5]:
                grad_u2 = (_unmatched_diff(X, X_prime, 1) / lam).to(unmatch2.dtype)
        return grad_S, None, None, None, grad_u1, grad_u2


def blackbox_hungarian(
    S: Tensor,
    n1: Optional[Tensor] = None,
    n2: Optional[Tensor] = None,
    lambda_val: float = 80.0,
    unmatch1: Optional[Tensor] = None,
    unmatch2: Optional[Tensor] = None,
) -> Tensor:
    r"""Differentiable (blackbox) Hungarian matching.

    Forward: exactly :func:`~pyg_ssgm.matching.hungarian` (binary ``X [B, N1, N2]``,
    maximising similarity; partial when unmatched scores are given). Backward:
    :math:`\nabla_S L = (X - X(S - \lambda\, \partial L/\partial X)) / \lambda`, and the
    analogous gradient for ``unmatch1``/``unmatch2`` (see the module docstring).

    Args:
        S: float ``[B, N1, N2]`` similarities, padded; n1, n2: long ``[B]`` sizes.
        lambda_val: interpolation strength :math:`\lambda > 0` (BB-GM's default 80).
        unmatch1, unmatch2: optional ``[B, N1]``, ``[B, N2]`` unmatched scores (both or
            neither), e.g. from :func:`~pyg_ssgm.matching.threshold_to_unmatch`.
    """
    n1, n2, unmatch1, unmatch2 = check_inputs(S, n1, n2, unmatch1, unmatch2)
    if not lambda_val > 0:
        raise InvalidInputError(f"lambda_val must be > 0, got {lambda_val}")
    return BlackboxHungarian.apply(S, n1, n2, float(lambda_val), unmatch1, unmatch2)
