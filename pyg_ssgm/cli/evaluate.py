"""``python -m pyg_ssgm evaluate``: score a checkpoint, or a classical solver, on real pairs."""
from __future__ import annotations

import json
from dataclasses import replace

import click

from ..catalog import CLASSICAL_SOLVERS, COMPLETION_SOURCES
from .common import CONTEXT, DATASET_CHOICE, reported


@click.command("evaluate", context_settings=CONTEXT)
@click.option("--checkpoint", type=click.Path(), help="A checkpoint written by training.")
@click.option("--solver", type=click.Choice(list(CLASSICAL_SOLVERS)),
              help="Score a classical pygmtools solver instead of a checkpoint.")
@click.option("--dataset", type=DATASET_CHOICE, help="Default: the checkpoint's dataset (synthetic for --solver).")
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
@click.option("--completion-source", type=click.Choice(list(COMPLETION_SOURCES)),
              help="What the model says a graph lacks (InferenceConfig.completion_source). Default: the checkpoint's.")
@click.option("--output", type=click.Path(), help="Write the results as JSON to this file.")
def evaluate_command(checkpoint, solver, dataset, root, split, max_pairs_per_category, batch_size, device, threads,
                     outliers, extra_drop, completion_source, output):
    """Evaluate a trained model (or a classical solver) on real cross-instance pairs.

    \b
    Reports per class and averaged: precision, recall and F1 of the predicted correspondences in
    the unfiltered setting (all annotated keypoints), accuracy in the intersection setting, and,
    for a model, the completion quality on generated pairs of the same split.
    """
    with reported():
        from ..errors import ConfigError
        from ..evaluation import completion_quality, evaluate_matching, format_results, report_to_dict
        from ..files import check_output_file, write_text_atomic
        from ..threads import apply_thread_policy
        from ..validation import resolve_device

        if (checkpoint is None) == (solver is None):
            raise ConfigError("give exactly one of --checkpoint or --solver.")
        if completion_source is not None and checkpoint is None:
            raise ConfigError("--completion-source applies to a model: give it with --checkpoint.")
        device = resolve_device(device)
        apply_thread_policy(threads)
        if output:  # now, not after a long evaluation
            check_output_file(output)
        from ..data.perturb import perturb_splits
        from ..data.sources import load_splits
        from ..experiment import load_model
        from ..features import with_image_features

        if checkpoint is not None:
            predictor, settings = load_model(checkpoint, device)
            train_cfg = settings.train
            dataset = dataset or train_cfg.dataset
            root = root or (train_cfg.root if dataset == train_cfg.dataset else None)
            splits = load_splits(dataset, root, settings.synthetic if dataset == "synthetic" else None)
            own = dataset == train_cfg.dataset  # the perturbation it was trained with, unless told otherwise
            splits = perturb_splits(splits, train_cfg.outliers if outliers is None and own else outliers or 0,
                                    train_cfg.extra_drop if extra_drop is None and own else extra_drop or 0.0)
            if settings.features is not None:  # the same image features the model was trained on
                splits = with_image_features({split: splits[split]}, settings.features, dataset)
            if completion_source is not None:
                predictor.config = replace(predictor.config, completion_source=completion_source)
            predict = predictor
            if max_pairs_per_category is None:
                max_pairs_per_category = getattr(train_cfg, f"{split}_pairs_per_category")
        else:
            from ..baselines import ClassicalMatcher

            dataset = dataset or "synthetic"
            splits = perturb_splits(load_splits(dataset, root), outliers or 0, extra_drop or 0.0)
            predict = ClassicalMatcher(solver)
        results = evaluate_matching(predict, splits[split], max_pairs_per_category=max_pairs_per_category,
                                    batch_size=batch_size, device=device, desc=f"{split} pairs")
        if checkpoint is not None and settings.model.completion:
            results["completion"] = completion_quality(predictor, splits[split], train_cfg.pair_generator(),
                                                       device=device)
        click.echo(format_results(results))
        if output:
            write_text_atomic(output, json.dumps(report_to_dict(results), indent=2))
            click.echo(f"\nResults written to {output}")
