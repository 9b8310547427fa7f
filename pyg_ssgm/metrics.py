r"""Matching metrics for partial matchings: precision, recall, F1, intersection accuracy, per-class tables.

A *matching* of a pair is a long tensor ``[2, K]`` of correspondences: column ``k`` says that source
node ``m[0, k]`` matches target node ``m[1, k]``; no node may appear twice in its row. With the
predicted matching :math:`P` and the true one :math:`G` (the pair's ``y``) seen as sets of pairs
``(i, j)`` and :math:`TP = |P \cap G|`:

.. math::

    \mathrm{precision} = \frac{TP}{|P|}, \qquad
    \mathrm{recall} = \frac{TP}{|G|}, \qquad
    F_1 = \frac{2\,TP}{|P| + |G|}
        = \frac{2\,\mathrm{precision}\cdot\mathrm{recall}}{\mathrm{precision} + \mathrm{recall}}.

**Empty sets.** A ratio whose denominator is empty is 1.0 when the *other* set is empty too (nothing
to find and nothing claimed: a perfect answer) and 0.0 otherwise. So an empty prediction against a
non-empty truth scores precision = recall = F1 = 0 (exactly what pygmtools' ``Benchmark`` reports for
an all-zero prediction), a non-empty prediction against an empty truth scores 0 as well, and only
``P = G = {}`` scores 1. With this choice F1 is always the harmonic mean of precision and recall and
is 0 whenever there is no overlap and something was predicted or expected.

**Aggregation** follows pygmtools' ``Benchmark.eval``: per class, the mean (and population std) over
pairs of the per-pair scores; overall ("macro"), the mean over classes of those per-class means, so
every class weighs the same whatever its number of pairs. The *micro* scores pool the counts
(:math:`\sum TP / \sum |P|`, ...) over all pairs, weighting every correspondence the same.

**Intersection setting** (the literature's protocol): only keypoints present in both images are
kept, so ``G`` is a bijection of the kept nodes and a full matching has ``|P| = |G|``; the reported
"accuracy" is :math:`TP / |G|`, i.e. the recall. :func:`intersection_accuracy` computes it from an
unfiltered prediction by restricting the prediction to the nodes that have a partner.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Batch

from .data.pair_data import PairData
from .errors import InvalidInputError

NumNodes = Optional[Tuple[int, int]]

__all__ = [
    "check_matching", "match_counts", "precision", "recall", "f1", "intersection_counts",
    "intersection_accuracy", "MatchCounts", "Scores", "MatchingReport", "aggregate",
    "as_pair_batch", "batch_targets", "batch_counts", "to_perm_mat", "from_perm_mat", "pygmtools_eval",
]


# --------------------------------------------------------------------------------------------------
# validation and conversion
# --------------------------------------------------------------------------------------------------
def check_matching(m: Any, name: str = "matching", num_nodes: NumNodes = None) -> Tensor:
    """Validate a correspondence tensor and return it (on the CPU).

    Raises :class:`~pyg_ssgm.errors.InvalidInputError` unless ``m`` is a long tensor of shape
    ``[2, K]`` with non-negative indices (below ``num_nodes = (n_s, n_t)`` when given) in which no
    source node and no target node appears twice (otherwise it is not a matching).
    """
    if not isinstance(m, Tensor):
        raise InvalidInputError(f"{name} must be a torch.Tensor of shape [2, K], got {type(m).__name__}.")
    if m.dtype != torch.long:
        raise InvalidInputError(f"{name} must have dtype torch.long, got {m.dtype}; use .long().")
    if m.dim() != 2 or m.size(0) != 2:
        raise InvalidInputError(
            f"{name} must have shape [2, K] (row 0 source nodes, row 1 target nodes), got {tuple(m.shape)}."
        )
    m = m.detach().cpu()
    if m.numel() and int(m.min()) < 0:
        raise InvalidInputError(f"{name} contains negative node indices.")
    if num_nodes is not None:
        for row, side, n in ((0, "source", num_nodes[0]), (1, "target", num_nodes[1])):
            if m.size(1) and int(m[row].max()) >= n:
                raise InvalidInputError(
                    f"{name} refers to {side} node {int(m[row].max())} but the {side} graph has {n} nodes."
                )
    for row, side in ((0, "source"), (1, "target")):
        if m[row].unique().numel() != m.size(1):
            values, counts = m[row].unique(return_counts=True)
            raise InvalidInputError(
                f"{name} is not a matching: {side} node(s) {values[counts > 1].tolist()} appear more than once."
            )
    return m


def to_perm_mat(m: Tensor, num_nodes: Tuple[int, int]) -> np.ndarray:
    """The ``float32 [n_s, n_t]`` 0/1 (partial) permutation matrix of a matching, as pygmtools uses."""
    m = check_matching(m, num_nodes=num_nodes)
    mat = np.zeros(num_nodes, dtype=np.float32)
    mat[m[0].numpy(), m[1].numpy()] = 1
    return mat


def from_perm_mat(mat: Any) -> Tensor:
    """The matching ``[2, K]`` (sorted by source node) of a 0/1 matrix ``[n_s, n_t]`` (tensor or array)."""
    mat = torch.as_tensor(np.asarray(mat) if not isinstance(mat, Tensor) else mat)
    if mat.dim() != 2:
        raise InvalidInputError(f"a permutation matrix must be 2-D, got shape {tuple(mat.shape)}.")
    return check_matching((mat > 0.5).nonzero().t().contiguous(), "permutation matrix")


def _pair_keys(m: Tensor, base: int) -> Tensor:
    # One integer per correspondence, so that set operations become torch.isin.
    return m[0] * base + m[1]


# --------------------------------------------------------------------------------------------------
# one pair
# --------------------------------------------------------------------------------------------------
def _ratio(num: int, den: int, other: int) -> float:
    # den == 0: the denominator set is empty; perfect iff the other set is empty as well.
    if den == 0:
        return 1.0 if other == 0 else 0.0
    return num / den


@dataclass(frozen=True)
class MatchCounts:
    r"""Counts of one pair (or, summed with ``+``, of many): ``tp`` :math:`=|P\cap G|`,
    ``num_pred`` :math:`=|P|`, ``num_gt`` :math:`=|G|`, and the pair's ``category``.

    Its properties give precision, recall and F1 with the module's empty-set conventions; for a sum
    of records these are the *micro* (pooled) scores.
    """

    tp: int
    num_pred: int
    num_gt: int
    category: Optional[str] = None

    def __post_init__(self) -> None:
        if min(self.tp, self.num_pred, self.num_gt) < 0 or self.tp > min(self.num_pred, self.num_gt):
            raise InvalidInputError(
                f"inconsistent counts: tp={self.tp}, num_pred={self.num_pred}, num_gt={self.num_gt} "
                "(need 0 <= tp <= min(num_pred, num_gt))."
            )

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.num_pred, self.num_gt)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.num_gt, self.num_pred)

    @property
    def f1(self) -> float:
        den = self.num_pred + self.num_gt
        return 1.0 if den == 0 else 2 * self.tp / den

    def __add__(self, other: "MatchCounts") -> "MatchCounts":
        cat = self.category if self.category == other.category else None
        return MatchCounts(self.tp + other.tp, self.num_pred + other.num_pred, self.num_gt + other.num_gt, cat)


def match_counts(pred: Tensor, gt: Tensor, category: Optional[str] = None,
                 num_nodes: NumNodes = None) -> MatchCounts:
    """Validate ``pred`` and ``gt`` (long ``[2, K]`` matchings) and count their overlap."""
    pred = check_matching(pred, "pred", num_nodes)
    gt = check_matching(gt, "gt", num_nodes)
    base = int(max(pred[1].max() if pred.numel() else 0, gt[1].max() if gt.numel() else 0)) + 1
    tp = int(torch.isin(_pair_keys(pred, base), _pair_keys(gt, base)).sum())
    return MatchCounts(tp, pred.size(1), gt.size(1), category)


def precision(pred: Tensor, gt: Tensor, num_nodes: NumNodes = None) -> float:
    r""":math:`|P \cap G| / |P|`; for ``P`` empty: 1.0 if ``G`` is empty too, else 0.0."""
    return match_counts(pred, gt, num_nodes=num_nodes).precision


def recall(pred: Tensor, gt: Tensor, num_nodes: NumNodes = None) -> float:
    r""":math:`|P \cap G| / |G|`; for ``G`` empty: 1.0 if ``P`` is empty too, else 0.0."""
    return match_counts(pred, gt, num_nodes=num_nodes).recall


def f1(pred: Tensor, gt: Tensor, num_nodes: NumNodes = None) -> float:
    r""":math:`2|P \cap G| / (|P| + |G|)` (harmonic mean of precision and recall); 1.0 iff both empty
    or identical, 0.0 whenever they do not overlap and one is non-empty."""
    return match_counts(pred, gt, num_nodes=num_nodes).f1


def intersection_counts(pred: Tensor, gt: Tensor, category: Optional[str] = None,
                        num_nodes: NumNodes = None) -> MatchCounts:
    """Counts in the intersection setting: ``pred`` restricted to the pairs ``(i, j)`` whose source
    node ``i`` and target node ``j`` both have a partner in ``gt`` (the nodes the literature keeps).

    Its recall is :func:`intersection_accuracy`; its precision is the accuracy among the predictions
    made on common nodes. Aggregate such records to report the intersection protocol.
    """
    pred = check_matching(pred, "pred", num_nodes)
    gt = check_matching(gt, "gt", num_nodes)
    keep = torch.isin(pred[0], gt[0]) & torch.isin(pred[1], gt[1])
    return match_counts(pred[:, keep], gt, category)


def intersection_accuracy(pred: Tensor, gt: Tensor, num_nodes: NumNodes = None) -> float:
    r"""The literature's matching accuracy, :math:`|P \cap G| / |G|`: the fraction of true pairs recovered.

    In the intersection setting (``make_pair(..., intersection=True)``) every node has a partner and
    a full matching has ``|P| = |G|``, so this is also the precision. On an unfiltered pair it equals
    the accuracy the same prediction, restricted to the nodes present in both graphs, would score
    (predictions touching a node without partner can never be correct, so they do not change it).
    Empty ``gt`` (pygmtools refuses such pairs): 1.0 if ``pred`` restricted to common nodes is empty.
    """
    return intersection_counts(pred, gt, num_nodes=num_nodes).recall


# --------------------------------------------------------------------------------------------------
# many pairs
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scores:
    """Mean (and population standard deviation) over pairs of the per-pair scores."""

    precision: float
    recall: float
    f1: float
    precision_std: float
    recall_std: float
    f1_std: float
    num_pairs: int


@dataclass
class MatchingReport:
    """Result of :func:`aggregate`.

    * ``per_class[c]``: :class:`Scores` of class ``c`` (mean over its pairs);
    * ``mean``: the macro average, mean over classes of ``per_class`` (stds averaged the same way,
      as pygmtools does); ``mean.num_pairs`` is the total number of pairs;
    * ``micro``: pooled :class:`MatchCounts` of all pairs (``.precision``, ``.recall``, ``.f1``);
    * ``per_class_micro[c]``: pooled counts of class ``c``;
    * ``skipped``: pairs left out because they had nothing to score (an empty side: in the
      intersection setting, no keypoint in common; see :func:`pyg_ssgm.evaluation.evaluate_matching`).
    """

    per_class: Dict[str, Scores]
    mean: Scores
    micro: MatchCounts
    per_class_micro: Dict[str, MatchCounts] = field(default_factory=dict)
    skipped: int = 0

    @classmethod
    def empty(cls, skipped: int = 0) -> "MatchingReport":
        """The report of no scored pair: NaN scores, no class (every pair was ``skipped``)."""
        nan = float("nan")
        return cls({}, Scores(nan, nan, nan, nan, nan, nan, 0), MatchCounts(0, 0, 0), {}, skipped)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly nested dict (micro counts flattened with their scores)."""

        def micro(c: MatchCounts) -> Dict[str, Any]:
            return {"precision": c.precision, "recall": c.recall, "f1": c.f1,
                    "tp": c.tp, "num_pred": c.num_pred, "num_gt": c.num_gt}

        return {
            "per_class": {k: asdict(v) for k, v in self.per_class.items()},
            "mean": asdict(self.mean),
            "micro": micro(self.micro),
            "per_class_micro": {k: micro(v) for k, v in self.per_class_micro.items()},
            "skipped": self.skipped,
        }

    def __str__(self) -> str:
        if not self.per_class:
            return f"no pair to score ({self.skipped} pairs with nothing to score skipped)"
        lines = [f"{'class':<16}{'pairs':>7}{'precision':>11}{'recall':>9}{'f1':>9}"]
        for name, s in list(self.per_class.items()) + [("mean", self.mean)]:
            lines.append(f"{name:<16}{s.num_pairs:>7}{s.precision:>11.4f}{s.recall:>9.4f}{s.f1:>9.4f}")
        m = self.micro
        lines.append(f"{'micro':<16}{self.mean.num_pairs:>7}{m.precision:>11.4f}{m.recall:>9.4f}{m.f1:>9.4f}")
        if self.skipped:
            lines.append(f"({self.skipped} pairs with nothing to score skipped)")
        return "\n".join(lines)


def aggregate(records: Sequence[MatchCounts], categories: Optional[Sequence[Optional[str]]] = None) -> MatchingReport:
    r"""Per-class and averaged precision / recall / F1 of many pairs.

    Args:
        records: one :class:`MatchCounts` per pair (see :func:`match_counts`, :func:`batch_counts`).
        categories: the class of each record (same length); defaults to each record's ``category``.
            Records without a class are pooled in the class ``"all"``.

    Per class :math:`c` with pairs :math:`\mathcal{P}_c`: :math:`\bar p_c = \frac{1}{|\mathcal{P}_c|}
    \sum_{k\in\mathcal{P}_c} p_k` (same for recall and F1); macro: :math:`\frac{1}{C}\sum_c \bar p_c`,
    exactly pygmtools' ``Benchmark.eval``. Classes appear in sorted order.
    """
    records = list(records)
    if not records:
        raise InvalidInputError("aggregate needs at least one record.")
    if categories is None:
        categories = [r.category for r in records]
    elif len(categories) != len(records):
        raise InvalidInputError(f"got {len(records)} records but {len(categories)} categories.")
    groups: Dict[str, List[MatchCounts]] = defaultdict(list)
    for r, c in zip(records, categories):
        if not isinstance(r, MatchCounts):
            raise InvalidInputError(f"aggregate expects MatchCounts records, got {type(r).__name__}.")
        groups["all" if c is None else str(c)].append(r)

    per_class: Dict[str, Scores] = {}
    per_class_micro: Dict[str, MatchCounts] = {}
    for c in sorted(groups):
        rs = groups[c]
        p, r, f = (np.array([getattr(x, k) for x in rs], dtype=np.float64) for k in ("precision", "recall", "f1"))
        per_class[c] = Scores(float(p.mean()), float(r.mean()), float(f.mean()),
                              float(p.std()), float(r.std()), float(f.std()), len(rs))
        pooled = MatchCounts(0, 0, 0, c)
        for x in rs:
            pooled = pooled + MatchCounts(x.tp, x.num_pred, x.num_gt, c)
        per_class_micro[c] = pooled

    def macro(key: str) -> float:
        return float(np.mean([getattr(s, key) for s in per_class.values()]))

    mean = Scores(*(macro(k) for k in ("precision", "recall", "f1", "precision_std", "recall_std", "f1_std")),
                  num_pairs=len(records))
    micro = MatchCounts(*(sum(getattr(x, k) for x in per_class_micro.values()) for k in ("tp", "num_pred", "num_gt")))
    return MatchingReport(per_class, mean, micro, per_class_micro)


# --------------------------------------------------------------------------------------------------
# batches of PairData
# --------------------------------------------------------------------------------------------------
def as_pair_batch(data: Any) -> Batch:
    """A ``Batch`` of pairs with both sides' ``x_*_batch`` / ``x_*_ptr`` vectors.

    Accepts a single :class:`~pyg_ssgm.data.PairData`, a list of them, or a ``Batch`` (one made
    without ``follow_batch`` is rebuilt with :attr:`PairData.FOLLOW_BATCH`).
    """
    if isinstance(data, Batch):
        if all(hasattr(data, k) for k in ("x_s_ptr", "x_t_ptr", "x_s_batch", "x_t_batch")):
            return data
        data = data.to_data_list()
    if isinstance(data, PairData):
        data = [data]
    if not isinstance(data, (list, tuple)) or not data or not all(isinstance(d, PairData) for d in data):
        raise InvalidInputError("expected a PairData, a non-empty list of PairData, or a Batch of them.")
    return Batch.from_data_list(list(data), follow_batch=PairData.FOLLOW_BATCH)


def _side_sizes(batch: Batch, side: str) -> Tensor:
    return getattr(batch, f"x_{side}_ptr").cpu()


def batch_targets(batch: Any) -> List[Tensor]:
    """The true correspondences ``y`` of every pair of a batch, in local (per-pair) node indices.

    ``batch``: anything :func:`as_pair_batch` accepts (what :func:`~pyg_ssgm.data.pair_loader` yields).
    """
    batch = as_pair_batch(batch)
    ptr_s, ptr_t = _side_sizes(batch, "s"), _side_sizes(batch, "t")
    y = check_matching(batch.y, "y")
    # ``y`` is offset by the cumulative node counts: a column belongs to the graph of its source node
    owner = torch.bucketize(y[0], ptr_s[1:], right=True)
    return [torch.stack([y[0, owner == k] - ptr_s[k], y[1, owner == k] - ptr_t[k]])
            for k in range(batch.num_graphs)]


def batch_counts(preds: Sequence[Tensor], batch: Any) -> List[MatchCounts]:
    """One :class:`MatchCounts` per pair of ``batch`` for the per-pair predictions ``preds``
    (local indices, as :class:`~pyg_ssgm.baselines.ClassicalMatcher` and the model return them);
    each record carries the pair's ``category`` and is range-checked against its node counts."""
    batch = as_pair_batch(batch)
    gts = batch_targets(batch)
    if len(preds) != len(gts):
        raise InvalidInputError(f"got {len(preds)} predictions for a batch of {len(gts)} pairs.")
    cats = getattr(batch, "category", None)
    cats = [cats] * len(gts) if cats is None or isinstance(cats, str) else list(cats)
    ns, nt = _side_sizes(batch, "s").diff().tolist(), _side_sizes(batch, "t").diff().tolist()
    return [match_counts(p, g, c, (a, b)) for p, g, c, a, b in zip(preds, gts, cats, ns, nt)]


# --------------------------------------------------------------------------------------------------
# reference: pygmtools' own evaluation code
# --------------------------------------------------------------------------------------------------
def pygmtools_eval(preds: Sequence[Tensor], gts: Sequence[Tensor], num_nodes: Sequence[Tuple[int, int]],
                   categories: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """Score matchings with pygmtools' ``Benchmark.eval`` itself (a cross-check of :func:`aggregate`).

    ``Benchmark.__init__`` insists on a downloaded dataset, but ``eval`` only reads three things: the
    JSON list of image ids (``data_list_path``), their classes (``data_dict``) and the ground-truth
    matrices that ``get_data`` caches as ``.npy`` files of ``scipy.sparse`` matrices
    (``gt_cache_path``). We build exactly those in a temporary folder from in-memory matchings, skip
    ``__init__``, and call the real ``eval`` (written against pygmtools 0.6.0's internals).

    Returns pygmtools' dict: one entry per class plus ``"mean"``, each with ``precision``, ``recall``,
    ``f1``, their ``*_std`` and ``coverage`` (meaningless here). pygmtools refuses pairs without any
    true correspondence, so they raise :class:`InvalidInputError` here.
    """
    from pygmtools.benchmark import Benchmark
    from scipy.sparse import coo_matrix

    if not (len(preds) == len(gts) == len(num_nodes) == len(categories)) or not preds:
        raise InvalidInputError("preds, gts, num_nodes and categories must be non-empty and of equal length.")
    classes = sorted(set(categories))
    with tempfile.TemporaryDirectory() as root:
        bench = object.__new__(Benchmark)
        bench.name, bench.gt_cache_path = "WillowObject", root  # any name but SPair71k: count images by class
        bench.data_list_path = os.path.join(root, "test.json")
        bench.data_dict, prediction = {}, []
        for k, (p, g, n, c) in enumerate(zip(preds, gts, num_nodes, categories)):
            gt_mat = to_perm_mat(g, tuple(n))
            if gt_mat.sum() == 0:
                raise InvalidInputError(f"pair {k} has no true correspondence; pygmtools cannot score it.")
            ids = (f"{k}_s", f"{k}_t")
            bench.data_dict.update({i: {"cls": c} for i in ids})
            np.save(os.path.join(root, f"{ids}_{n[0]}_{n[1]}.npy"), coo_matrix(gt_mat))  # get_data's layout
            prediction.append({"ids": ids, "cls": c, "perm_mat": to_perm_mat(p, tuple(n))})
        with open(bench.data_list_path, "w") as fh:
            json.dump(list(bench.data_dict), fh)
        result = bench.eval(prediction, classes, verbose=False, rm_gt_cache=False)
    return {c: {k: float(v) for k, v in d.items()} for c, d in result.items()}
