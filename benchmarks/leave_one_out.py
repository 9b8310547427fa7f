"""Leave one dataset out: settings chosen on one real dataset, trained and tested on another.

Each preset of :mod:`pyg_ssgm.presets` was chosen on one dataset's validation split. Here each
is trained on the *other* dataset's training split and tested there, beside the preset of that
dataset itself (its in-domain figure) and the default (``Settings()``, which chooses its settings
of inference on that dataset's own validation split after training, as a new user's run does):

* ``willow_geometry`` (chosen on Willow) on CUB-200-2011, and ``cub`` (chosen on CUB) on Willow;
* geometry only, seed 0, the same number of epochs for every row of one dataset (``--epochs``:
  Willow 30 as its presets, CUB 12 as its preset);
* the same seeded test pairs for every row (``--pairs``: per class; Willow 100, CUB 10), scored
  unfiltered (precision / recall / F1, macro over classes) and in the intersection setting;
* beside RRWM whose unmatched threshold is calibrated on the same validation split (on CUB also
  with the mirror test, as the ``cub`` preset matches).

The files are written after each dataset; each row is printed as it is measured.

    python benchmarks/leave_one_out.py --root willow=data/WillowObject,cub=data/CUB_200_2011
    python benchmarks/leave_one_out.py --datasets cub --root cub=data/CUB_200_2011  # one dataset: leave_one_out_cub.md
    python benchmarks/leave_one_out.py --datasets willow --epochs willow=1 --pairs willow=2  # a smoke test
"""
import argparse

from pyg_ssgm.benchmarking.experiments import (DEFAULT_ROOTS, Study, calibrated_solver, comma_list, score,
                                               study_parser, train_variant)
from pyg_ssgm.benchmarking.tables import format_table
from pyg_ssgm.cli.common import reported
from pyg_ssgm.data import RealPairs, load_splits
from pyg_ssgm.tuning import chosen_changes

DATASETS = ("willow", "cub")
#: the preset chosen on each dataset (``None``: the defaults)
HOME = {"willow_geometry": "willow", "cub": "cub", None: None}
EPOCHS, PAIRS = {"willow": 30, "cub": 12}, {"willow": 100, "cub": 10}


def per_dataset(kind):
    """An argparse ``type`` for ``willow=V,cub=V`` (either may be left out: its default stays)."""
    def parse(text):
        values = {}
        for item in comma_list(str)(text):
            name, _, value = item.partition("=")
            if name not in DATASETS or not value:
                raise argparse.ArgumentTypeError(f"expected DATASET=VALUE with DATASET in {DATASETS}, got {item!r}")
            values[name] = kind(value)
        return values
    return parse


def label(preset, dataset):
    if preset is None:
        return "SSGM default (`Settings()`, inference chosen on this validation split)"
    where = "in-domain" if HOME[preset] == dataset else f"transferred from {HOME[preset]}"
    return f"SSGM `{preset}` preset ({where})"


def chosen(results):
    """What the default's choice on validation changed (``"-"``: nothing)."""
    return "; ".join(f"{k}={v}" for k, v in chosen_changes(results.get("inference_choice", [])).items()) or "-"


def main():
    parser = study_parser(__doc__)
    parser.add_argument("--datasets", type=comma_list(str), default=",".join(DATASETS))
    parser.add_argument("--root", type=per_dataset(str), default={}, help=f"default: {DEFAULT_ROOTS}")
    parser.add_argument("--epochs", type=per_dataset(int), default={}, help=f"default: {EPOCHS}")
    parser.add_argument("--pairs", type=per_dataset(int), default={}, help=f"test pairs per class, default: {PAIRS}")
    args = parser.parse_args()
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        parser.error(f"--datasets: unknown {unknown}; known: {list(DATASETS)}")
    roots, epochs, pairs = ({**defaults, **given} for defaults, given in
                            ((DEFAULT_ROOTS, args.root), (EPOCHS, args.epochs), (PAIRS, args.pairs)))
    # one dataset alone writes its own file, so that the other's results stay where they are
    name = "leave_one_out" if len(args.datasets) > 1 else f"leave_one_out_{args.datasets[0]}"
    study = Study(name, args.output_dir)
    counts, sections = {}, []
    for dataset in args.datasets:
        splits = load_splits(dataset, roots[dataset])
        test = splits["test"]
        counts[dataset] = len(RealPairs(test, pairs[dataset], seed=0))
        rows = []
        for preset in HOME:
            run = train_variant(preset, dataset=dataset, root=roots[dataset], epochs=epochs[dataset])
            rows.append({"dataset": dataset, "method": label(preset, dataset), "preset": preset, "train_s": run.train_s,
                         "epochs": epochs[dataset], "inference": run.results["inference"], "chosen": chosen(run.results),
                         "inference_choice": run.results.get("inference_choice"),
                         **score(run.predictor, test, pairs[dataset])})
            study.rows.append(rows[-1])
            print(f"{dataset}: {rows[-1]['method']}: F1 {rows[-1]['f1']:.3f} ({run.train_s:.0f} s)", flush=True)
        for mirror in (False, True)[:1 + (dataset == "cub")]:
            rrwm = calibrated_solver("rrwm", splits["val"], mirror_test=mirror)
            rows.append({"dataset": dataset, "method": "RRWM, val threshold" + (", mirror test" if mirror else ""),
                         "threshold": rrwm.threshold, "train_s": 0.0, "chosen": "-", **score(rrwm, test, pairs[dataset])})
            study.rows.append(rows[-1])
        sections += [f"## {dataset}: {counts[dataset]} test pairs ({pairs[dataset]} per class, seed 0), "
                     f"{epochs[dataset]} epochs", "",
                     format_table(["method", "P", "R", "F1", "intersection acc.", "train s", "chosen on validation"],
                                  [[r["method"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"**{r['f1']:.3f}**",
                                    f"{r['intersection_accuracy']:.3f}", f"{r['train_s']:.0f}", r["chosen"]]
                                   for r in rows], "lrrrrrl"), ""]
        study.write(["# Leave one dataset out: presets chosen on one dataset, trained and tested on another", "",
                     f"`{study.command}`. Geometry only, seed 0; unfiltered P / R / F1 (macro over classes) and "
                     "intersection accuracy on the same test pairs for every row of a dataset. The presets pin "
                     "their settings of inference; the default chooses its own on the dataset's validation "
                     "split after training (last column: what it changed).", "", *sections],
                    epochs=epochs, pairs_per_class=pairs, num_test_pairs=counts)


if __name__ == "__main__":
    with reported():
        main()
