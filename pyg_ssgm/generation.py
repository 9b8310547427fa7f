r"""What the model generates, measured on *real* pairs (the names say what each graph lacks).

* **count** (:func:`count_measures`): on a real pair, graph :math:`s` lacks the named keypoints of
  :math:`t` whose name :math:`s` does not have (and vice versa). A point without a name (an
  outlier) belongs to nothing: no graph lacks it. Scored for each ``completion_source``
  (:meth:`Predictor.generated_nodes <pyg_ssgm.Predictor.generated_nodes>`: the decoder's queries
  that exist, or one node per point the matching leaves unmatched; "seeded" places the latter
  elsewhere, so its count is theirs), on the same matching: the
  share of pairs whose generated count is exact on *both* sides, the same per graph, and the mean
  absolute error per graph; and, whatever the threshold, how well the queries' existence and the
  affinity rank the nodes a graph lacks above those it has (:func:`auroc`).
* **place** (:func:`placement_measures`): hide :math:`k` keypoints that both instances name from
  the target (seeded per pair), so that the target lacks them, and score where each is put back
  against where it was: PCK@:math:`\alpha`, the share of hidden points within
  :math:`\alpha\,\max(w, h)` of the truth, :math:`w \times h` the bounding box of the target's
  keypoints (all of them, hidden ones included). Methods: the node the model generates for the
  hidden point's source partner (its ``partner`` in :meth:`Predictor.complete
  <pyg_ssgm.Predictor.complete>`; no such node counts as a miss), per completion source, and the
  query standing for it whatever its existence probability (where the decoder puts the point,
  apart from whether it decides that the point is missing); and the
  partner transferred by an affine map or a (smoothed) thin-plate spline fitted to the model's
  matches, or to RRWM's (:class:`~pyg_ssgm.baselines.ClassicalMatcher`). A pair is used for :math:`k` only where
  at least :data:`MIN_LEFT` common keypoints stay after hiding.
* **matching** (:func:`inference_switch`): F1 of the same trained model with its generated nodes
  in the matching at inference and without (``generate_at_inference``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.interpolate import RBFInterpolator
from scipy.stats import mannwhitneyu
from torch import Tensor
from torch.utils.data import Subset

from .catalog import COMPLETION_SOURCES
from .data import KeypointInstance, RealPairs, make_pair, pair_loader
from .data.datasets import item_generator
from .evaluation import evaluate_matching
from .model import Predictor
from .model.predictor import Oriented, seeded_queries
from .progress import progress_bar

#: Keypoints hidden from the target per pair in the place measure.
HIDDEN_COUNTS: Tuple[int, ...] = (1, 3)
#: Common keypoints that must stay in the pair once the hidden ones are gone (3 fix an affine map).
MIN_LEFT = 3
#: Smoothing of the thin-plate-spline transfer, chosen on CUB validation pairs (PCK@0.05 of 3 hidden
#: points from a briefly trained model's matches: 0.113 exact, 0.125 at 0.01, 0.167 at 0.1, 0.155 at 1;
#: affine 0.135): matches carry errors, and an exact spline follows each of them.
TPS_SMOOTHING = 0.1
#: PCK thresholds, as fractions of the largest side of the target's keypoint bounding box.
PCK_ALPHAS: Tuple[float, ...] = (0.05, 0.1)

__all__ = ["HIDDEN_COUNTS", "MIN_LEFT", "PCK_ALPHAS", "TPS_SMOOTHING", "ALL_QUERIES", "HiddenPair", "hide_common",
           "lacking", "affine_transfer", "tps_transfer", "pck", "count_measures", "placement_measures",
           "inference_switch", "generation_measures", "completion_records", "format_generation", "completions_of",
           "lacking_scores", "auroc"]


def lacking(names_own: Sequence[Any], names_other: Sequence[Any]) -> int:
    """How many keypoints a graph named ``names_own`` lacks of the other graph: the other's named
    points whose name it does not have (unnamed points, outliers, are lacked by no graph)."""
    own = {n for n in names_own if n is not None}
    return sum(1 for n in names_other if n is not None and n not in own)


def affine_transfer(src: np.ndarray, dst: np.ndarray, points: np.ndarray) -> np.ndarray:
    r"""``points [P, 2]`` mapped by the least-squares affine map taking ``src [K, 2]`` onto
    ``dst [K, 2]`` (:math:`\min_A \sum_k \lVert [s_k, 1] A - d_k\rVert^2`, float64, no ridge);
    with fewer than 3 correspondences or all on one line, by the mean shift alone."""
    src, dst, points = (np.asarray(a, dtype=np.float64).reshape(-1, 2) for a in (src, dst, points))
    design = np.concatenate([src, np.ones((len(src), 1))], 1)
    if len(src) >= 3 and np.linalg.matrix_rank(design) == 3:
        A = np.linalg.lstsq(design, dst, rcond=None)[0]
        return np.concatenate([points, np.ones((len(points), 1))], 1) @ A
    return points + ((dst.mean(0) - src.mean(0)) if len(src) else 0.0)


def tps_transfer(src: np.ndarray, dst: np.ndarray, points: np.ndarray, smoothing: float = TPS_SMOOTHING) -> np.ndarray:
    r"""``points`` mapped by the thin-plate spline fitted to ``src -> dst`` (scipy's
    ``RBFInterpolator``: kernel :math:`r^2 \log r` plus an affine part), in source coordinates
    centred and divided by the largest side of ``src``'s bounding box, with ``smoothing`` (0: each
    correspondence kept exactly; a wrong match then bends the whole map); the affine transfer
    where the spline is undefined (fewer than 3 correspondences, or all on one line)."""
    src, dst, points = (np.asarray(a, dtype=np.float64).reshape(-1, 2) for a in (src, dst, points))
    if len(src) < 3 or np.linalg.matrix_rank(np.concatenate([src, np.ones((len(src), 1))], 1)) < 3:
        return affine_transfer(src, dst, points)
    center, size = src.mean(0), max(float(np.ptp(src, 0).max()), 1e-12)
    try:
        spline = RBFInterpolator((src - center) / size, dst, kernel="thin_plate_spline", smoothing=smoothing)
    except (np.linalg.LinAlgError, ValueError):  # duplicate source points: singular system
        return affine_transfer(src, dst, points)
    return spline((points - center) / size)


def pck(errors: Sequence[float], alphas: Sequence[float] = PCK_ALPHAS) -> Dict[str, float]:
    """``{"pck@<alpha>": share of errors <= alpha}`` of normalised errors (``inf``: a miss)."""
    e = np.asarray(errors, dtype=np.float64)
    return {f"pck@{a:g}": float((e <= a).mean()) if e.size else float("nan") for a in alphas}


def _sources(predictor: Predictor) -> Tuple[str, ...]:
    """The completion sources worth scoring: "queries" and "seeded" only where the model has a decoder."""
    return COMPLETION_SOURCES if predictor.model.config.completion else ("matching",)


#: The completions :func:`completions_of` reads off a matching: by completion source, plus every
#: query whatever its existence ("queries, any existence": where the decoder puts a point, apart
#: from whether it decides that the point is missing).
ALL_QUERIES = "queries, any existence"


def completions_of(predictor: Predictor, batch, sources: Sequence[str]) -> Tuple[Oriented, Dict[str, list]]:
    """One matching of ``batch`` (the mirror test's orientation per pair) and, per completion
    source (and :data:`ALL_QUERIES`), the :class:`~pyg_ssgm.model.output.Completion` of every pair
    read off it."""
    oriented = predictor.orient(batch)
    return oriented, {s: (predictor.completions(oriented, batch, "queries", exist_threshold=-1.0)
                          if s == ALL_QUERIES else predictor.completions(oriented, batch, s))
                      for s in sources}


def lacking_scores(oriented: Oriented, b: int, side: str) -> Dict[str, np.ndarray]:
    """How strongly pair ``b``'s matching says that graph ``side`` lacks each real node of the
    other graph (higher: more likely lacking), per node of the other graph, from the orientation
    the pair keeps: ``"queries"``, the existence probability of the query of ``side`` seeded from
    the node (0 where none was), where the model has a decoder; ``"affinity"``, minus the node's
    best affinity to a real node of ``side`` (what the matching's threshold cuts)."""
    prediction = oriented.plain if bool(oriented.keep[b]) else oriented.flipped
    out = prediction.output
    n_s, n_t = int(out.num_real_s[b]), int(out.num_real_t[b])
    S = out.S[b, :n_s, :n_t]
    scores = {"affinity": (-(S.amax(0) if side == "s" else S.amax(1))).double().cpu().numpy()}
    queries = out.queries_s if side == "s" else out.queries_t
    if queries is not None:
        index = seeded_queries(out, side)[b, :n_t if side == "s" else n_s]
        prob = torch.sigmoid(queries.exist_logit[index.clamp(min=0)]) * (index >= 0)
        scores["queries"] = prob.double().cpu().numpy()
    return scores


def auroc(scores: Sequence[float], lacks: Sequence[bool]) -> float:
    """The probability that a node that lacks a partner scores above one that has one (ties count
    half; the Mann-Whitney statistic over both counts): 0.5 is chance, 1 a perfect ranking. NaN
    where either kind is absent."""
    scores, lacks = np.asarray(scores, dtype=float), np.asarray(lacks, dtype=bool)
    if lacks.all() or not lacks.any():
        return float("nan")
    return float(mannwhitneyu(scores[lacks], scores[~lacks]).statistic / (lacks.sum() * (~lacks).sum()))


@torch.no_grad()
def count_measures(predictor: Predictor, instances: Sequence[KeypointInstance],
                   max_pairs_per_category: Optional[int] = None, batch_size: int = 32, seed: int = 0,
                   device: torch.device | str = "cpu", desc: Optional[str] = None) -> Dict[str, Any]:
    """The count measure (module docstring) on the unfiltered real pairs of ``instances`` (those of
    :func:`~pyg_ssgm.evaluation.evaluate_matching`). Returns ``num_pairs``, ``true_mean`` (points a
    graph lacks, mean per graph), ``true_zero`` (share of pairs where neither graph lacks any) and,
    per source, ``exact`` (pairs), ``exact_graph``, ``mae`` and ``generated_mean`` (per graph),
    ``precision`` (the share of generated nodes that stand for a node their graph lacks) and
    ``brier`` (the mean squared difference between their confidence and that truth; ``None``
    both where nothing is generated);
    ``auroc``: how well each per-node score of :func:`lacking_scores` ranks the named nodes a graph
    lacks above those it has, whatever the threshold (:func:`auroc`; ``None`` where no graph lacks
    any, or every one lacks all)."""
    dataset = RealPairs(instances, max_pairs_per_category, seed=seed)
    scorable = dataset.scorable()
    # "seeded" generates the nodes of "matching" (only their places differ): the same count
    sources = tuple(s for s in _sources(predictor) if s != "seeded")
    true: List[Tuple[int, int]] = []
    made: Dict[str, List[Tuple[int, int]]] = {s: [] for s in sources}
    # per source, each generated node: (its confidence, whether the node it stands for is lacking)
    judged: Dict[str, List[Tuple[float, bool]]] = {s: [] for s in sources}
    scores: Dict[str, List[float]] = {}  # per named node of every graph's other graph: each score of lacking it
    lacks: List[bool] = []  # and whether the graph does lack it
    with progress_bar(len(scorable), desc or "", "pair", desc is not None) as bar:
        for batch in pair_loader(Subset(dataset, scorable), batch_size):
            oriented, completions = completions_of(predictor, batch.to(device), sources)
            true += [(lacking(ns, nt), lacking(nt, ns)) for ns, nt in zip(batch.names_s, batch.names_t)]
            for s in sources:
                made[s] += [(len(c.source.pos), len(c.target.pos)) for c in completions[s]]
                for c in completions[s]:
                    for points, own, other in ((c.source, c.names_s, c.names_t), (c.target, c.names_t, c.names_s)):
                        judged[s] += [(conf, j >= 0 and other[j] is not None and other[j] not in own)
                                      for j, conf in zip(points.partner.tolist(), points.confidence.tolist())]
            for b, (names_s, names_t) in enumerate(zip(batch.names_s, batch.names_t)):
                for side, own, other in (("s", names_s, names_t), ("t", names_t, names_s)):
                    named = [j for j, n in enumerate(other) if n is not None]  # outliers: lacked by no graph
                    for key, score in lacking_scores(oriented, b, side).items():
                        scores.setdefault(key, []).extend(score[named].tolist())
                    have = set(own)
                    lacks += [other[j] not in have for j in named]
            bar.update(batch.num_graphs)
    truth = np.asarray(true, dtype=np.int64).reshape(-1, 2)
    out: Dict[str, Any] = {"num_pairs": len(truth), "true_mean": float(truth.mean()) if truth.size else float("nan"),
                           "true_zero": float((truth.sum(1) == 0).mean()) if truth.size else float("nan")}
    for s in sources:
        m = np.asarray(made[s], dtype=np.int64).reshape(-1, 2)
        ok = m == truth
        out[s] = {"exact": float(ok.all(1).mean()), "exact_graph": float(ok.mean()),
                  "mae": float(np.abs(m - truth).mean()), "generated_mean": float(m.mean())}
        conf, right = (np.asarray(v, dtype=float) for v in zip(*judged[s])) if judged[s] else (None, None)
        out[s]["precision"] = None if right is None else float(right.mean())
        out[s]["brier"] = None if right is None else float(((conf - right) ** 2).mean())
    ranks = {key: auroc(score, lacks) for key, score in scores.items()}
    # None rather than NaN where undefined (clean pairs): the report is written as JSON
    out["auroc"] = {key: value if np.isfinite(value) else None for key, value in ranks.items()}
    return out


class HiddenPair(NamedTuple):
    """A real pair with keypoints hidden from its target (:func:`hide_common`)."""

    pair: Any  #: the :class:`~pyg_ssgm.data.PairData` the model sees (the target without them)
    partners: List[int]  #: the hidden points' partners in the source (local indices)
    truth: np.ndarray  #: ``[k, 2]`` their true positions in the target
    names: List[Any]  #: their names
    size: float  #: the largest side of the target's keypoint bounding box, hidden points included


def hide_common(inst_s: KeypointInstance, inst_t: KeypointInstance, k: int,
                generator: torch.Generator) -> Optional[HiddenPair]:
    """``inst_s`` paired with ``inst_t`` less ``k`` of the keypoints both name, drawn with
    ``generator``; ``None`` where fewer than ``k + MIN_LEFT`` keypoints are common."""
    where_s = {n: a for a, n in enumerate(inst_s.names) if n is not None}
    common = [b for b, n in enumerate(inst_t.names) if n is not None and n in where_s]
    if len(common) < k + MIN_LEFT:
        return None
    hidden = sorted(common[p] for p in torch.randperm(len(common), generator=generator)[:k].tolist())
    kept = [b for b in range(inst_t.num_nodes) if b not in hidden]
    pos_t = inst_t.pos.double().numpy()
    size = max(float((pos_t.max(0) - pos_t.min(0)).max()), 1e-12)
    names = [inst_t.names[b] for b in hidden]
    return HiddenPair(make_pair(inst_s, inst_t.subset(kept)), [where_s[n] for n in names], pos_t[hidden], names,
                      size)


def _hidden_pairs(instances: Sequence[KeypointInstance], index: Sequence[Tuple[int, int]], k: int,
                  seed: int) -> List[HiddenPair]:
    """:func:`hide_common` of each pair ``(i, j)`` of ``index`` where it applies, seeded by
    ``(seed, k, position in index)``."""
    hidden = (hide_common(instances[i], instances[j], k, item_generator(seed, k, position))
              for position, (i, j) in enumerate(index))
    return [h for h in hidden if h is not None]


@torch.no_grad()
def placement_measures(predictor: Predictor, instances: Sequence[KeypointInstance],
                       hidden_counts: Sequence[int] = HIDDEN_COUNTS, max_pairs_per_category: Optional[int] = None,
                       batch_size: int = 32, seed: int = 0, device: torch.device | str = "cpu",
                       baseline=None, desc: Optional[str] = None) -> Dict[str, Any]:
    """The place measure (module docstring) on the real pairs of ``instances``. ``baseline``: the
    matcher whose matches the transfer baselines also use (default: RRWM, with the mirror test
    where ``predictor`` has it). Returns per ``k`` (key ``"k=<k>"``) the pairs and points scored
    and, per method, the PCK values (a hidden point it puts nowhere is a miss), ``median``, the
    median normalised error of the points it puts somewhere, and, for the generated nodes,
    ``found``, the share of hidden points with a node for their partner."""
    from .baselines import ClassicalMatcher

    baseline = baseline or ClassicalMatcher("rrwm", mirror_test=predictor.config.mirror_test)
    index = RealPairs(instances, max_pairs_per_category, seed=seed).index
    sources = _sources(predictor) + ((ALL_QUERIES,) if predictor.model.config.completion else ())
    result: Dict[str, Any] = {}
    for k in hidden_counts:
        items = _hidden_pairs(instances, index, k, seed)
        errors: Dict[str, List[float]] = {}
        label = None if desc is None else f"{desc}, {k} hidden"
        with progress_bar(len(items), label or "", "pair", label is not None) as bar:
            for start in range(0, len(items), batch_size):
                chunk = items[start:start + batch_size]
                batch = next(iter(pair_loader([h.pair for h in chunk], len(chunk))))
                oriented, completions = completions_of(predictor, batch.to(device), sources)
                matches, theirs = oriented.pairs(), baseline(batch)
                for b, h in enumerate(chunk):
                    guesses = _guesses(h.pair, h.partners, matches[b].cpu(), theirs[b].cpu(),
                                       {s: completions[s][b] for s in sources})
                    for method, pos in guesses.items():
                        errors.setdefault(method, []).extend((np.linalg.norm(pos - h.truth, axis=1) / h.size).tolist())
                bar.update(len(chunk))
        row: Dict[str, Any] = {"num_pairs": len(items), "num_points": len(items) * k}
        for method, e in errors.items():
            placed = np.asarray(e)[np.isfinite(e)]
            row[method] = {**pck(e), "median": float(np.median(placed)) if placed.size else None}
            if method.startswith("generated"):
                row[method]["found"] = placed.size / len(e)
        result[f"k={k}"] = row
    return result


def _guesses(pair, partners: List[int], ours: Tensor, theirs: Tensor,
             completions: Dict[str, Any]) -> Dict[str, np.ndarray]:
    """Where each method puts the hidden points (``[k, 2]``, ``inf`` where it puts nothing)."""
    pos_s, pos_t = pair.pos_s.double().numpy(), pair.pos_t.double().numpy()
    query = pos_s[partners]
    out = {}
    for source, completion in completions.items():
        generated = np.full((len(partners), 2), np.inf)
        partner = completion.target.partner.tolist()
        for row, p in enumerate(partners):
            if p in partner:
                generated[row] = completion.target.pos[partner.index(p)].double().numpy()
        out[f"generated ({source})"] = generated
    for who, m in (("model", ours), ("rrwm", theirs)):
        src, dst = pos_s[m[0].numpy()], pos_t[m[1].numpy()]
        out[f"affine ({who} matches)"] = affine_transfer(src, dst, query)
        out[f"tps ({who} matches)"] = tps_transfer(src, dst, query)
    return out


@torch.no_grad()
def inference_switch(predictor: Predictor, instances: Sequence[KeypointInstance],
                     current: Optional[Dict[str, Any]] = None, **kwargs) -> Dict[str, Dict[str, float]]:
    """Unfiltered F1 / precision / recall and intersection accuracy of the same trained model with
    its generated nodes in the matching at inference (``"on"``) and without (``"off"``);
    ``current``: :func:`~pyg_ssgm.evaluation.evaluate_matching`'s result for ``predictor`` as it
    is, when already computed. ``kwargs``: those of ``evaluate_matching``."""
    def summary(results) -> Dict[str, float]:
        unf = results["unfiltered"].mean
        return {"f1": unf.f1, "precision": unf.precision, "recall": unf.recall,
                "intersection_accuracy": results["intersection"].mean.recall}

    out = {}
    for on in (True, False):
        config = replace(predictor.config, generate_at_inference=on)
        same = config == predictor.config
        results = current if same and current is not None else evaluate_matching(
            Predictor(predictor.model, config), instances, **kwargs)
        out["on" if on else "off"] = summary(results)
    return out


def generation_measures(predictor: Predictor, instances: Sequence[KeypointInstance], place: bool = True,
                        switch: bool = True, current: Optional[Dict[str, Any]] = None,
                        hidden_counts: Sequence[int] = HIDDEN_COUNTS, max_pairs_per_category: Optional[int] = None,
                        batch_size: int = 32, seed: int = 0, device: torch.device | str = "cpu",
                        desc: Optional[str] = None) -> Dict[str, Any]:
    """The measures of the module docstring: ``"count"`` always, ``"place"`` with ``place``,
    ``"matching"`` (:func:`inference_switch`, where the model has a decoder) with ``switch``."""
    common = dict(max_pairs_per_category=max_pairs_per_category, batch_size=batch_size, seed=seed, device=device)
    out: Dict[str, Any] = {"count": count_measures(predictor, instances, desc=desc and f"{desc}, count", **common)}
    if place:
        out["place"] = placement_measures(predictor, instances, hidden_counts, desc=desc and f"{desc}, place", **common)
    if switch and predictor.model.config.completion:
        out["matching"] = inference_switch(predictor, instances, current, **common)
    return out


@torch.no_grad()
def completion_records(predictor: Predictor, instances: Sequence[KeypointInstance],
                       max_pairs_per_category: Optional[int] = None, batch_size: int = 32, seed: int = 0,
                       device: torch.device | str = "cpu") -> Dict[str, Any]:
    """The completed graph of every unfiltered real pair of ``instances`` as a JSON-friendly dict:
    ``completion_source`` and ``pairs``, one :meth:`Completion.to_dict
    <pyg_ssgm.model.output.Completion.to_dict>` per pair (the instance ids, the matches by name,
    the generated points with their partner's name, pixel position and confidence)."""
    dataset = RealPairs(instances, max_pairs_per_category, seed=seed)
    scorable = dataset.scorable()
    ids = [(instances[i].id, instances[j].id) for i, j in (dataset.index[k] for k in scorable)]
    records = []
    for batch in pair_loader(Subset(dataset, scorable), batch_size):
        for completion in predictor.complete(batch.to(device)):
            records.append(completion.to_dict(*ids[len(records)]))
    return {"completion_source": predictor.config.completion_source, "frame": "pixel", "pairs": records}


def format_generation(gen: Dict[str, Any]) -> str:
    """The text the command line prints for :func:`generation_measures`."""
    lines = []
    count = gen.get("count")
    if count:
        lines += [f"Generated-node count on {count['num_pairs']} real pairs (a graph lacks {count['true_mean']:.2f} "
                  f"named points on average; {count['true_zero']:.1%} of pairs lack none):"]
        lines += [f"  {source:<9} exact on {c['exact']:.1%} of pairs ({c['exact_graph']:.1%} of graphs), mean "
                  f"absolute error {c['mae']:.2f}, {c['generated_mean']:.2f} generated per graph"
                  + ("" if c.get("precision") is None else
                     f"; {c['precision']:.1%} of them stand for a lacking node (confidence Brier {c['brier']:.3f})")
                  for source, c in count.items() if isinstance(c, dict) and source != "auroc"]
        labels = {"queries": "the queries' existence", "affinity": "the affinity"}
        ranked = [f"{labels[k]} {v:.3f}" for k, v in count.get("auroc", {}).items() if v is not None]
        if ranked:
            lines += ["  which nodes lack a partner, per node, whatever the threshold (AUROC; 0.5: chance): "
                      + ", ".join(ranked)]
    for key, row in (gen.get("place") or {}).items():
        lines += [f"Place of {key.split('=')[1]} hidden target keypoint(s), {row['num_pairs']} pairs "
                  f"({row['num_points']} points), PCK of the target's keypoint box:"]
        lines += [f"  {method:<36} " + "  ".join(f"{k} {'-' if v is None else f'{v:.3f}'}" for k, v in m.items())
                  for method, m in row.items() if isinstance(m, dict)]
    switch = gen.get("matching")
    if switch:
        lines += ["Matching F1 with the generated nodes on / off at inference (same model): "
                  f"{switch['on']['f1']:.4f} / {switch['off']['f1']:.4f}"]
    return "\n".join(lines)
