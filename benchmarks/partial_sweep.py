"""How partial can the pairs get? F1 on CUB-200-2011 test pairs as extra parts are dropped.

Protocol: the CUB preset (:mod:`pyg_ssgm.presets`) is trained once with and once without
completion on the *unperturbed* training split (seed 0, ``--epochs``). Then, for every share
``s`` of ``--shares``, each annotated part of every test and validation image is removed
independently with probability ``s`` (:func:`pyg_ssgm.data.drop_parts`, seeded per image), on
top of the parts CUB already lacks, and the same seeded pairs (``--test-pairs-per-category`` per
class, all 200 classes) are scored unfiltered (P / R / F1, macro over classes). RRWM's unmatched
threshold is refitted on the validation pairs perturbed the same way; it uses the mirror test where
the preset's model does. Writes
``benchmarks/results/cub_partial_sweep.{md,json}`` and ``docs/images/cub_partial_sweep.png``.

    python benchmarks/partial_sweep.py --root ../shared/data/CUB_200_2011 --epochs 5
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pyg_ssgm import SSGMConfig, viz
from pyg_ssgm.baselines import ClassicalMatcher
from pyg_ssgm.data import RealPairs, drop_parts, load_splits, pair_loader
from pyg_ssgm.errors import InvalidInputError
from pyg_ssgm.evaluate import score_pairs
from pyg_ssgm.metrics import aggregate
from pyg_ssgm.presets import preset
from pyg_ssgm.trainer import TrainConfig, train

METHODS = ("ssgm", "ssgm_no_completion", "rrwm_calibrated")
LABELS = {"ssgm": "SSGM self-supervised", "ssgm_no_completion": "SSGM w/o completion",
          "rrwm_calibrated": "RRWM, val threshold"}


def train_variant(root, epochs, completion, tmp, pseudo_labels=True):
    settings = preset("cub")
    settings["train"]["pseudo_labels"] = settings["train"].get("pseudo_labels", False) and pseudo_labels
    model_settings = {**settings.get("model", {}), "completion": completion}
    cfg = TrainConfig(**{**settings.get("train", {}), "dataset": "cub", "root": root, "epochs": epochs,
                         "output_dir": f"{tmp}/{completion}", "eval_every": epochs,
                         "val_pairs_per_category": 1, "test_pairs_per_category": 1})
    trainer, _ = train(cfg, SSGMConfig(**model_settings), progress=False)
    return trainer.model.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="../shared/data/CUB_200_2011")
    parser.add_argument("--epochs", type=int, default=None, help="default: the CUB preset's")
    parser.add_argument("--shares", default="0,0.1,0.3,0.5")
    parser.add_argument("--test-pairs-per-category", type=int, default=10)
    parser.add_argument("--val-pairs-per-category", type=int, default=60)
    parser.add_argument("--output-dir", default="benchmarks/results")
    parser.add_argument("--figure", default="docs/images/cub_partial_sweep.png")
    parser.add_argument("--no-pseudo-labels", action="store_true", help="train on generated pairs only "
                        "(quicker; for a smoke test on tiny data)")
    args = parser.parse_args()
    shares = [float(s) for s in args.shares.split(",")]
    # RRWM gets the mirror test where the model has it (birds face either way): a fair comparison
    mirror = bool(preset("cub").get("model", {}).get("mirror_test", False))
    labels = {**LABELS, "rrwm_calibrated": LABELS["rrwm_calibrated"] + (", mirror test" if mirror else "")}
    epochs = args.epochs or preset("cub").get("train", {}).get("epochs", TrainConfig().epochs)
    start = time.perf_counter()
    splits = load_splits("cub", args.root)
    with tempfile.TemporaryDirectory() as tmp:
        pseudo = not args.no_pseudo_labels
        models = {"ssgm": train_variant(args.root, epochs, True, tmp, pseudo),
                  "ssgm_no_completion": train_variant(args.root, epochs, False, tmp, pseudo)}
    rows = []
    for share in tqdm(shares, desc="drop shares"):
        test, val = drop_parts(splits["test"], share), drop_parts(splits["val"], share)
        rrwm = ClassicalMatcher("rrwm", mirror_test=mirror)
        try:
            val_pairs = RealPairs(val, args.val_pairs_per_category, seed=0)
        except InvalidInputError:  # no validation pair (tiny data): RRWM stays a full matching
            val_pairs = None
        if val_pairs is not None:
            rrwm.calibrate_threshold(list(pair_loader(val_pairs, 32)))
        predictors = {**{k: m.predict for k, m in models.items()}, "rrwm_calibrated": rrwm}
        pairs = RealPairs(test, args.test_pairs_per_category, seed=0)
        row = {"extra_drop": share, "num_pairs": len(pairs), "rrwm_threshold": rrwm.threshold,
               "mean_keypoints": sum(i.pos.size(0) for i in test) / len(test)}
        for key, predict in predictors.items():
            mean = aggregate(score_pairs(predict, test, max_pairs_per_category=args.test_pairs_per_category)).mean
            row[key] = {"precision": mean.precision, "recall": mean.recall, "f1": mean.f1}
        rows.append(row)
        print(f"drop {share:.0%}: " + ", ".join(f"{k} F1 {row[k]['f1']:.3f}" for k in METHODS), flush=True)
    command = (f"python benchmarks/partial_sweep.py --root {args.root} --epochs {epochs} --shares {args.shares} "
               f"--test-pairs-per-category {args.test_pairs_per_category}"
               + (" --no-pseudo-labels" if args.no_pseudo_labels else ""))
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": command, "epochs": epochs, "rows": rows, "wall_s": time.perf_counter() - start,
              "settings": preset("cub"), "torch": torch.__version__}
    (out / "cub_partial_sweep.json").write_text(json.dumps(result, indent=2))
    lines = ["# CUB-200-2011: how partial (extra dropped parts, test and validation images)", "",
             f"`{command}`: {rows[0]['num_pairs']} test pairs per share ({args.test_pairs_per_category} per class, "
             f"seed 0); models trained once ({epochs} epochs) on the unperturbed training split; RRWM's threshold "
             "refitted on the validation pairs at each share. Unfiltered, macro over classes.", "",
             "| extra drop | keypoints / image | " + " | ".join(f"{labels[k]} P / R / F1" for k in METHODS) + " |",
             "|--:|--:|" + "--:|" * len(METHODS)]
    lines += [f"| {r['extra_drop']:.0%} | {r['mean_keypoints']:.1f} | " + " | ".join(
        f"{r[k]['precision']:.3f} / {r[k]['recall']:.3f} / **{r[k]['f1']:.3f}**" for k in METHODS) + " |"
        for r in rows]
    (out / "cub_partial_sweep.md").write_text("\n".join(lines) + "\n")
    fig = viz.plot_sweep([100 * s for s in shares], {labels[k]: [r[k]["f1"] for r in rows] for k in METHODS},
                         "extra dropped parts per image (%)", "F1 (unfiltered, macro)",
                         title="CUB-200-2011 test pairs", ylim=None)
    viz.save(fig, args.figure)
    print(f"written {out / 'cub_partial_sweep.md'} and {args.figure} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
