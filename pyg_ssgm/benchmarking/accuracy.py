"""The accuracy table (:func:`run_accuracy`): every method on the same real test batches, scored by
the same metric code (see :mod:`pyg_ssgm.benchmark`)."""
from __future__ import annotations

import copy
import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch

from ..errors import InvalidInputError
from .config import CLASSICAL, QAP_SOLVERS, BenchmarkConfig
from .timing import _sync_fn

__all__ = ["run_accuracy"]


def _names(instance) -> Optional[set]:
    """The keypoint names of an instance, ``None`` when some point is unnamed (never shared)."""
    return None if any(n is None for n in instance.names) else set(instance.names)


def _device_batches(batches: Sequence, device: torch.device) -> List:
    return list(batches) if device.type == "cpu" else [b.clone().to(device) for b in batches]


def _score(predict: Callable, batches: Sequence, dev_batches: Sequence, sync: Callable) -> Tuple[Any, float]:
    """Predict on every batch; return the aggregated report and the wall time of the predictions."""
    from ..metrics import aggregate, batch_counts

    records, elapsed = [], 0.0
    for batch, dev in zip(batches, dev_batches):
        sync()
        start = time.perf_counter()
        preds = predict(dev)
        sync()
        elapsed += time.perf_counter() - start
        records += batch_counts([p.cpu() for p in preds], batch)
    return aggregate(records), elapsed


class Variant(NamedTuple):
    key: str
    label: str
    supervised: bool
    settings: Dict[str, Dict[str, Any]]  # train / model / features sections (see pyg_ssgm.presets)
    labels: str  # what labels its training reads


#: Datasets whose SSGM rows use validated presets (:mod:`pyg_ssgm.presets`): dataset ->
#: (geometry preset, image preset or ``None`` when the dataset has no images).
VALIDATED_PRESETS: Dict[str, Tuple[str, Optional[str]]] = {"willow": ("willow_geometry", "willow_images"),
                                                           "cub": ("cub", None)}


def _ssgm_variants(dataset: str, images: bool) -> List[Variant]:
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


def _validation_scores(run_dir: str) -> Dict[str, float]:
    """The ``val_*`` scores of the last validated epoch of the training run in ``run_dir``."""
    from ..metrics_log import read_metrics

    rows = [r for r in read_metrics(Path(run_dir)) or [] if r.get("val_f1") is not None and r["val_f1"] == r["val_f1"]]  # not NaN
    return {k: v for k, v in rows[-1].items() if k.startswith("val_")} if rows else {}


def run_accuracy(cfg: BenchmarkConfig, progress: Optional[bool] = None) -> Dict[str, Any]:
    """The accuracy table: every method on the same test batches (see the module docstring).

    Returns a JSON-friendly dict (``"methods"``: one entry per row) plus, under the non-JSON key
    ``"_models"``, the trained SSGM models by key (the speed part times the self-supervised one).
    """
    from tqdm.auto import tqdm

    from ..baselines import ClassicalMatcher
    from ..config import SSGMConfig
    from ..data import RealPairs, pair_loader
    from ..data.perturb import perturb_splits
    from ..data.sources import load_splits
    from ..trainer import TrainConfig, feature_config, train, with_image_features

    progress = cfg.progress if progress is None else progress
    device = cfg.resolved_device()
    sync = _sync_fn(device)
    synthetic = cfg.synthetic_config()
    splits = perturb_splits(load_splits(cfg.dataset, cfg.root, synthetic), cfg.outliers, cfg.extra_drop)
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
    variants = _ssgm_variants(cfg.dataset, images)
    feature_batches: Dict[str, Tuple[List, List, List, List]] = {}

    def batches_with(features):
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
    mirror = bool(variants[0].settings.get("model", {}).get("mirror_test", False))
    steps = len(CLASSICAL) * 2 * (1 + mirror) + len(variants) * 2 + (2 if images else 0)
    bar = tqdm(total=steps, desc="accuracy", disable=not progress)
    methods: List[Dict[str, Any]] = []

    def add(key, label, mode, labels, predict, features=None, **extra):
        bar.set_postfix_str(f"evaluating {key}")
        host_unf, host_int, device_unf, device_int = batches_with(features)
        predict(device_unf[0])  # warm-up, untimed: lazy initialisation is not charged to the first method
        unf, elapsed = _score(predict, host_unf, device_unf, sync)
        inter = unf if same_settings else _score(predict, host_int, device_int, sync)[0]
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
        default_features = feature_config(_ssgm_variants(cfg.dataset, True)[0].settings.get("features", {}))
        for key in ("hungarian", "rrwm"):
            edges = ", Delaunay edge affinity" if key in QAP_SOLVERS else ""
            add(f"{key}_images", f"{key.upper() if key != 'hungarian' else 'Hungarian'} "
                f"({default_features.backbone} node affinity{edges})", "full", "none",
                ClassicalMatcher(key, node_affinity="features"), features=default_features)

    models: Dict[str, Any] = {}
    train_dir = Path(tempfile.mkdtemp(prefix="ssgm_benchmark_"))
    try:
        for key, label, supervised, settings, labels in variants:
            bar.set_postfix_str(f"training {key}")
            base = TrainConfig(**settings.get("train", {}))
            features = feature_config(settings.get("features", {}))
            epochs = cfg.epochs or (30 if cfg.dataset == "willow" and not cfg.quick else base.epochs)
            train_cfg = replace(
                base, dataset=cfg.dataset, root=cfg.root, supervised=supervised, epochs=epochs, seed=cfg.seed,
                device=str(device), output_dir=str(train_dir / key), eval_every=epochs,
                val_pairs_per_category=(min(5, cfg.val_pairs_per_category or 5) if cfg.quick
                                        else base.val_pairs_per_category),
                outliers=cfg.outliers, extra_drop=cfg.extra_drop,  # the same perturbed splits
                test_pairs_per_category=1)  # its own test pass: cheap, we score on our pairs below
            model_cfg = SSGMConfig(**settings.get("model", {}))
            start = time.perf_counter()
            trainer, results = train(train_cfg, model_cfg, synthetic, progress=False, features=features)
            train_s = time.perf_counter() - start
            model = trainer.model.eval()
            models[key] = model
            bar.update(1)
            extra = {"train_s": train_s, "epochs": epochs, "train_config": asdict(train_cfg),
                     "model_config": trainer.model_cfg.to_dict(),
                     "feature_config": features.to_dict() if features is not None else None}
            if "completion" in results:
                extra["completion_generated_pairs"] = results["completion"]
            extra["validation"] = _validation_scores(train_cfg.output_dir)
            add(key, label, "partial (learned threshold)", labels, model.predict, features=features, **extra)
            if key == "ssgm" and model.config.completion:
                # the same trained model with its generated nodes switched the other way at inference
                # (off by default, on where the preset keeps them out): what they buy the matching
                flipped = copy.deepcopy(model)
                flipped.config.generate_at_inference = not model.config.generate_at_inference
                state = "on" if flipped.config.generate_at_inference else "off"
                bar.total += 1
                val = {}
                if trainer.splits["val"]:
                    from ..evaluate import evaluate_matching

                    scores = evaluate_matching(flipped.predict, trainer.splits["val"],
                                               max_pairs_per_category=train_cfg.val_pairs_per_category, device=device)
                    val = {"val_f1": scores["unfiltered"].mean.f1, "val_precision": scores["unfiltered"].mean.precision,
                           "val_recall": scores["unfiltered"].mean.recall,
                           "val_intersection_acc": scores["intersection"].mean.recall}
                add(f"ssgm_generated_{state}", f"{label}, generated nodes {state} at inference (ablation)",
                    "partial (learned threshold)", labels, flipped.predict, features=features, validation=val)
    finally:
        shutil.rmtree(train_dir, ignore_errors=True)
    bar.close()
    return {
        "dataset": cfg.dataset, "root": cfg.root, "seed": cfg.seed,
        "outliers": cfg.outliers, "extra_drop": cfg.extra_drop,
        "num_test_pairs": len(test_pairs), "test_pairs_per_category": cfg.test_pairs_per_category,
        "num_val_pairs": sum(b.num_graphs for b in val_batches) if val_batches else 0,
        "pairs_sha1": fingerprint, "methods": methods, "_models": models,
    }
