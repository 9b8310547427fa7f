"""Rigid objects seen from turning viewpoints: F1 by the angle between the two views.

The data (:mod:`pyg_ssgm.data.viewpoint`): house-like rigid objects of 20-30 landmarks filmed
while they turn 0-90 degrees, one frame per degree, in pinhole projection; train / val / test
frames interleaved. The real test pairs (same object, two frames) are binned by the angle
between their views (``--bins``); in each bin ``--pairs-per-object`` pairs of each object are
drawn (seed 0), and every method is scored on those very pairs, unfiltered (precision / recall
/ F1, macro over the objects). Twice: complete pairs (every landmark in every frame) and with
``--hidden`` landmarks of each frame missing (occluded).

Methods: the classical solvers of ``pyg_ssgm.catalog.CLASSICAL_SOLVERS`` on the Delaunay graphs
(Hungarian on the shape context), full matchings and, where landmarks are hidden, with an
unmatched threshold calibrated on the validation frames; the Hungarian and RRWM also re-matched
under the epipolar geometry of their matching (``epipolar=True``, which SSGM may choose too), and
RRWM from the pool of its, the Hungarian's and IPFP's matchings (``epipolar_pool``; SSGM may pool
its own matchings);
SSGM trained on the training frames as a user would (``train(Settings(), splits=...)``: it
chooses its settings of inference on the validation frames after training), with ``--epochs``,
and with out-of-plane training pairs (``--out-of-plane`` degrees; 0 leaves that row out) and,
with ``--set KEY=VALUE`` items, with those settings. Writes ``viewpoint.{md,json}`` and the plot
``docs/images/viewpoint.png``.

    python benchmarks/viewpoint.py --epochs 30
    python benchmarks/viewpoint.py --epochs 1 --objects 1 --frames 13 --bins 0,45,90 --figure /tmp/v.png  # smoke
"""
import torch

from pyg_ssgm import viz
from pyg_ssgm.baselines import EPIPOLAR_POOL_SOLVERS, ClassicalMatcher
from pyg_ssgm.benchmarking.experiments import (Study, calibrated_solver, comma_list, score_pair_list, study_parser,
                                               train_variant)
from pyg_ssgm.benchmarking.tables import format_table
from pyg_ssgm.catalog import CLASSICAL_SOLVERS
from pyg_ssgm.cli.common import reported
from pyg_ssgm.config.settings import apply_overrides
from pyg_ssgm.data.viewpoint import ViewpointConfig, load_viewpoint, viewpoint_pairs
from pyg_ssgm.tuning import chosen_changes

NAMES = {"hungarian": "Hungarian", "sm": "SM", "rrwm": "RRWM", "ipfp": "IPFP"}
EPIPOLAR_SOLVERS = ("hungarian", "rrwm")
POOL_LABEL = "RRWM + Hungarian + IPFP, epipolar pool"


def draw(bins, per_object, seed=0):
    """``per_object`` pairs of each object in each bin (all where it has fewer), seeded."""
    out = {}
    rng = torch.Generator().manual_seed(seed)
    for edges, pairs in bins.items():
        by_object = {}
        for pair in pairs:
            by_object.setdefault(pair[2], []).append(pair[:2])
        out[edges] = [p for obj in sorted(by_object) for p in
                      (by_object[obj][k] for k in torch.randperm(len(by_object[obj]), generator=rng)[:per_object])]
    return out


def methods(splits, hidden, args):
    """label -> (predictor, record) of every method for one occlusion setting."""
    out = {f"{NAMES[s]}, full": (ClassicalMatcher(s), {}) for s in CLASSICAL_SOLVERS}
    # the epipolar re-matching that SSGM may choose, given to the solvers that do best here
    out.update({f"{NAMES[s]} + epipolar, full": (ClassicalMatcher(s, epipolar=True), {}) for s in EPIPOLAR_SOLVERS})
    # and from a pool of the solvers' matchings, as the model may seed it from its own
    out[f"{POOL_LABEL}, full"] = (ClassicalMatcher("rrwm", epipolar=True, epipolar_pool=EPIPOLAR_POOL_SOLVERS), {})
    if hidden:
        for s, epipolar in [(s, False) for s in CLASSICAL_SOLVERS] + [(s, True) for s in EPIPOLAR_SOLVERS]:
            matcher = calibrated_solver(s, splits["val"], args.val_pairs_per_object, epipolar=epipolar)
            label = f"{NAMES[s]}{' + epipolar' if epipolar else ''}, val threshold"
            out[label] = (matcher, {"threshold": matcher.threshold})
        matcher = calibrated_solver("rrwm", splits["val"], args.val_pairs_per_object, epipolar=True,
                                    epipolar_pool=EPIPOLAR_POOL_SOLVERS)
        out[f"{POOL_LABEL}, val threshold"] = (matcher, {"threshold": matcher.threshold})
    variants = {"SSGM default": {}}
    if args.out_of_plane:
        variants[f"SSGM default + out-of-plane {args.out_of_plane:g} deg"] = {"train": {"out_of_plane": args.out_of_plane}}
    if args.extra:
        variants["SSGM default + " + ", ".join(args.extra)] = apply_overrides({}, args.extra)
    for label, overrides in variants.items():
        run = train_variant(None, overrides, splits=splits, epochs=args.epochs)
        kept = chosen_changes(run.results.get("inference_choice", []))
        out[label] = (run.predictor, {"train_s": run.train_s, "chosen": kept, "inference": run.results["inference"]})
        print(f"hidden {hidden}: {label} trained ({run.train_s:.0f} s), chose {kept}", flush=True)
    return out


def plot(study, settings, path):
    """F1 against the bin's mid-angle, one line per method, one panel per occlusion setting."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(settings), sharey=True, squeeze=False)[0]
    for ax, hidden in zip(axes, settings):
        rows = [r for r in study.rows if r["hidden"] == hidden]
        x = [(r["bin"][0] + r["bin"][1]) / 2 for r in rows]
        for label in rows[0]["methods"]:
            if hidden and label.endswith(", full"):
                continue  # the calibrated solvers stand for them where landmarks are hidden
            ax.plot(x, [r["methods"][label]["f1"] for r in rows], marker="o", lw=2.2 if "SSGM" in label else 1.2,
                    ls="-" if "SSGM" in label else "--", label=label)
        ax.set_title("complete pairs" if not hidden else f"{hidden} landmarks hidden per frame", fontsize=10)
        ax.set_xlabel("angle between the two views (degrees)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left", framealpha=0.7)
    axes[0].set_ylabel("F1 (unfiltered, macro over objects)")
    return viz.save(fig, path)


def main():
    parser = study_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=30, help="of every SSGM model (default %(default)s)")
    parser.add_argument("--out-of-plane", type=float, default=45.0, help="of the second SSGM row (0: none)")
    parser.add_argument("--hidden", type=comma_list(int), default="0,5", help="landmarks hidden per frame, per setting")
    parser.add_argument("--bins", type=comma_list(float), default="0,15,30,45,60,75,90")
    parser.add_argument("--pairs-per-object", type=int, default=15, help="test pairs of each object in each bin")
    parser.add_argument("--val-pairs-per-object", type=int, default=60, help="to calibrate the thresholds")
    parser.add_argument("--objects", type=int, default=ViewpointConfig.num_objects)
    parser.add_argument("--frames", type=int, default=ViewpointConfig.num_frames)
    parser.add_argument("--figure", default="docs/images/viewpoint.png")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="a further SSGM row: the defaults with these settings (repeatable)")
    args = parser.parse_args()
    if args.epochs < 1 or args.pairs_per_object < 1:
        parser.error("--epochs and --pairs-per-object must be >= 1")
    study, sections = Study("viewpoint", args.output_dir), []
    for hidden in args.hidden:
        config = ViewpointConfig(num_objects=args.objects, num_frames=args.frames, hidden=hidden)
        splits = load_viewpoint(config)
        test = splits["test"]
        bins = viewpoint_pairs(test, args.bins)
        pairs = draw({k: [(i, j, test[i].category) for i, j in v] for k, v in bins.items()}, args.pairs_per_object)
        predictors = methods(splits, hidden, args)
        rows = []
        for edges, chosen in pairs.items():
            if not chosen:  # too few frames for this angle: no row
                print(f"hidden {hidden}, {edges[0]:g}-{edges[1]:g} deg: no test pair", flush=True)
                continue
            rows.append({"hidden": hidden, "bin": edges, "num_pairs": len(chosen), "methods": {
                label: {**score_pair_list(predict, test, chosen), **record}
                for label, (predict, record) in predictors.items()}})
            print(f"hidden {hidden}, {edges[0]:g}-{edges[1]:g} deg: " + ", ".join(
                f"{k} {v['f1']:.3f}" for k, v in rows[-1]["methods"].items()), flush=True)
        study.rows += rows
        heads = ["method", *(f"{r['bin'][0]:g}-{r['bin'][1]:g}" for r in rows), "mean"]

        def table(cell):
            return format_table(heads, [[label, *(cell(r["methods"][label]) for r in rows),
                                         cell({k: sum(r["methods"][label][k] for r in rows) / len(rows)
                                               for k in ("f1", "precision", "recall")})]
                                        for label in predictors], "l" + "r" * (len(rows) + 1))
        sections += [f"## {'complete pairs' if not hidden else f'{hidden} landmarks hidden per frame'}", "",
                     "F1 (unfiltered, macro over objects; pairs per bin: "
                     + ", ".join(str(r["num_pairs"]) for r in rows) + "; last column: mean over bins):", "",
                     table(lambda m: f"{m['f1']:.3f}"), "", "Precision / recall:", "",
                     table(lambda m: f"{m['precision']:.2f} / {m['recall']:.2f}"), "",
                     "SSGM's settings of inference chosen on the validation frames: " + "; ".join(
                         f"{label}: {', '.join(f'{k}={v}' for k, v in rec['chosen'].items()) or 'as default'}"
                         f" ({rec['train_s']:.0f} s training and choice)"
                         for label, (_, rec) in predictors.items() if "train_s" in rec), ""]
    study.write(["# Rigid objects, turning viewpoints: F1 by the angle between the two views", "",
                 f"`{study.command}`. {args.objects} house-like objects of 20-30 landmarks, one frame per "
                 f"{90 / (args.frames - 1):g} degree(s) over 0-90, frames split train / val / test by turns; "
                 f"{args.pairs_per_object} test pairs per object and bin (seed 0), the same for every method. "
                 f"SSGM: `train(Settings(), splits=...)` with {args.epochs} epochs (not the default 100), its "
                 "inference chosen on the validation frames; classical solvers on the Delaunay graphs (the "
                 "Hungarian and RRWM also re-matched under the epipolar geometry of their matching, and RRWM "
                 "re-matched from the pool of its, the Hungarian's and IPFP's matchings), "
                 "full or with an unmatched threshold calibrated on the validation frames "
                 f"({args.val_pairs_per_object} pairs per object).", "", *sections],
                epochs=args.epochs, out_of_plane=args.out_of_plane, pairs_per_object=args.pairs_per_object,
                data={"num_objects": args.objects, "num_frames": args.frames})
    print(f"written {plot(study, args.hidden, args.figure)}")


if __name__ == "__main__":
    with reported():
        main()
