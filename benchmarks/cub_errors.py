"""Where a trained model's CUB matches go wrong: by whether the two birds face the same way or
opposite ways (beak left or right of the tail; "unknown" where either hides one of them), the
precision / recall / F1 of the pooled pairs and how many false matches join a left part to the
right one (left eye -> right eye): the parts that the mirror image of a bird exchanges.

    python benchmarks/cub_errors.py --checkpoint runs/cub/checkpoint.pt [--checkpoint LABEL=PATH ...]

Validation pairs (3 per class, seed 0) by default. Writes ``benchmarks/results/cub_errors.md``.
"""
import argparse
from collections import Counter
from pathlib import Path

from pyg_ssgm.benchmarking.experiments import DEFAULT_ROOTS
from pyg_ssgm.benchmarking.tables import format_table
from pyg_ssgm.cli.common import reported
from pyg_ssgm.data import RealPairs, load_splits, pair_loader, swap_sides
from pyg_ssgm.experiment import load_model
from pyg_ssgm.metrics import MatchCounts

RELATIONS = ("same", "opposite", "unknown")


def facing(inst) -> str:
    names = list(inst.names)
    if "beak" not in names or "tail" not in names:
        return "unknown"
    return "left" if float(inst.pos[names.index("beak"), 0]) < float(inst.pos[names.index("tail"), 0]) else "right"


def relation(a, b) -> str:
    fa, fb = facing(a), facing(b)
    return "unknown" if "unknown" in (fa, fb) else ("same" if fa == fb else "opposite")


def breakdown(checkpoint: str, instances, pairs_per_class: int) -> dict:
    predictor, _ = load_model(checkpoint)
    pairs = RealPairs(instances, pairs_per_class, seed=0)
    counts = {r: Counter() for r in RELATIONS}
    k = 0
    for batch in pair_loader(pairs, 32):
        for pred in predictor(batch):
            i, j = pairs.index[k]
            k += 1
            a, b = pairs.instances[i], pairs.instances[j]
            c = counts[relation(a, b)]
            c["pairs"] += 1
            truth = {(p, b.names.index(n)) for p, n in enumerate(a.names) if n is not None and n in b.names}
            found = {tuple(m) for m in pred.t().tolist()}
            c["tp"] += len(truth & found)
            c["fp"] += len(found - truth)
            c["fn"] += len(truth - found)
            c["swapped"] += sum(1 for p, q in found - truth
                                if a.names[p] != swap_sides(a.names[p]) and b.names[q] == swap_sides(a.names[p]))
    return counts


def cells(name: str, rel: str, c: Counter) -> list:
    pooled = MatchCounts(c["tp"], c["tp"] + c["fp"], c["tp"] + c["fn"])
    return [name, rel, c["pairs"], f"{pooled.precision:.3f}", f"{pooled.recall:.3f}", f"{pooled.f1:.3f}", c["fp"],
            f"{c['swapped']} ({c['swapped'] / max(c['fp'], 1):.0%})"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", required=True,
                        help="a trained CUB model, PATH or LABEL=PATH (repeatable)")
    parser.add_argument("--root", default=DEFAULT_ROOTS["cub"], help="CUB-200-2011 (default: %(default)s)")
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--pairs-per-class", type=int, default=3)
    parser.add_argument("--output", default="benchmarks/results/cub_errors.md")
    args = parser.parse_args()
    instances = load_splits("cub", args.root)[args.split]
    rows = []
    for spec in args.checkpoint:
        label, _, path = spec.rpartition("=")
        counts = breakdown(path, instances, args.pairs_per_class)
        rows += [cells(label or path, rel, counts[rel]) for rel in RELATIONS]
    lines = [f"# Where CUB matches go wrong ({args.split} pairs, {args.pairs_per_class} per class, seed 0)", "",
             "Pooled over pairs (micro), not the benchmark's macro over classes.", "",
             format_table(["model", "birds face", "pairs", "P", "R", "F1", "false matches", "of which left <-> right"],
                          rows, "llrrrrrr")]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    with reported():
        main()
