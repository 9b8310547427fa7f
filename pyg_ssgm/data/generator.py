"""Training pairs from single instances (self-supervision) and real pairs from two instances."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor

from ..validation import check_field_types
from ..errors import ConfigError, InvalidInputError
from .affine import apply_affine, fit_affine
from .graph import delaunay_edges, edge_attributes
from .instance import KeypointInstance, check_name_types
from .pair_data import PairData
from .perturb import uniform_in_box
from .sides import SIDES_KEY, mirror_identity, swap_sides
from .transforms import GeometricAugmentation


class _View(NamedTuple):
    pos: Tensor  # [N, 2] keypoints in this view
    x: Optional[Tensor]  # [N, F] descriptors sampled in this view (None: geometry only)


def _redrawn(view: _View, unnamed: Tensor, generator: Optional[torch.Generator]) -> _View:
    """``view`` with its ``unnamed`` points drawn anew, uniform in the bounding box of all its
    points, and their descriptors shuffled among them: clutter independent of the other copy's,
    spread as the instance's own is (inside the keypoints' box, or across the whole image)."""
    index = unnamed.nonzero().view(-1)
    pos = view.pos.clone()
    pos[index] = uniform_in_box(view.pos, index.numel(), generator)
    x = view.x
    if x is not None and x.numel():
        x = x.clone()
        x[index] = x[index[torch.randperm(index.numel(), generator=generator)]]
    return _View(pos, x)


def _features(inst: Union[KeypointInstance, _View], index: Tensor) -> Tensor:
    if inst.x is None:  # geometry only: a zero-width feature matrix keeps batching uniform
        return inst.pos.new_zeros(index.numel(), 0)
    return inst.x[index]


def _graph(pos: Tensor) -> dict:
    edge_index = delaunay_edges(pos)
    return {"edge_index": edge_index, "edge_attr": edge_attributes(pos, edge_index)}


def _pair(pos_s, x_s, names_s, pos_t, x_t, names_t, y, category, **extra) -> PairData:
    g_s, g_t = _graph(pos_s), _graph(pos_t)
    return PairData(
        x_s=x_s, pos_s=pos_s, edge_index_s=g_s["edge_index"], edge_attr_s=g_s["edge_attr"],
        x_t=x_t, pos_t=pos_t, edge_index_t=g_t["edge_index"], edge_attr_t=g_t["edge_attr"],
        y=y, names_s=names_s, names_t=names_t, category=category, **extra,
    )


@dataclass
class PairGenerator:
    r"""Make a training pair with known ground truth out of one :class:`KeypointInstance`.

    Each node of the instance is dropped independently from the source copy and from the
    target copy with probability ``drop_rate``, so it ends up in exactly one category:

    * **common**: kept in both copies; its two copies are a ground-truth correspondence (``y``);
    * **completion**: kept in one copy only; the other copy lacks it and must generate it, so the
      pair records its position in that copy's frame (``comp_pos_*``) and the node of the other
      side that it stands for (``comp_index_*``);
    * **hidden**: dropped from both (only counted, in ``num_hidden``).

    Each copy is cut from its own view of the image when the instance carries augmented views
    (``extra["views"]``, see :func:`~pyg_ssgm.features.attach_features`), then gets its own
    random geometric transform and jitter, its own feature noise (a stand-in for photometric
    augmentation where there are no views), its nodes in a random order (so the
    identity permutation carries no information) and Delaunay edges over the kept points.

    Args:
        drop_rate: probability that a node is dropped from one copy.
        min_kept: each copy keeps at least this many nodes (or all, for smaller instances).
        augmentation: the geometric transform drawn per side.
        feature_noise: standard deviation of the Gaussian noise added to each copy's features,
            relative to the instance's feature standard deviation.
        shuffle: randomly permute the nodes of each copy.
        mirror_rate: share of pairs whose target copy stands for the *mirror image* of the
            instance: its keypoints keep their places but exchange "left" and "right" (see
            :mod:`pyg_ssgm.data.sides`; the pairs an instance declares in ``extra["sides"]``
            when it has them), so a left eye is the other copy's right eye, and a
            keypoint whose counterpart the instance does not show has no partner and no
            completion target (its place is unknown). Such a pair has ``mirror = 1``: it is what
            the mirror test (``InferenceConfig.mirror_test``) shows a model once it has flipped the
            target of two birds facing opposite ways. Every pair carries ``mirror`` (0 or 1) when
            this is on; 0 (the default) draws no random number for it.
        redraw_unnamed: unnamed points of an instance that also has named ones (outliers,
            clutter: ``names`` entry ``None``) belong to nothing, so on a real pair they have no
            partner; two copies of one instance would give each its own copy as a partner, and a
            model would learn to match clutter. On (the default), the target's unnamed points are
            drawn anew, uniform in the bounding box of all the instance's points (so they spread
            as its own clutter does: inside the keypoints' box where
            :func:`~pyg_ssgm.data.add_outliers` drew them there, across the image where it drew
            them in the image), with the unnamed points' descriptors shuffled among them, and
            have no partner and no completion target. Instances with no
            unnamed point, or no named one, are unaffected (no random number is drawn).
        intact_rate: share of pairs in which neither copy drops a node: every node is common and
            nothing is to be generated, as on a real pair of two complete views. With ``drop_rate``
            alone such pairs are rare (one in a hundred for 10 nodes at 0.25), so a model never
            learns that a pair may lack nothing. 0 (the default) draws no random number for it.
    """

    drop_rate: float = 0.2
    min_kept: int = 3
    augmentation: GeometricAugmentation = field(default_factory=GeometricAugmentation)
    feature_noise: float = 0.1
    shuffle: bool = True
    mirror_rate: float = 0.0
    redraw_unnamed: bool = True
    intact_rate: float = 0.0

    def __post_init__(self) -> None:
        check_field_types(self)  # drop_rate="0.5" or NaN: a named error, not a TypeError or a silent pass
        if not 0.0 <= self.drop_rate < 1.0:
            raise ConfigError(f"drop_rate must be in [0, 1), got {self.drop_rate}.")
        if self.min_kept < 1:
            raise ConfigError(f"min_kept must be >= 1, got {self.min_kept}.")
        if self.feature_noise < 0:
            raise ConfigError(f"feature_noise must be >= 0, got {self.feature_noise}.")
        if not 0.0 <= self.mirror_rate <= 1.0:
            raise ConfigError(f"mirror_rate must be in [0, 1], got {self.mirror_rate}.")
        if not 0.0 <= self.intact_rate <= 1.0:
            raise ConfigError(f"intact_rate (share of pairs that drop nothing) must be in [0, 1], got {self.intact_rate}.")

    def plain(self) -> "PairGenerator":
        """The same generator without mirror pairs or intact ones: the pairs a completion is scored
        on. A mirror pair leaves out what nobody knows the place of (the eye a bird does not show),
        so its count of missing nodes is not the whole truth; intact pairs would change what the
        score means from one training setting to the next."""
        return replace(self, mirror_rate=0.0, intact_rate=0.0)

    def _keep_mask(self, n: int, generator: Optional[torch.Generator]) -> Tensor:
        keep = torch.rand(n, generator=generator) >= self.drop_rate
        missing = min(self.min_kept, n) - int(keep.sum())
        if missing > 0:  # put back randomly chosen dropped nodes until the minimum is reached
            dropped = (~keep).nonzero().view(-1)
            keep[dropped[torch.randperm(dropped.numel(), generator=generator)[:missing]]] = True
        return keep

    def _order(self, keep: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        index = keep.nonzero().view(-1)
        if self.shuffle:
            index = index[torch.randperm(index.numel(), generator=generator)]
        return index

    def __call__(self, inst: KeypointInstance, generator: Optional[torch.Generator] = None) -> PairData:
        if not isinstance(inst, KeypointInstance):
            raise InvalidInputError(f"PairGenerator expects a KeypointInstance, got {type(inst).__name__}.")
        n = inst.num_nodes
        if n == 0:
            raise InvalidInputError(f"cannot make a pair from an instance without keypoints ({inst.id!r}).")
        if self.intact_rate > 0 and bool(torch.rand((), generator=generator) < self.intact_rate):
            keep_s = keep_t = torch.ones(n, dtype=torch.bool)
        else:
            keep_s, keep_t = self._keep_mask(n, generator), self._keep_mask(n, generator)
        order_s, order_t = self._order(keep_s, generator), self._order(keep_t, generator)
        # local[side][original node] = its index in that copy (-1 where dropped)
        local_s = torch.full((n,), -1, dtype=torch.long)
        local_s[order_s] = torch.arange(order_s.numel())
        local_t = torch.full((n,), -1, dtype=torch.long)
        local_t[order_t] = torch.arange(order_t.numel())

        mirror = self.mirror_rate > 0 and bool(torch.rand((), generator=generator) < self.mirror_rate)
        # The target's copy of keypoint k stands for keypoint ``ident[k]`` of the instance (k itself,
        # or its left/right counterpart in a mirror pair, -1 where that is not annotated), and the
        # target node standing for keypoint j is the copy of ``ident[j]`` (an involution).
        # Left and right as the data declares them (a COCO file's flip_pairs), else as the names spell them.
        sides = inst.extra.get(SIDES_KEY)
        ident = mirror_identity(inst.names, sides) if mirror else torch.arange(n)
        known = ident >= 0
        clutter = self._clutter(inst)
        if clutter is not None:  # no partner, nothing to generate
            known &= ~clutter
        in_t = known & keep_t[ident.clamp(min=0)]  # keypoint j has a node in the target
        in_s = known & keep_s[ident.clamp(min=0)]  # the target node of keypoint k has one in the source
        common = (keep_s & in_t).nonzero().view(-1)
        y = torch.stack([local_s[common], local_t[ident[common]]])
        # Nodes one side must generate: a node of the other side without a partner whose place is
        # known (kept target node k: keypoint ident[k] of the source; kept source node j: the
        # target's copy of ident[j]).
        lacks_s = (keep_t & ~in_s & known).nonzero().view(-1)  # target nodes
        lacks_t = (keep_s & ~in_t & known).nonzero().view(-1)  # source nodes

        view_s, view_t = self._views(inst, generator)
        if clutter is not None:
            view_t = _redrawn(view_t, clutter, generator)
        tf_s = self.augmentation.sample(view_s.pos, generator)
        tf_t = self.augmentation.sample(view_t.pos, generator)
        pos_s = tf_s.jitter(tf_s.apply(view_s.pos[order_s]), generator)
        pos_t = tf_t.jitter(tf_t.apply(view_t.pos[order_t]), generator)
        x_s = self._noisy(_features(view_s, order_s), inst, generator)
        x_t = self._noisy(_features(view_t, order_t), inst, generator)

        names_t = [inst.names[i] for i in order_t.tolist()]
        extra = {"mirror": torch.tensor([int(mirror)])} if self.mirror_rate > 0 else {}
        return _pair(
            pos_s, x_s, [inst.names[i] for i in order_s.tolist()],
            pos_t, x_t, [swap_sides(name, sides) for name in names_t] if mirror else names_t,
            y, inst.category,
            comp_pos_s=tf_s.apply(view_s.pos[ident[lacks_s]]), comp_index_s=local_t[lacks_s],
            comp_x_s=_features(view_s, ident[lacks_s]),
            comp_pos_t=tf_t.apply(view_t.pos[ident[lacks_t]]), comp_index_t=local_s[lacks_t],
            comp_x_t=_features(view_t, ident[lacks_t]),
            num_hidden=int((~keep_s & ~keep_t).sum()), **extra,
        )

    def _clutter(self, inst: KeypointInstance) -> Optional[Tensor]:
        """Bool ``[N]``: the unnamed points to redraw in the target copy (``redraw_unnamed``), or
        ``None`` where there are none (or nothing named to place them by)."""
        if not self.redraw_unnamed or None not in inst.names:  # the common case: no tensor built per pair
            return None
        unnamed = torch.tensor([name is None for name in inst.names], dtype=torch.bool)
        return unnamed if bool(unnamed.any()) and not bool(unnamed.all()) else None

    @staticmethod
    def _views(inst: KeypointInstance, generator: Optional[torch.Generator]) -> Tuple[_View, _View]:
        """The image views the two sides are cut from. An instance with augmented views of its
        image (``extra["views"]``: ``(pos, x)`` per view, see
        :func:`~pyg_ssgm.features.attach_features`) gives each side a *different* one
        of the original and its views, so the two sides' descriptors differ the way two
        photographs do; otherwise both sides are the instance itself."""
        views = [_View(inst.pos, inst.x)] + [_View(p, x) for p, x in inst.extra.get("views", ())]
        if len(views) == 1:
            return views[0], views[0]
        pick = torch.randperm(len(views), generator=generator)[:2].tolist()
        return views[pick[0]], views[pick[1]]

    def _noisy(self, x: Tensor, inst: KeypointInstance, generator: Optional[torch.Generator]) -> Tensor:
        if self.feature_noise == 0 or x.numel() == 0:
            return x
        std = inst.x.std() if inst.x.numel() > 1 else x.new_ones(())
        return x + torch.randn(x.shape, generator=generator, dtype=x.dtype) * self.feature_noise * std


def make_pair(inst_s: KeypointInstance, inst_t: KeypointInstance, intersection: bool = False,
              allow_different_categories: bool = False) -> PairData:
    r"""A real pair of two instances, correspondences from the keypoint names.

    By default nothing is filtered: every annotated keypoint of both instances is a node, and a
    keypoint whose name the other instance lacks (or that has no name) simply has no partner.
    ``intersection=True`` keeps only the named keypoints present in both, the setting the
    literature reports (a bijection), for comparison only.

    Instances of different categories are refused unless ``allow_different_categories=True``:
    datasets reuse names across categories (Willow's ``kp0..kp9``), so a car and a duck would
    get bogus correspondences. With the flag, the pair's category is the source's. Names of
    different types (int in one, str in the other) are refused too: none could ever match.
    """
    for inst in (inst_s, inst_t):
        if not isinstance(inst, KeypointInstance):
            raise InvalidInputError(f"make_pair expects KeypointInstance objects, got {type(inst).__name__}.")
    if inst_s.category != inst_t.category and not allow_different_categories:
        raise InvalidInputError(
            f"make_pair got instances of different categories ({inst_s.category!r} and {inst_t.category!r}): "
            "their keypoint names need not mean the same parts. Pair instances of one category, or pass "
            "allow_different_categories=True if the names do correspond.")
    check_name_types(inst_s, inst_t)
    if (inst_s.x is None) != (inst_t.x is None):
        raise InvalidInputError("one instance has node features (x) and the other has none; give both or neither.")
    if inst_s.x is not None and inst_s.x.size(1) != inst_t.x.size(1):
        raise InvalidInputError(
            f"feature sizes differ: source x has {inst_s.x.size(1)} columns, target x has {inst_t.x.size(1)}."
        )
    if intersection:
        shared = {n for n in inst_s.names if n is not None} & {n for n in inst_t.names if n is not None}
        inst_s = inst_s.subset([i for i, n in enumerate(inst_s.names) if n in shared])
        inst_t = inst_t.subset([i for i, n in enumerate(inst_t.names) if n in shared])
    where_t = {n: j for j, n in enumerate(inst_t.names) if n is not None}
    pairs = [(i, where_t[n]) for i, n in enumerate(inst_s.names) if n is not None and n in where_t]
    y = torch.tensor(pairs, dtype=torch.long).view(-1, 2).t().contiguous()
    idx_s, idx_t = torch.arange(inst_s.num_nodes), torch.arange(inst_t.num_nodes)
    return _pair(
        inst_s.pos, _features(inst_s, idx_s), list(inst_s.names),
        inst_t.pos, _features(inst_t, idx_t), list(inst_t.names),
        y, inst_s.category,
    )


def subset_pair(pair: PairData, keep_s: Tensor, keep_t: Tensor) -> PairData:
    """``pair`` restricted to its source points ``keep_s`` and target points ``keep_t`` (long
    indices, ascending): Delaunay edges rebuilt over the points kept, ``y`` reduced to the pairs of
    kept points and renumbered, names, category and ``mirror`` kept. Meant for real pairs: a
    generated pair's completion targets are not carried over."""
    y = pair.y
    if y is not None and y.numel():
        new_s = torch.full((pair.pos_s.size(0),), -1, dtype=torch.long)
        new_t = torch.full((pair.pos_t.size(0),), -1, dtype=torch.long)
        new_s[keep_s], new_t[keep_t] = torch.arange(keep_s.numel()), torch.arange(keep_t.numel())
        y = torch.stack([new_s[y[0]], new_t[y[1]]])
        y = y[:, (y >= 0).all(0)]
    names_s, names_t = getattr(pair, "names_s", None), getattr(pair, "names_t", None)
    extra = {"mirror": pair.mirror} if getattr(pair, "mirror", None) is not None else {}

    def kept(names, keep):
        return None if names is None else [names[i] for i in keep.tolist()]

    return _pair(pair.pos_s[keep_s], pair.x_s[keep_s], kept(names_s, keep_s),
                 pair.pos_t[keep_t], pair.x_t[keep_t], kept(names_t, keep_t),
                 y, getattr(pair, "category", None), **extra)


def _transfer(src: Tensor, dst: Tensor, points: Tensor) -> Tensor:
    r"""``points`` mapped by the least-squares affine map taking ``src [K, 2]`` onto ``dst [K, 2]``.

    :func:`~pyg_ssgm.data.affine.fit_affine` with unit weights on the ``K`` correspondences and no
    ridge, in float64: in pixel coordinates the constant column of :math:`[p, 1]` is tiny beside
    the coordinates (its singular value is often below 1), so the network's ridge of ``1e-2``
    would pull the fitted translation by tens of pixels, and float32 normal equations would lose
    digits. With fewer than 3 correspondences, or all of them on one line (rank-deficient, no
    unique map), the points are moved by the mean shift :math:`\bar d - \bar s` alone.
    """
    k = src.size(0)
    if k >= 3 and int(torch.linalg.matrix_rank(torch.cat([src, src.new_ones(k, 1)], 1).double())) == 3:
        A = fit_affine(torch.eye(k, dtype=torch.float64).unsqueeze(0), dst.double().unsqueeze(0),
                       src.double().unsqueeze(0), ridge=0.0)
        if torch.isfinite(A).all():
            return apply_affine(A, points.double().unsqueeze(0))[0].to(points.dtype)
    return points + ((dst.mean(0) - src.mean(0)) if k else src.new_zeros(2))


def add_completion_targets(pair: PairData) -> PairData:
    r"""Completion targets for a *real* pair, derived from its correspondences ``y``.

    The nodes of one side without a partner are the nodes the other side lacks. Their positions in
    the other side's frame are estimated by the least-squares affine map fitted on the true
    correspondences (the two instances are different objects, so no exact position exists; see
    :func:`_transfer`). Used by supervised training only: it reads ``y``.
    """
    y = pair.y
    out = pair.clone()
    for side, other, row_own, row_other in (("s", "t", 0, 1), ("t", "s", 1, 0)):
        n_other = getattr(pair, f"num_nodes_{other}")
        lacks = torch.ones(n_other, dtype=torch.bool)
        lacks[y[row_other]] = False
        index = lacks.nonzero().view(-1)
        pos_own, pos_other = getattr(pair, f"pos_{side}"), getattr(pair, f"pos_{other}")
        setattr(out, f"comp_pos_{side}", _transfer(pos_other[y[row_other]], pos_own[y[row_own]], pos_other[index]))
        setattr(out, f"comp_index_{side}", index)
        setattr(out, f"comp_x_{side}", getattr(pair, f"x_{other}")[index])
    return out
