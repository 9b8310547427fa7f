r"""Linear assignment solvers on batched, padded similarity matrices (pygmtools wrappers).

Every solver takes a similarity ``S`` float ``[B, N1, N2]`` and true sizes ``n1``,
``n2`` long ``[B]``; *higher similarity is better* (we maximise, as pygmtools does;
``scipy.optimize.linear_sum_assignment`` minimises a cost: mixing the two conventions up
silently inverts every matching, which the tests guard against).
Padding entries (``i >= n1[b]`` or ``j >= n2[b]``) are never matched and come back 0.

Two problems are solved:

* **maximal matching** (``unmatch1 = unmatch2 = None``):
  :math:`\max_X \langle S, X\rangle` s.t. :math:`X \in \{0,1\}`, every node of the
  smaller side matched, every node matched at most once;
* **partial matching** (both ``unmatch1 [B, N1]`` and ``unmatch2 [B, N2]`` given): a
  node may stay unmatched and then scores its unmatched score,

  .. math::
      \max_X \; \sum_{ij} S_{ij} X_{ij}
      + \sum_i u^1_i \,(1 - \textstyle\sum_j X_{ij})
      + \sum_j u^2_j \,(1 - \textstyle\sum_i X_{ij}),
      \qquad X\mathbf 1 \le \mathbf 1,\; X^\top \mathbf 1 \le \mathbf 1.

  This is exactly pygmtools' (>= 0.3) augmented problem: its ``_hung_kernel`` solves
  a :math:`(n_1+n_2)^2` LAP whose upper-right diagonal holds ``unmatch1``, lower-left
  diagonal ``unmatch2``, lower-right zeros. Matching ``i`` to ``j`` is therefore
  chosen over leaving both alone only if :math:`S_{ij} > u^1_i + u^2_j` (up to the
  interaction with the other pairs).

pygmtools' solvers run on CPU internally (one call per batch, its own loop over pairs);
inputs and outputs stay on ``S``'s device.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import pygmtools as pygm
import torch
from torch import Tensor

from ..errors import InvalidInputError
from .dense import size_mask

Threshold = Union[float, Tensor]


def _check_sizes(S: Tensor, n: Optional[Tensor], dim: int, name: str) -> Tensor:
    B, N = S.size(0), S.size(dim)
    if n is None:
        return torch.full((B,), N, dtype=torch.long, device=S.device)
    n = torch.as_tensor(n, device=S.device)
    if n.dtype.is_floating_point or n.dtype == torch.bool or n.dtype.is_complex:
        raise InvalidInputError(f"{name} must be an integer tensor, got {n.dtype}")
    n = n.long()
    if n.shape != (B,):
        raise InvalidInputError(f"{name} must have shape [B] = [{B}], got {tuple(n.shape)}")
    if B > 0 and bool(((n < 0) | (n > N)).any()):
        raise InvalidInputError(f"{name} must lie in [0, {N}] (the padded size), got {n.tolist()}")
    return n


def _check_unmatch(S: Tensor, u: Tensor, n: Tensor, dim: int, name: str) -> Tensor:
    B, N = S.size(0), S.size(dim)
    if not isinstance(u, Tensor) or not u.dtype.is_floating_point:
        raise InvalidInputError(f"{name} must be a floating-point tensor of shape [{B}, {N}]")
    if u.shape != (B, N):
        raise InvalidInputError(f"{name} must have shape [B, N{dim}] = [{B}, {N}], got {tuple(u.shape)}")
    valid = torch.arange(N, device=S.device).view(1, -1) < n.view(-1, 1)
    if not bool(torch.isfinite(u.to(S.device)[valid]).all()):
        raise InvalidInputError(f"{name} has NaN or infinite entries on valid nodes")
    return u.to(S.device)


def check_inputs(
    S: Tensor,
    n1: Optional[Tensor] = None,
    n2: Optional[Tensor] = None,
    unmatch1: Optional[Tensor] = None,
    unmatch2: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """Validate a solver's inputs; return ``n1, n2`` (long, on ``S.device``, full sizes
    when ``None``) and the unmatched scores. Raises :class:`InvalidInputError`."""
    if not isinstance(S, Tensor) or S.dim() != 3:
        shape = tuple(S.shape) if isinstance(S, Tensor) else type(S).__name__
        raise InvalidInputError(f"S must be a tensor of shape [B, N1, N2], got {shape}")
    if not S.dtype.is_floating_point:
        raise InvalidInputError(f"S must be floating point, got {S.dtype}")
    n1 = _check_sizes(S, n1, 1, "n1")
    n2 = _check_sizes(S, n2, 2, "n2")
    # Only valid entries must be finite: padding may hold anything (-inf is common).
    if not bool(torch.isfinite(S.detach()[size_mask(n1, n2, S.size(1), S.size(2))]).all()):
        raise InvalidInputError("S has NaN or infinite entries inside the valid sizes "
                                "(use a large finite negative value to discourage a match)")
    if (unmatch1 is None) != (unmatch2 is None):
        raise InvalidInputError("give both unmatch1 and unmatch2 (partial matching) or neither "
                                "(maximal matching); use zeros for a side without unmatched score")
    if unmatch1 is not None:
        unmatch1 = _check_unmatch(S, unmatch1, n1, 1, "unmatch1")
        unmatch2 = _check_unmatch(S, unmatch2, n2, 2, "unmatch2")
    return n1, n2, unmatch1, unmatch2


def _solve(S: Tensor, n1: Tensor, n2: Tensor,
           unmatch1: Optional[Tensor], unmatch2: Optional[Tensor]) -> Tensor:
    """Hungarian without validation (used by the blackbox backward pass)."""
    if S.size(0) == 0:
        return torch.zeros_like(S)
    # float64 for the solver: exact ties/ordering don't depend on S's (maybe half) dtype.
    mask = size_mask(n1, n2, S.size(1), S.size(2))
    s = S.detach().double().masked_fill(~mask, 0.0)  # padding may hold -inf/NaN: never reaches scipy
    u1 = unmatch1.detach().double() if unmatch1 is not None else None
    u2 = unmatch2.detach().double() if unmatch2 is not None else None
    X = pygm.hungarian(s, n1, n2, u1, u2, backend="pytorch")
    return X.to(device=S.device, dtype=S.dtype)


def hungarian(
    S: Tensor,
    n1: Optional[Tensor] = None,
    n2: Optional[Tensor] = None,
    unmatch1: Optional[Tensor] = None,
    unmatch2: Optional[Tensor] = None,
) -> Tensor:
    r"""Optimal discrete matching maximising :math:`\langle S, X\rangle`.

    Args:
        S: float ``[B, N1, N2]`` similarities (higher = better), padded.
        n1, n2: long ``[B]`` true sizes (default: the padded sizes).
        unmatch1, unmatch2: float ``[B, N1]`` / ``[B, N2]`` scores of leaving a node
            unmatched (both or neither). Without them every node of the smaller graph
            is matched; with them node ``i`` stays unmatched whenever that scores more
            (see the module docstring for the exact objective).

    Returns:
        Binary float ``X [B, N1, N2]`` (``S``'s dtype and device, no gradient), at most
        one 1 per row and column, zeros on padding.
    """
    n1, n2, unmatch1, unmatch2 = check_inputs(S, n1, n2, unmatch1, unmatch2)
    return _solve(S, n1, n2, unmatch1, unmatch2)


def threshold_to_unmatch(threshold: Threshold, S: Tensor) -> Tuple[Tensor, Tensor]:
    r"""Unmatched scores that turn a matching threshold :math:`t` into a partial LAP.

    With :math:`u^1_i = u^2_j = t/2` the partial-matching objective becomes

    .. math::
        \sum_{(i,j) \in X} S_{ij} + \tfrac t2 (n_1 - |X|) + \tfrac t2 (n_2 - |X|)
        = \tfrac t2 (n_1 + n_2) + \sum_{(i,j) \in X} (S_{ij} - t),

    i.e. *exactly* :math:`\max_X \sum_{(i,j)\in X} (S_{ij} - t)` over all partial
    one-to-one matchings: a pair is worth matching iff it is worth more than ``t``
    (leaving both of its nodes unmatched). Consequently no returned pair has
    :math:`S_{ij} < t`. ``t/2`` per side (rather than ``t`` on one side) keeps the
    problem symmetric, which also matters for Sinkhorn. The result is differentiable
    w.r.t. ``threshold`` (a learnable threshold gets gradients through
    :func:`~pyg_ssgm.matching.blackbox_hungarian` or :func:`sinkhorn`).

    Args:
        threshold: a float, a 0-d tensor or a ``[B]`` tensor (one threshold per pair).
        S: the similarity ``[B, N1, N2]`` (for shape, dtype, device).
    """
    B, N1, N2 = S.shape
    t = torch.as_tensor(threshold, dtype=S.dtype, device=S.device)
    if t.dim() == 0:
        t = t.expand(B)
    if t.shape != (B,):
        raise InvalidInputError(f"threshold must be a scalar or a [B] = [{B}] tensor, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t.detach()).all()):
        raise InvalidInputError("threshold must be finite")
    half = (t / 2).view(B, 1)
    return half.expand(B, N1), half.expand(B, N2)


def partial_hungarian(S: Tensor, n1: Optional[Tensor], n2: Optional[Tensor], threshold: Threshold) -> Tensor:
    r"""Partial discrete matching with a matching threshold :math:`t` (scalar or ``[B]``).

    Solves :math:`\max_X \sum_{(i,j)\in X} (S_{ij} - t)` over partial one-to-one
    matchings (exact, see :func:`threshold_to_unmatch`): ``i`` and ``j`` are matched
    only if their similarity exceeds ``t``, the value of leaving both unmatched.
    """
    u1, u2 = threshold_to_unmatch(threshold, S) if isinstance(S, Tensor) and S.dim() == 3 else (None, None)
    return hungarian(S, n1, n2, u1, u2)


def sinkhorn(
    S: Tensor,
    n1: Optional[Tensor] = None,
    n2: Optional[Tensor] = None,
    tau: float = 1.0,
    max_iter: int = 20,
    unmatch1: Optional[Tensor] = None,
    unmatch2: Optional[Tensor] = None,
) -> Tensor:
    r"""Soft (entropic) matching: log-domain Sinkhorn on :math:`\exp(S / \tau)`.

    * Without unmatched scores: the smaller side's rows sum to 1 and the larger side's
      to at most 1 (pygmtools' ``dummy_row`` scheme pads the smaller side with dummy
      rows that absorb the surplus), the soft version of maximal matching.
    * With ``unmatch1``/``unmatch2``: one slack column/row holding the unmatched
      scores (pygmtools' scheme), so both sides sum to *at most* 1 and
      :math:`1 - \sum_j P_{ij}` is node ``i``'s probability of staying unmatched;
      as :math:`\tau \to 0` it solves the same partial problem as :func:`hungarian`.

    Marginals hold up to convergence (``max_iter`` counts half-steps: one row or one
    column normalisation each, as in pygmtools). ``tau`` defaults to 1 because the
    affinity module already divides by a learnable temperature. Differentiable w.r.t.
    ``S`` and the unmatched scores; padding entries are exactly 0.

    Returns:
        ``P [B, N1, N2]`` on ``S``'s device and dtype.
    """
    n1, n2, unmatch1, unmatch2 = check_inputs(S, n1, n2, unmatch1, unmatch2)
    if not tau > 0:
        raise InvalidInputError(f"tau must be > 0, got {tau}")
    if int(max_iter) < 1:
        raise InvalidInputError(f"max_iter must be >= 1, got {max_iter}")
    if S.size(0) == 0 or S.size(1) == 0 or S.size(2) == 0:
        return S * 0.0
    mask = size_mask(n1, n2, S.size(1), S.size(2))
    s = S.masked_fill(~mask, 0.0)
    # pygmtools updates the size tensors in place (``nrows += 1``): hand it copies.
    if unmatch1 is None:
        P = pygm.sinkhorn(s, n1.clone(), n2.clone(), dummy_row=True, max_iter=int(max_iter), tau=tau,
                          backend="pytorch")
    else:
        P = pygm.sinkhorn(s, n1.clone(), n2.clone(), unmatch1, unmatch2, max_iter=int(max_iter), tau=tau,
                          backend="pytorch")
    # Empty pairs (n = 0) can come back as NaN (exp of -inf - -inf); padding must be 0.
    return torch.where(mask, P, torch.zeros_like(P))
