r"""Heatmaps of one pair: affinity, predicted matching, ground truth and the query decoder's attention
(:func:`plot_matrices`)."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidInputError
from .common import COLORS, _figure, _matching, _matplotlib, _np

__all__ = ["plot_matrices"]


def _attention_by_side(output, attention) -> Dict[str, Mapping[str, Any]]:
    """Normalise the ``attention`` argument of :func:`plot_matrices` to ``{"s": att, "t": att}``."""
    if attention is None:
        found = {}
        for side, q in (("s", output.queries_s), ("t", output.queries_t)):
            if q is not None and getattr(q, "attention", None) is not None:
                found[side] = q.attention
        return found
    if hasattr(attention, "attention"):  # a QueryOutput
        return {"s": attention.attention} if attention.attention is not None else {}
    if isinstance(attention, Mapping):
        if set(attention) <= {"s", "t"}:
            return {k: v for k, v in attention.items() if v is not None}
        if {"own", "other"} <= set(attention):
            return {"s": attention}
    raise InvalidInputError("attention must be None, a QueryOutput, a decoder attention dict with keys "
                            "'self', 'own', 'other', or {'s': ..., 't': ...} of such dicts.")


def _attention_matrix(att, b: int, num_queries: int) -> np.ndarray:
    """``[Q, n]`` head-averaged attention of the queries of graph ``b`` over the attended nodes."""
    edge_index, alpha = att
    edge_index = edge_index.detach().cpu()
    alpha = alpha.detach().cpu().double()
    alpha = alpha.mean(-1) if alpha.dim() > 1 else alpha
    q = edge_index[1]
    sel = (q >= b * num_queries) & (q < (b + 1) * num_queries)
    if not sel.any():
        return np.zeros((num_queries, 0))
    src, q = edge_index[0, sel], q[sel] - b * num_queries
    src = src - src.min()  # the attended graph's nodes are contiguous: local index
    mat = np.zeros((num_queries, int(src.max()) + 1))
    mat[q.numpy(), src.numpy()] = alpha[sel].numpy()
    return mat


def plot_matrices(prediction, b: int = 0, gt: Optional[Tensor] = None, attention=None):
    r"""Heatmaps of one pair: affinity ``S``, predicted matching ``X``, ground truth, decoder attention.

    Args:
        prediction: a :class:`~pyg_ssgm.Prediction` (``Predictor.match``).
        b: which pair of the batch.
        gt: long ``[2, M]`` true correspondences of the pair (local indices, e.g. ``pair.y``), or ``None``.
        attention: the query decoder's last-layer attention. ``None`` takes it from ``output`` when it
            is there (the output of :func:`run_model` always has it); otherwise a ``QueryOutput``,
            a decoder attention dict ``{"self", "own", "other"}`` (source queries) or
            ``{"s": ..., "t": ...}`` of such dicts.

    ``S`` and ``X`` cover the *completed* graphs: real nodes first, then the generated ones (after the
    dashed lines). In the ``X`` panel, with ``gt`` given, green marks correct and red wrong pairs, grey
    a real node matched to a generated node (which leaves it unmatched in the prediction). The
    attention panels show, per query (labelled with its existence probability), the head-averaged
    attention over the real nodes of its own graph and of the other graph.

    Returns:
        the :class:`~matplotlib.figure.Figure`.
    """
    _matplotlib()
    from matplotlib.colors import ListedColormap

    output = prediction.output
    B = output.S.size(0)
    if not 0 <= b < B:
        raise InvalidInputError(f"b={b} is out of range for an output of {B} pairs.")
    n1, n2 = int(output.n1[b]), int(output.n2[b])
    r1, r2 = int(output.num_real_s[b]), int(output.num_real_t[b])
    S = _np(output.S[b, :n1, :n2])
    X = _np(prediction.X[b, :n1, :n2])
    G = None
    if gt is not None:
        g = _matching(gt, "gt", r1, r2)
        G = np.zeros((n1, n2))
        G[g[0], g[1]] = 1.0
    att = _attention_by_side(output, attention)

    top: List[Tuple[str, np.ndarray, dict]] = [
        # robust colour limits: a few very negative entries (e.g. geometric penalties) would wash it out
        ("affinity S (completed graphs)", S, {"cmap": "viridis", "vmin": float(np.percentile(S, 5)) if S.size else None,
                                               "vmax": float(S.max()) if S.size else None}),
    ]
    if G is not None:
        Xc = np.where(X > 0.5, np.where(G > 0.5, 1.0, 2.0), 0.0)
        Xc[r1:][Xc[r1:] > 0] = 3.0  # a real node matched to a generated one stays unmatched
        Xc[:, r2:][Xc[:, r2:] > 0] = 3.0
        top.append(("predicted X (green correct, red wrong, grey: to a generated node)", Xc,
                    {"cmap": ListedColormap(["white", COLORS["correct"], COLORS["wrong"], "0.6"]),
                     "vmin": 0, "vmax": 3}))
        top.append(("ground truth", G, {"cmap": ListedColormap(["white", "black"]), "vmin": 0, "vmax": 1}))
    else:
        top.append(("predicted matching X", X, {"cmap": ListedColormap(["white", "black"]), "vmin": 0, "vmax": 1}))
    bottom: List[Tuple[str, np.ndarray, List[str], str]] = []
    for side, queries in (("s", output.queries_s), ("t", output.queries_t)):
        if side not in att:
            continue
        if queries is None:
            continue
        Q = queries.exist_logit.numel() // B
        probs = torch.sigmoid(queries.exist_logit[b * Q:(b + 1) * Q]).tolist()
        labels = [f"q{k} ({p:.2f})" for k, p in enumerate(probs)]
        own, other = ("source", "target") if side == "s" else ("target", "source")
        bottom.append((f"{own} queries -> {own} nodes", _attention_matrix(att[side]["own"], b, Q), labels, own))
        bottom.append((f"{own} queries -> {other} nodes", _attention_matrix(att[side]["other"], b, Q), labels, other))

    from matplotlib.ticker import MaxNLocator

    fig = _figure((4.4 * max(len(top), 0.75 * len(bottom)), 3.9 * (2 if bottom else 1)))
    subfigs = fig.subfigures(2, 1) if bottom else [fig]
    for ax, (name, mat, kw) in zip(np.atleast_1d(subfigs[0].subplots(1, len(top))), top):
        im = ax.imshow(mat, interpolation="nearest", aspect="auto", **kw)
        if kw.get("cmap") == "viridis":
            subfigs[0].colorbar(im, ax=ax, shrink=0.85, extend="min")
        light = kw.get("cmap") == "viridis"
        if r1 < n1:
            ax.axhline(r1 - 0.5, color="white" if light else "0.5", ls="--", lw=1.0)
        if r2 < n2:
            ax.axvline(r2 - 0.5, color="white" if light else "0.5", ls="--", lw=1.0)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(f"target nodes ({r2} real + {n2 - r2} generated)", fontsize=8)
        ax.set_ylabel(f"source nodes ({r1} real + {n1 - r1} gen.)", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
    if bottom:
        for ax, (name, mat, labels, attended) in zip(np.atleast_1d(subfigs[1].subplots(1, len(bottom))), bottom):
            im = ax.imshow(mat, interpolation="nearest", aspect="auto", cmap="magma", vmin=0)
            subfigs[1].colorbar(im, ax=ax, shrink=0.85)
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
            ax.set_xlabel(f"{attended} nodes (real)", fontsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(name, fontsize=9)
            ax.tick_params(axis="x", labelsize=7)
        subfigs[1].suptitle("query decoder attention (last layer, mean over heads; label: existence probability)",
                            fontsize=9)
    fig.suptitle(f"One pair: {r1} x {r2} real nodes, {n1 - r1} + {n2 - r2} generated", fontsize=11)
    return fig
