"""How many alignment rounds at inference (``SSGMConfig.inference_consensus_iterations``)? One
trained model (the main job's checkpoint) is scored, for each value, on *validation* data only:
the embedded data's validation split (unfiltered macro F1) and scale-validation pairs, speed-table
instances of 20 to 500 keypoints drawn with another seed than the speed table's (F1 over 16 real
pairs per size; at 50 keypoints also with 10 / 30 / 50 % missing). Writes
benchmarks/results/inference_alignment.{md,json}.

    python -m pyg_ssgm.train --output-dir runs/ssgm
    python benchmarks/inference_alignment.py runs/ssgm/checkpoint.pt
"""
import argparse
import json
import time
from pathlib import Path

from pyg_ssgm.benchmarking.speed import _collate, _f1, speed_instances
from pyg_ssgm.data import RealPairs, load_splits
from pyg_ssgm.evaluate import evaluate_matching, load_model

SIZES = (20, 50, 100, 200, 500)
MISSING = (0.1, 0.3, 0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--values", default="2,4,8,12")
    parser.add_argument("--seed", type=int, default=2000, help="of the scale-validation instances (the speed "
                                                                "table uses 1000 + its --seed)")
    parser.add_argument("--output-dir", default="benchmarks/results")
    args = parser.parse_args()
    try:
        values = [int(v) for v in args.values.split(",")]
    except ValueError:
        parser.error(f"--values must be comma-separated integers, got {args.values!r}")
    start = time.perf_counter()
    model, _ = load_model(args.checkpoint)
    val = load_splits("synthetic", None)["val"]
    feature_dim = model.config.in_channels
    batches = {}
    for n in SIZES:
        real = RealPairs(speed_instances(n, 0.0, 7, feature_dim, seed=args.seed))
        batches[f"{n} nodes"] = _collate([real[i] for i in range(16)])
    for m in MISSING:
        real = RealPairs(speed_instances(50, m, 7, feature_dim, seed=args.seed))
        batches[f"50 nodes, {int(100 * m)} % missing"] = _collate([real[i] for i in range(16)])
    rows = []
    for value in values:
        model.config.inference_consensus_iterations = value
        row = {"value": value, "embedded_val_f1": evaluate_matching(model.predict, val)["unfiltered"].mean.f1}
        row.update({name: _f1(model.predict(b), b) for name, b in batches.items()})
        rows.append(row)
        print(" ".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()), flush=True)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = f"python benchmarks/inference_alignment.py {args.checkpoint} --values {args.values} --seed {args.seed}"
    (out / "inference_alignment.json").write_text(json.dumps(
        {"command": command, "rows": rows, "wall_s": time.perf_counter() - start}, indent=2))
    columns = [k for k in rows[0] if k != "value"]
    lines = ["# Alignment rounds at inference (validation data only)", "", f"`{command}`", "",
             "F1 (unfiltered, macro over classes on the embedded validation split; over 16 real pairs per "
             "scale-validation row). The model was trained with `consensus_iterations=2`.", "",
             "| inference_consensus_iterations | " + " | ".join(c.replace("_", " ") for c in columns) + " |",
             "|--:|" + "--:|" * len(columns)]
    lines += [f"| {r['value']} | " + " | ".join(f"{r[c]:.3f}" for c in columns) + " |" for r in rows]
    (out / "inference_alignment.md").write_text("\n".join(lines) + "\n")
    print(f"written {out / 'inference_alignment.md'}")


if __name__ == "__main__":
    main()
