"""How partial can the pairs get? F1 on CUB-200-2011 test pairs as extra parts are dropped.

Protocol: the CUB preset (:mod:`pyg_ssgm.presets`) is trained once with and once without
completion on the *unperturbed* training split (seed 0, ``--epochs``). Then, for every share
``s`` of ``--shares``, each annotated part of every test and validation image is removed
independently with probability ``s`` (:func:`pyg_ssgm.data.drop_parts`, seeded per image), on
top of the parts CUB already lacks, and the same seeded pairs (``--test-pairs-per-category`` per
class, all 200 classes) are scored unfiltered (P / R / F1, macro over classes). RRWM's unmatched
threshold is refitted on the validation pairs perturbed the same way; it uses the mirror test where
the preset's model does. Writes ``benchmarks/results/cub_partial_sweep.{md,json}`` and
``docs/images/cub_partial_sweep.png``.

    python benchmarks/partial_sweep.py --root data/CUB_200_2011 --epochs 5
"""
from tqdm.auto import tqdm

from pyg_ssgm import viz
from pyg_ssgm.benchmarking.experiments import (DEFAULT_ROOTS, Study, calibrated_solver, comma_list, score,
                                               study_parser, train_variant, variant_settings)
from pyg_ssgm.benchmarking.tables import format_table
from pyg_ssgm.cli.common import reported
from pyg_ssgm.config import Settings
from pyg_ssgm.data import RealPairs, drop_parts, load_splits

#: key -> (label, section overrides of the CUB preset)
MODELS = {"ssgm": ("SSGM self-supervised", {}),
          "ssgm_no_completion": ("SSGM w/o completion", {"model": {"completion": False}})}
METHODS = (*MODELS, "rrwm_calibrated")


def main():
    parser = study_parser(__doc__)
    parser.add_argument("--root", default=DEFAULT_ROOTS["cub"], help="CUB-200-2011 (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the CUB preset's")
    parser.add_argument("--shares", type=comma_list(float), default="0,0.1,0.3,0.5")
    parser.add_argument("--test-pairs-per-category", type=int, default=10)
    parser.add_argument("--val-pairs-per-category", type=int, default=60)
    parser.add_argument("--figure", default="docs/images/cub_partial_sweep.png")
    parser.add_argument("--no-pseudo-labels", action="store_true", help="train on generated pairs only "
                        "(quicker; for a smoke test on tiny data)")
    args = parser.parse_args()
    cub = variant_settings("cub")
    epochs = args.epochs or Settings.from_dict(cub).train.epochs
    pseudo = {"pseudo_labels": False} if args.no_pseudo_labels else {}
    # RRWM gets the mirror test where the model has it (birds face either way): a fair comparison
    mirror = bool(cub["inference"].get("mirror_test", False))
    labels = {**{k: label for k, (label, _) in MODELS.items()},
              "rrwm_calibrated": "RRWM, val threshold" + (", mirror test" if mirror else "")}
    study = Study("cub_partial_sweep", args.output_dir)
    splits = load_splits("cub", args.root)
    predictors = {key: train_variant("cub", {**overrides, "train": pseudo}, dataset="cub", root=args.root,
                                     epochs=epochs, val_pairs_per_category=1).predictor
                  for key, (_, overrides) in MODELS.items()}
    for share in tqdm(args.shares, desc="drop shares"):
        test, val = drop_parts(splits["test"], share), drop_parts(splits["val"], share)
        rrwm = calibrated_solver("rrwm", val, args.val_pairs_per_category, mirror_test=mirror)
        row = {"extra_drop": share, "num_pairs": len(RealPairs(test, args.test_pairs_per_category, seed=0)),
               "rrwm_threshold": rrwm.threshold, "mean_keypoints": sum(i.pos.size(0) for i in test) / len(test)}
        for key, predict in {**predictors, "rrwm_calibrated": rrwm}.items():
            scores = score(predict, test, args.test_pairs_per_category, intersection=False)
            row[key] = {k: scores[k] for k in ("precision", "recall", "f1")}
        study.rows.append(row)
        print(f"drop {share:.0%}: " + ", ".join(f"{k} F1 {row[k]['f1']:.3f}" for k in METHODS), flush=True)
    rows = study.rows
    table = format_table(["extra drop", "keypoints / image", *(f"{labels[k]} P / R / F1" for k in METHODS)],
                         [[f"{r['extra_drop']:.0%}", f"{r['mean_keypoints']:.1f}",
                           *(f"{r[k]['precision']:.3f} / {r[k]['recall']:.3f} / **{r[k]['f1']:.3f}**" for k in METHODS)]
                          for r in rows], "r" * (2 + len(METHODS)))
    study.write(["# CUB-200-2011: how partial (extra dropped parts, test and validation images)", "",
                 f"`{study.command}`: {rows[0]['num_pairs']} test pairs per share ({args.test_pairs_per_category} per "
                 f"class, seed 0); models trained once ({epochs} epochs) on the unperturbed training split; RRWM's "
                 "threshold refitted on the validation pairs at each share. Unfiltered, macro over classes.", "",
                 table],
                epochs=epochs, settings=cub)
    fig = viz.plot_sweep([100 * s for s in args.shares], {labels[k]: [r[k]["f1"] for r in rows] for k in METHODS},
                         "extra dropped parts per image (%)", "F1 (unfiltered, macro)", title="CUB-200-2011 test pairs",
                         ylim=None)
    print(f"written {viz.save(fig, args.figure)}")


if __name__ == "__main__":
    with reported():
        main()
