"""Choose SSGM's settings for a real dataset on its *validation* split only (short runs).

Trains a few variants (seed 0, ``--epochs`` each) and scores each on the validation pairs,
unfiltered (precision / recall / F1, macro over classes: the partial setting) and intersection
accuracy. ``shape_context_weight`` (late fusion of the raw shape-context cosine) is a setting
of inference, not a parameter, so it is swept on every trained model. Writes
``benchmarks/results/<name>_validation.{md,json}`` (``<name>``: the dataset, plus ``_outliersK``).

    python benchmarks/validation_choice.py --dataset cub --root data/CUB_200_2011 --epochs 3
    python benchmarks/validation_choice.py --dataset willow --root data/WillowObject --outliers 2
    python benchmarks/validation_choice.py --dataset cub --epochs 2 --variants generated --mirror

``--mirror`` also scores every setting with the mirror test (``mirror_test``, a setting of
inference: the target matched mirrored too), adds learning-free RRWM with and without it for
reference, and writes ``<name>_mirror_validation.{md,json}``.
"""
from pyg_ssgm.baselines import ClassicalMatcher
from pyg_ssgm.benchmarking.experiments import (DEFAULT_ROOTS, Study, comma_list, score, study_parser, train_variant,
                                               with_inference)
from pyg_ssgm.benchmarking.tables import format_table
from pyg_ssgm.catalog import DATASETS
from pyg_ssgm.cli.common import reported
from pyg_ssgm.data import RealPairs, load_splits, perturb_splits

VARIANTS = {  # key -> (description, section overrides)
    "generated": ("generated pairs only", {"train": {"pseudo_labels": False}}),
    "pseudo": ("+ every pseudo-labelled real pair each epoch",
               {"train": {"pseudo_labels": True, "pseudo_ratio": None}}),
    "pseudo_no_completion": ("+ every pseudo-labelled real pair each epoch, w/o completion",
                             {"train": {"pseudo_labels": True, "pseudo_ratio": None}, "model": {"completion": False}}),
}
SHAPE_CONTEXT_WEIGHTS = (0.0, 10.0, 20.0, 40.0)
#: second-order matching over the completed graphs (``solver="rrwm"``, also a setting of inference
#: only), tried at these shape-context weights
RRWM_WEIGHTS = (0.0, 20.0)


def inference_settings(description: str, completion: bool):
    """(label, inference changes) of every setting scored on one trained model, without the
    mirror test. A completion model is also scored with its generated nodes kept out of the
    matching: what they buy it."""
    modes = [(description, {})]
    if completion:
        modes.append((description + ", generated nodes off at inference", {"generate_at_inference": False}))
    out = [(label, {"shape_context_weight": w, **changes}) for w in SHAPE_CONTEXT_WEIGHTS for label, changes in modes]
    return out + [(description + ", solver rrwm", {"shape_context_weight": w, "solver": "rrwm"}) for w in RRWM_WEIGHTS]


def main():
    parser = study_parser(__doc__)
    parser.add_argument("--dataset", choices=DATASETS, default="cub")
    parser.add_argument("--root", help=f"the dataset's local root (default: {DEFAULT_ROOTS})")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--outliers", type=int, default=0)
    parser.add_argument("--val-pairs-per-category", type=int, default=None, help="default: all")
    parser.add_argument("--variants", type=comma_list(str), default=",".join(VARIANTS),
                        help="comma-separated, of " + ", ".join(VARIANTS))
    parser.add_argument("--mirror", action="store_true", help="also score with the mirror test")
    args = parser.parse_args()
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; known: {list(VARIANTS)}")
    root = args.root or DEFAULT_ROOTS.get(args.dataset)
    name = args.dataset + (f"_outliers{args.outliers}" if args.outliers else "") + ("_mirror" if args.mirror else "")
    study = Study(f"{name}_validation", args.output_dir)
    # read once: the reference rows and the pair count of the report use it
    val = perturb_splits(load_splits(args.dataset, root), args.outliers)["val"]
    for key in args.variants:
        description, overrides = VARIANTS[key]
        run = train_variant(None, overrides, dataset=args.dataset, root=root, epochs=args.epochs,
                            outliers=args.outliers, val_pairs_per_category=1)
        settings = inference_settings(description, run.settings.model.completion)
        for mirror in (False, True)[:1 + args.mirror]:
            for label, changes in settings:
                if mirror and changes.get("solver") == "rrwm":
                    continue
                predictor = with_inference(run.predictor, mirror_test=mirror, **changes)
                c = predictor.config
                row = {"key": key, "variant": label + (", mirror test" if mirror else ""),
                       "shape_context_weight": c.shape_context_weight, "train_s": run.train_s,
                       "generate_at_inference": c.generate_at_inference, "solver": c.solver, "mirror_test": mirror,
                       **score(predictor, run.splits["val"], args.val_pairs_per_category)}
                study.rows.append(row)
                print(f"{row['f1']:.3f} F1  {row['intersection_accuracy']:.3f} acc  {row['variant']}, "
                      f"shape_context_weight={c.shape_context_weight}", flush=True)
    if args.mirror:  # the learning-free reference on the same pairs, with and without the test
        for mirror in (False, True):
            label = "RRWM (learning-free), full" + (", mirror test" if mirror else "")
            study.rows.append({"key": "rrwm", "variant": label, "shape_context_weight": 0.0, "train_s": 0.0,
                               "mirror_test": mirror, **score(ClassicalMatcher("rrwm", mirror_test=mirror), val,
                                                              args.val_pairs_per_category)})
            print(f"{study.rows[-1]['f1']:.3f} F1  {label}", flush=True)
    num_pairs = len(RealPairs(val, args.val_pairs_per_category, seed=0))
    table = format_table(["variant", "shape_context_weight", "P", "R", "F1", "intersection acc.", "train s"],
                         [[r["variant"], f"{r['shape_context_weight']:g}", f"{r['precision']:.3f}",
                           f"{r['recall']:.3f}", f"{r['f1']:.3f}", f"{r['intersection_accuracy']:.3f}",
                           f"{r['train_s']:.0f}"] for r in study.rows])
    study.write([f"# {name}: settings chosen on the validation split", "",
                 f"`{study.command}` ({args.epochs} epochs, seed 0; {num_pairs} validation pairs; unfiltered "
                 "P / R / F1 macro over classes, intersection accuracy).", "", table],
                epochs=args.epochs, num_val_pairs=num_pairs)


if __name__ == "__main__":
    with reported():
        main()
