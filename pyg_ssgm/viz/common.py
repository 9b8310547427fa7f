r"""What every picture shares: the lazy matplotlib import, a figure without ``pyplot``, the colours,
the checks that turn a pair and its matchings into arrays, edge drawing and :func:`save`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidInputError, require

PathLike = Union[str, "os.PathLike[str]"]

#: Colours of the pictures (matplotlib colour specs); change them to restyle every figure.
COLORS: Dict[str, str] = {
    "source": "#1f77b4",
    "target": "#7b4fa6",
    "edge": "#b8b8b8",
    "correct": "#2ca02c",
    "wrong": "#d62728",
    "missed": "#ff7f0e",
    "unmatched": "#222222",
    "truth": "#2ca02c",
    "generated": "#d62728",
}


def _matplotlib():
    """matplotlib, imported lazily (:class:`MissingExtraError` naming the ``viz`` extra if absent)."""
    return require("matplotlib", "viz")


def _figure(figsize: Tuple[float, float]):
    """A Figure on its own Agg canvas (no pyplot: no window, no global backend switch)."""
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _np(t: Any) -> np.ndarray:
    if isinstance(t, Tensor):
        return t.detach().cpu().double().numpy()
    return np.asarray(t, dtype=np.float64)


def _single_pair(pair: Any, b: int = 0):
    """The ``b``-th :class:`PairData` of a batch, or ``pair`` itself when it is one pair (then ``b``
    only indexes the model output that goes with it)."""
    from torch_geometric.data import Batch

    if pair is None or getattr(pair, "pos_s", None) is None or getattr(pair, "pos_t", None) is None:
        raise InvalidInputError(f"expected a PairData (or a batch of them) with pos_s and pos_t, got "
                                f"{type(pair).__name__}.")
    if isinstance(pair, Batch):
        if not 0 <= b < pair.num_graphs:
            raise InvalidInputError(f"pair index b={b} is out of range for a batch of {pair.num_graphs} pairs.")
        return pair.get_example(b)
    return pair


def _matching(m: Optional[Any], name: str, n_s: int, n_t: int) -> Optional[np.ndarray]:
    """A long ``[2, K]`` matching as an ``int`` array, checked against the node counts."""
    if m is None:
        return None
    m = torch.as_tensor(m)
    if m.dim() != 2 or m.size(0) != 2:
        raise InvalidInputError(f"{name} must be a long [2, K] tensor of (source, target) indices, "
                                f"got shape {list(m.shape)}.")
    m = m.detach().cpu().long().numpy()
    if m.size and (m.min() < 0 or m[0].max() >= n_s or m[1].max() >= n_t):
        raise InvalidInputError(f"{name} holds an index outside the graphs ({n_s} source, {n_t} target nodes).")
    return m


def _segments(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.stack([p, q], axis=1) if len(p) else np.zeros((0, 2, 2))


def _undirected(edge_index: Optional[Tensor]) -> np.ndarray:
    if edge_index is None or edge_index.numel() == 0:
        return np.zeros((2, 0), dtype=int)
    ei = edge_index.detach().cpu().long().numpy()
    return ei[:, ei[0] < ei[1]]


def _draw_edges(ax, pos: np.ndarray, edge_index, color: str = None, **kw) -> None:
    from matplotlib.collections import LineCollection

    ei = _undirected(edge_index)
    if ei.size:
        ax.add_collection(LineCollection(_segments(pos[ei[0]], pos[ei[1]]), colors=color or COLORS["edge"],
                                         linewidths=kw.pop("linewidths", 0.8), zorder=1, **kw))


def _figure_legend(fig, handles, ncol: int) -> None:
    """A legend below all panels (inside the constrained layout where matplotlib >= 3.7 allows it)."""
    try:
        fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)
    except ValueError:  # matplotlib < 3.7: no "outside" locations; savefig's tight bbox keeps it visible
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, fontsize=8,
                   frameon=False)


def save(fig, path: PathLike, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix, e.g. ``.png``), creating folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path
