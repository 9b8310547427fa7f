"""Power-law fits ``t = c n^k`` of measured costs (least squares in log-log space)."""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from ..errors import InvalidInputError

__all__ = ["PowerFit", "fit_exponent"]


class PowerFit(NamedTuple):
    """``t ~ coefficient * n ** exponent`` fitted by least squares on ``log t`` vs ``log n``."""

    exponent: float
    coefficient: float
    r2: float
    num_points: int


def fit_exponent(sizes: Sequence[float], costs: Sequence[float]) -> PowerFit:
    r"""Least-squares fit of :math:`\log t = \log c + k \log n`; returns :class:`PowerFit`.

    Needs at least two distinct positive sizes and positive costs (else :class:`InvalidInputError`).
    ``r2`` is the coefficient of determination in log space (1.0 for two points).
    """
    n = np.asarray(list(sizes), dtype=np.float64)
    t = np.asarray(list(costs), dtype=np.float64)
    if n.shape != t.shape or n.ndim != 1:
        raise InvalidInputError(f"sizes and costs must be 1-D and of equal length, got {n.shape} and {t.shape}.")
    if n.size < 2 or np.unique(n).size < 2:
        raise InvalidInputError("fit_exponent needs at least two distinct sizes.")
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(t)) and np.all(n > 0) and np.all(t > 0)):
        raise InvalidInputError("fit_exponent needs finite, positive sizes and costs.")
    x, y = np.log(n), np.log(t)
    k, log_c = np.polyfit(x, y, 1)
    resid = y - (k * x + log_c)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return PowerFit(float(k), float(math.exp(log_c)), r2, int(n.size))
