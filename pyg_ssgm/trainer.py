"""Training loop: self-supervised (generated pairs) or supervised (real labelled pairs).

Reproducible and resumable: every training pair is a pure function of ``(seed, epoch, index)``,
the batch order of an epoch a pure function of ``(seed, epoch)``, and a checkpoint stores the
model, the optimiser, the position in the epoch and the torch RNG state, so ``resume`` continues
exactly where an interrupted run stopped. Under ``torchrun`` the same loop runs data-parallel.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist
from torch.utils.data import Dataset
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from .checkpoint import TRAINING_ENTRIES, changed_settings, load_checkpoint, restoring, save_checkpoint
from .config import SSGMConfig, check_field_types, parse_device, resolve_device
from .data import GeneratedPairs, GeometricAugmentation, KeypointInstance, PairData, PairGenerator
from .data.datasets import EpochConcat, EpochSampler, LabelledPairs
from .data.perturb import perturb_splits
from .data.sources import DATASETS, load_splits
from .data.synthetic import SyntheticConfig
from .errors import CheckpointError, ConfigError
from .evaluate import completion_quality, evaluate_matching, report_to_dict
from .feature_cache import FeatureConfig, attach_features
from .files import prepare_output_dir, write_text_atomic
from .metrics_log import MetricsLog
from .threads import apply_thread_policy
from .model import SSGM


@dataclass
class TrainConfig:
    """Everything about a training run except the model (see :class:`~pyg_ssgm.SSGMConfig`).

    Data: ``dataset`` (one of ``DATASETS``) and ``root`` for real benchmarks. Pairs: ``drop_rate``,
    ``feature_noise`` and the geometric augmentation (``rotation`` in degrees, ``jitter``,
    ``deformation``: the smooth non-rigid warp of
    :class:`~pyg_ssgm.data.transforms.GeometricAugmentation`, 0 = none) of the pair generator;
    ``mirror_rate``, its share of mirror pairs (left and right exchanged on one side, for a
    ``mirror_aware`` model; see :class:`~pyg_ssgm.data.PairGenerator`);
    ``repeats`` generated pairs per training instance and epoch. Optimisation:
    ``epochs``, ``batch_size``, ``lr`` (decayed to 0 along a cosine over the epochs unless
    ``lr_schedule="constant"``), ``weight_decay``, ``grad_clip``. ``supervised`` trains on
    real pairs with their labels instead (the upper bound). ``pseudo_labels`` adds, to the generated
    pairs, the training split's own unlabelled real pairs with cycle-consistent pseudo-labels from
    a classical solver (:mod:`pyg_ssgm.pseudo_labels`; ``pseudo_min_agreement`` is the share of
    cycles that must agree; no keypoint name is read across instances). Evaluation: at most
    ``val_pairs_per_category`` / ``test_pairs_per_category`` real pairs per class (``None``: all).
    ``threads``: CPU threads of torch (0: the automatic policy of :mod:`pyg_ssgm.threads`).
    Harder real data (:mod:`pyg_ssgm.data.perturb`, every split, deterministic per image):
    ``outliers`` unnamed points per image inside its keypoints' bounding box (no partner), and
    ``extra_drop``, the probability to remove each annotated keypoint on top of what is missing.

    A resumed run must keep every setting that shapes it; only those of :data:`RESUME_MAY_CHANGE`
    may differ from the checkpoint's (see :meth:`Trainer.load`).
    """

    dataset: str = "synthetic"
    root: Optional[str] = None
    supervised: bool = False
    pseudo_labels: bool = False
    pseudo_min_agreement: float = 0.5
    epochs: int = 100
    batch_size: int = 16
    lr: float = 2e-3
    lr_schedule: str = "cosine"
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    drop_rate: float = 0.25
    feature_noise: float = 1.2
    rotation: float = 20.0
    jitter: float = 0.05
    deformation: float = 0.0
    mirror_rate: float = 0.0
    repeats: int = 1
    seed: int = 0
    device: str = "cpu"
    output_dir: str = "runs/ssgm"
    val_pairs_per_category: Optional[int] = 60
    test_pairs_per_category: Optional[int] = None
    eval_every: int = 1
    num_workers: int = 0
    threads: int = 0
    outliers: int = 0
    extra_drop: float = 0.0

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.dataset not in DATASETS:
            raise ConfigError(f"dataset must be one of {DATASETS}, got {self.dataset!r}.")
        for name in ("epochs", "batch_size", "repeats", "eval_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}.")
        for name in ("weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (0 switches it off), got {getattr(self, name)}.")
        if not 0 <= self.seed < 2 ** 32:  # torch seeds are 64-bit; derived seeds (seed * 7919 + epoch) need room
            raise ConfigError(f"seed must be in [0, 2**32), got {self.seed}.")
        if not self.output_dir.strip():  # '' would write the run into the current folder
            raise ConfigError("output_dir must name a folder, got an empty string (use '.' for the current one).")
        parse_device(self.device)
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(f"lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}.")
        if not 0 < self.pseudo_min_agreement <= 1:
            raise ConfigError(f"pseudo_min_agreement must be in (0, 1], got {self.pseudo_min_agreement}.")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0 (0: automatic), got {self.threads}.")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {self.num_workers}.")
        if self.outliers < 0:
            raise ConfigError(f"outliers (unnamed points added per image) must be >= 0, got {self.outliers}.")
        if not 0.0 <= self.mirror_rate <= 1.0:
            raise ConfigError(f"mirror_rate (share of mirror pairs) must be in [0, 1], got {self.mirror_rate}.")
        if not 0.0 <= self.extra_drop < 1.0:
            raise ConfigError(f"extra_drop (share of keypoints removed per image) must be in [0, 1), "
                              f"got {self.extra_drop}.")
        for name in ("val_pairs_per_category", "test_pairs_per_category"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 or null (all pairs), got {getattr(self, name)}.")

    def pair_generator(self) -> PairGenerator:
        return PairGenerator(drop_rate=self.drop_rate, feature_noise=self.feature_noise, mirror_rate=self.mirror_rate,
                             augmentation=GeometricAugmentation(rotation=self.rotation, jitter=self.jitter,
                                                                deformation=self.deformation))


def with_image_features(splits: Dict[str, List[KeypointInstance]], features: FeatureConfig, dataset: str,
                        progress: bool = True) -> Dict[str, List[KeypointInstance]]:
    """``splits`` with backbone descriptors as ``x`` (cached on disk): the training split also gets
    ``features.num_views`` augmented views per image, which the pair generator cuts its two sides
    from; validation and test instances are seen as they are."""
    return {name: attach_features(items, features, dataset, num_views=features.num_views if name == "train" else 0,
                                  progress=progress) if items else items
            for name, items in splits.items()}


def feature_config(values: Dict[str, Any]) -> Optional[FeatureConfig]:
    """The ``features`` section of the settings as a :class:`FeatureConfig`; ``None`` (no image
    features) when it is empty or its ``backbone`` is ``"none"``."""
    if not values or values.get("backbone", "efficientnet_lite0") == "none":
        return None
    return FeatureConfig.from_dict(values)


#: Train settings a resumed run may change: none of them changes what is trained (``epochs``
#: extends the run; the data loader's items do not depend on ``num_workers``; validation draws
#: nothing from the training's RNG, so ``eval_every`` only changes which epochs are validated;
#: ``output_dir`` may differ when the run's folder was moved). The ``device`` and ``threads`` may
#: change too, within floating-point differences. Every other setting, of every section, must stay.
RESUME_MAY_CHANGE = {"train": ("epochs", "device", "num_workers", "eval_every", "output_dir", "threads"),
                     # where image features are cached and how they are batched change no value
                     "features": ("cache_dir", "batch_size", "device")}


def split_config(values: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Sort a flat or sectioned dict of settings into ``train`` / ``model`` / ``synthetic`` /
    ``features`` sections (a flat key goes to the first section that has it)."""
    sections = {"train": {}, "model": {}, "synthetic": {}, "features": {}}
    owners = {"train": {f.name for f in fields(TrainConfig)}, "model": {f.name for f in fields(SSGMConfig)},
              "synthetic": {f.name for f in fields(SyntheticConfig)},
              "features": {f.name for f in fields(FeatureConfig)}}
    for key, value in values.items():
        if key in sections and value is None:  # an empty section (`synthetic: null` in config.json)
            continue
        if key in sections and not isinstance(value, dict):
            raise ConfigError(f"the {key!r} section must be a mapping of {key} settings "
                              f"(e.g. {key}: {{{sorted(owners[key])[0]}: ...}}), got {value!r}.")
        if key in sections:
            for sub, v in value.items():
                if sub not in owners[key]:
                    raise ConfigError(f"unknown {key} setting {sub!r}; known: {sorted(owners[key])}.")
                sections[key][sub] = v
            continue
        owner = [name for name, keys in owners.items() if key in keys]
        if not owner:
            raise ConfigError(f"unknown setting {key!r}; see `python -m pyg_ssgm.train --help`.")
        sections[owner[0]][key] = value
    return sections


# ---------------------------------------------------------------------------------------------
# distributed helpers
# ---------------------------------------------------------------------------------------------
def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _setup_distributed(device: torch.device) -> tuple:
    if not _distributed():
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _resolve_device(name: str) -> torch.device:
    device = resolve_device(name)
    if device.type == "cuda":
        if _distributed():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
class Trainer:
    """Builds data, model and optimiser from the configs and runs :meth:`fit`."""

    def __init__(self, train: TrainConfig, model: Optional[SSGMConfig] = None,
                 synthetic: Optional[SyntheticConfig] = None, progress: bool = True,
                 splits: Optional[Dict[str, List[KeypointInstance]]] = None,
                 features: Optional[FeatureConfig] = None):
        self.cfg, self.synthetic, self.features = train, synthetic, features
        model = self._check_mirror_pairs(train, model or SSGMConfig())
        self.threads = apply_thread_policy(train.threads)
        self.device = _resolve_device(train.device)
        self.rank, self.world_size = _setup_distributed(self.device)
        self.is_main = self.rank == 0
        self.progress = progress and self.is_main
        self.out_dir = Path(train.output_dir)
        self.splits = self._check_splits(splits) if splits is not None else load_splits(train.dataset, train.root,
                                                                                          synthetic)
        self.splits = perturb_splits(self.splits, train.outliers, train.extra_drop)
        if features is not None:
            self.splits = with_image_features(self.splits, features, train.dataset, progress=self.progress)
        feat_dim = next((i.x.size(1) for i in self.splits["train"] if i.x is not None), 0)
        model_cfg = model or SSGMConfig()
        if model_cfg.in_channels != feat_dim:
            model_cfg = SSGMConfig.from_dict({**model_cfg.to_dict(), "in_channels": feat_dim})
        self.model_cfg = model_cfg
        torch.manual_seed(train.seed)  # model initialisation (and dropout) follow the run's seed
        self.model = SSGM(model_cfg).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        self.dataset = self._training_pairs()
        self.sampler = EpochSampler(len(self.dataset), train.seed, self.rank, self.world_size)
        # The loader's own generator: starting an epoch must not draw from the global RNG, whose
        # state the checkpoint restores (dropout masks would differ after a resume otherwise).
        self.loader = DataLoader(self.dataset, batch_size=train.batch_size, sampler=self.sampler,
                                 follow_batch=PairData.FOLLOW_BATCH, num_workers=train.num_workers,
                                 generator=torch.Generator().manual_seed(train.seed))
        self.net = self.model
        if self.world_size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        self.epoch, self.step = 0, 0
        self.running: Dict[str, float] = {}  # loss sums of the epoch in progress (kept across a resume)
        self.pending_row: Dict[str, float] = {}  # metrics row of a trained epoch not yet logged in full

    @staticmethod
    def _check_mirror_pairs(train: TrainConfig, model: SSGMConfig) -> SSGMConfig:
        """Mirror pairs are generated pairs, for a model told which pairs they are: ``mirror_rate``
        > 0 makes the model ``mirror_aware`` (as the data decides ``in_channels``), and a mirror-aware
        model needs them (its mirror shift would otherwise stay untrained). Supervised training
        generates no pair, so it ignores ``mirror_rate`` as it does ``drop_rate``."""
        mirror_pairs = train.mirror_rate > 0 and not train.supervised
        if mirror_pairs and train.pseudo_labels:
            raise ConfigError("mirror_rate > 0 cannot be combined with pseudo_labels=True: the pseudo-labelled "
                              "real pairs carry no mirror flag. Set one of them off.")
        if model.mirror_aware and not mirror_pairs:
            raise ConfigError("mirror_aware=True learns from generated mirror pairs: set mirror_rate > 0 (for "
                              "example 0.5) in self-supervised training, or mirror_aware=False.")
        if mirror_pairs and not model.mirror_aware:
            return replace(model, mirror_aware=True)
        return model

    @staticmethod
    def _check_splits(splits: Dict[str, List[KeypointInstance]]) -> Dict[str, List[KeypointInstance]]:
        """The user's own splits: ``{"train": [...], "val": [...], "test": [...]}`` lists of
        :class:`~pyg_ssgm.data.KeypointInstance` (``val`` may be empty)."""
        if not isinstance(splits, dict) or not {"train", "test"} <= set(splits):
            raise ConfigError("splits must be a dict with 'train', 'test' (and optionally 'val') lists of "
                              "KeypointInstance.")
        out = {name: list(splits.get(name, [])) for name in ("train", "val", "test")}
        for name, items in out.items():
            bad = [type(i).__name__ for i in items if not isinstance(i, KeypointInstance)]
            if bad:
                raise ConfigError(f"splits[{name!r}] must hold KeypointInstance objects, got {bad[0]}.")
        if not out["train"]:
            raise ConfigError("splits['train'] is empty: training needs at least one instance.")
        return out

    def _training_pairs(self) -> Dataset:
        cfg = self.cfg
        if cfg.supervised:
            return LabelledPairs(self.splits["train"], cfg.seed, cfg.repeats)
        generated = GeneratedPairs(self.splits["train"], cfg.pair_generator(), seed=cfg.seed, repeats=cfg.repeats)
        if not cfg.pseudo_labels:
            return generated
        from .pseudo_labels import PseudoLabelledPairs, pseudo_label

        # A model that matches mirror images too learns from pseudo-labels found the same way, on
        # pairs turned to face the same way (it meets the other orientation by its mirror test).
        mirror = self.model_cfg.mirror_test
        labels = pseudo_label(self.splits["train"], min_agreement=cfg.pseudo_min_agreement, seed=cfg.seed,
                              progress=self.progress, mirror_test=mirror)
        real = PseudoLabelledPairs(self.splits["train"], labels, seed=cfg.seed, drop_rate=cfg.drop_rate,
                                   orient=mirror)
        return EpochConcat([generated, real])

    def learning_rate(self, epoch: int) -> float:
        if self.cfg.lr_schedule == "constant":
            return self.cfg.lr
        return 0.5 * self.cfg.lr * (1 + math.cos(math.pi * epoch / self.cfg.epochs))

    # ----------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def settings(self) -> Dict[str, Any]:
        """The run's settings by section, as written to ``config.json``."""
        return {"train": asdict(self.cfg), "model": self.model_cfg.to_dict(),
                "synthetic": asdict(self.synthetic) if self.synthetic is not None else None,
                "features": self.features.to_dict() if self.features is not None else None}

    def state(self) -> Dict[str, Any]:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "model_config": self.model_cfg.to_dict(), "train_config": asdict(self.cfg),
            "synthetic_config": asdict(self.synthetic) if self.synthetic is not None else None,
            "feature_config": self.features.to_dict() if self.features is not None else None,
            "epoch": self.epoch, "step": self.step, "rng_state": torch.get_rng_state(),
            "running": dict(self.running), "pending_row": dict(self.pending_row),
        }

    def save(self) -> Optional[Path]:
        return save_checkpoint(self.state(), self.checkpoint_path) if self.is_main else None

    def load(self, path: Optional[Path] = None) -> None:
        """Restore the run from a checkpoint. Its stored settings must equal this trainer's,
        except those of :data:`RESUME_MAY_CHANGE` (``--epochs`` may extend the run, not cut
        it): otherwise the resumed run would silently mix two configurations, so a
        :class:`ConfigError` lists each difference and nothing is loaded or written."""
        path = Path(path or self.checkpoint_path)
        state = load_checkpoint(path, map_location=self.device, entries=TRAINING_ENTRIES)
        changes = changed_settings(state, self.settings(), RESUME_MAY_CHANGE)
        if changes:
            raise ConfigError(
                f"--resume would continue the run in {str(path.parent)!r} with other settings: {'; '.join(changes)}. "
                f"Resume with the run's own settings (--config {path.parent / 'config.json'} --resume, changing "
                f"only {', '.join(RESUME_MAY_CHANGE['train'])}), or start a new run in another --output-dir.")
        if self.cfg.epochs < state["epoch"]:
            raise ConfigError(f"the run in {str(path.parent)!r} has trained {state['epoch']} epochs already; "
                              f"--epochs {self.cfg.epochs} cannot shorten it (it may extend it).")
        with restoring(path):  # tensors that do not fit, malformed entries: a CheckpointError
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.epoch, self.step = int(state["epoch"]), int(state["step"])
            self.running = {k: float(v) for k, v in state.get("running", {}).items()}
            self.pending_row = {k: float(v) for k, v in (state.get("pending_row") or {}).items()}
            torch.set_rng_state(state["rng_state"].cpu())

    # ----------------------------------------------------------------------- evaluation
    def validate(self) -> Dict[str, float]:
        """Validation numbers logged per epoch: precision / recall / F1 on real val pairs (their
        labels are read for this report only, never by training) and the completion quality on
        generated val pairs."""
        val = self.splits["val"]
        row: Dict[str, float] = {}
        if len(val) >= 2:
            report = evaluate_matching(self.model.predict, val, max_pairs_per_category=self.cfg.val_pairs_per_category,
                                       device=self.device)
            row.update(val_f1=report["unfiltered"].mean.f1, val_precision=report["unfiltered"].mean.precision,
                       val_recall=report["unfiltered"].mean.recall,
                       val_intersection_acc=report["intersection"].mean.recall)
            if self.model_cfg.completion:
                comp = completion_quality(self.model, val, self.cfg.pair_generator(), device=self.device)
                row.update(val_count_acc=comp["count_accuracy"], val_position_error=comp["position_error"])
        return row

    def test(self) -> Dict[str, Any]:
        test = self.splits["test"]
        results: Dict[str, Any] = evaluate_matching(
            self.model.predict, test, max_pairs_per_category=self.cfg.test_pairs_per_category, device=self.device,
            desc="test pairs" if self.progress else None)
        if self.model_cfg.completion:
            results["completion"] = completion_quality(self.model, test, self.cfg.pair_generator(),
                                                       device=self.device)
        return results

    # ----------------------------------------------------------------------- fit
    def fit(self, resume: bool = False) -> Dict[str, Any]:
        if self.is_main:
            prepare_output_dir(self.out_dir)  # a file in the way: a named error before any work
        if resume:
            if not self.checkpoint_path.exists():
                raise CheckpointError(f"--resume: no checkpoint at {self.checkpoint_path}; run without --resume.")
            self.load()
        log = MetricsLog(self.out_dir, resume=resume) if self.is_main else None
        if self.is_main:
            write_text_atomic(self.out_dir / "config.json", json.dumps(self.settings(), indent=2))
        try:
            if self.pending_row:  # resumed after a Ctrl-C in validation: complete that epoch's row
                self._log_epoch(log)
            while self.epoch < self.cfg.epochs:
                self._train_epoch(log)
        except KeyboardInterrupt:
            path = self.save()
            if self.is_main:
                print(f"\nInterrupted: checkpoint saved to {path} (epoch {self.epoch}, step {self.step}); "
                      "continue with --resume.")
            raise
        finally:
            if log is not None:
                log.close()
        results = self.test() if self.is_main else {}
        if self.is_main:
            write_text_atomic(self.out_dir / "test_results.json", json.dumps(report_to_dict(results), indent=2))
        return results

    def _train_epoch(self, log: Optional[MetricsLog]) -> None:
        epoch = self.epoch
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        for group in self.optimizer.param_groups:  # a pure function of the epoch: resumes exactly
            group["lr"] = self.learning_rate(epoch)
        self.model.train()
        if self.step == 0:
            self.running = {}
        sums = self.running  # sums of losses (and the counts of batches and pairs) of this epoch
        start = time.perf_counter() - sums.get("seconds", 0.0)
        bar = tqdm(total=len(self.loader), desc=f"epoch {epoch + 1}/{self.cfg.epochs}", disable=not self.progress,
                   initial=self.step, leave=False)
        for step, batch in enumerate(self.loader):
            if step < self.step:  # resumed mid-epoch: these batches were trained on already
                continue
            batch = batch.to(self.device)
            out = self.net(batch, compute_loss=True)
            loss = out.losses["loss"]
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.optimizer.step()
            self.step = step + 1
            for key, value in out.losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            sums["oversmoothing"] = sums.get("oversmoothing", 0.0) + float(out.oversmoothing)
            sums["batches"] = sums.get("batches", 0.0) + 1
            sums["pairs"] = sums.get("pairs", 0.0) + batch.num_graphs
            sums["seconds"] = time.perf_counter() - start
            bar.set_postfix(loss=f"{loss.item():.3f}", pairs_per_s=f"{sums['pairs'] / sums['seconds']:.0f}")
            bar.update(1)
        bar.close()
        self.epoch, self.step = epoch + 1, 0
        count = max(sums.pop("batches", 0.0), 1.0)
        pairs, seconds = sums.pop("pairs", 0.0), sums.pop("seconds", 0.0)
        row: Dict[str, float] = {"epoch": epoch + 1, **{f"train_{k}": v / count for k, v in sums.items()}}
        row["pairs_per_s"] = pairs / max(seconds, 1e-9)
        self.running = {}
        self.pending_row = row
        self._log_epoch(log)
        if self.world_size > 1:
            dist.barrier()

    def _log_epoch(self, log: Optional[MetricsLog]) -> None:
        """Validate the epoch just trained and write its metrics.csv row (``self.pending_row``).

        No interruption loses the row: its training half is written first, and it stays in
        ``pending_row`` (which checkpoints store) until the full row is written. A Ctrl-C during
        validation saves it with the end-of-epoch model, and ``fit(resume=True)`` validates that
        same model again and completes the row (validation draws nothing from the training's
        RNG, so the resumed run stays exact). A hard kill resumes from the previous epoch's
        checkpoint instead and trains the epoch again, rewriting its row.
        """
        row = {**self.pending_row, "epoch": int(self.pending_row["epoch"])}
        if log is not None:
            log.log(row, tensorboard=False)  # the training half, visible at once
        if self.is_main and (row["epoch"] % self.cfg.eval_every == 0 or row["epoch"] == self.cfg.epochs):
            row.update(self.validate())
        if log is not None:
            log.log(row)
        self.pending_row = {}
        if log is not None:
            self.save()
            if self.progress:
                shown = {k: round(v, 4) for k, v in row.items() if k in ("train_loss", "train_oversmoothing",
                                                                          "val_f1", "val_count_acc")}
                tqdm.write(f"epoch {row['epoch']}: {shown}")


def train(train_cfg: Optional[TrainConfig] = None, model_cfg: Optional[SSGMConfig] = None,
          synthetic_cfg: Optional[SyntheticConfig] = None, resume: bool = False, progress: bool = True,
          splits: Optional[Dict[str, List[KeypointInstance]]] = None, features: Optional[FeatureConfig] = None):
    """Train, test and return ``(trainer, test_results)``: the Python entry of ``pyg_ssgm.train``.

    ``splits`` trains on your own data instead of ``train_cfg.dataset``: a dict of ``"train"``,
    ``"val"`` and ``"test"`` lists of :class:`~pyg_ssgm.data.KeypointInstance` (with ``x`` for
    appearance features, or geometry only). ``features`` puts image-backbone descriptors on the
    instances first (they need images; see :class:`~pyg_ssgm.data.FeatureConfig`).
    """
    trainer = Trainer(train_cfg or TrainConfig(), model_cfg, synthetic_cfg, progress=progress, splits=splits,
                      features=features)
    results = trainer.fit(resume=resume)
    return trainer, results
