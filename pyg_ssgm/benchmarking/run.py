r"""Reproducible accuracy and speed tables: ``python -m pyg_ssgm benchmark`` (:func:`run_benchmark`).

Everything runs in **one process on the same pairs**, so the numbers of different methods are
comparable even on a busy machine (timings are reported as ratios against a baseline measured in
the same run, next to the absolute values).

Accuracy table (:func:`~pyg_ssgm.benchmarking.run_accuracy`)
    One fixed set of real cross-instance test pairs (:class:`~pyg_ssgm.data.RealPairs`, one seed,
    one subset) is batched once; every method predicts on those very batches and is scored by the
    same metric code (:func:`~pyg_ssgm.metrics.batch_counts`, :func:`~pyg_ssgm.metrics.aggregate`)
    in both settings of the evaluation protocol: *unfiltered* (precision / recall / F1, macro over
    classes) and *intersection* (accuracy). Methods: the classical pygmtools solvers of
    :class:`~pyg_ssgm.baselines.ClassicalMatcher` (Hungarian on node affinities; SM, RRWM, IPFP on
    the Delaunay edge affinity), each plain (full matching) and with a threshold calibrated on the
    validation split (partial matching); SSGM self-supervised, SSGM supervised and SSGM without
    completion (ablation), trained in the same process.

Speed tables (:func:`~pyg_ssgm.benchmarking.run_speed`)
    Synthetic instances with exactly ``n`` keypoints (``n`` in ``sizes``), real cross-instance pairs
    of them, batches of ``batch_sizes`` pairs. Per size and batch size: SSGM inference time (the
    :class:`~pyg_ssgm.Predictor`) and training-step time (network, criterion, backward and Adam
    step, on a copy of the network), the share of inference time in each stage (the profiler's
    ``ssgm.*`` ranges, :class:`~pyg_ssgm.benchmarking.StageTimer`), the number of solver calls per
    batch, peak memory, F1 on those pairs, and the classical solvers' time on the same batches. A
    second sweep raises the share of missing keypoints at a fixed size. Power laws ``t = c n^k``
    are fitted by least squares in log-log space (:func:`~pyg_ssgm.benchmarking.fit_exponent`).

Targets (:func:`~pyg_ssgm.benchmarking.check_targets`) are printed as ``PASS`` / ``FAIL`` lines
with the measured numbers.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, Callable, Dict, Optional

from .accuracy import run_accuracy
from .config import BenchmarkConfig
from .report import format_accuracy, format_speed, write_report
from .speed import run_speed
from .targets import check_targets
from .timing import machine_info

__all__ = ["run_benchmark"]


def run_benchmark(cfg: BenchmarkConfig, command: Optional[str] = None, write: bool = True,
                  echo: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the selected parts, print the report, write ``<output_dir>/<name>.json`` and ``.md``."""
    device = cfg.resolved_device()
    start, started = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M:%S %Z")
    machine = machine_info(device)
    accuracy = None if cfg.skip_accuracy else run_accuracy(cfg)
    models = accuracy.pop("_models") if accuracy else {}
    if accuracy:
        echo("\n" + format_accuracy(accuracy) + "\n")
    speed = None if cfg.skip_speed else run_speed(cfg, models.get("ssgm"))
    if speed:
        echo(format_speed(speed) + "\n")
    targets = check_targets(speed, accuracy)
    result = {
        "name": cfg.name, "command": command or "python -m pyg_ssgm benchmark", "started": started,
        "wall_s": time.perf_counter() - start, "config": asdict(cfg), "machine": machine,
        "accuracy": accuracy, "speed": speed, "targets": [asdict(t) for t in targets],
    }
    echo("\n".join(t.line() for t in targets))
    echo(f"\nwall time {result['wall_s']:.0f} s")
    if write:
        result["files"] = write_report(result, cfg.output_dir, cfg.name)
        echo(f"results: {result['files'][0]} and {result['files'][1]}")
    return result
