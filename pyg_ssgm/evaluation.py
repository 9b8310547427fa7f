"""Evaluation on real cross-instance pairs (unfiltered and intersection) and of the completion.

The command line ``python -m pyg_ssgm evaluate`` (:mod:`pyg_ssgm.cli.evaluate`) runs these
functions on a checkpoint or a classical solver; this module never imports the command lines.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torch.utils.data import Subset

from .data import GeneratedPairs, KeypointInstance, PairGenerator, RealPairs, pair_loader
from .metrics import MatchCounts, MatchingReport, aggregate, batch_counts
from .model import Predictor
from .progress import progress_bar

PredictFn = Callable[[object], List[Tensor]]


def _score(predict: PredictFn, instances: Sequence[KeypointInstance], intersection: bool = False,
           max_pairs_per_category: Optional[int] = None, batch_size: int = 32, seed: int = 0,
           device: torch.device | str = "cpu", desc: Optional[str] = None) -> Tuple[List[MatchCounts], int]:
    """:func:`score_pairs`, and how many pairs were skipped for an empty side."""
    dataset = RealPairs(instances, max_pairs_per_category, seed=seed, intersection=intersection)
    scorable = dataset.scorable()
    return count_matches(predict, Subset(dataset, scorable), batch_size, device, desc), len(dataset) - len(scorable)


def count_matches(predict: PredictFn, pairs: Sequence, batch_size: int = 32, device: torch.device | str = "cpu",
                  desc: Optional[str] = None) -> List[MatchCounts]:
    """Run ``predict`` on ``pairs`` (:class:`~pyg_ssgm.data.PairData`, ground truth in ``y``) in
    batches and count each pair's true positives. ``desc``: the label of a progress bar (none
    without)."""
    records: List[MatchCounts] = []
    with progress_bar(len(pairs), desc or "", "pair", desc is not None) as bar:
        for batch in pair_loader(pairs, batch_size):
            records += batch_counts([p.cpu() for p in predict(batch.to(device))], batch)
            bar.update(batch.num_graphs)
    return records


def score_pairs(predict: PredictFn, instances: Sequence[KeypointInstance], intersection: bool = False,
                max_pairs_per_category: Optional[int] = None, batch_size: int = 32, seed: int = 0,
                device: torch.device | str = "cpu", desc: Optional[str] = None) -> List[MatchCounts]:
    """Run ``predict`` (a batch -> list of ``[2, K]`` matchings) on the real pairs of ``instances``
    and count, per pair, its true positives against the names-derived ground truth. A pair with
    an empty side (:meth:`RealPairs.scorable <pyg_ssgm.data.RealPairs.scorable>`: in the
    intersection setting, no keypoint in common) is skipped. ``desc``: the label of a progress
    bar over the pairs (none without)."""
    return _score(predict, instances, intersection, max_pairs_per_category, batch_size, seed, device, desc)[0]


def _report(records: List[MatchCounts], skipped: int) -> MatchingReport:
    return replace(aggregate(records), skipped=skipped) if records else MatchingReport.empty(skipped)


def evaluate_matching(predict: PredictFn, instances: Sequence[KeypointInstance], desc: Optional[str] = None,
                      **kwargs) -> Dict[str, object]:
    """Both settings of the evaluation protocol (``docs/evaluation.md``) on the same pairs:

    * ``"unfiltered"``: all annotated keypoints; a :class:`~pyg_ssgm.metrics.MatchingReport` of
      precision / recall / F1 per class and averaged;
    * ``"intersection"``: only keypoints named in both images; its recall is the literature's accuracy.

    A pair without a keypoint in common has nothing to score in the intersection setting: it is
    skipped, and counted in the report's ``skipped``. ``desc`` labels the progress bars
    (``"<desc>, unfiltered"``, ``"<desc>, intersection"``); none without. ``kwargs``: those of
    :func:`score_pairs`.
    """
    results: Dict[str, object] = {}
    for setting in ("unfiltered", "intersection"):
        label = None if desc is None else f"{desc}, {setting}"
        results[setting] = _report(*_score(predict, instances, setting == "intersection", desc=label, **kwargs))
    return results


@torch.no_grad()
def completion_quality(predictor: Predictor, instances: Sequence[KeypointInstance],
                       generator: Optional[PairGenerator] = None, seed: int = 12345, batch_size: int = 32,
                       device: torch.device | str = "cpu") -> Dict[str, float]:
    r"""How well a model completes *generated* pairs of ``instances`` (ground truth by construction).

    * ``count_accuracy``: share of pairs whose number of generated nodes
      (:meth:`Predictor.generated_nodes <pyg_ssgm.Predictor.generated_nodes>`: decided as
      ``completion_source`` says, whether or not ``generate_at_inference`` lets them into the
      matching) is exactly the number of missing nodes on **both** sides;
      ``count_accuracy_graph``: the same per graph;
    * ``position_error``: mean distance between generated and true positions of missing nodes
      (each true one paired with a generated one by the Hungarian algorithm), in units of the
      graph's RMS radius.
    """
    model = predictor.model
    was_training = model.training
    model.eval()
    dataset = GeneratedPairs(instances, (generator or PairGenerator()).plain(), seed=seed)
    exact_pairs, graphs_ok, graphs, errors, num_pairs = 0, 0, 0, [], 0
    for batch in pair_loader(dataset, batch_size):
        batch = batch.to(device)
        prediction = predictor.match(batch)
        out = prediction.output
        B = batch.num_graphs
        ok = torch.ones(B, dtype=torch.bool, device=out.n1.device)
        generated_s, generated_t = predictor.generated_nodes(prediction)
        for side, made_nodes, enc in (("s", generated_s, out.encoded_s), ("t", generated_t, out.encoded_t)):
            tgt_batch = getattr(batch, f"comp_pos_{side}_batch")
            wanted = torch.bincount(tgt_batch, minlength=B)
            # Not the nodes in the completed graph: with ``generate_at_inference=False`` there are
            # none, which would score the model as predicting no missing node at all.
            made = (torch.zeros_like(wanted) if made_nodes is None
                    else torch.bincount(made_nodes.batch, minlength=B))
            ok &= made == wanted
            graphs_ok += int((made == wanted).sum())
            graphs += B
            if made_nodes is None:
                continue
            tgt = (getattr(batch, f"comp_pos_{side}") - enc.center[tgt_batch]) / enc.scale[tgt_batch].unsqueeze(-1)
            for b in range(B):
                pred_b, tgt_b = made_nodes.pos[made_nodes.batch == b], tgt[tgt_batch == b]
                if len(pred_b) and len(tgt_b):
                    cost = torch.cdist(tgt_b, pred_b).cpu().numpy()
                    rows, cols = linear_sum_assignment(cost)
                    errors += cost[rows, cols].tolist()
        exact_pairs += int(ok.sum())
        num_pairs += B
    model.train(was_training)
    return {
        "count_accuracy": exact_pairs / max(num_pairs, 1),
        "count_accuracy_graph": graphs_ok / max(graphs, 1),
        "position_error": float(np.mean(errors)) if errors else float("nan"),
        "num_pairs": num_pairs,
    }


def report_to_dict(results: Dict[str, object]) -> Dict[str, object]:
    """JSON-friendly version of :func:`evaluate_matching`'s result (plus any plain values)."""
    return {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in results.items()}


def chosen_changes(rows: Sequence[Dict[str, object]]) -> Dict[str, object]:
    """The values a choice on validation (the rows of :func:`pyg_ssgm.tuning.choose_inference`)
    changed from where it started, as finally chosen: a group decided twice shows its last value;
    one changed and changed back, none."""
    kept = [row for row in rows if row["kept"]]
    if not kept:
        return {}
    final: Dict[str, object] = {}
    for row in kept[1:]:
        final.update(row["option"])
    return {k: v for k, v in final.items() if kept[0]["option"].get(k) != v}


def format_results(results: Dict[str, object]) -> str:
    """The text table printed to the terminal."""
    lines = []
    if "not_tested" in results:
        lines += [f"Nothing was tested: {results['not_tested']}.", ""]
    if "unfiltered" in results:
        lines += ["Unfiltered real pairs (precision / recall / F1 of predicted correspondences):",
                  str(results["unfiltered"]), ""]
    if "intersection" in results:
        inter = results["intersection"]
        lines += ["Intersection setting (literature protocol), accuracy = recall:"]
        lines += [f"  {name:<14} {s.recall:.4f}" for name, s in inter.per_class.items()]
        lines += [f"  {'mean':<14} {inter.mean.recall:.4f}"]
        if inter.skipped:
            lines += [f"  ({inter.skipped} of {inter.skipped + inter.mean.num_pairs} pairs skipped: no keypoint "
                      "in common)"]
        lines += [""]
    if "completion" in results:
        c = results["completion"]
        lines += [f"Completion on generated pairs: missing-node count exact on {c['count_accuracy']:.1%} of pairs "
                  f"({c['count_accuracy_graph']:.1%} of graphs), mean position error {c['position_error']:.3f} "
                  "(graph radii)", ""]
    if results.get("inference_choice"):
        kept = [row for row in results["inference_choice"] if row["kept"]]
        changed = ", ".join(f"{k}={v}" for k, v in chosen_changes(results["inference_choice"]).items())
        changed = changed or "none changed"
        lines += [f"Inference settings chosen on validation: {changed} (validation F1 {kept[0]['val_f1']:.4f} as "
                  f"given, {kept[-1]['val_f1']:.4f} as chosen)"]
    return "\n".join(lines).rstrip()
