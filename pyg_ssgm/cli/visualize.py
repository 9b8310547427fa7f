"""``python -m pyg_ssgm visualize``: pictures of a trained model's matches and of a training run.

Needs the ``viz`` extra (matplotlib). The drawing functions live in :mod:`pyg_ssgm.viz`.
"""
from __future__ import annotations

from pathlib import Path

import click

from .common import CONTEXT, DATASET_CHOICE, DataFiles, checkpoint_splits, data_options, reported


@click.group("visualize", context_settings=CONTEXT)
def visualize_group() -> None:
    """Pictures of SSGM: predicted matches, generated nodes, matrices, training curves.

    \b
    Examples:
      python -m pyg_ssgm visualize pairs --checkpoint runs/ssgm/checkpoint.pt
      python -m pyg_ssgm visualize pairs --checkpoint runs/willow/checkpoint.pt \\
          --dataset willow --root data/WillowObject --num-pairs 5 --output-dir pictures/willow
      python -m pyg_ssgm visualize curves runs/ssgm --output docs/images/training_curves.png
    """


@visualize_group.command("pairs", context_settings=CONTEXT)
@click.option("--checkpoint", required=True, type=click.Path(),
              help="A checkpoint written by training (runs/<name>/checkpoint.pt).")
@click.option("--dataset", type=DATASET_CHOICE, help="Default: the checkpoint's dataset.")
@click.option("--root", type=click.Path(), help="Local root of a real dataset (default: the checkpoint's).")
@data_options
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
def pairs_command(checkpoint, dataset, root, data, val_data, test_data, images, split, num_pairs, kind, output_dir,
                  seed, no_images, dpi, device):
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
    files = DataFiles(data, val_data, test_data, images)
    with reported():
        from ..errors import ConfigError
        from ..experiment import load_model
        from ..viz import write_pictures

        predictor, settings = load_model(checkpoint, device)
        train_cfg = settings.train
        dataset, splits = checkpoint_splits(checkpoint, settings, dataset, root, files)
        width = next((i.x.size(1) for i in splits[split] if i.x is not None), 0)
        if predictor.model.config.in_channels != width:
            raise ConfigError(f"the checkpoint's model takes {predictor.model.config.in_channels} appearance features "
                              f"per node but {dataset!r} has {width}: draw with the dataset it was trained on.")
        out_dir = Path(output_dir) if output_dir else Path(checkpoint).parent / "pictures"
        paths = write_pictures(predictor, splits[split], out_dir, num_pairs=num_pairs,
                               generator=train_cfg.pair_generator(), seed=seed, images=not no_images,
                               real=kind in ("both", "real"), generated=kind in ("both", "generated"), dpi=dpi,
                               device=device)
    for path in paths:
        click.echo(str(path))


@visualize_group.command("curves", context_settings=CONTEXT)
@click.argument("run", type=click.Path())
@click.option("--output", type=click.Path(), help="Default: <run>/training_curves.png.")
@click.option("--dpi", type=click.IntRange(min=20), default=100, show_default=True)
def curves_command(run, output, dpi):
    """Training curves of a run: losses, validation F1, over-smoothing, completion error per epoch.

    RUN is a run folder written by training (or its metrics.csv).
    """
    with reported():
        from ..viz import plot_training_curves, save

        run_path = Path(run)
        fig = plot_training_curves(run_path)
        folder = run_path.parent if run_path.suffix == ".csv" else run_path
        path = save(fig, output or folder / "training_curves.png", dpi)
    click.echo(str(path))
