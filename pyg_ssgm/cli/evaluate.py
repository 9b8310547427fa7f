"""``python -m pyg_ssgm evaluate``: score a checkpoint, or a classical solver, on real pairs."""
from __future__ import annotations

import json
from dataclasses import asdict, replace

import click

from ..catalog import BACKBONE_NAMES, CLASSICAL_SOLVERS, COMPLETION_SOURCES, OUTLIER_REGIONS
from .common import (CONTEXT, DATASET_CHOICE, DataFiles, checkpoint_splits, data_options, dataset_of, read_splits,
                     reported)


@click.command("evaluate", context_settings=CONTEXT)
@click.option("--checkpoint", type=click.Path(), help="A checkpoint written by training.")
@click.option("--solver", type=click.Choice(list(CLASSICAL_SOLVERS)),
              help="Score a classical pygmtools solver instead of a checkpoint.")
@click.option("--dataset", type=DATASET_CHOICE, help="Default: the checkpoint's dataset (synthetic for --solver).")
@click.option("--root", type=click.Path(), help="Local root of a real dataset. Default: the checkpoint's.")
@data_options
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
@click.option("--outlier-region", type=click.Choice(list(OUTLIER_REGIONS)), help="Where the outliers are drawn: the "
              "keypoints' bounding box, or the whole image (ThinkMatch's AFAT protocol). Default: as --outliers "
              "(else box).")
@click.option("--extra-drop", type=click.FloatRange(0.0, 1.0, max_open=True), help="Share of annotated keypoints "
              "removed per image (pyg_ssgm.data.drop_parts). Default: as --outliers.")
@click.option("--features", "backbone", type=click.Choice(["none", *BACKBONE_NAMES]), help="With --solver: image "
              "features at the keypoints (and outliers) as the solver's node affinity (needs the dataset's images; a "
              "checkpoint uses its own). Default: none, geometry only.")
@click.option("--fit-threshold", is_flag=True, help="With --solver: leave a pair unmatched below a threshold fitted "
              "on the validation split's real pairs (at most 60 per class, the pairs training validates on), as "
              "the benchmark's classical baseline for partial pairs does. Default: a full matching.")
@click.option("--epipolar/--no-epipolar", default=None, help="Re-match each pair under the epipolar geometry its "
              "matching implies (InferenceConfig.epipolar; ClassicalMatcher(epipolar=True)): for two views of one "
              "rigid object. Default: the checkpoint's setting; off for a solver.")
@click.option("--epipolar-pool/--no-epipolar-pool", default=None, help="With the re-matching, seed it from several "
              "first matchings and keep the geometry that verifies the most pairs: the model's own (InferenceConfig."
              "epipolar_pool), or the Hungarian's, RRWM's and IPFP's for a solver. Default: the checkpoint's "
              "setting; off for a solver.")
@click.option("--keypoint-threshold", type=click.FloatRange(0.0, 1.0, max_open=True), help="Remove the points whose "
              "keypoint probability is under this before matching (InferenceConfig.keypoint_threshold; a model with a "
              "keypoint filter, which it has where its training points included some without a name); 0 keeps "
              "every point. Default: the checkpoint's setting.")
@click.option("--keypoint-prior", type=click.FloatRange(0.0), help="Each point kept pays this times its doubt, -log p "
              "(p its keypoint probability), on top of half the unmatched threshold, in the threshold's cosine units "
              "(InferenceConfig.keypoint_prior; a model with a keypoint filter); 0: the filter only removes points. "
              "Default: the checkpoint's setting.")
@click.option("--completion-source", type=click.Choice(list(COMPLETION_SOURCES)),
              help="What the model says a graph lacks (InferenceConfig.completion_source). Default: the checkpoint's.")
@click.option("--count-per-pair/--count-per-query", default=None, help="Under --completion-source queries, decide "
              "which queries exist as one count per pair, from both sides' existence estimates (InferenceConfig."
              "count_per_pair), or each query alone against the model's threshold. Default: the checkpoint's.")
@click.option("--generation", is_flag=True,
              help="Also measure the generated nodes on the real pairs (a checkpoint; a few more passes): their count "
                   "against what the names say each graph lacks, where they go (1 and 3 common keypoints hidden from "
                   "each target; PCK beside affine / thin-plate-spline transfer from the model's and RRWM's matches) "
                   "and the F1 with them on and off at inference.")
@click.option("--completions", type=click.Path(), help="Write each pair's completed graph as JSON to this file: the "
              "instance ids, the matches by name, the generated points (pixel position, partner name, confidence).")
@click.option("--output", type=click.Path(), help="Write the results as JSON to this file.")
@click.option("--no-progress", is_flag=True, help="No progress bars (logs, CI).")
def evaluate_command(checkpoint, solver, dataset, root, data, val_data, test_data, images, split,
                     max_pairs_per_category, batch_size, device, threads, outliers, outlier_region, extra_drop,
                     backbone, fit_threshold, epipolar, epipolar_pool, keypoint_threshold, keypoint_prior,
                     completion_source, count_per_pair, generation, completions, output, no_progress):
    """Evaluate a trained model (or a classical solver) on real cross-instance pairs.

    \b
    Reports per class and averaged: precision, recall and F1 of the predicted correspondences in
    the unfiltered setting (all annotated keypoints), accuracy in the intersection setting, and,
    for a model, the completion quality on generated pairs of the same split; with --generation,
    the generated nodes on the real pairs: their count (the names say what each graph lacks),
    where they go and what they change in the matching (docs/evaluation.md).
    \b
    A checkpoint trained on COCO files is scored on its own split (the splits.json beside it) unless
    --data says otherwise; --data / --val-data / --test-data split files as training does.
    \b
    Examples:
      python -m pyg_ssgm evaluate --checkpoint runs/ssgm/checkpoint.pt
      python -m pyg_ssgm evaluate --checkpoint runs/mine/checkpoint.pt                 # its own COCO test split
      python -m pyg_ssgm evaluate --checkpoint runs/mine/checkpoint.pt --data data/my_annotations.json \\
          --test-data data/new_annotations.json                                         # another test file
      python -m pyg_ssgm evaluate --solver rrwm --data data/my_annotations.json
      python -m pyg_ssgm evaluate --checkpoint runs/ssgm/checkpoint.pt --epipolar      # views of one rigid object
      python -m pyg_ssgm evaluate --solver rrwm --epipolar --epipolar-pool                # seeded by 3 solvers
      python -m pyg_ssgm evaluate --checkpoint runs/cub/checkpoint.pt --generation --completions completed.json
    """
    files = DataFiles(data, val_data, test_data, images)
    with reported():
        from ..errors import ConfigError
        from ..evaluation import completion_quality, evaluate_matching, format_results, report_to_dict
        from ..files import check_output_file, write_text_atomic
        from ..threads import apply_thread_policy
        from ..validation import resolve_device

        if (checkpoint is None) == (solver is None):
            raise ConfigError("give exactly one of --checkpoint or --solver.")
        for given, flag in ((completion_source is not None, "--completion-source"), (generation, "--generation"),
                            (count_per_pair is not None, "--count-per-pair"),
                            (completions is not None, "--completions"),
                            (keypoint_threshold is not None, "--keypoint-threshold"),
                            (keypoint_prior is not None, "--keypoint-prior")):
            if given and checkpoint is None:
                raise ConfigError(f"{flag} applies to a model: give it with --checkpoint.")
        for given, flag in ((fit_threshold, "--fit-threshold"), (backbone is not None, "--features")):
            if given and solver is None:
                raise ConfigError(f"{flag} applies to a classical solver: give it with --solver.")
        device = resolve_device(device)
        apply_thread_policy(threads)
        for path in (output, completions):  # now, not after a long evaluation
            if path:
                check_output_file(path)
        from ..data.perturb import perturb_splits
        from ..experiment import load_model
        from ..features import with_image_features

        if checkpoint is not None:
            predictor, settings = load_model(checkpoint, device)
            train_cfg = settings.train
            dataset, splits = checkpoint_splits(checkpoint, settings, dataset, root, files)
            own = dataset == train_cfg.dataset  # the perturbation it was trained with, unless told otherwise
            # only the split scored: perturbation is seeded per image, so a subset changes nothing
            splits = perturb_splits({split: splits[split]},
                                    train_cfg.outliers if outliers is None and own else outliers or 0,
                                    train_cfg.extra_drop if extra_drop is None and own else extra_drop or 0.0,
                                    outlier_region=(train_cfg.outlier_region if outlier_region is None and own
                                                    else outlier_region or "box"))
            if settings.features is not None:  # the same image features the model was trained on
                splits = with_image_features(splits, settings.features, dataset)
            for value, flag in ((keypoint_threshold, "--keypoint-threshold"), (keypoint_prior, "--keypoint-prior")):
                if value and predictor.model.keypoint_filter is None:
                    raise ConfigError(f"{flag} reads the model's keypoint filter, and this model has none "
                                      "(its training points all had names).")
            changes = {key: value for key, value in (("completion_source", completion_source), ("epipolar", epipolar),
                                                     ("count_per_pair", count_per_pair),
                                                     ("epipolar_pool", epipolar_pool),
                                                     ("keypoint_threshold", keypoint_threshold),
                                                     ("keypoint_prior", keypoint_prior)) if value is not None}
            if epipolar is False and epipolar_pool is None:
                changes["epipolar_pool"] = False  # what seeds a re-matching switched off goes with it
            predictor.config = replace(predictor.config, **changes)  # a pool without --epipolar: a ConfigError
            predict = predictor
            if max_pairs_per_category is None:
                max_pairs_per_category = getattr(train_cfg, f"{split}_pairs_per_category")
        else:
            from ..baselines import ClassicalMatcher, calibrated_solver

            given = dataset_of(dataset, root, files)
            dataset = given["dataset"] or "synthetic"
            splits = read_splits(dataset, given["root"], files, seed=0)
            needed = {split, "val"} if fit_threshold else {split}  # seeded per image: a subset changes nothing
            splits = perturb_splits({k: splits[k] for k in needed}, outliers or 0, extra_drop or 0.0,
                                    outlier_region=outlier_region or "box")
            if backbone not in (None, "none"):  # sampled after the outliers: they get features of their own
                from ..features import FeatureConfig

                splits = with_image_features(splits, FeatureConfig(backbone=backbone), dataset,
                                             progress=not no_progress)
            from ..baselines import EPIPOLAR_POOL_SOLVERS

            options = {"epipolar": bool(epipolar), "epipolar_pool": EPIPOLAR_POOL_SOLVERS if epipolar_pool else ()}
            predict = ClassicalMatcher(solver, **options)
            if fit_threshold:
                from ..config import TrainConfig

                # the validation pairs training scores (and the benchmark calibrates on)
                predict = calibrated_solver(solver, splits["val"], TrainConfig().val_pairs_per_category, **options)
                click.echo(f"{solver}: unmatched threshold fitted on the validation pairs: "
                           + ("none beats a full matching" if predict.threshold is None
                              else f"{predict.threshold:.4g}"))
        label = None if no_progress else f"{split} pairs"  # None: no progress bars
        results = evaluate_matching(predict, splits[split], max_pairs_per_category=max_pairs_per_category,
                                    batch_size=batch_size, device=device, desc=label)
        if checkpoint is not None and settings.model.completion:
            results["completion"] = completion_quality(predictor, splits[split], train_cfg.pair_generator(),
                                                       device=device)
        if checkpoint is not None:  # the inference settings it matched with (chosen on validation, where they were)
            results["inference"] = asdict(predictor.config)
        if generation:
            from ..generation import generation_measures

            results["generation"] = generation_measures(
                predictor, splits[split], current=results, max_pairs_per_category=max_pairs_per_category,
                batch_size=batch_size, device=device, desc=label and f"{label}, generation")
        click.echo(format_results(results))
        if generation:
            from ..generation import format_generation

            click.echo("\n" + format_generation(results["generation"]))
        if completions:
            from ..generation import completion_records

            records = completion_records(predictor, splits[split], max_pairs_per_category, batch_size, device=device)
            write_text_atomic(completions, json.dumps(records, indent=1))
            click.echo(f"\nCompleted graphs of {len(records['pairs'])} pairs written to {completions}")
        if output:
            write_text_atomic(output, json.dumps(report_to_dict(results), indent=2))
            click.echo(f"\nResults written to {output}")
