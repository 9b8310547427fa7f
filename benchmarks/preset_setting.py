"""Which value of one setting (of the model or of training) should a preset use? Each named
preset is trained with each value (seed 0) and scored on its dataset's *validation* split only;
the preset keeps the better value. Willow: 30 epochs, all 75 validation pairs, intersection
accuracy (per class as well). CUB: the preset's epochs, 3 validation pairs per class (600),
unfiltered macro F1 (the partial setting). With completion on, also what the completion says is
missing on the validation instances' generated pairs (``completion_quality``). Writes
benchmarks/results/<datasets>_<setting>.{md,json}.

    python benchmarks/preset_setting.py --setting inference_consensus_iterations --values 12,8,2 --inference-only
    python benchmarks/preset_setting.py --presets cub --setting inference_consensus_iterations --values 12,8,2 \
        --inference-only
    python benchmarks/preset_setting.py --presets cub --setting deformation --values 0,0.05,0.1,0.2

``--setting`` names a field of ``SSGMConfig`` or of ``TrainConfig`` (model fields first).

``--inference-only``: the setting does not change training (late-fusion weights, the alignment
rounds at inference, ...): each preset is trained once and evaluated with each value.

The coherence-rounds choice was made with this script's predecessor (``willow_coherence.py``);
its results are ``willow_coherence.{md,json}``.
"""
import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from willow_ablation import per_class_table, settings

from pyg_ssgm import SSGMConfig
from pyg_ssgm.evaluate import completion_quality, evaluate_matching
from pyg_ssgm.presets import PRESETS, preset
from pyg_ssgm.trainer import TrainConfig, feature_config, train

#: dataset -> (default root, epochs (None: the preset's), validation pairs per class (None: all))
DATASETS = {"willow": ("../shared/data/WillowObject", 30, None), "cub": ("../shared/data/CUB_200_2011", None, 3)}


def pairs_per_class(preset_name: str) -> str:
    n = DATASETS[preset_name.split("_")[0]][2]
    return f"{n} per class" if n else "all"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="willow_geometry,willow_images")
    parser.add_argument("--setting", required=True,
                        help="a field of SSGMConfig or TrainConfig, e.g. consensus_iterations, deformation")
    parser.add_argument("--values", required=True, help="comma-separated numbers, the default first")
    parser.add_argument("--root", action="append", default=[], metavar="DATASET=PATH",
                        help="a dataset's local root (default: under ../shared/data)")
    parser.add_argument("--inference-only", action="store_true",
                        help="a setting of inference: train once per preset, evaluate each value")
    parser.add_argument("--output-dir", default="benchmarks/results")
    args = parser.parse_args()
    section = ("model" if args.setting in SSGMConfig().to_dict()
               else "train" if args.setting in {f.name for f in dataclasses.fields(TrainConfig)} else None)
    if section is None:
        parser.error(f"--setting must be a field of SSGMConfig or TrainConfig, got {args.setting!r}")
    if args.inference_only and section == "train":
        parser.error(f"--inference-only: {args.setting!r} is a training setting; it needs a training per value")
    try:
        values = [float(v) if any(c in v for c in ".eE") else int(v) for v in args.values.split(",")]
    except ValueError:
        parser.error(f"--values must be comma-separated numbers, got {args.values!r}")
    names = args.presets.split(",")
    unknown = [n for n in names if n not in PRESETS or n.split("_")[0] not in DATASETS]
    if unknown:
        parser.error(f"--presets: no validation protocol for {unknown}; known: "
                     f"{sorted(n for n in PRESETS if n.split('_')[0] in DATASETS)}")
    bad = [r for r in args.root if "=" not in r or r.split("=", 1)[0] not in DATASETS]
    if bad:
        parser.error(f"--root takes DATASET=PATH with DATASET one of {sorted(DATASETS)}, got {bad}")
    roots = {k: v[0] for k, v in DATASETS.items()} | dict(r.split("=", 1) for r in args.root)
    rows, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            dataset = name.split("_")[0]
            _, epochs, val_pairs = DATASETS[dataset]
            model = None
            for value in values:
                if model is None or not args.inference_only:
                    s = settings(preset(name), **({} if args.inference_only else {section: {args.setting: value}}))
                    train_settings = {**s.get("train", {}), "dataset": dataset, "root": roots[dataset],
                                      "output_dir": f"{tmp}/{name}_{value}", "val_pairs_per_category": val_pairs,
                                      "test_pairs_per_category": 1}
                    if epochs is not None:
                        train_settings["epochs"] = epochs
                    trainer, _ = train(TrainConfig(**train_settings), SSGMConfig(**s.get("model", {})),
                                       features=feature_config(s.get("features", {})), progress=False)
                    model = trainer.model.eval()
                if section == "model":
                    setattr(model.config, args.setting, value)
                result = evaluate_matching(model.predict, trainer.splits["val"], max_pairs_per_category=val_pairs)
                inter, unf = result["intersection"], result["unfiltered"].mean
                # what the completion says is missing, on the validation instances' generated pairs
                count = (completion_quality(model, trainer.splits["val"], trainer.cfg.pair_generator())
                         if model.config.completion else None)
                rows.append({"preset": name, args.setting: value, "epochs": trainer.cfg.epochs,
                             "val_f1": unf.f1, "val_accuracy": inter.mean.recall, "completion": count,
                             "per_class": {k: v.recall for k, v in inter.per_class.items()}})
                print(f"{name}, {args.setting}={value}: F1 {unf.f1:.3f}, intersection accuracy "
                      f"{inter.mean.recall:.3f}", flush=True)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = (f"python benchmarks/preset_setting.py --presets {args.presets} --setting {args.setting} "
               f"--values {args.values}" + (" --inference-only" if args.inference_only else ""))
    stem = out / f"{'_'.join(sorted({n.split('_')[0] for n in names}))}_{args.setting}"
    stem.with_suffix(".json").write_text(json.dumps(
        {"command": command, "rows": rows, "wall_s": time.perf_counter() - start}, indent=2))
    epochs_column = ("", "") if args.setting == "epochs" else (" | epochs", "|--:")  # not twice
    lines = [f"# {args.setting} in the presets (validation split only)", "", f"`{command}` (seed 0).", "",
             "| preset | " + args.setting + epochs_column[0] + " | val pairs | unfiltered F1 | intersection acc. "
             "| count exact (generated val pairs) | position error |",
             "|:--|--:" + epochs_column[1] + "|--:|--:|--:|--:|--:|"]
    lines += [f"| {r['preset']} | {r[args.setting]}" + ("" if args.setting == "epochs" else f" | {r['epochs']}")
              + f" | {pairs_per_class(r['preset'])} | {r['val_f1']:.3f} | {r['val_accuracy']:.3f} | "
              + (f"{r['completion']['count_accuracy']:.1%} | {r['completion']['position_error']:.3f} |"
                 if r["completion"] else "- | - |") for r in rows]
    willow = [r for r in rows if r["preset"].startswith("willow")]
    if willow:
        lines += ["", "Willow, intersection accuracy per class:", ""]
        lines += per_class_table(["preset", args.setting], willow, lambda r: [r["preset"], str(r[args.setting])])
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"written {stem.with_suffix('.md')}")


if __name__ == "__main__":
    main()
