"""What the coherence rounds cost at 20 nodes: SSGM inference time per pair with and without them,
against RRWM on the same real pairs of the speed table's 20-node instances, in one process
(median of 15 calls after 2 warm-ups). A development check for issue 12's speed target; run it on
an idle machine.

    python benchmarks/coherence_cost.py runs/ssgm/checkpoint.pt
"""
import argparse

from pyg_ssgm.baselines import ClassicalMatcher
from pyg_ssgm.benchmarking import speed_instances, time_call
from pyg_ssgm.benchmarking.experiments import with_model_settings
from pyg_ssgm.cli.common import reported
from pyg_ssgm.data import RealPairs, pair_loader
from pyg_ssgm.experiment import load_model


def median_time(fn) -> float:
    return time_call(fn, repeats=15, warmup=2)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--nodes", type=int, default=20)
    args = parser.parse_args()
    if args.nodes < 3:
        parser.error(f"--nodes must be >= 3, got {args.nodes}")
    predictor, settings = load_model(args.checkpoint)
    trained_rounds = settings.model.coherence_rounds
    # the trained network, and a copy of it (the same weights) without the rounds
    predictors = {rounds: predictor if rounds == trained_rounds else with_model_settings(predictor, coherence_rounds=0)
                  for rounds in (trained_rounds, 0)}
    pairs = RealPairs(speed_instances(args.nodes, 0.0, 7, settings.model.in_channels, seed=1000))
    rrwm = ClassicalMatcher("rrwm")
    for size in (1, 16):
        batch = next(iter(pair_loader(pairs, size)))
        t_rrwm = median_time(lambda: rrwm(batch))
        for rounds, predict in predictors.items():
            t_ssgm = median_time(lambda: predict(batch))
            print(f"batch {size}, coherence_rounds={rounds}: SSGM {1e3 * t_ssgm / size:.2f} ms/pair, RRWM "
                  f"{1e3 * t_rrwm / size:.2f} ms/pair, RRWM/SSGM {t_rrwm / t_ssgm:.2f}x", flush=True)


if __name__ == "__main__":
    with reported():
        main()
