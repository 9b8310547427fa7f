r"""Source and target side by side with the predicted correspondences: :func:`plot_pair`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidInputError
from .common import COLORS, _draw_edges, _figure, _matching, _matplotlib, _np, _segments, _single_pair

__all__ = ["plot_pair"]


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


def plot_pair(pair, pred: Optional[Tensor] = None, ax=None, images: Optional[Sequence[Any]] = None,
              title: Optional[str] = None, b: int = 0):
    r"""Source and target side by side with the predicted correspondences as lines.

    Args:
        pair: a :class:`~pyg_ssgm.data.PairData` (or a batch; ``b`` picks the pair). Its ``y`` is the
            ground truth the prediction is scored against.
        pred: long ``[2, K]`` predicted correspondences (local indices), e.g. ``predictor(batch)[b]``.
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
