"""How well could *any* completion do on a dataset's generated pairs? The ceiling that the
positions themselves set, next to a trained model on the same pairs.

A generated pair is two copies of one instance, each with its own random affine transform, its own
per-point jitter and its own dropped nodes (``TrainConfig.pair_generator()``, the pairs that
``completion_quality`` scores). Where a side lacks a node, the best a position-based completion can
do is to map the other side's node through the transform between the copies. This script gives it
that transform for free (the affine map fitted to the true common pairs) and measures:

* **position error**: of the missing nodes so placed, in graph radii (what ``completion_quality``
  reports): what is left is the jitter of the two copies;
* **count exact**: share of pairs whose missing-node count is right on both sides when the node's
  existence is decided from the aligned positions (a node lacks a partner unless the Hungarian
  assignment of the distances gives it one closer than ``tau`` graph radii), at the best ``tau``.

With ``--checkpoint`` the model's own figures on the same pairs are added (``completion_quality``).
Validation split by default. Writes ``benchmarks/results/<dataset>_completion_ceiling_<split>.{md,json}``.

    python benchmarks/completion_ceiling.py --dataset cub --root data/CUB_200_2011 --preset cub
"""
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from pyg_ssgm.benchmarking.experiments import DEFAULT_ROOTS, Study, study_parser, variant_settings
from pyg_ssgm.benchmarking.tables import format_table
from pyg_ssgm.catalog import DATASETS
from pyg_ssgm.cli.common import reported
from pyg_ssgm.config import TrainConfig
from pyg_ssgm.data import GeneratedPairs, load_splits
from pyg_ssgm.evaluation import completion_quality
from pyg_ssgm.experiment import load_model, with_drop_rate
from pyg_ssgm.nn.features import normalize_positions
from pyg_ssgm.presets import PRESETS

THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
SEED = 12345  # completion_quality's pairs


def normalized(pos: torch.Tensor, extra: torch.Tensor) -> tuple:
    """``pos`` and ``extra`` in the model's frame of ``pos``: centred, divided by the RMS radius."""
    out, center, scale = normalize_positions(pos, torch.zeros(pos.size(0), dtype=torch.long), 1)
    return out.numpy(), ((extra - center) / scale).numpy()


def affine(into: np.ndarray, frm: np.ndarray) -> np.ndarray:
    """Least-squares ``[3, 2]`` map of the points ``frm`` onto ``into``: the minimum-norm one where
    fewer than 3 pairs leave it open. (Not ``pyg_ssgm.nn.alignment.fit_affine``: its ridge towards
    the identity gives those few pairs another map, and the figures would move.)"""
    return np.linalg.lstsq(np.c_[frm, np.ones(len(frm))], into, rcond=None)[0]


def apply(A: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return np.c_[pos, np.ones(len(pos))] @ A


def oracle(pair) -> dict:
    """Position errors and, per threshold, whether the count is exact, for one generated pair.
    The least-squares fit is the true transform only where the pair has 3 common nodes or more."""
    (p_s, truth_s), (p_t, truth_t) = normalized(pair.pos_s, pair.comp_pos_s), normalized(pair.pos_t, pair.comp_pos_t)
    common = pair.y.numpy()
    into = {"s": affine(p_s[common[0]], p_t[common[1]]), "t": affine(p_t[common[1]], p_s[common[0]])}
    errors = []
    for other, truth, side in ((p_t, truth_s, "s"), (p_s, truth_t, "t")):
        lacking = getattr(pair, f"comp_index_{side}").numpy()
        errors += np.linalg.norm(apply(into[side], other[lacking]) - truth, axis=1).tolist()
    distance = np.linalg.norm(p_s[:, None] - apply(into["s"], p_t)[None], axis=-1)
    rows, cols = linear_sum_assignment(distance)
    exact = {tau: int((distance[rows, cols] <= tau).sum()) == common.shape[1] for tau in THRESHOLDS}
    return {"errors": errors, "exact": exact}


def main():
    parser = study_parser(__doc__)
    parser.add_argument("--dataset", choices=DATASETS, default="cub")
    parser.add_argument("--root", help=f"the dataset's local root (default: {DEFAULT_ROOTS})")
    parser.add_argument("--preset", choices=PRESETS, help="take the training pairs' settings from this preset")
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--checkpoint", default=None, help="a trained model to score on the same pairs")
    args = parser.parse_args()
    root = args.root or DEFAULT_ROOTS.get(args.dataset)
    cfg = TrainConfig(**variant_settings(args.preset, dataset=args.dataset, root=root)["train"])
    study = Study(f"{args.dataset}_completion_ceiling_{args.split}", args.output_dir)
    splits = load_splits(args.dataset, root)
    cfg = with_drop_rate(cfg, splits["train"])  # as training derives it where unset
    instances = splits[args.split]
    # plain pairs, as completion_quality scores (a mirror pair leaves out what has no known place)
    pairs = GeneratedPairs(instances, cfg.pair_generator().plain(), seed=SEED)
    results = [oracle(pairs[k]) for k in range(len(pairs))]
    errors = [e for r in results for e in r["errors"]]
    exact = {tau: float(np.mean([r["exact"][tau] for r in results])) for tau in THRESHOLDS}
    best = max(exact, key=exact.get)
    underdetermined = sum(int(pairs[k].y.size(1) < 3) for k in range(len(pairs)))
    summary = {"dataset": args.dataset, "split": args.split, "pairs": len(pairs), "jitter": cfg.jitter,
               "pairs_with_fewer_than_3_common_nodes": underdetermined,
               "oracle_position_error": float(np.mean(errors)), "oracle_count_exact": exact,
               "oracle_best_threshold": best}
    study.rows.append({"completion": f"true transform, positions only (threshold {best})",
                       "count_accuracy": exact[best], "position_error": float(np.mean(errors))})
    if args.checkpoint:
        predictor, _ = load_model(args.checkpoint)
        quality = completion_quality(predictor, instances, cfg.pair_generator(), seed=SEED)
        summary["model"] = {"checkpoint": args.checkpoint, **quality}
        study.rows.append({"completion": f"the model (`{predictor.config.completion_source}`)", **quality})
    table = format_table(["completion", "count exact (pairs)", "position error (graph radii)"],
                         [[r["completion"], f"{r['count_accuracy']:.1%}", f"{r['position_error']:.3f}"]
                          for r in study.rows])
    text = "\n".join([
        f"# Completion ceiling: {args.dataset}, {len(pairs)} generated {args.split} pairs "
        f"(jitter {cfg.jitter} of the point set's scale per copy)", "", table, "",
        "Count exact with the true transform, by threshold (graph radii): "
        + ", ".join(f"{tau}: {v:.1%}" for tau, v in exact.items()) + f". {underdetermined} of the "
        f"{len(pairs)} pairs have fewer than 3 common nodes, which do not fix the affine map."])
    study.write(text, **summary)
    print(text)


if __name__ == "__main__":
    with reported():
        main()
