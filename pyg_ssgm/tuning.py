r"""Choosing a trained model's settings of inference on the validation split.

The settings of inference change no parameter, so they can be chosen after training, on the
validation pairs, at the cost of a few evaluations. :func:`choose_inference` walks the groups of
:data:`GROUPS` in order; in each it scores the alternatives to the current value (the rest of the
configuration held as chosen so far) on the same pairs and keeps the best one only on evidence:
its validation F1 (unfiltered, macro over classes) must beat the current one by more than
``min_gain``, and the pairs' own F1 must rise on average by more than ``evidence`` standard
errors of the paired differences, so that a few lucky pairs of a small validation split do not
decide. A change can make an earlier group's rejected option right (on birds, the generated nodes
are a wash until the mirror test is on, and then cost 7 points), so the walk goes round the groups
again until every group has been scored under the configuration as finally chosen (at most
``max_sweeps`` rounds). What each group decides:

* **keypoint filter**: which points the model's keypoint filter removes before matching (a model
  trained on points without a name only; first: it decides which points there are to match);
* **generated nodes** in the matching or not (they change the graphs that every later choice
  matches);
* **epipolar geometry**: whether the matching is re-matched under the epipolar geometry it
  implies (two views of one rigid object: a turn out of the image plane changes every descriptor
  and edge, not that constraint; different objects of a class share none), from it alone or from
  a pool of the model's first matchings; before the matching, whose job it changes (from the
  answer to the seed of the geometry);
* **matching**: the linear assignment of the learned affinity, or the quadratic assignment
  (RRWM over the rebuilt edges) with the learned affinity as unary term and the edges compared
  once aligned, or with no unary term and the edges as they are: where the learned affinity does
  not carry over (large out-of-plane turns of a rigid object), edge-to-edge agreement decides;
  each cut by the learned threshold, or whole (every node of the smaller graph matched, as a
  classical solver matches complete pairs);
* **shape context**, **appearance**: the late-fusion weights of the raw descriptors (appearance
  only where the pairs have descriptors);
* **alignment rounds** at inference;
* **keypoint prior**: how much the keypoint filter's doubt about a point kept costs it in the
  matching (a model with a filter);
* **threshold shift**: a stricter unmatched threshold than the one learned on training pairs;
* **decoder dustbin**: how much the decoder's existence estimates decide which nodes stay
  unmatched (``dustbin_weight``);
* **mirror test**: objects seen from either side (birds) need it, others lose by it.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .config import InferenceConfig
from .data import KeypointInstance
from .errors import ConfigError
from .evaluation import chosen_changes, score_pairs
from .matching import QUADRATIC_SOLVERS
from .metrics import aggregate
from .model import Predictor

Option = Dict[str, Any]

#: (group, options): each option a set of :class:`~pyg_ssgm.config.InferenceConfig` values.
GROUPS: Tuple[Tuple[str, Tuple[Option, ...]], ...] = (
    # first of all: which points are there to match (a model with a keypoint filter only)
    ("keypoint filter", tuple({"keypoint_threshold": t} for t in (0.0, 0.3, 0.5))),
    # next: the generated nodes change the graphs every later choice matches (a quadratic
    # assignment over graphs that hold them is another problem than over the real nodes alone)
    ("generated nodes", tuple({"generate_at_inference": g} for g in (True, False))),
    # before the matching: with it, the matching is only the seed of the epipolar geometry, which
    # may ask for another solver than a matching that must be right on its own (on turning
    # objects, validation preferred the edges alone to the learned unary term once re-matched);
    # the pool seeds the geometry from the model's other matchings too
    ("epipolar geometry", ({"epipolar": False, "epipolar_pool": False}, {"epipolar": True, "epipolar_pool": False},
                           {"epipolar": True, "epipolar_pool": True})),
    ("matching", ({"solver": "hungarian"},
                  {"solver": "rrwm", "qap_node_weight": 1.0, "qap_align": True, "qap_partial": True},
                  {"solver": "rrwm", "qap_node_weight": 0.0, "qap_align": False, "qap_partial": True},
                  # whole matchings: complete pairs under large viewpoint changes, where the learned
                  # affinity falls below its threshold but the edges still agree
                  {"solver": "rrwm", "qap_node_weight": 1.0, "qap_align": True, "qap_partial": False},
                  {"solver": "rrwm", "qap_node_weight": 0.0, "qap_align": False, "qap_partial": False})),
    ("shape context", tuple({"shape_context_weight": w} for w in (0.0, 10.0, 20.0))),
    ("appearance", tuple({"appearance_weight": w} for w in (0.0, 20.0, 40.0))),
    ("alignment rounds", tuple({"inference_consensus_iterations": r} for r in (2, 12))),
    # how much the keypoint filter's doubt about the points kept costs them in the matching: after
    # the matching, whose choice it would otherwise pre-empt (on outliers in the image, geometry
    # only, the prior taken first turned the edges' quadratic matching down: validation 0.367
    # against 0.400 once chosen the other way round)
    ("keypoint prior", tuple({"keypoint_prior": g} for g in (0.0, 0.1, 0.2, 0.4))),
    # stricter where real pairs hold points that belong to nothing (outliers), as a classical
    # solver's threshold is fitted on validation
    ("threshold shift", tuple({"threshold_shift": d} for d in (0.0, 0.05, 0.1, 0.2))),
    ("decoder dustbin", tuple({"dustbin_weight": w} for w in (0.0, 0.5, 1.0, 2.0))),
    ("mirror test", tuple({"mirror_test": m} for m in (False, True))),
)


def _holds(config: InferenceConfig, option: Option) -> bool:
    return all(getattr(config, k) == v for k, v in option.items())


def _absent(group: str, has_descriptors: bool, has_decoder: bool, has_filter: bool) -> bool:
    """Whether the pairs or the model lack what ``group`` sets, whatever the configuration:
    appearance without descriptors, the dustbin without a decoder, the keypoint filter and its
    prior without one (such a group is neither scored nor printed)."""
    return ((group == "appearance" and not has_descriptors) or (group == "decoder dustbin" and not has_decoder)
            or (group in ("keypoint filter", "keypoint prior") and not has_filter))


def _inert(config: InferenceConfig, group: str, has_descriptors: bool, has_decoder: bool,
           has_filter: bool = False) -> bool:
    """Whether no option of ``group`` can change the matching under ``config``, so that scoring
    it would spend validation passes on copies of one result: a group :func:`_absent` here; and the
    quadratic solver never reads the decoder's dustbin, its whole matching neither the threshold
    nor the keypoint prior, and with no unary term, the edges unaligned, no generated node (whose
    place and existence follow the alignment) and no epipolar re-matching nothing of the affinity.
    (The mirror test's choice of orientation reads the affinity, so with it on every group counts;
    a pair larger than ``qap_max_nodes`` falls back to the Hungarian, which these groups would
    change: such graphs are not the ones the quadratic option wins on.)"""
    if _absent(group, has_descriptors, has_decoder, has_filter):
        return True
    if config.solver not in QUADRATIC_SOLVERS or config.mirror_test:
        return False
    whole = not config.qap_partial
    blind = (whole and config.qap_node_weight == 0 and not config.qap_align and not config.generate_at_inference
             and not config.epipolar)  # the re-matching reads the affinity
    return (group == "decoder dustbin" or (whole and group in ("threshold shift", "keypoint prior"))
            or (blind and group in ("shape context", "appearance", "alignment rounds")))


def _paired_evidence(new: Sequence[float], old: Sequence[float]) -> float:
    """Mean of the paired differences ``new - old`` in units of its standard error (inf where
    every difference is the same positive number, 0 where they are all 0)."""
    diff = [a - b for a, b in zip(new, old)]
    mean = sum(diff) / len(diff)
    var = sum((d - mean) ** 2 for d in diff) / max(len(diff) - 1, 1)
    se = math.sqrt(var / len(diff))
    return mean / se if se > 0 else (math.inf if mean > 0 else 0.0)


def choose_inference(predictor: Predictor, instances: Sequence[KeypointInstance],
                     max_pairs_per_category: Optional[int] = None, min_gain: float = 0.002, evidence: float = 2.0,
                     device: torch.device | str = "cpu", groups=GROUPS, max_sweeps: int = 3,
                     echo: Optional[Callable[[str], None]] = print) -> Tuple[InferenceConfig, List[Dict[str, Any]]]:
    """The inference settings of ``predictor``'s model chosen on the real pairs of ``instances``
    (see the module docstring), starting from ``predictor.config``; and one row per configuration
    scored (group, the values tried, the round, validation F1 / precision / recall, the paired
    evidence against the configuration it challenged, whether it was kept). ``echo`` prints the
    table as it goes (``None``: silent)."""
    if isinstance(max_sweeps, bool) or not isinstance(max_sweeps, int) or max_sweeps < 1:
        raise ConfigError(f"max_sweeps must be an integer >= 1 (rounds over the groups), got {max_sweeps!r}.")
    present = (any(inst.x is not None and inst.x.numel() for inst in instances),  # descriptors, decoder, filter
               predictor.model.decoder is not None, predictor.model.keypoint_filter is not None)
    # the settings this model and these pairs can use: the only ones scored, and printed
    settable = [k for group, opts in groups if not _absent(group, *present) for o in opts for k in o]
    rows: List[Dict[str, Any]] = []

    def score(config: InferenceConfig, group: str, option: Option, sweep: int) -> Tuple[float, List[float]]:
        records = score_pairs(Predictor(predictor.model, config), instances,
                              max_pairs_per_category=max_pairs_per_category, device=device)
        mean = aggregate(records).mean
        rows.append({"group": group, "option": option, "sweep": sweep, "val_f1": mean.f1,
                     "val_precision": mean.precision, "val_recall": mean.recall, "kept": False})
        return mean.f1, [r.f1 for r in records]

    def report(row: Dict[str, Any]) -> None:
        if echo is not None:
            extra = f"  ({row['evidence']:+.1f} s.e.)" if "evidence" in row else ""
            again = f" ({row['sweep'] + 1})" if row["sweep"] else ""
            echo(f"  {row['group'] + again:<21} {_describe(row['option']):<52} val F1 {row['val_f1']:.4f}{extra}")

    start = time.perf_counter()
    config = replace(predictor.config, choose_on_validation=False)
    best, best_pairs = score(config, "start", {k: v for k, v in asdict(config).items() if k in settable}, 0)
    rows[-1]["kept"] = True
    report(rows[-1])
    settled = 0  # groups in a row scored under the current configuration without a change
    for step in range(len(groups) * max_sweeps):
        if settled == len(groups):
            break
        group, options = groups[step % len(groups)]
        settled += 1
        if _inert(config, group, *present):
            continue
        winner = None
        for option in options:
            if _holds(config, option):
                continue
            value, pairs = score(replace(config, **option), group, option, step // len(groups))
            rows[-1]["evidence"] = _paired_evidence(pairs, best_pairs)
            report(rows[-1])
            if value > best + min_gain and rows[-1]["evidence"] > evidence and (winner is None or value > winner[1]):
                winner = (option, value, pairs, len(rows) - 1)
        if winner is not None:  # the best of the group's challengers that passed
            config = replace(config, **winner[0])
            best, best_pairs = winner[1], winner[2]
            rows[winner[3]]["kept"] = True
            settled = 1  # this group was just decided under the new configuration
    if echo is not None:
        echo(f"  chosen: {_describe({k: getattr(config, k) for k in settable})} "
             f"(val F1 {best:.4f}; {time.perf_counter() - start:.0f} s)")
    return config, rows


def _describe(option: Option) -> str:
    return ", ".join(f"{k}={v}" for k, v in option.items())


__all__ = ["GROUPS", "choose_inference", "chosen_changes"]
