"""Markdown tables and the cell formatters of the benchmark's numbers (``None`` prints as ``n/a``)."""
from __future__ import annotations

import math
from typing import Any, Iterable, Optional, Sequence

from ..errors import InvalidInputError

__all__ = ["format_table"]


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: Optional[str] = None) -> str:
    """A GitHub-markdown pipe table, padded so it also reads well in a terminal.

    ``align``: one character per column, ``l`` or ``r`` (default: first column left, others right).
    Cells are converted with ``str``; ``None`` becomes ``n/a``.
    """
    headers = [str(h) for h in headers]
    rows = [["n/a" if c is None else str(c) for c in row] for row in rows]
    width = len(headers)
    for row in rows:
        if len(row) != width:
            raise InvalidInputError(f"table row has {len(row)} cells, the header has {width}: {row}.")
    align = align or ("l" + "r" * (width - 1))
    if len(align) != width or set(align) - {"l", "r"}:
        raise InvalidInputError(f"align must be {width} characters of 'l'/'r', got {align!r}.")
    widths = [max(3, len(headers[i]), *(len(r[i]) for r in rows)) for i in range(width)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if a == "l" else c.rjust(w)
                                 for c, w, a in zip(cells, widths, align)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else (":" + "-" * (w + 1))
                         for w, a in zip(widths, align)) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def _f(value: Optional[float], digits: int = 3) -> Optional[str]:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return f"{value:.{digits}f}"


def _ms(seconds: Optional[float]) -> Optional[str]:
    if seconds is None:
        return None
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _pct(share: Optional[float]) -> Optional[str]:
    return None if share is None else f"{100 * share:.1f}%"


def _ratio(value: Optional[float]) -> Optional[str]:
    return None if value is None else f"{value:.2f}x"


def _mib(num_bytes: Optional[int]) -> Optional[str]:
    return None if num_bytes is None else f"{num_bytes / 2 ** 20:.1f}"
