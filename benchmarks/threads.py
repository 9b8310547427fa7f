"""The thread policy under load: the main job's wall time with torch's default threads, with one
thread and with pyg_ssgm's automatic policy (``--threads 0``), on the machine as it is ("idle")
and with a parallel CPU load that this script starts itself (``--load`` busy processes, bounded
in time, stopped by the script).

    python benchmarks/threads.py [--epochs 10] [--load 2] [--output benchmarks/results/threads.md]

Each run is ``python -m pyg_ssgm train --epochs E`` on the embedded data in a fresh process (the
main job, shortened to E epochs so the table takes minutes); "torch default" runs with
``--threads N`` where N is torch's own default (every usable core).
"""
import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pyg_ssgm.benchmarking import format_table
from pyg_ssgm.benchmarking.experiments import Study
from pyg_ssgm.threads import auto_threads, usable_cores


def _busy(seconds: float) -> None:  # one core's worth of work, bounded in time
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x = (x * 1103515245 + 12345) % 2 ** 31


def _run(epochs: int, threads: int, workdir: str) -> float:
    cmd = [sys.executable, "-m", "pyg_ssgm", "train", "--epochs", str(epochs), "--threads", str(threads),
           "--no-progress", "--output-dir", workdir]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the policy decides
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--load", type=int, default=2, help="busy processes of the loaded runs")
    parser.add_argument("--max-load-s", type=float, default=1800, help="the load stops after this long anyway")
    parser.add_argument("--output", default="benchmarks/results/threads.md", help="the .md (the .json goes beside it)")
    args = parser.parse_args()
    if args.epochs < 1 or args.load < 1 or not args.max_load_s > 0:
        parser.error("--epochs and --load must be >= 1, --max-load-s > 0")
    output = Path(args.output)
    study = Study(output.stem, output.parent)
    settings = [("torch default", torch.get_num_threads()), ("1 thread", 1), ("policy (--threads 0)", 0)]
    for condition in ("idle", f"{args.load} busy processes"):
        load = []
        if condition != "idle":
            load = [mp.Process(target=_busy, args=(args.max_load_s,), daemon=True) for _ in range(args.load)]
            for p in load:
                p.start()
            time.sleep(5)  # let the load average see them
        try:
            chosen = auto_threads()
            for label, threads in settings:
                with tempfile.TemporaryDirectory() as tmp:
                    seconds = _run(args.epochs, threads, tmp)
                study.rows.append({"condition": condition, "setting": label, "threads": threads or chosen,
                                   "seconds": seconds})
                print(f"{condition:>20} | {label:<22} | {threads or chosen} threads | {seconds:7.1f} s", flush=True)
        finally:
            for p in load:
                p.terminate()
                p.join()
    idle = {r["setting"]: r["seconds"] for r in study.rows if r["condition"] == "idle"}
    table = format_table(["condition", "setting", "threads", "wall s", "x idle"],
                         [[r["condition"], r["setting"], r["threads"], f"{r['seconds']:.1f}",
                           f"{r['seconds'] / idle[r['setting']]:.2f}"] for r in study.rows], "llrrr")
    study.write([f"# Thread policy ({usable_cores()} usable cores; `{study.command}`)", "",
                 f"Wall time of `python -m pyg_ssgm train --epochs {args.epochs}` (embedded data), each in a fresh "
                 "process; x: relative to the same setting on the idle machine.", "", table],
                epochs=args.epochs, load=args.load)


if __name__ == "__main__":
    main()
