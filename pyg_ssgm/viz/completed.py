r"""A real pair's completed graphs: the points the model generates for what each image lacks, by
name, against where hidden keypoints really were: :func:`plot_completed_pair`."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..errors import InvalidInputError
from .common import COLORS, _draw_edges, _figure, _figure_legend, _matplotlib, _np, _single_pair
from .pairs import _frame, _load_image

__all__ = ["plot_completed_pair"]


def _crop(ax, points: np.ndarray, image: Optional[np.ndarray], margin: float = 0.25) -> None:
    """Frame the axes on ``points`` plus ``margin`` of their extent, inside the image where there is one."""
    lo, hi = points.min(0), points.max(0)
    pad = margin * max(float((hi - lo).max()), 1e-6)
    x0, x1, y0, y1 = lo[0] - pad, hi[0] + pad, lo[1] - pad, hi[1] + pad
    if image is not None:
        h, w = image.shape[:2]
        x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)  # y grows downwards


def _label(ax, xy, text: str, color: str, offset=(5, 4), boxed: bool = True) -> None:
    ax.annotate(text, xy, xytext=offset, textcoords="offset points", fontsize=7, color=color, zorder=6,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.75) if boxed else None)


def plot_completed_pair(pair, completion, hidden: Optional[Mapping[Any, Sequence[float]]] = None,
                        images: Optional[Sequence[Any]] = None, b: int = 0, crop: bool = True,
                        label_keypoints: bool = False, title: Optional[str] = None):
    r"""Source and target of a real pair, each with the points the model generates for what it lacks.

    Args:
        pair: the real :class:`~pyg_ssgm.data.PairData` the model saw (or its batch; ``b`` picks it).
        completion: its :class:`~pyg_ssgm.model.output.Completion`, ``predictor.complete(batch)[b]``.
        hidden: the true positions of keypoints hidden from the target, by name (e.g. to see whether
            the model puts them back where they were); drawn as green circles, each joined to the
            generated point that stands for the same name.
        images: ``(image_s, image_t)``, each a path, an ``H x W (x C)`` array or ``None`` (points and
            their Delaunay edges only).
        crop: frame each side on its keypoints (and generated points) rather than the whole image.
        label_keypoints: write every keypoint's name beside it (grey); by default only the partners
            of generated points (red rings) and the hidden keypoints (green) are named.
        title: the figure's title (default: the category and what was generated).

    Points: filled = matched by the model, hollow = left unmatched; red crosses = generated, labelled
    with the name of the node of the other image each stands for; a red ring on a source node = its
    partner is generated in the target.

    Returns:
        the :class:`~matplotlib.figure.Figure` (one panel per side).
    """
    _matplotlib()
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    single = _single_pair(pair, b)
    images = images if images is not None else (None, None)
    if len(images) != 2:
        raise InvalidInputError("images must be a pair (image_s, image_t); use None for a side without one.")
    names = {"s": completion.names_s or getattr(single, "names_s", None),
             "t": completion.names_t or getattr(single, "names_t", None)}
    hidden = {k: np.asarray(v, dtype=np.float64) for k, v in (hidden or {}).items()}
    fig = _figure((10.0, 5.0))
    axes = fig.subplots(1, 2)
    for ax, side, image in zip(axes, "st", images):
        image = _load_image(image)
        pos = _np(getattr(single, f"pos_{side}")).reshape(-1, 2)
        own, other = (completion.source, "t") if side == "s" else (completion.target, "s")
        generated = _np(own.pos).reshape(-1, 2)
        if image is not None:
            h, w = image.shape[:2]
            ax.imshow(image, extent=(0, w, h, 0), cmap="gray" if image.ndim == 2 else None, zorder=0)
        else:
            _draw_edges(ax, pos, getattr(single, f"edge_index_{side}", None))
        matched = np.zeros(len(pos), dtype=bool)
        matched[completion.matches[0 if side == "s" else 1].tolist()] = True
        color = COLORS["source" if side == "s" else "target"]
        ax.scatter(*pos[matched].T, s=30, c=color, edgecolors="white", linewidths=0.6, zorder=3)
        ax.scatter(*pos[~matched].T, s=30, facecolors="none", edgecolors=color, linewidths=1.4, zorder=3)
        rings = (completion.target if side == "s" else completion.source).partner.tolist()
        rings = [j for j in rings if 0 <= j < len(pos)]
        ax.scatter(*pos[rings].T.reshape(2, -1), s=110, facecolors="none", edgecolors=COLORS["generated"],
                   linewidths=1.3, zorder=2)
        if names[side] is not None:
            for k, (xy, name) in enumerate(zip(pos, names[side])):
                if name is not None and (label_keypoints or k in rings):
                    _label(ax, xy, str(name), "0.35", offset=(4, -9), boxed=False)
        truths = []
        for (x, y), j in zip(generated, own.partner.tolist()):
            name = names[other][j] if names[other] is not None and j >= 0 else None
            _label(ax, (x, y), f"{name if name is not None else '?'}", COLORS["generated"])
            if side == "t" and name in hidden:
                truths.append((hidden[name], (x, y)))
        if side == "t" and hidden:
            true = np.stack(list(hidden.values()))
            ax.scatter(*true.T, s=90, facecolors="none", edgecolors=COLORS["truth"], linewidths=2.0, zorder=4)
            placed = {id(t) for t, _ in truths}
            for name, xy in hidden.items():
                if id(xy) not in placed:  # one generated for it carries the name already
                    _label(ax, xy, str(name), COLORS["truth"], offset=(6, -11))
            if truths:
                ax.add_collection(LineCollection([np.stack([t, g]) for t, g in truths], colors=COLORS["truth"],
                                                 linewidths=1.2, linestyles="--", zorder=4))
        if len(generated):
            ax.scatter(*generated.T, s=60, c=COLORS["generated"], marker="x", linewidths=2.0, zorder=5)
        shown = np.concatenate([pos, generated] + ([np.stack(list(hidden.values()))] if side == "t" and hidden
                                                   else []))
        if crop:
            _crop(ax, shown, image)
        else:
            x0, x1, y0, y1 = _frame(shown, image)
            ax.set_xlim(x0, x1)
            ax.set_ylim(y1, y0)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        what = "source" if side == "s" else "target"
        ax.set_title(f"{what}: {len(pos)} keypoints, {len(generated)} generated", fontsize=10)
    handles = [
        Line2D([], [], ls="", marker="o", color="0.4", label="keypoint matched by the model"),
        Line2D([], [], ls="", marker="o", markerfacecolor="none", markeredgecolor="0.4", label="left unmatched"),
        Line2D([], [], ls="", marker="x", color=COLORS["generated"], markersize=8, markeredgewidth=2,
               label="generated (labelled: the partner it stands for)"),
        Line2D([], [], ls="", marker="o", markerfacecolor="none", markeredgecolor=COLORS["generated"], markersize=10,
               label="partner of a generated point"),
    ]
    if hidden:
        handles.append(Line2D([], [], ls="--", marker="o", markerfacecolor="none", color=COLORS["truth"],
                              markersize=9, label="hidden keypoint (true position)"))
    _figure_legend(fig, handles, ncol=3)
    category = completion.category or getattr(single, "category", None)
    fig.suptitle(title if title is not None else (f"{category}: " if category else "") + "completed graphs"
                 + (f", {len(hidden)} keypoint(s) hidden from the target" if hidden else ""), fontsize=11)
    return fig
