"""``python -m pyg_ssgm.visualize``: pictures of a trained model's matches and of a training run.

.. code-block:: bash

    python -m pyg_ssgm.visualize pairs --checkpoint runs/ssgm/checkpoint.pt      # -> runs/ssgm/pictures/
    python -m pyg_ssgm.visualize curves runs/ssgm                                # -> runs/ssgm/training_curves.png

Needs the ``viz`` extra (matplotlib). The drawing functions live in :mod:`pyg_ssgm.viz`.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

import click

from .errors import ConfigError, SSGMError

DATASET_CHOICES = ["synthetic", "willow", "pascal_voc", "spair71k", "cub"]
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(error: Exception) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(2)


@click.group(context_settings=_CONTEXT)
def cli() -> None:
    """Pictures of SSGM: predicted matches, generated nodes, matrices, training curves.

    \b
    Examples:
      python -m pyg_ssgm.visualize pairs --checkpoint runs/ssgm/checkpoint.pt
      python -m pyg_ssgm.visualize pairs --checkpoint runs/willow/checkpoint.pt \\
          --dataset willow --root data/WillowObject --num-pairs 5 --output-dir pictures/willow
      python -m pyg_ssgm.visualize curves runs/ssgm --output docs/images/training_curves.png
    """


@cli.command("pairs", context_settings=_CONTEXT)
@click.option("--checkpoint", required=True, type=click.Path(),
              help="A checkpoint written by pyg_ssgm.train (runs/<name>/checkpoint.pt).")
@click.option("--dataset", type=click.Choice(DATASET_CHOICES), help="Default: the checkpoint's dataset.")
@click.option("--root", type=click.Path(), help="Local root of a real dataset (default: the checkpoint's).")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--num-pairs", type=click.IntRange(min=1), default=3, show_default=True,
              help="Pairs of each kind to draw.")
@click.option("--kind", type=click.Choice(["both", "real", "generated"]), default="both", show_default=True,
              help="Real cross-instance pairs (matches + matrices), generated pairs (completion + matches), or both.")
@click.option("--output-dir", type=click.Path(), help="Default: a 'pictures' folder next to the checkpoint.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which pairs are drawn.")
@click.option("--no-images", is_flag=True, help="Draw the point sets even when the dataset has images.")
@click.option("--dpi", type=click.IntRange(min=20), default=100, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def pairs_command(checkpoint, dataset, root, split, num_pairs, kind, output_dir, seed, no_images, dpi, device):
    """Draw a few pairs of a dataset split as the model matches them.

    \b
    Per real pair (two instances of one category, unfiltered):
      real_<k>_matches.png    correspondences on the images or point sets
                              (green correct, red wrong, orange missed, hollow = correctly unmatched)
      real_<k>_matrices.png   affinity, predicted matching, ground truth, decoder attention
    Per generated pair (one instance, nodes dropped on each side, as in training):
      generated_<k>_completion.png  generated nodes against the dropped nodes' true positions
      generated_<k>_matches.png
    """
    try:
        from .data.generator import PairGenerator
        from .data.sources import load_splits
        from .data.synthetic import SyntheticConfig
        from .evaluate import load_model
        from .trainer import TrainConfig
        from .viz import write_pictures

        model, state = load_model(checkpoint, device)
        train_cfg = state.get("train_config") or {}
        dataset = dataset or train_cfg.get("dataset", "synthetic")
        if root is None and dataset == train_cfg.get("dataset"):
            root = train_cfg.get("root")
        synth = state.get("synthetic_config")
        splits = load_splits(dataset, root,
                             SyntheticConfig(**synth) if synth and dataset == "synthetic" else None)
        feat_dim = next((i.x.size(1) for i in splits[split] if i.x is not None), 0)
        if model.config.in_channels != feat_dim:
            raise ConfigError(f"the checkpoint's model takes {model.config.in_channels} appearance features per "
                              f"node but {dataset!r} has {feat_dim}: draw with the dataset it was trained on.")
        try:
            generator = TrainConfig(**train_cfg).pair_generator()
        except (TypeError, SSGMError):  # a checkpoint from another version: default generator
            generator = PairGenerator()
        out_dir = Path(output_dir) if output_dir else Path(checkpoint).parent / "pictures"
        paths = write_pictures(model, splits[split], out_dir, num_pairs=num_pairs, generator=generator, seed=seed,
                               images=not no_images, real=kind in ("both", "real"),
                               generated=kind in ("both", "generated"), dpi=dpi, device=device)
    except SSGMError as e:
        _fail(e)
    for path in paths:
        click.echo(str(path))


@cli.command("curves", context_settings=_CONTEXT)
@click.argument("run", type=click.Path())
@click.option("--output", type=click.Path(), help="Default: <run>/training_curves.png.")
@click.option("--dpi", type=click.IntRange(min=20), default=100, show_default=True)
def curves_command(run, output, dpi):
    """Training curves of a run: losses, validation F1, over-smoothing, completion error per epoch.

    RUN is a run folder written by pyg_ssgm.train (or its metrics.csv).
    """
    try:
        from .viz import plot_training_curves, save

        run_path = Path(run)
        fig = plot_training_curves(run_path)
        folder = run_path.parent if run_path.suffix == ".csv" else run_path
        path = save(fig, output or folder / "training_curves.png", dpi)
    except SSGMError as e:
        _fail(e)
    click.echo(str(path))


def main(argv: Optional[Sequence[str]] = None) -> None:
    cli.main(args=argv, prog_name="python -m pyg_ssgm.visualize")


if __name__ == "__main__":
    main()
