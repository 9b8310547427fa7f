"""The accuracy table (:func:`run_accuracy`): every method on the same real test batches, scored by
the same metric code (see :mod:`pyg_ssgm.benchmarking.run`)."""
from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch

from ..errors import InvalidInputError
from .config import CLASSICAL, QAP_SOLVERS, BenchmarkConfig
from .experiments import train_variant, with_inference
from .scoring import score_batches
from .timing import _sync_fn

__all__ = ["run_accuracy", "ssgm_variants", "VALIDATED_PRESETS", "Variant"]


def _names(instance) -> Optional[set]:
    """The keypoint names of an instance, ``None`` when some point is unnamed (never shared)."""
    return None if any(n is None for n in instance.names) else set(instance.names)


def _device_batches(batches: Sequence, device: torch.device) -> List:
    return list(batches) if device.type == "cpu" else [b.clone().to(device) for b in batches]


class Variant(NamedTuple):
    """One SSGM row of the table: its key and label, whether it trains on the true labels, its
    settings sections (:mod:`pyg_ssgm.presets`) and what labels its training reads."""

    key: str
    label: str
    supervised: bool
    settings: Dict[str, Dict[str, Any]]
    labels: str  # what labels its training reads


#: Datasets whose SSGM rows use validated presets (:mod:`pyg_ssgm.presets`): dataset ->
#: (geometry preset, image preset or ``None`` when the dataset has no images).
VALIDATED_PRESETS: Dict[str, Tuple[str, Optional[str]]] = {"willow": ("willow_geometry", "willow_images"),
                                                           "cub": ("cub", None)}


def ssgm_variants(dataset: str, images: bool) -> List[Variant]:
    """The SSGM rows of the table. On Willow and CUB, the settings chosen on their validation
    splits (:mod:`pyg_ssgm.presets`, :data:`VALIDATED_PRESETS`), with image features when the
    images are there and the dataset has an image preset; elsewhere the defaults. The main
    self-supervised row is always keyed ``"ssgm"`` (the speed part times it)."""
    if dataset not in VALIDATED_PRESETS:
        return [Variant("ssgm", "SSGM self-supervised", False, {}, "none"),
                Variant("ssgm_supervised", "SSGM supervised", True, {}, "correspondences"),
                Variant("ssgm_no_completion", "SSGM w/o completion (ablation)", False,
                        {"model": {"completion": False}}, "none")]
    from ..presets import preset

    geometry_name, images_name = VALIDATED_PRESETS[dataset]
    images = images and images_name is not None
    main = images_name if images else geometry_name
    geometry, best = preset(geometry_name), preset(main)
    what = "image features" if images else "geometry"
    no_completion = preset(main)
    no_completion.setdefault("model", {})["completion"] = False
    supervised = preset(main)
    supervised.setdefault("train", {})["pseudo_labels"] = False  # it reads the true labels instead
    variants = [Variant("ssgm", f"SSGM self-supervised, {what}", False, best, "none")]
    if images:
        variants.append(Variant("ssgm_geometry", "SSGM self-supervised, geometry", False, geometry, "none"))
    return variants + [
        Variant("ssgm_supervised", f"SSGM supervised, {what} (upper bound)", True, supervised, "correspondences"),
        Variant("ssgm_no_completion", f"SSGM w/o completion, {what} (ablation)", False, no_completion, "none")]


def run_accuracy(cfg: BenchmarkConfig, progress: Optional[bool] = None) -> Dict[str, Any]:
    """The accuracy table: every method on the same test batches (see the module docstring).

    Returns a JSON-friendly dict (``"methods"``: one entry per row) plus, under the non-JSON key
    ``"_models"``, the trained SSGM variants by key as ``(model, criterion, predictor)`` (the speed
    part times the self-supervised one).
    """
    from tqdm.auto import tqdm

    from ..baselines import ClassicalMatcher
    from ..config import FeatureConfig, TrainConfig
    from ..data import RealPairs, pair_loader
    from ..data.perturb import perturb_splits
    from ..data.sources import load_splits
    from ..evaluation import evaluate_matching
    from ..features import with_image_features
    from ..generation import generation_measures

    progress = cfg.progress if progress is None else progress
    device = cfg.resolved_device()
    sync = _sync_fn(device)
    splits = perturb_splits(load_splits(cfg.dataset, cfg.root, cfg.synthetic_config()), cfg.outliers,
                            cfg.extra_drop, outlier_region=cfg.outlier_region)
    if len(splits["test"]) < 2:
        raise InvalidInputError("the test split needs at least two instances of one category.")

    def batches_of(instances, max_pairs, intersection):
        pairs = RealPairs(instances, max_pairs, seed=cfg.seed, intersection=intersection)
        return pairs, list(pair_loader(pairs, cfg.batch_size))

    test_pairs, test_unf = batches_of(splits["test"], cfg.test_pairs_per_category, False)
    test_int_pairs, test_int = batches_of(splits["test"], cfg.test_pairs_per_category, True)
    assert test_pairs.index == test_int_pairs.index  # both settings score the same pairs
    # Where both instances of every pair name the same keypoints (Willow: all are annotated), the
    # intersection pairs are the unfiltered ones: score them once.
    names = [_names(inst) for inst in splits["test"]]
    same_settings = all(names[i] is not None and names[i] == names[j] for i, j in test_pairs.index)
    fingerprint = hashlib.sha1(json.dumps(test_pairs.index).encode()).hexdigest()
    val_batches = None
    if len(splits["val"]) >= 2:
        val_batches = batches_of(splits["val"], cfg.val_pairs_per_category, False)[1]
    dev_unf, dev_int = _device_batches(test_unf, device), _device_batches(test_int, device)

    images = cfg.dataset != "synthetic" and all(i.image is not None for i in splits["test"]) and cfg.image_features
    variants = ssgm_variants(cfg.dataset, images)
    feature_batches: Dict[str, Tuple[List, List, List, List]] = {}

    def batches_with(features: Optional[FeatureConfig]):
        """The test batches (unfiltered, intersection; host and device) with ``features`` on the
        instances (the same pairs in the same order: only ``x`` differs)."""
        if features is None:
            return test_unf, test_int, dev_unf, dev_int
        key = json.dumps(features.identity(), sort_keys=True)
        if key not in feature_batches:
            test = with_image_features({"test": splits["test"]}, features, cfg.dataset, progress=progress)["test"]
            unf = batches_of(test, cfg.test_pairs_per_category, False)[1]
            inter = batches_of(test, cfg.test_pairs_per_category, True)[1]
            feature_batches[key] = (unf, inter, _device_batches(unf, device), _device_batches(inter, device))
        return feature_batches[key]

    # Where the model matches mirror images too (CUB: birds face either way), so do the solvers,
    # in extra rows: the mirror test is not the model's alone.
    mirror = bool(variants[0].settings.get("inference", {}).get("mirror_test", False))
    steps = len(CLASSICAL) * 2 * (1 + mirror) + len(variants) * 2 + (2 if images else 0)
    bar = tqdm(total=steps, desc="accuracy", disable=not progress)
    methods: List[Dict[str, Any]] = []

    def add(key, label, mode, labels, predict, features=None, **extra):
        bar.set_postfix_str(f"evaluating {key}")
        host_unf, host_int, device_unf, device_int = batches_with(features)
        predict(device_unf[0])  # warm-up, untimed: lazy initialisation is not charged to the first method
        unf, elapsed = score_batches(predict, host_unf, device_unf, sync)
        inter = unf if same_settings else score_batches(predict, host_int, device_int, sync)[0]
        methods.append({"key": key, "label": label, "mode": mode, "labels": labels,
                        "unfiltered": unf.to_dict(), "intersection": inter.to_dict(),
                        "f1": unf.mean.f1, "precision": unf.mean.precision, "recall": unf.mean.recall,
                        "intersection_accuracy": inter.mean.recall,
                        "ms_per_pair": 1e3 * elapsed / len(test_pairs), **extra})
        bar.update(1)

    for mirror_test in (False, True)[:1 + mirror]:
        for key, (solver, label) in CLASSICAL.items():
            key, label = (f"{key}_mirror", f"{label}, mirror test") if mirror_test else (key, label)
            add(key, label, "full", "none", ClassicalMatcher(solver, mirror_test=mirror_test))
            calibrated = ClassicalMatcher(solver, mirror_test=mirror_test)
            threshold = None
            if val_batches is not None:
                bar.set_postfix_str(f"calibrating {key}")
                # on CPU: calibration is not timed, and the metric code reads the batches on the host
                threshold = calibrated.calibrate_threshold(val_batches)
            mode = (f"partial, threshold {threshold:.3f} (val)" if threshold is not None
                    else "partial: no threshold beat full (val)" if val_batches is not None
                    else "partial: no val split, = full")
            add(f"{key}_calibrated", label, mode, "none", calibrated, threshold=threshold)
    if images:  # the same solvers with the backbone's descriptors as node affinity
        default_features = FeatureConfig.from_dict(variants[0].settings.get("features", {}))
        for key in ("hungarian", "rrwm"):
            edges = ", Delaunay edge affinity" if key in QAP_SOLVERS else ""
            add(f"{key}_images", f"{key.upper() if key != 'hungarian' else 'Hungarian'} "
                f"({default_features.backbone} node affinity{edges})", "full", "none",
                ClassicalMatcher(key, node_affinity="features"), features=default_features)

    models: Dict[str, Tuple] = {}
    for key, label, supervised, settings, labels in variants:
        bar.set_postfix_str(f"training {key}")
        base = TrainConfig(**settings.get("train", {}))
        epochs = cfg.epochs or (30 if cfg.dataset == "willow" and not cfg.quick else base.epochs)
        val_pairs = min(5, cfg.val_pairs_per_category or 5) if cfg.quick else base.val_pairs_per_category
        overrides = dict(settings, synthetic=cfg.synthetic or {})
        run = train_variant(None, overrides, dataset=cfg.dataset, root=cfg.root, supervised=supervised,
                            epochs=epochs, seed=cfg.seed, device=str(device), eval_every=epochs,
                            val_pairs_per_category=val_pairs,
                            outliers=cfg.outliers, outlier_region=cfg.outlier_region,
                            extra_drop=cfg.extra_drop)  # the same perturbed splits
        trainer, predictor = run.trainer, run.predictor
        models[key] = (trainer.model, trainer.criterion, predictor)
        bar.update(1)
        features = trainer.settings.features
        extra = {"train_s": run.train_s, "epochs": epochs, "settings": trainer.settings.to_dict()}
        if "completion" in run.results:
            extra["completion_generated_pairs"] = run.results["completion"]
        extra["validation"] = run.validation
        bar.set_postfix_str(f"generation measures of {key}")
        # what it generates on the same real test pairs (pyg_ssgm.generation): the count for every
        # trained row, the place of hidden keypoints for the main one (it runs the model and RRWM
        # twice more over the pairs); the matching with the generated nodes on / off is the row below
        extra["generation"] = generation_measures(predictor, trainer.splits["test"], place=key == "ssgm",
                                                  switch=False, max_pairs_per_category=cfg.test_pairs_per_category,
                                                  batch_size=cfg.batch_size, seed=cfg.seed, device=device)
        add(key, label, "partial (learned threshold)", labels, predictor, features=features, **extra)
        if key == "ssgm" and trainer.settings.model.completion:
            # the same trained model with its generated nodes switched the other way at inference
            # (off by default, on where the preset keeps them out): what they buy the matching
            flipped = with_inference(predictor, generate_at_inference=not predictor.config.generate_at_inference)
            state = "on" if flipped.config.generate_at_inference else "off"
            bar.total += 1
            val = {}
            if trainer.splits["val"]:
                scores = evaluate_matching(flipped, trainer.splits["val"],
                                           max_pairs_per_category=trainer.cfg.val_pairs_per_category, device=device)
                val = {"val_f1": scores["unfiltered"].mean.f1, "val_precision": scores["unfiltered"].mean.precision,
                       "val_recall": scores["unfiltered"].mean.recall,
                       "val_intersection_acc": scores["intersection"].mean.recall}
            add(f"ssgm_generated_{state}", f"{label}, generated nodes {state} at inference (ablation)",
                "partial (learned threshold)", labels, flipped, features=features, validation=val)
    bar.close()
    return {
        "dataset": cfg.dataset, "root": cfg.root, "seed": cfg.seed,
        "outliers": cfg.outliers, "outlier_region": cfg.outlier_region, "extra_drop": cfg.extra_drop,
        "num_test_pairs": len(test_pairs), "test_pairs_per_category": cfg.test_pairs_per_category,
        "num_val_pairs": sum(b.num_graphs for b in val_batches) if val_batches else 0,
        "pairs_sha1": fingerprint, "methods": methods, "_models": models,
    }

