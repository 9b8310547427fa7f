"""``python -m pyg_ssgm benchmark``: the accuracy and speed tables (:mod:`pyg_ssgm.benchmarking`)."""
from __future__ import annotations

import shlex
from typing import Callable, Optional, Tuple

import click
from click.core import ParameterSource

from ..catalog import OUTLIER_REGIONS
from .common import CONTEXT, DATASET_CHOICE, reported


def _comma_separated(kind: Callable[[str], object], what: str):
    """A click callback reading ``"a,b,c"`` as a tuple of ``kind`` (an empty string: no value)."""

    def parse(ctx, param, value: Optional[str]) -> Optional[Tuple]:
        if value is None:
            return None
        try:
            return tuple(kind(v) for v in value.split(",") if v.strip())
        except ValueError:
            raise click.BadParameter(f"takes comma-separated {what}, got {value!r}.") from None

    return parse


def _command_line(ctx: click.Context) -> str:
    """The command as typed: the options given on the command line, in the command's order."""
    words = ["python", "-m", "pyg_ssgm", "benchmark"]
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or ctx.get_parameter_source(param.name) != ParameterSource.COMMANDLINE:
            continue
        raw = ctx.params[param.name]
        words += [param.opts[0]] if param.is_flag else [param.opts[0], ",".join(map(str, raw))
                                                        if isinstance(raw, tuple) else str(raw)]
    return shlex.join(words)


@click.command("benchmark", context_settings=CONTEXT)
@click.option("--quick", is_flag=True, help="Tiny training, few pairs, 3 repeats: both tables in minutes.")
@click.option("--dataset", type=DATASET_CHOICE, default="synthetic", show_default=True,
              help="Data of the accuracy table.")
@click.option("--root", type=click.Path(), help="Local root of a real dataset (not for synthetic).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--output-dir", default="runs/benchmark", show_default=True, type=click.Path(),
              help="Where <dataset>_<quick|full>[_cuda].json and .md are written (the tables committed under "
                   "benchmarks/results were written with --output-dir benchmarks/results).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of training, pair subsets and "
              "speed instances.")
@click.option("--epochs", type=int, help="Training epochs of each SSGM variant (default: 3 with --quick, "
              "else TrainConfig's default).")
@click.option("--skip-accuracy", is_flag=True, help="Only the speed tables (with an untrained model).")
@click.option("--skip-speed", is_flag=True, help="Only the accuracy table.")
@click.option("--sizes", callback=_comma_separated(int, "integers"),
              help="Comma-separated keypoints per graph of the speed table (default 10,20,50,100,200,500; 1000 "
                   "needs about 10 GB for a training step at batch 16).")
@click.option("--batch-sizes", callback=_comma_separated(int, "integers"),
              help="Comma-separated batch sizes of the speed table (default 1,16; --quick 1,8).")
@click.option("--repeats", type=int, help="Timed repeats per measurement (default 5; --quick 3).")
@click.option("--test-pairs-per-category", type=int, help="At most this many test pairs per class "
              "(default: all; --quick 10).")
@click.option("--drop-rates", callback=_comma_separated(float, "numbers"),
              help="Comma-separated shares of missing keypoints of the missing-node sweep (default 0.1,0.3,0.5; "
                   "empty string: no sweep).")
@click.option("--drop-size", type=int, help="Keypoints per template in the missing-node sweep (default 50).")
@click.option("--max-affinity-gib", type=float, help="Skip SM/RRWM/IPFP where the dense affinity matrix of "
              "a batch exceeds this (default 1; --quick 0.5).")
@click.option("--no-image-features", is_flag=True, help="Geometry only, even where the dataset's images are "
              "there (by default a real dataset with images adds the image-feature rows).")
@click.option("--outliers", type=int, default=0, show_default=True, help="Unnamed points added per image "
              "(every split), uniform in the bounding box of its keypoints: no partner (pyg_ssgm.data.add_outliers).")
@click.option("--outlier-region", type=click.Choice(list(OUTLIER_REGIONS)), default="box", show_default=True,
              help="Where --outliers are drawn: the keypoints' bounding box, or anywhere in the image (ThinkMatch's "
                   "AFAT protocol).")
@click.option("--extra-drop", type=float, default=0.0, show_default=True, help="Share of annotated keypoints "
              "removed per image, independently (every split; pyg_ssgm.data.drop_parts).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.pass_context
def benchmark_command(ctx, quick, no_progress, no_image_features, **options):
    """Accuracy and speed tables of SSGM and the classical pygmtools solvers, on the same pairs, in
    one process. Prints both tables and PASS/FAIL lines for the speed targets, and writes
    <output-dir>/<name>.json and .md with the machine description.

    \b
    Examples:
      python -m pyg_ssgm benchmark --quick                 # minutes on 2 CPU cores
      python -m pyg_ssgm benchmark                         # the full tables (~20-40 min on CPU)
      python -m pyg_ssgm benchmark --dataset willow --root data/WillowObject
      python -m pyg_ssgm benchmark --device cuda --skip-accuracy
    """
    with reported():
        from ..benchmarking import BenchmarkConfig, run_benchmark

        overrides = dict(options, progress=not no_progress, image_features=not no_image_features)
        cfg = (BenchmarkConfig.quick_preset if quick else BenchmarkConfig.full_preset)(**overrides)
        cfg.resolved_device()
        run_benchmark(cfg, command=_command_line(ctx), echo=click.echo)
