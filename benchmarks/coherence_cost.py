"""What the coherence rounds cost at 20 nodes: SSGM inference time per pair with and without them,
against RRWM on the same real pairs of the speed table's 20-node instances, in one process
(median of 15 calls after 2 warm-ups). A development check for issue 12's speed target; run it on
an idle machine.

    python benchmarks/coherence_cost.py runs/ssgm/checkpoint.pt
"""
import argparse
import statistics
import time

from pyg_ssgm.baselines import ClassicalMatcher
from pyg_ssgm.benchmarking.speed import _collate, speed_instances
from pyg_ssgm.data import RealPairs
from pyg_ssgm.evaluate import load_model


def median_time(fn, repeats=15, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--nodes", type=int, default=20)
    args = parser.parse_args()
    model, _ = load_model(args.checkpoint)
    real = RealPairs(speed_instances(args.nodes, 0.0, 7, model.config.in_channels, seed=1000))
    pairs = [real[i] for i in range(len(real))]
    rrwm = ClassicalMatcher("rrwm")
    trained_rounds = model.config.coherence_rounds
    for size in (1, 16):
        batch = _collate(pairs[:size])
        t_rrwm = median_time(lambda: rrwm(batch))
        for rounds in (trained_rounds, 0):
            model.config.coherence_rounds = rounds
            t_ssgm = median_time(lambda: model.predict(batch))
            print(f"batch {size}, coherence_rounds={rounds}: SSGM {1e3 * t_ssgm / size:.2f} ms/pair, RRWM "
                  f"{1e3 * t_rrwm / size:.2f} ms/pair, RRWM/SSGM {t_rrwm / t_ssgm:.2f}x", flush=True)


if __name__ == "__main__":
    main()
