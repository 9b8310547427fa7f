"""How many alignment rounds at inference (``InferenceConfig.inference_consensus_iterations``)? One
trained model (the main job's checkpoint) is scored, for each value, on *validation* data only:
the embedded data's validation split (unfiltered macro F1) and scale-validation pairs, speed-table
instances of 20 to 500 keypoints drawn with another seed than the speed table's (F1 over 16 real
pairs per size; at 50 keypoints also with 10 / 30 / 50 % missing). Writes
benchmarks/results/inference_alignment.{md,json}.

    python -m pyg_ssgm train --output-dir runs/ssgm
    python benchmarks/inference_alignment.py runs/ssgm/checkpoint.pt
"""
from pyg_ssgm.benchmarking import batch_f1, format_table, speed_instances
from pyg_ssgm.benchmarking.experiments import Study, comma_list, score, study_parser, with_inference
from pyg_ssgm.cli.common import reported
from pyg_ssgm.data import RealPairs, load_splits, pair_loader
from pyg_ssgm.experiment import load_model

#: scale-validation rows: name -> (keypoints per template, share missing)
BATCHES = {**{f"{n} nodes": (n, 0.0) for n in (20, 50, 100, 200, 500)},
           **{f"50 nodes, {int(100 * m)} % missing": (50, m) for m in (0.1, 0.3, 0.5)}}


def main():
    parser = study_parser(__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("--values", type=comma_list(int), default="2,4,8,12")
    parser.add_argument("--seed", type=int, default=2000, help="of the scale-validation instances (the speed "
                                                                "table uses 1000 + its --seed)")
    args = parser.parse_args()
    study = Study("inference_alignment", args.output_dir)
    predictor, settings = load_model(args.checkpoint)
    val = load_splits("synthetic", None)["val"]
    batches = {name: next(iter(pair_loader(RealPairs(speed_instances(n, missing, 7, settings.model.in_channels,
                                                                     seed=args.seed)), 16)))
               for name, (n, missing) in BATCHES.items()}
    for value in args.values:
        rounds = with_inference(predictor, inference_consensus_iterations=value)
        row = {"value": value, "embedded_val_f1": score(rounds, val, intersection=False)["f1"]}
        row.update({name: batch_f1(rounds(b), b) for name, b in batches.items()})
        study.rows.append(row)
        print(" ".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()), flush=True)
    columns = [k for k in study.rows[0] if k != "value"]
    table = format_table(["inference_consensus_iterations", *(c.replace("_", " ") for c in columns)],
                         [[r["value"], *(f"{r[c]:.3f}" for c in columns)] for r in study.rows],
                         "r" * (1 + len(columns)))
    study.write(["# Alignment rounds at inference (validation data only)", "", f"`{study.command}`", "",
                 "F1 (unfiltered, macro over classes on the embedded validation split; over 16 real pairs per "
                 f"scale-validation row). The model was trained with `consensus_iterations="
                 f"{settings.model.consensus_iterations}`.", "", table])


if __name__ == "__main__":
    with reported():
        main()
