r"""Pictures: predicted matches, generated nodes, affinity / matching / attention matrices, training curves.

matplotlib is the optional extra ``viz`` (``pip install 'pyg_ssgm[viz]'``); it is imported on first
use, and a missing matplotlib raises :class:`~pyg_ssgm.errors.MissingExtraError` naming the extra.
Every function builds a :class:`matplotlib.figure.Figure` on an Agg canvas of its own, without
``pyplot``: no window ever opens and the caller's backend and global state are left alone (in a
notebook, display the returned figure or :func:`save` it).

>>> from pyg_ssgm import viz
>>> fig = viz.plot_pair(pair, pred)          # doctest: +SKIP
>>> viz.save(fig, "pictures/pair.png")       # doctest: +SKIP

Colours used throughout: green = correct, red = wrong, orange = missed (a true partner the model
did not find), hollow = a node with no partner that the model correctly left unmatched.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .errors import InvalidInputError, require

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

__all__ = [
    "COLORS", "plot_pair", "plot_completion", "plot_matrices", "plot_training_curves", "plot_sweep", "save",
    "run_model", "write_pictures",
]


# ----------------------------------------------------------------------------------------- helpers
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


def _load_image(image: Any) -> Optional[np.ndarray]:
    if image is None:
        return None
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise InvalidInputError(f"image {str(path)!r} does not exist; pass images=None to draw points only.")
        import matplotlib.image as mpimg

        image = mpimg.imread(str(path))  # PNG natively, JPEG through Pillow
    if isinstance(image, Tensor):
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3, 4):
            image = image.transpose(1, 2, 0)  # C x H x W -> H x W x C
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise InvalidInputError(f"an image must be H x W or H x W x C, got shape {image.shape}.")
    return image


def _frame(pos: np.ndarray, image: Optional[np.ndarray]) -> Tuple[float, float, float, float]:
    """``(xmin, xmax, ymin, ymax)`` of a side: its image, else its points with a margin."""
    if image is not None:
        h, w = image.shape[:2]
        xmin, ymin = min(0.0, *pos[:, 0]) if len(pos) else 0.0, min(0.0, *pos[:, 1]) if len(pos) else 0.0
        xmax = max(float(w), *pos[:, 0]) if len(pos) else float(w)
        ymax = max(float(h), *pos[:, 1]) if len(pos) else float(h)
        return xmin, xmax, ymin, ymax
    if len(pos) == 0:
        return 0.0, 1.0, 0.0, 1.0
    lo, hi = pos.min(0), pos.max(0)
    pad = 0.08 * max(float((hi - lo).max()), 1e-6)
    return lo[0] - pad, hi[0] + pad, lo[1] - pad, hi[1] + pad


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


# ------------------------------------------------------------------------------------ the pictures
def plot_pair(pair, pred: Optional[Tensor] = None, ax=None, images: Optional[Sequence[Any]] = None,
              title: Optional[str] = None, b: int = 0):
    r"""Source and target side by side with the predicted correspondences as lines.

    Args:
        pair: a :class:`~pyg_ssgm.data.PairData` (or a batch; ``b`` picks the pair). Its ``y`` is the
            ground truth the prediction is scored against.
        pred: long ``[2, K]`` predicted correspondences (local indices), e.g. ``model.predict(batch)[b]``.
            ``None`` draws the ground truth instead.
        ax: a matplotlib Axes to draw into (default: a new figure).
        images: ``(image_s, image_t)``, each a path, an ``H x W (x C)`` array or ``None``; by default
            the pair's ``image_s`` / ``image_t`` attributes when present. With an image the points are
            drawn on it (pixel coordinates); without, the point set with its Delaunay edges.
        title: the axes title (default: category and precision / recall / F1).

    Lines: green = correct, red = wrong, dotted orange = a true correspondence the model missed.
    Nodes: filled = matched, orange = has a partner but left unmatched, hollow = no partner and
    correctly left unmatched.

    Returns:
        the :class:`~matplotlib.figure.Figure`.
    """
    _matplotlib()
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    pair = _single_pair(pair, b)
    pos_s, pos_t = _np(pair.pos_s).reshape(-1, 2), _np(pair.pos_t).reshape(-1, 2)
    n_s, n_t = len(pos_s), len(pos_t)
    y = getattr(pair, "y", None)
    gt = _matching(y if y is not None else torch.zeros(2, 0, dtype=torch.long), "pair.y", n_s, n_t)
    pred = _matching(pred, "pred", n_s, n_t)
    if images is None:
        images = (getattr(pair, "image_s", None), getattr(pair, "image_t", None))
    if len(images) != 2:
        raise InvalidInputError("images must be a pair (image_s, image_t); use None for a side without one.")
    img_s, img_t = _load_image(images[0]), _load_image(images[1])

    # Layout: the target frame to the right of the source frame, aligned at the top (images) or centre.
    fs, ft = _frame(pos_s, img_s), _frame(pos_t, img_t)
    gap = (0.06 if img_s is not None or img_t is not None else 0.25) * max(fs[1] - fs[0], ft[1] - ft[0])
    dx = fs[1] + gap - ft[0]
    dy = fs[2] - ft[2] if (img_s is not None or img_t is not None) else \
        0.5 * (fs[2] + fs[3]) - 0.5 * (ft[2] + ft[3])
    shift = np.array([dx, dy])
    pt = pos_t + shift

    if ax is None:
        fig = _figure((9.0, 5.0))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    for img, frame, off in ((img_s, fs, np.zeros(2)), (img_t, ft, shift)):
        if img is not None:
            h, w = img.shape[:2]
            ax.imshow(img, extent=(off[0], off[0] + w, off[1] + h, off[1]), cmap="gray" if img.ndim == 2 else None,
                      zorder=0)
    if img_s is None:
        _draw_edges(ax, pos_s, getattr(pair, "edge_index_s", None))
    if img_t is None:
        _draw_edges(ax, pt, getattr(pair, "edge_index_t", None))

    gt_set = {(int(i), int(j)) for i, j in gt.T}
    partner_s, partner_t = set(gt[0].tolist()), set(gt[1].tolist())
    handles: List[Any] = []
    if pred is None:  # ground truth only
        if gt.shape[1]:
            ax.add_collection(LineCollection(_segments(pos_s[gt[0]], pt[gt[1]]), colors=COLORS["truth"],
                                             linewidths=1.2, alpha=0.8, zorder=2))
        handles.append(Line2D([], [], color=COLORS["truth"], label=f"true correspondence ({gt.shape[1]})"))
        status_s = np.array(["matched" if i in partner_s else "ok" for i in range(n_s)])
        status_t = np.array(["matched" if j in partner_t else "ok" for j in range(n_t)])
        counts_title = f"{gt.shape[1]} true correspondences"
    else:
        correct = np.array([(int(i), int(j)) in gt_set for i, j in pred.T], dtype=bool)
        found = {(int(i), int(j)) for i, j in pred.T[correct]} if pred.shape[1] else set()
        missed = np.array([(int(i), int(j)) not in found for i, j in gt.T], dtype=bool)
        for mask, color, lw, style, label in (
                (missed, COLORS["missed"], 1.0, ":", "true match missed"),
                (~correct, COLORS["wrong"], 1.4, "-", "wrong match"),
                (correct, COLORS["correct"], 1.4, "-", "correct match")):
            src = gt if label == "true match missed" else pred
            if mask.any():
                ax.add_collection(LineCollection(_segments(pos_s[src[0, mask]], pt[src[1, mask]]), colors=color,
                                                 linewidths=lw, linestyles=style, zorder=2))
            handles.append(Line2D([], [], color=color, lw=lw, ls=style, label=f"{label} ({int(mask.sum())})"))
        in_pred_s, in_pred_t = set(pred[0].tolist()), set(pred[1].tolist())
        status_s = np.array(["matched" if i in in_pred_s else ("missed" if i in partner_s else "ok")
                             for i in range(n_s)])
        status_t = np.array(["matched" if j in in_pred_t else ("missed" if j in partner_t else "ok")
                             for j in range(n_t)])
        tp, k, m = int(correct.sum()), pred.shape[1], gt.shape[1]
        p = tp / k if k else float(m == 0)
        r = tp / m if m else float(k == 0)
        f = 2 * tp / (k + m) if k + m else 1.0
        counts_title = f"precision {p:.2f}  recall {r:.2f}  F1 {f:.2f}  ({tp}/{k} predicted correct, {m} true)"

    size = 36 if max(n_s, n_t) <= 40 else 16
    for pos, status, side in ((pos_s, status_s, "source"), (pt, status_t, "target")):
        if not len(pos):
            continue
        sel = status == "matched"
        ax.scatter(pos[sel, 0], pos[sel, 1], s=size, c=COLORS[side], edgecolors="white", linewidths=0.6, zorder=3)
        sel = status == "missed"
        ax.scatter(pos[sel, 0], pos[sel, 1], s=size, c=COLORS["missed"], edgecolors="black", linewidths=0.6,
                   zorder=3)
        sel = status == "ok"
        ax.scatter(pos[sel, 0], pos[sel, 1], s=size, facecolors="white" if img_s is None else "none",
                   edgecolors=COLORS["unmatched"], linewidths=1.2, zorder=3)
    n_missed = int((status_s == "missed").sum() + (status_t == "missed").sum())
    n_ok = int((status_s == "ok").sum() + (status_t == "ok").sum())
    handles += [
        Line2D([], [], ls="", marker="o", color=COLORS["source"], label="source node"),
        Line2D([], [], ls="", marker="o", color=COLORS["target"], label="target node"),
    ]
    if pred is not None:
        handles.append(Line2D([], [], ls="", marker="o", markerfacecolor=COLORS["missed"], markeredgecolor="black",
                              label=f"has a partner, left unmatched ({n_missed})"))
    handles.append(Line2D([], [], ls="", marker="o", markerfacecolor="white", markeredgecolor=COLORS["unmatched"],
                          label=("no partner, correctly left unmatched" if pred is not None else "no partner")
                          + f" ({n_ok})"))

    ax.text(0.5 * (fs[0] + fs[1]), fs[2], f"source ({n_s} nodes)", ha="center", va="bottom", fontsize=9)
    ax.text(0.5 * (ft[0] + ft[1]) + dx, ft[2] + dy, f"target ({n_t} nodes)", ha="center", va="bottom", fontsize=9)
    ax.set_xlim(fs[0], ft[1] + dx)
    ax.set_ylim(max(fs[3], ft[3] + dy), min(fs[2], ft[2] + dy) - 0.06 * (fs[3] - fs[2]))  # y grows downwards
    ax.set_aspect("equal")
    ax.axis("off")
    category = getattr(pair, "category", None)
    category = category[0] if isinstance(category, (list, tuple)) and category else category
    ax.set_title(title if title is not None else (f"{category}: " if category else "") + counts_title, fontsize=10)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8, frameon=False)
    return fig


def _generated_positions(output, side: str, b: int, exist_threshold: float, generated=None) -> np.ndarray:
    """Pixel-frame positions of the nodes the model generated for side ``side`` of pair ``b``:
    those of ``generated`` (``SSGM.generated_nodes(output)``) where given, else those of the
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
        generated: the model's completion, ``model.generated_nodes(output)`` (its
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

    from .data.graph import delaunay_edges

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


def plot_matrices(output, b: int = 0, gt: Optional[Tensor] = None, attention=None):
    r"""Heatmaps of one pair: affinity ``S``, predicted matching ``X``, ground truth, decoder attention.

    Args:
        output: an :class:`~pyg_ssgm.SSGMOutput`.
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

    B = output.S.size(0)
    if not 0 <= b < B:
        raise InvalidInputError(f"b={b} is out of range for an output of {B} pairs.")
    n1, n2 = int(output.n1[b]), int(output.n2[b])
    r1, r2 = int(output.num_real_s[b]), int(output.num_real_t[b])
    S = _np(output.S[b, :n1, :n2])
    X = _np(output.X[b, :n1, :n2])
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

    from .metrics_log import read_metrics

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


def save(fig, path: PathLike, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix, e.g. ``.png``), creating folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


# ------------------------------------------------------------------------------- running the model
@torch.no_grad()
def run_model(model, pairs: Union[Any, Sequence[Any]], device: Union[str, torch.device, None] = None):
    r"""Run ``model`` (eval mode, no gradients) on one pair or a list of pairs, with decoder attention.

    Returns ``(batch, output)``: the PyG batch and the :class:`~pyg_ssgm.SSGMOutput`, whose
    ``queries_s.attention`` / ``queries_t.attention`` hold the query decoder's last-layer attention
    (``SSGM.forward(..., return_attention=True)``).
    """
    from torch_geometric.data import Batch

    from .data import PairData

    pairs = [pairs] if isinstance(pairs, PairData) else list(pairs)
    if not pairs:
        raise InvalidInputError("run_model needs at least one pair.")
    device = device or next(model.parameters()).device
    batch = Batch.from_data_list(pairs, follow_batch=PairData.FOLLOW_BATCH).to(device)
    was_training = model.training
    model.eval()
    try:
        out = model(batch, compute_loss=False, return_attention=True)
    finally:
        model.train(was_training)
    return batch, out


def _spread(n_items: int, k: int) -> List[int]:
    """``k`` indices spread evenly over ``range(n_items)`` (all of them when ``k >= n_items``)."""
    if k >= n_items:
        return list(range(n_items))
    return sorted({int(round(v)) for v in np.linspace(0, n_items - 1, k)})


def write_pictures(model, instances, out_dir: PathLike, num_pairs: int = 3, generator=None, seed: int = 0,
                   images: bool = True, real: bool = True, generated: bool = True, dpi: int = 100,
                   device: Union[str, torch.device, None] = None) -> List[Path]:
    r"""Pictures of a few pairs of ``instances`` (a split of a dataset) under ``out_dir``.

    * ``real``: ``real_<k>_matches.png`` and ``real_<k>_matrices.png`` for ``num_pairs`` real
      cross-instance pairs (spread over the categories), unfiltered, on the instances' images when
      they have them (``images=False``: points only);
    * ``generated``: ``generated_<k>_completion.png`` and ``generated_<k>_matches.png`` for
      ``num_pairs`` pairs made by ``generator`` (a :class:`~pyg_ssgm.data.PairGenerator`; default
      settings when ``None``), showing the nodes the model generated for what each side lacks.

    Which pairs are drawn is a pure function of ``seed``. Returns the written paths.
    """
    _matplotlib()
    from .data import PairGenerator, cross_instance_pairs, make_pair

    instances = list(instances)
    if not instances:
        raise InvalidInputError("no instances to draw pairs from: the split is empty.")
    if num_pairs < 1:
        raise InvalidInputError(f"num_pairs must be >= 1, got {num_pairs}.")
    out_dir = Path(out_dir)
    written: List[Path] = []
    if real:
        index = cross_instance_pairs(instances, max_pairs_per_category=num_pairs, seed=seed)
        if not index:
            raise InvalidInputError("no real pair to draw: the split has no two instances of one category "
                                    "(draw generated pairs only, or pick another split).")
        for k, idx in enumerate(_spread(len(index), num_pairs)):
            i, j = index[idx]
            pair = make_pair(instances[i], instances[j])
            _, out = run_model(model, pair, device)
            imgs = (instances[i].image, instances[j].image) if images else (None, None)
            if any(isinstance(im, (str, os.PathLike)) and not Path(im).is_file() for im in imgs):
                imgs = (None, None)
            fig = plot_pair(pair, out.pairs[0].cpu(), images=imgs)
            if instances[i].id is not None:
                fig.axes[0].set_title(f"{fig.axes[0].get_title()}\n{instances[i].id} -> {instances[j].id}",
                                      fontsize=9)
            written.append(save(fig, out_dir / f"real_{k}_matches.png", dpi))
            written.append(save(plot_matrices(out, 0, gt=pair.y), out_dir / f"real_{k}_matrices.png", dpi))
    if generated:
        gen = generator or PairGenerator()
        for k, idx in enumerate(_spread(len(instances), num_pairs)):
            pair = gen(instances[idx], torch.Generator().manual_seed(seed * 1000 + k))
            batch, out = run_model(model, pair, device)
            completion = plot_completion(batch, out, 0, generated=model.generated_nodes(out))
            written.append(save(completion, out_dir / f"generated_{k}_completion.png", dpi))
            written.append(save(plot_pair(pair, out.pairs[0].cpu()), out_dir / f"generated_{k}_matches.png", dpi))
    return written
