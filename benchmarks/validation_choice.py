"""Choose SSGM's settings for a real dataset on its *validation* split only (short runs).

Trains a few variants (seed 0, ``--epochs`` each) and scores each on the validation pairs,
unfiltered (precision / recall / F1, macro over classes: the partial setting) and intersection
accuracy. ``shape_context_weight`` (late fusion of the raw shape-context cosine) is a setting
of inference, not a parameter, so it is swept on every trained model. Writes
``benchmarks/results/<name>_validation.{md,json}`` (``<name>``: the dataset, plus ``_outliersK``).

    python benchmarks/validation_choice.py --dataset cub --root ../shared/data/CUB_200_2011 --epochs 3
    python benchmarks/validation_choice.py --dataset willow --root ../shared/data/WillowObject --outliers 2
    python benchmarks/validation_choice.py --dataset cub --epochs 2 --variants generated --mirror

``--mirror`` also scores every setting with the mirror test (``mirror_test``, a setting of
inference: the target matched mirrored too), adds learning-free RRWM with and without it for
reference, and writes ``<name>_mirror_validation.{md,json}``.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from pyg_ssgm import SSGMConfig
from pyg_ssgm.baselines import ClassicalMatcher
from pyg_ssgm.data import RealPairs, load_splits, perturb_splits
from pyg_ssgm.evaluate import evaluate_matching
from pyg_ssgm.trainer import TrainConfig, train

VARIANTS = [  # key, description, train settings, model settings
    ("generated", "generated pairs only (defaults)", {}, {}),
    ("pseudo", "+ pseudo-labelled real pairs", {"pseudo_labels": True}, {}),
    ("pseudo_no_completion", "+ pseudo-labelled real pairs, w/o completion", {"pseudo_labels": True},
     {"completion": False}),
]
SHAPE_CONTEXT_WEIGHTS = (0.0, 10.0, 20.0, 40.0)
#: second-order matching over the completed graphs (``solver="rrwm"``, also a setting of inference
#: only), tried at these shape-context weights
RRWM_WEIGHTS = (0.0, 20.0)


def scores(predict, instances, max_pairs):
    out = evaluate_matching(predict, instances, max_pairs_per_category=max_pairs)
    unf = out["unfiltered"].mean
    return {"f1": unf.f1, "precision": unf.precision, "recall": unf.recall,
            "intersection_accuracy": out["intersection"].mean.recall}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cub")
    parser.add_argument("--root", default="../shared/data/CUB_200_2011")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--outliers", type=int, default=0)
    parser.add_argument("--val-pairs-per-category", type=int, default=None, help="default: all")
    parser.add_argument("--variants", default=",".join(v[0] for v in VARIANTS))
    parser.add_argument("--mirror", action="store_true", help="also score with the mirror test")
    parser.add_argument("--output-dir", default="benchmarks/results")
    args = parser.parse_args()
    chosen = args.variants.split(",")
    rows, start = [], time.perf_counter()
    # read once: the reference rows and the pair count of the report use it
    val = perturb_splits(load_splits(args.dataset, args.root), args.outliers)["val"]
    with tempfile.TemporaryDirectory() as tmp:
        for key, description, train_settings, model_settings in VARIANTS:
            if key not in chosen:
                continue
            t0 = time.perf_counter()
            train_cfg = TrainConfig(**{**train_settings, "dataset": args.dataset, "root": args.root,
                                       "epochs": args.epochs, "output_dir": f"{tmp}/{key}",
                                       "outliers": args.outliers, "eval_every": args.epochs,
                                       "val_pairs_per_category": 1, "test_pairs_per_category": 1})
            trainer, _ = train(train_cfg, SSGMConfig(**model_settings), progress=False)
            model, train_s = trainer.model.eval(), time.perf_counter() - t0
            # a completion model is also scored with its generated nodes switched off at inference
            # (no query passes an existence threshold of 1): what the generated nodes buy the matching
            modes = [(description, model.config.exist_threshold, "hungarian")]
            if model.config.completion:
                modes.append((description + ", generated nodes off at inference", 1.0, "hungarian"))
            settings = [(w, m) for w in SHAPE_CONTEXT_WEIGHTS for m in modes]
            settings += [(w, (description + ", solver rrwm", modes[0][1], "rrwm")) for w in RRWM_WEIGHTS]
            for mirror in (False, True)[:1 + args.mirror]:
                for weight, (label, exist_threshold, solver) in settings:
                    if mirror and solver == "rrwm":
                        continue
                    model.config.shape_context_weight, model.config.exist_threshold = weight, exist_threshold
                    model.config.solver, model.config.mirror_test = solver, mirror
                    label = label + (", mirror test" if mirror else "")
                    row = {"key": key, "variant": label, "shape_context_weight": weight, "train_s": train_s,
                           "exist_threshold": exist_threshold, "solver": solver, "mirror_test": mirror,
                           **scores(model.predict, trainer.splits["val"], args.val_pairs_per_category)}
                    rows.append(row)
                    print(f"{row['f1']:.3f} F1  {row['intersection_accuracy']:.3f} acc  {label}, "
                          f"shape_context_weight={weight}", flush=True)
        if args.mirror:  # the learning-free reference on the same pairs, with and without the test
            for mirror in (False, True):
                matcher = ClassicalMatcher("rrwm", mirror_test=mirror)
                label = "RRWM (learning-free), full" + (", mirror test" if mirror else "")
                rows.append({"key": "rrwm", "variant": label, "shape_context_weight": 0.0, "train_s": 0.0,
                             "mirror_test": mirror, **scores(matcher, val, args.val_pairs_per_category)})
                print(f"{rows[-1]['f1']:.3f} F1  {label}", flush=True)
    num_pairs = len(RealPairs(val, args.val_pairs_per_category, seed=0))
    name = args.dataset + (f"_outliers{args.outliers}" if args.outliers else "") + ("_mirror" if args.mirror else "")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/validation_choice.py " + " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in vars(args).items()
        if v is not None and v is not False and k != "output_dir")
    result = {"command": command, "epochs": args.epochs, "num_val_pairs": num_pairs, "rows": rows,
              "wall_s": time.perf_counter() - start, "torch": torch.__version__}
    (out / f"{name}_validation.json").write_text(json.dumps(result, indent=2))
    lines = [f"# {name}: settings chosen on the validation split", "",
             f"`{command}` ({args.epochs} epochs, seed 0; {num_pairs} validation pairs; unfiltered "
             "P / R / F1 macro over classes, intersection accuracy).", "",
             "| variant | shape_context_weight | P | R | F1 | intersection acc. | train s |",
             "|:--|--:|--:|--:|--:|--:|--:|"]
    lines += [f"| {r['variant']} | {r['shape_context_weight']:g} | {r['precision']:.3f} | {r['recall']:.3f} | "
              f"{r['f1']:.3f} | {r['intersection_accuracy']:.3f} | {r['train_s']:.0f} |" for r in rows]
    (out / f"{name}_validation.md").write_text("\n".join(lines) + "\n")
    print(f"written {out / name}_validation.md ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
