"""Does the non-rigid refinement (``coherence_rounds``, the default 8) help on Willow? Each Willow
preset is trained with and without it (30 epochs, seed 0) and scored on the *validation* split
(75 pairs; intersection accuracy). The presets keep the better setting. Writes
benchmarks/results/willow_coherence.{md,json}.

    python benchmarks/willow_coherence.py [../shared/data/WillowObject] [--epochs 30]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

from willow_ablation import per_class_table, settings, val_accuracy

from pyg_ssgm import SSGMConfig
from pyg_ssgm.presets import preset
from pyg_ssgm.trainer import TrainConfig, feature_config, train


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default="../shared/data/WillowObject")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--output-dir", default="benchmarks/results")
    args = parser.parse_args()
    rows, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("willow_geometry", "willow_images"):
            for rounds in (SSGMConfig().coherence_rounds, 0):
                s = settings(preset(name), model={"coherence_rounds": rounds})
                cfg = TrainConfig(**{**s.get("train", {}), "dataset": "willow", "root": args.root,
                                     "epochs": args.epochs, "output_dir": f"{tmp}/{name}_{rounds}",
                                     "val_pairs_per_category": None, "test_pairs_per_category": 1})
                trainer, _ = train(cfg, SSGMConfig(**s.get("model", {})),
                                   features=feature_config(s.get("features", {})), progress=False)
                mean, per_class = val_accuracy(trainer.model.eval(), trainer.splits["val"])
                rows.append({"preset": name, "coherence_rounds": rounds, "val_accuracy": mean, "per_class": per_class})
                print(f"{name}, coherence_rounds={rounds}: {mean:.3f}", flush=True)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/willow_coherence.py"
    (out / "willow_coherence.json").write_text(json.dumps(
        {"command": command, "epochs": args.epochs, "rows": rows, "wall_s": time.perf_counter() - start}, indent=2))
    lines = ["# Willow: coherence rounds on or off (validation split only)", "",
             f"`{command}` ({args.epochs} epochs, seed 0; 75 validation pairs; intersection accuracy).", ""]
    lines += per_class_table(["preset", "coherence_rounds"], rows, lambda r: [r["preset"], str(r["coherence_rounds"])])
    (out / "willow_coherence.md").write_text("\n".join(lines) + "\n")
    print(f"written {out / 'willow_coherence.md'}")


if __name__ == "__main__":
    main()
