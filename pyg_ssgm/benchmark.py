r"""Reproducible accuracy and speed tables: ``python -m pyg_ssgm.benchmark``.

Everything runs in **one process on the same pairs**, so the numbers of different methods are
comparable even on a busy machine (timings are reported as ratios against a baseline measured in
the same run, next to the absolute values).

Accuracy table (:func:`run_accuracy`)
    One fixed set of real cross-instance test pairs (:class:`~pyg_ssgm.data.RealPairs`, one seed,
    one subset) is batched once; every method predicts on those very batches and is scored by the
    same metric code (:func:`~pyg_ssgm.metrics.batch_counts`, :func:`~pyg_ssgm.metrics.aggregate`)
    in both settings of DESIGN.md section 5: *unfiltered* (precision / recall / F1, macro over
    classes) and *intersection* (accuracy). Methods: the classical pygmtools solvers of
    :class:`~pyg_ssgm.baselines.ClassicalMatcher` (Hungarian on node affinities; SM, RRWM, IPFP on
    the Delaunay edge affinity), each plain (full matching) and with a threshold calibrated on the
    validation split (partial matching); SSGM self-supervised, SSGM supervised and SSGM without
    completion (ablation), trained in the same process.

Speed tables (:func:`run_speed`)
    Synthetic instances with exactly ``n`` keypoints (``n`` in ``sizes``), real cross-instance pairs
    of them, batches of ``batch_sizes`` pairs. Per size and batch size: SSGM inference time
    (``model.predict``) and training-step time (forward + backward + Adam step, on a copy of the
    model), the share of inference time in each stage (forward hooks on the model's modules and a
    wrapper around ``pyg_ssgm.model.partial_hungarian``, installed in this process only), the
    number of solver calls per batch, peak memory, F1 on those pairs, and the classical solvers'
    time on the same batches. A second sweep raises the share of missing keypoints at a fixed
    size. Power laws ``t = c n^k`` are fitted by least squares in log-log space
    (:func:`fit_exponent`).

Targets (:func:`check_targets`) are printed as ``PASS`` / ``FAIL`` lines with the measured numbers.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from .benchmarking import (CLASSICAL, NEURAL_SOLVERS_NOTE, BenchmarkConfig, CallCounter, PowerFit, StageTimer,
                           Target, check_targets, fit_exponent, format_accuracy, format_report, format_speed,
                           format_table, machine_info, measure_peak_memory, run_accuracy, run_speed,
                           speed_instances, time_call, write_report)
from .benchmarking.instrument import _training_solver_targets  # noqa: F401  (used by the tests)
from .benchmarking.speed import _train_step_fn  # noqa: F401  (used by the tests)
from .errors import ConfigError, SSGMError

__all__ = [
    "BenchmarkConfig", "PowerFit", "Target", "CallCounter", "StageTimer",
    "fit_exponent", "format_table", "machine_info", "measure_peak_memory", "time_call",
    "speed_instances", "run_accuracy", "run_speed", "check_targets", "format_accuracy", "format_speed",
    "format_report",
    "run_benchmark", "main", "CLASSICAL", "NEURAL_SOLVERS_NOTE",
]


# =============================================================================================
# the whole run
# =============================================================================================
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
        "name": cfg.name, "command": command or "python -m pyg_ssgm.benchmark", "started": started,
        "wall_s": time.perf_counter() - start, "config": asdict(cfg), "machine": machine,
        "accuracy": accuracy, "speed": speed, "targets": [asdict(t) for t in targets],
    }
    echo("\n".join(t.line() for t in targets))
    echo(f"\nwall time {result['wall_s']:.0f} s")
    if write:
        result["files"] = write_report(result, cfg.output_dir, cfg.name)
        echo(f"results: {result['files'][0]} and {result['files'][1]}")
    return result


# =============================================================================================
# command line
# =============================================================================================
def _int_list(value: Optional[str], option: str) -> Optional[Tuple[int, ...]]:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers, got {value!r}.") from None


def _float_list(value: Optional[str], option: str) -> Optional[Tuple[float, ...]]:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated numbers, got {value!r}.") from None


def _build_command(argv: Sequence[str]):
    import click

    @click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    @click.option("--quick", is_flag=True, help="Tiny training, few pairs, 3 repeats: both tables in minutes.")
    @click.option("--dataset", type=click.Choice(["synthetic", "willow", "pascal_voc", "spair71k", "cub"]),
                  default="synthetic", show_default=True, help="Data of the accuracy table.")
    @click.option("--root", type=click.Path(), help="Local root of a real dataset (not for synthetic).")
    @click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
    @click.option("--output-dir", default="benchmarks/results", show_default=True, type=click.Path(),
                  help="Where <dataset>_<quick|full>[_cuda].json and .md are written.")
    @click.option("--seed", type=int, default=0, show_default=True, help="Seed of training, pair subsets and "
                  "speed instances.")
    @click.option("--epochs", type=int, help="Training epochs of each SSGM variant (default: 3 with --quick, "
                  "else TrainConfig's default).")
    @click.option("--skip-accuracy", is_flag=True, help="Only the speed tables (with an untrained model).")
    @click.option("--skip-speed", is_flag=True, help="Only the accuracy table.")
    @click.option("--sizes", help="Comma-separated keypoints per graph of the speed table (default "
                  "10,20,50,100,200,500; 1000 needs about 10 GB for a training step at batch 16).")
    @click.option("--batch-sizes", help="Comma-separated batch sizes of the speed table (default 1,16; "
                  "--quick 1,8).")
    @click.option("--repeats", type=int, help="Timed repeats per measurement (default 5; --quick 3).")
    @click.option("--test-pairs-per-category", type=int, help="At most this many test pairs per class "
                  "(default: all; --quick 10).")
    @click.option("--drop-rates", help="Comma-separated shares of missing keypoints of the missing-node sweep "
                  "(default 0.1,0.3,0.5; empty string: no sweep).")
    @click.option("--drop-size", type=int, help="Keypoints per template in the missing-node sweep (default 50).")
    @click.option("--max-affinity-gib", type=float, help="Skip SM/RRWM/IPFP where the dense affinity matrix of "
                  "a batch exceeds this (default 1; --quick 0.5).")
    @click.option("--no-image-features", is_flag=True, help="Geometry only, even where the dataset's images are "
                  "there (by default a real dataset with images adds the image-feature rows).")
    @click.option("--outliers", type=int, default=0, show_default=True, help="Unnamed points added per image "
                  "(every split), uniform in the bounding box of its keypoints: no partner (pyg_ssgm.data.add_outliers).")
    @click.option("--extra-drop", type=float, default=0.0, show_default=True, help="Share of annotated keypoints "
                  "removed per image, independently (every split; pyg_ssgm.data.drop_parts).")
    @click.option("--no-progress", is_flag=True, help="No progress bars.")
    def benchmark_command(quick, no_progress, sizes, batch_sizes, drop_rates, no_image_features, **options):
        """Accuracy and speed tables of SSGM and the classical pygmtools solvers, on the same pairs, in
        one process. Prints both tables and PASS/FAIL lines for the speed targets, and writes
        <output-dir>/<name>.json and .md with the machine description.

        \b
        Examples:
          python -m pyg_ssgm.benchmark --quick                 # minutes on 2 CPU cores
          python -m pyg_ssgm.benchmark                         # the full tables (~20-40 min on CPU)
          python -m pyg_ssgm.benchmark --dataset willow --root data/WillowObject
          python -m pyg_ssgm.benchmark --device cuda --skip-accuracy
        """
        try:
            overrides = dict(options, progress=not no_progress, image_features=not no_image_features,
                             sizes=_int_list(sizes, "--sizes"),
                             batch_sizes=_int_list(batch_sizes, "--batch-sizes"),
                             drop_rates=_float_list(drop_rates, "--drop-rates"))
            cfg = (BenchmarkConfig.quick_preset if quick else BenchmarkConfig.full_preset)(**overrides)
            cfg.resolved_device()
            run_benchmark(cfg, command=" ".join(["python -m pyg_ssgm.benchmark", *argv]), echo=click.echo)
        except SSGMError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            sys.exit(130)

    return benchmark_command


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m pyg_ssgm.benchmark`` (``argv``: the arguments, default ``sys.argv[1:]``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _build_command(argv).main(args=argv, prog_name="python -m pyg_ssgm.benchmark")


if __name__ == "__main__":
    main()
