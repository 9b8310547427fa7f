r"""Line plots of numbers: a run's per-epoch training curves (:func:`plot_training_curves`) and a score
against a swept setting (:func:`plot_sweep`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import InvalidInputError
from .common import PathLike, _figure, _matplotlib

__all__ = ["plot_training_curves", "plot_sweep"]


_VAL_KEYS = ("val_f1", "val_precision", "val_recall", "val_intersection_acc", "val_count_acc")
_LABELS = {
    "val_f1": "F1 (unfiltered)", "val_precision": "precision", "val_recall": "recall",
    "val_intersection_acc": "intersection accuracy", "val_count_acc": "completion count accuracy",
    "train_loss": "total", "train_oversmoothing": "mean pairwise cosine",
}


def plot_training_curves(metrics: Union[PathLike, Sequence[Mapping[str, float]]]):
    r"""Per-epoch training losses, validation scores, over-smoothing and completion error of a run.

    Args:
        metrics: a run folder, its ``metrics.csv`` (written by training, see
            :mod:`pyg_ssgm.metrics_log`), or the rows themselves (dicts with an ``epoch`` key).

    Panels: the training losses (``train_*``), the validation scores on real pairs (``val_f1`` ...),
    the over-smoothing measure ``train_oversmoothing`` (mean pairwise cosine similarity of node
    embeddings: 1 = collapsed) and, when logged, ``val_position_error`` of the completion.

    Returns:
        the :class:`~matplotlib.figure.Figure`.
    """
    _matplotlib()
    from matplotlib.ticker import MaxNLocator

    from ..metrics_log import read_metrics

    if isinstance(metrics, (str, os.PathLike)):
        rows = read_metrics(Path(metrics))
        if rows is None:
            where = Path(metrics)
            raise InvalidInputError(f"no metrics.csv at {str(where if where.suffix else where / 'metrics.csv')!r}; "
                                    "pass a run folder written by pyg_ssgm.train (or its metrics.csv).")
    else:
        rows = list(metrics)
    if not rows:
        raise InvalidInputError("the metrics log is empty: train for at least one epoch first.")
    rows = sorted(rows, key=lambda r: r.get("epoch", 0))
    epochs = np.array([r.get("epoch", k + 1) for k, r in enumerate(rows)], dtype=float)
    keys: List[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]

    def series(key):
        return np.array([r.get(key, np.nan) for r in rows], dtype=float)

    losses = [k for k in keys if k.startswith("train_") and k != "train_oversmoothing"]
    losses = sorted(losses, key=lambda k: k != "train_loss")
    panels = [("training losses", losses, None), ("validation, real pairs", [k for k in _VAL_KEYS if k in keys],
                                                  (0.0, 1.02)),
              ("over-smoothing of node embeddings", ["train_oversmoothing"] if "train_oversmoothing" in keys else [],
               None)]
    if "val_position_error" in keys:
        panels.append(("completion position error (val)", ["val_position_error"], None))
    fig = _figure((10.0, 7.0) if len(panels) == 4 else (14.0, 3.8))
    axes = fig.subplots(2, 2).ravel() if len(panels) == 4 else fig.subplots(1, 3)
    marker = "o" if len(rows) <= 40 else None
    for ax, (title, names, ylim) in zip(axes, panels):
        for name in names:
            ax.plot(epochs, series(name), marker=marker, markersize=3, lw=2.2 if name == "train_loss" else 1.3,
                    label=_LABELS.get(name, name.replace("train_", "").replace("val_", "").replace("_", " ")))
        if not names:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="0.5")
        if title.startswith("over-smoothing"):
            ax.set_ylabel("mean pairwise cosine (1 = collapsed)", fontsize=8)
            ax.set_ylim(min(0.0, float(np.nanmin(series("train_oversmoothing"))) if names else 0.0), 1.0)
        elif title.startswith("completion"):
            ax.set_ylabel("graph radii", fontsize=8)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if len(names) > 1:
            ax.legend(fontsize=7, loc="best", framealpha=0.7)
    return fig


def plot_sweep(x: Sequence[float], series: Mapping[str, Sequence[float]], xlabel: str, ylabel: str = "F1",
               title: Optional[str] = None, ylim: Optional[Tuple[float, float]] = (0.0, 1.0)):
    r"""One line per method of a score against a swept setting (e.g. F1 against the share of
    dropped keypoints, ``benchmarks/partial_sweep.py``).

    Args:
        x: the swept values (one per point).
        series: method name -> its scores, one per value of ``x`` (NaN: not measured).
        xlabel / ylabel / title: axis labels and an optional title; ``ylim``: y range (``None``: automatic).

    Returns:
        the :class:`~matplotlib.figure.Figure`.
    """
    if not series:
        raise InvalidInputError("plot_sweep needs at least one series (method name -> scores).")
    bad = [name for name, ys in series.items() if len(ys) != len(x)]
    if bad:
        raise InvalidInputError(f"series {bad} must have one score per swept value ({len(x)}).")
    fig = _figure((5.5, 3.8))
    ax = fig.subplots()
    for name, ys in series.items():
        ax.plot(np.asarray(x, dtype=float), np.asarray(ys, dtype=float), marker="o", lw=1.6, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.7)
    return fig
