"""Which value of one setting should a preset use? Each named preset is trained with each value
(seed 0) and scored on its dataset's *validation* split only; the preset keeps the better value.
Willow: 30 epochs, all 75 validation pairs, intersection accuracy (per class as well). CUB: the
preset's epochs, 3 validation pairs per class (600), unfiltered macro F1 (the partial setting).
With completion on, also what the completion says is missing on the validation instances'
generated pairs (``completion_quality``). Writes benchmarks/results/<datasets>_<setting>.{md,json}.

    python benchmarks/preset_setting.py --setting inference_consensus_iterations --values 12,8,2 --inference-only
    python benchmarks/preset_setting.py --presets cub --setting inference_consensus_iterations --values 12,8,2 \\
        --inference-only
    python benchmarks/preset_setting.py --presets cub --setting deformation --values 0,0.05,0.1,0.2

``--setting`` names a setting of any section (train, model, loss, inference), as
``python -m pyg_ssgm train --set`` does. ``--inference-only``: a setting of inference (late-fusion
weights, the alignment rounds at inference, ...): each preset is trained once and evaluated with
each value.

The coherence-rounds choice was made with this script's predecessor (``willow_coherence.py``);
its results are ``willow_coherence.{md,json}``.
"""
import json

from pyg_ssgm.benchmarking.experiments import (DEFAULT_ROOTS, Study, comma_list, per_class_table, score,
                                               study_parser, train_variant, with_inference)
from pyg_ssgm.benchmarking.tables import format_table
from pyg_ssgm.cli.common import reported
from pyg_ssgm.config import SECTIONS, merge, split_sections
from pyg_ssgm.errors import ConfigError
from pyg_ssgm.presets import PRESETS

#: dataset -> (epochs (None: the preset's), validation pairs per class (None: all))
PROTOCOLS = {"willow": (30, None), "cub": (None, 3)}


def section_of(setting: str) -> str:
    """The section that has ``setting`` (a ConfigError for an unknown name)."""
    owner = [name for name, values in split_sections({setting: None}).items() if setting in values]
    if not owner:
        raise ConfigError(f"{setting!r} is a section, not a setting.")
    return owner[0]


def main():
    parser = study_parser(__doc__)
    parser.add_argument("--presets", type=comma_list(str), default="willow_geometry,willow_images",
                        help="comma-separated presets (default: %(default)s)")
    parser.add_argument("--setting", required=True,
                        help="a setting of any section, e.g. consensus_iterations, deformation, shape_context_weight")
    parser.add_argument("--values", type=comma_list(json.loads), required=True,
                        help="comma-separated values (numbers, true/false), the default first")
    defaults = ", ".join(f"{k}={v}" for k, v in DEFAULT_ROOTS.items())
    parser.add_argument("--root", action="append", default=[], metavar="DATASET=PATH",
                        help=f"a dataset's local root (default: {defaults})")
    parser.add_argument("--epochs", type=int, help="training epochs of every run (default: the protocol's; "
                        "fewer for a quick check only)")
    parser.add_argument("--inference-only", action="store_true",
                        help="a setting of inference: train once per preset, evaluate each value")
    args = parser.parse_args()
    try:
        section = section_of(args.setting)
        for value in args.values:  # each value must be one the section accepts
            SECTIONS[section](**{args.setting: value})
    except (ConfigError, TypeError) as e:
        parser.error(f"--setting {args.setting} --values {','.join(map(str, args.values))}: {e}")
    if args.inference_only and section != "inference":
        parser.error(f"--inference-only: {args.setting!r} is a {section} setting; it needs a training per value")
    known = sorted(n for n in PRESETS if n.split("_")[0] in PROTOCOLS)
    unknown = [n for n in args.presets if n not in known]
    if unknown:
        parser.error(f"--presets: no validation protocol for {unknown}; known: {known}")
    bad = [r for r in args.root if r.partition("=")[0] not in PROTOCOLS]
    if bad:
        parser.error(f"--root takes DATASET=PATH with DATASET one of {sorted(PROTOCOLS)}, got {bad}")
    roots = {**DEFAULT_ROOTS, **dict(r.split("=", 1) for r in args.root)}
    datasets = sorted({n.split("_")[0] for n in args.presets})
    study = Study(f"{'_'.join(datasets)}_{args.setting}", args.output_dir)
    for name in args.presets:
        dataset = name.split("_")[0]
        epochs, val_pairs = PROTOCOLS[dataset]
        epochs = args.epochs or epochs
        # the protocol, then the value (a swept `epochs` wins over the protocol's)
        protocol = {"train": {"dataset": dataset, "root": roots[dataset], "val_pairs_per_category": val_pairs,
                              **({"epochs": epochs} if epochs is not None else {})}}
        run = None
        for value in args.values:
            if run is None or not args.inference_only:
                swept = {} if args.inference_only else {section: {args.setting: value}}
                run = train_variant(name, merge(protocol, swept))
            predictor = with_inference(run.predictor, **{args.setting: value}) if args.inference_only else run.predictor
            scores = score(predictor, run.splits["val"], val_pairs, generator=run.trainer.cfg.pair_generator())
            study.rows.append({"preset": name, args.setting: value, "epochs": run.trainer.cfg.epochs,
                               "val_f1": scores["f1"], "val_accuracy": scores["intersection_accuracy"],
                               "completion": scores["completion"], "per_class": scores["per_class"]})
            print(f"{name}, {args.setting}={value}: F1 {scores['f1']:.3f}, intersection accuracy "
                  f"{scores['intersection_accuracy']:.3f}", flush=True)

    def cells(r):
        pairs = PROTOCOLS[r["preset"].split("_")[0]][1]
        c = r["completion"]
        return [r["preset"], str(r[args.setting]), *([] if args.setting == "epochs" else [str(r["epochs"])]),
                f"{pairs} per class" if pairs else "all", f"{r['val_f1']:.3f}", f"{r['val_accuracy']:.3f}",
                f"{c['count_accuracy']:.1%}" if c else "-", f"{c['position_error']:.3f}" if c else "-"]

    headers = ["preset", args.setting, *([] if args.setting == "epochs" else ["epochs"]), "val pairs",
               "unfiltered F1", "intersection acc.", "count exact (generated val pairs)", "position error"]
    lines = [f"# {args.setting} in the presets (validation split only)", "", f"`{study.command}` (seed 0).", "",
             format_table(headers, [cells(r) for r in study.rows], "l" + "r" * (len(headers) - 1))]
    willow = [r for r in study.rows if r["preset"].startswith("willow")]
    if willow:
        lines += ["", "Willow, intersection accuracy per class:", "",
                  per_class_table(["preset", args.setting], willow, lambda r: [r["preset"], str(r[args.setting])])]
    study.write(lines)


if __name__ == "__main__":
    with reported():
        main()
