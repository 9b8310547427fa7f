"""Each piece of the Willow set-up as an ablation, measured on the *validation* split only
(the last 6 of the 20 training images per class: 15 pairs per class, 75 in all).

Trains each variant (30 epochs, seed 0) and reports its validation intersection accuracy
(= unfiltered recall on Willow, where every keypoint is annotated). The late-fusion weights are
settings of inference, not parameters, so they are swept on one trained model. Writes
benchmarks/results/willow_ablation.{md,json}.

    python benchmarks/willow_ablation.py [--root data/WillowObject] [--epochs 30]
"""
from pyg_ssgm.benchmarking.experiments import (DEFAULT_ROOTS, Study, per_class_table, score, study_parser,
                                               train_variant, with_inference)
from pyg_ssgm.cli.common import reported

#: the study's two kinds of training pairs, whatever the defaults: generated pairs alone, or
#: generated pairs plus every pseudo-labelled real pair each epoch (as the Willow presets train)
GENERATED_ONLY = {"pseudo_labels": False}
ALL_PSEUDO = {"pseudo_labels": True, "pseudo_ratio": None}

VARIANTS = [  # key, description, preset, section overrides
    ("generated_only", "generated pairs only, no shape context (the previous model)", None,
     {"train": GENERATED_ONLY, "model": {"shape_context": False}}),
    ("generated_sc", "generated pairs only, shape-context node features", None, {"train": GENERATED_ONLY}),
    ("pseudo_no_sc", "+ pseudo-labelled real pairs, no shape context", None,
     {"train": ALL_PSEUDO, "model": {"shape_context": False}}),
    ("pseudo_sc", "+ pseudo-labelled real pairs, shape-context node features (the base model)", None,
     {"train": ALL_PSEUDO}),
    ("pseudo_sc_rrwm", "the base model, second-order (RRWM) matching", None,
     {"train": ALL_PSEUDO, "inference": {"solver": "rrwm"}}),
    ("geometry_preset", "the geometry preset (base model + late-fused shape context)", "willow_geometry", {}),
    ("images_encoder", "images: descriptors into the encoder (no late fusion)", "willow_images",
     {"model": {"use_appearance": True}, "inference": {"appearance_weight": 0.0}}),
    ("images_preset", "the images preset (geometric encoder + late-fused appearance)", "willow_images", {}),
]
#: late-fusion weights swept on the images preset's trained model, one on and the other off
SWEEPS = {"appearance_weight": (10.0, 20.0, 40.0, 60.0, 90.0), "shape_context_weight": (10.0, 20.0, 40.0)}


def validation_row(predictor, instances) -> dict:
    scores = score(predictor, instances)
    return {"val_accuracy": scores["intersection_accuracy"], "per_class": scores["per_class"]}


def main():
    parser = study_parser(__doc__)
    parser.add_argument("--root", default=DEFAULT_ROOTS["willow"], help="Willow ObjectClass (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    study, sweeps = Study("willow_ablation", args.output_dir), []
    for key, description, preset, overrides in VARIANTS:
        run = train_variant(preset, overrides, dataset="willow", root=args.root, epochs=args.epochs,
                            val_pairs_per_category=None)
        val = run.splits["val"]
        row = {"key": key, "variant": description, **validation_row(run.predictor, val),
               "settings": run.settings.to_dict()}
        study.rows.append(row)
        print(f"{row['val_accuracy']:.3f}  {description}", flush=True)
        if key == "images_preset":  # sweep the late-fusion weights on this one trained model
            for name, values in SWEEPS.items():
                for value in values:
                    weights = {"appearance_weight": 0.0, "shape_context_weight": 0.0, name: value}
                    sweeps.append({name: value, **validation_row(with_inference(run.predictor, **weights), val)})
                    print(f"  {name}={value}: {sweeps[-1]['val_accuracy']:.3f}", flush=True)
    lines = ["# Willow ablation (validation split only)", "",
             f"`{study.command}` ({args.epochs} epochs, seed 0; 75 validation pairs; intersection accuracy).", "",
             per_class_table(["variant"], study.rows, lambda r: [r["variant"]])]
    if sweeps:
        lines += ["", "Late-fusion weights on the images preset's trained model (one weight on, the other off):", "",
                  per_class_table(["setting"], sweeps, lambda r: [f"{k}={v}" for k, v in r.items() if k in SWEEPS])]
    study.write(lines, epochs=args.epochs, sweeps=sweeps)


if __name__ == "__main__":
    with reported():
        main()
