"""Each piece of the Willow set-up as an ablation, measured on the *validation* split only
(the last 6 of the 20 training images per class: 15 pairs per class, 75 in all).

Trains each variant (30 epochs, seed 0) and reports its validation intersection accuracy
(= unfiltered recall on Willow, where every keypoint is annotated). The late-fusion weights are
settings, not parameters, so they are swept on one trained model. Writes
benchmarks/results/willow_ablation.{md,json}.

    python benchmarks/willow_ablation.py [../shared/data/WillowObject] [--epochs 30]
"""
import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch

from pyg_ssgm import SSGMConfig
from pyg_ssgm.evaluate import evaluate_matching
from pyg_ssgm.presets import preset
from pyg_ssgm.trainer import TrainConfig, feature_config, train

GEOMETRY, IMAGES = preset("willow_geometry"), preset("willow_images")


def settings(base, train=None, model=None, features=None):
    out = copy.deepcopy(base)
    for section, values in (("train", train), ("model", model), ("features", features)):
        out.setdefault(section, {}).update(values or {})
    return out


VARIANTS = [  # key, description, settings
    ("generated_only", "generated pairs only, no shape context (the previous model)",
     settings({}, model={"shape_context": False})),
    ("generated_sc", "generated pairs only, shape-context node features", settings({})),
    ("pseudo_no_sc", "+ pseudo-labelled real pairs, no shape context",
     settings({}, train={"pseudo_labels": True}, model={"shape_context": False})),
    ("pseudo_sc", "+ pseudo-labelled real pairs, shape-context node features (the base model)",
     settings({}, train={"pseudo_labels": True})),
    ("pseudo_sc_rrwm", "the base model, second-order (RRWM) matching", settings({}, train={"pseudo_labels": True},
                                                                                model={"solver": "rrwm"})),
    ("geometry_preset", "the geometry preset (base model + late-fused shape context)", GEOMETRY),
    ("images_encoder", "images: descriptors into the encoder (no late fusion)",
     settings(IMAGES, model={"use_appearance": True, "appearance_weight": 0.0})),
    ("images_preset", "the images preset (geometric encoder + late-fused appearance)", IMAGES),
]
SWEEPS = {"appearance_weight": (10.0, 20.0, 40.0, 60.0, 90.0), "shape_context_weight": (10.0, 20.0, 40.0)}


def per_class_table(columns, rows, cells):
    """Markdown table: ``columns`` (the leading ones), then ``val acc.`` and one column per class;
    ``cells(row)`` gives a row's leading cells. Every row has ``val_accuracy`` and ``per_class``."""
    classes = list(rows[0]["per_class"])
    lines = ["| " + " | ".join([*columns, "val acc.", *classes]) + " |",
             "|:--|" + "--:|" * (len(columns) - 1 + 1 + len(classes))]
    lines += ["| " + " | ".join([*cells(r), f"{r['val_accuracy']:.3f}", *(f"{r['per_class'][c]:.3f}" for c in classes)])
              + " |" for r in rows]
    return lines


def val_accuracy(model, instances):
    report = evaluate_matching(model.predict, instances)["intersection"]
    return report.mean.recall, {k: v.recall for k, v in report.per_class.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default="../shared/data/WillowObject")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--output-dir", default="benchmarks/results")
    args = parser.parse_args()
    rows, sweeps, start = [], [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for key, description, s in VARIANTS:
            train_cfg = TrainConfig(**{**s.get("train", {}), "dataset": "willow", "root": args.root,
                                       "epochs": args.epochs, "output_dir": f"{tmp}/{key}",
                                       "val_pairs_per_category": None, "test_pairs_per_category": 1})
            features = feature_config(s.get("features", {}))
            trainer, _ = train(train_cfg, SSGMConfig(**s.get("model", {})), features=features, progress=False)
            model = trainer.model.eval()
            mean, per_class = val_accuracy(model, trainer.splits["val"])
            rows.append({"key": key, "variant": description, "val_accuracy": mean, "per_class": per_class,
                         "settings": s})
            print(f"{mean:.3f}  {description}", flush=True)
            if key == "images_preset":  # sweep the late-fusion weights on this one trained model
                for name, values in SWEEPS.items():
                    for value in values:
                        base = dict(appearance_weight=0.0, shape_context_weight=0.0)
                        for k, v in {**base, name: value}.items():
                            setattr(model.config, k, v)
                        mean, per_class = val_accuracy(model, trainer.splits["val"])
                        sweeps.append({name: value, "val_accuracy": mean, "per_class": per_class})
                        print(f"  {name}={value}: {mean:.3f}", flush=True)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": "python benchmarks/willow_ablation.py", "epochs": args.epochs, "rows": rows,
              "sweeps": sweeps, "wall_s": time.perf_counter() - start, "torch": torch.__version__}
    (out / "willow_ablation.json").write_text(json.dumps(result, indent=2))
    lines = ["# Willow ablation (validation split only)", "",
             f"`python benchmarks/willow_ablation.py` ({args.epochs} epochs, seed 0; 75 validation pairs; "
             f"intersection accuracy).", ""]
    lines += per_class_table(["variant"], rows, lambda r: [r["variant"]])
    lines += ["", "Late-fusion weights on the images preset's trained model (one weight on, the other off):", ""]
    lines += per_class_table(["setting"], sweeps, lambda r: [next(f"{k}={v}" for k, v in r.items() if k in SWEEPS)])
    (out / "willow_ablation.md").write_text("\n".join(lines) + "\n")
    print(f"written {out / 'willow_ablation.md'} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
