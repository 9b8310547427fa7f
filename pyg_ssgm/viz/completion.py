r"""The nodes the model generated against the dropped ones of a generated pair: :func:`plot_completion`."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import InvalidInputError
from .common import COLORS, _draw_edges, _figure, _figure_legend, _matplotlib, _np, _segments, _single_pair, _undirected

__all__ = ["plot_completion"]


def _generated_positions(output, side: str, b: int, exist_threshold: float, generated=None) -> np.ndarray:
    """Pixel-frame positions of the nodes the model generated for side ``side`` of pair ``b``:
    those of ``generated`` (``Predictor.generated_nodes``) where given, else those of the
    completed graph."""
    enc = output.encoded_s if side == "s" else output.encoded_t
    comp = output.completed_s if side == "s" else output.completed_t
    queries = output.queries_s if side == "s" else output.queries_t
    if enc is None:
        raise InvalidInputError("the SSGMOutput carries no encoded graphs; pass the output of SSGM.forward.")
    if generated is not None:
        nodes = generated[0 if side == "s" else 1]
        norm = enc.pos.new_zeros(0, 2) if nodes is None else nodes.pos[nodes.batch == b]
    elif comp is not None:  # exactly the nodes the model added to its completed graph
        norm = comp.pos[(comp.batch == b) & comp.is_generated]
    elif queries is not None:
        keep = (torch.sigmoid(queries.exist_logit) > exist_threshold) & (queries.batch == b)
        norm = queries.pos[keep]
    else:
        norm = enc.pos.new_zeros(0, 2)
    return _np(norm * enc.scale[b] + enc.center[b]).reshape(-1, 2)


def plot_completion(pair, output, b: int = 0, exist_threshold: float = 0.5, generated=None):
    r"""Each side's generated nodes where the model placed them, against where the dropped nodes were.

    Args:
        pair: the generated :class:`~pyg_ssgm.data.PairData` (with ``comp_pos_s`` / ``comp_pos_t``),
            or the batch it belongs to.
        output: the :class:`~pyg_ssgm.SSGMOutput` of the model on the batch holding the pair.
        b: index of the pair in that batch.
        exist_threshold: existence threshold, used only when ``output`` has no completed graphs
            (then the queries whose ``sigmoid(exist_logit)`` exceeds it are the generated nodes).
        generated: the model's completion, ``predictor.generated_nodes(prediction)`` (its
            ``completion_source`` decides it); default: the generated nodes of the completed graphs,
            i.e. those that took part in the matching.

    The model predicts positions in each graph's normalised frame; they are mapped back with the
    graph's centre and RMS radius (``pos * scale + center``). Each true dropped node is paired with
    a generated one by the Hungarian algorithm on distance (dashed grey lines); the title gives the
    node counts and the mean distance in graph radii.

    Returns:
        the :class:`~matplotlib.figure.Figure` (one panel per side).
    """
    _matplotlib()
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from scipy.optimize import linear_sum_assignment

    from ..data.graph import delaunay_edges

    single = _single_pair(pair, b)
    if getattr(single, "comp_pos_s", None) is None or getattr(single, "comp_pos_t", None) is None:
        raise InvalidInputError("plot_completion needs a generated pair (with comp_pos_s / comp_pos_t, made by "
                                "PairGenerator); a real pair has no known missing-node positions.")
    num = output.S.size(0)
    if not 0 <= b < num:
        raise InvalidInputError(f"b={b} is out of range for an output of {num} pairs.")

    fig = _figure((10.0, 4.8))
    axes = fig.subplots(1, 2)
    for ax, side in zip(axes, "st"):
        real = _np(getattr(single, f"pos_{side}")).reshape(-1, 2)
        true = _np(getattr(single, f"comp_pos_{side}")).reshape(-1, 2)
        gen = _generated_positions(output, side, b, exist_threshold, generated)
        enc = output.encoded_s if side == "s" else output.encoded_t
        scale = float(enc.scale[b])
        _draw_edges(ax, real, getattr(single, f"edge_index_{side}", None))
        if len(gen):  # the rebuilt (completed) graph's edges that touch a generated node
            allpos = np.concatenate([real, gen])
            ei = _undirected(delaunay_edges(torch.as_tensor(allpos)))
            ei = ei[:, (ei[0] >= len(real)) | (ei[1] >= len(real))]
            if ei.size:
                ax.add_collection(LineCollection(_segments(allpos[ei[0]], allpos[ei[1]]), colors=COLORS["generated"],
                                                 linewidths=0.7, linestyles=":", alpha=0.6, zorder=1))
        err = float("nan")
        if len(true) and len(gen):
            cost = np.linalg.norm(true[:, None] - gen[None], axis=-1)
            rows, cols = linear_sum_assignment(cost)
            err = float(cost[rows, cols].mean()) / scale
            ax.add_collection(LineCollection(_segments(true[rows], gen[cols]), colors="0.35", linewidths=1.0,
                                             linestyles="--", zorder=2))
        ax.scatter(real[:, 0], real[:, 1], s=30, c=COLORS["source" if side == "s" else "target"],
                   edgecolors="white", linewidths=0.6, zorder=3)
        ax.scatter(true[:, 0], true[:, 1], s=90, facecolors="none", edgecolors=COLORS["truth"], linewidths=1.8,
                   zorder=4)
        ax.scatter(gen[:, 0], gen[:, 1], s=60, c=COLORS["generated"], marker="x", linewidths=2.0, zorder=5)
        pts = np.concatenate([real, true, gen]) if len(real) + len(true) + len(gen) else np.zeros((1, 2))
        lo, hi = pts.min(0), pts.max(0)
        pad = 0.1 * max(float((hi - lo).max()), 1e-6)
        ax.set_xlim(lo[0] - pad, hi[0] + pad)
        ax.set_ylim(hi[1] + pad, lo[1] - pad)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        name = "source" if side == "s" else "target"
        err_text = f", mean error {err:.2f} radii" if np.isfinite(err) else ""
        ax.set_title(f"{name}: lacks {len(true)}, generated {len(gen)}{err_text}", fontsize=10)
    handles = [
        Line2D([], [], ls="", marker="o", color=COLORS["source"], label="kept node (source)"),
        Line2D([], [], ls="", marker="o", color=COLORS["target"], label="kept node (target)"),
        Line2D([], [], ls="", marker="o", markerfacecolor="none", markeredgecolor=COLORS["truth"], markersize=9,
               markeredgewidth=1.8, label="dropped node (true position)"),
        Line2D([], [], ls="", marker="x", color=COLORS["generated"], markersize=8, markeredgewidth=2,
               label="generated node (model)"),
        Line2D([], [], color="0.35", ls="--", label="true - generated (Hungarian)"),
        Line2D([], [], color=COLORS["generated"], ls=":", label="rebuilt edges of generated nodes"),
    ]
    _figure_legend(fig, handles, ncol=3)
    category = getattr(single, "category", None)
    fig.suptitle(f"Completion of a generated pair{f' ({category})' if category else ''}", fontsize=11)
    return fig
