"""The training loop: it only loops, validates, saves and resumes what :func:`pyg_ssgm.build` made.

Reproducible and resumable: every training pair is a pure function of ``(seed, epoch, index)``,
the batch order of an epoch a pure function of ``(seed, epoch)``, and a checkpoint stores the
model, the optimiser, the position in the epoch and the torch RNG state, so ``resume`` continues
exactly where an interrupted run stopped. Under ``torchrun`` the same loop runs data-parallel.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .experiment import Experiment, build, stored_sections
from .checkpoint import (TRAINING_ENTRIES, absent_introduced, changed_settings, load_checkpoint, restoring,
                         save_checkpoint)
from .config import INTRODUCED, RESUME_MAY_CHANGE, Settings
from .data import KeypointInstance
from .data.datasets import has_pairs
from .errors import CheckpointError, ConfigError, OutputPathError
from .evaluation import completion_quality, evaluate_matching, report_to_dict
from .tuning import choose_inference
from .files import prepare_output_dir, write_text_atomic
from .metrics_log import MetricsLog
from .model.memory import remember_training_points


#: The files a run writes in its folder (with its ``tensorboard`` folder): finding one there means
#: the folder holds a run, which a new run may not replace without being asked to.
RUN_FILES = ("checkpoint.pt", "metrics.csv", "config.json", "test_results.json")


def check_run_folder(out_dir: Path, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse, before any work, a new run into a folder that holds a run (:data:`RUN_FILES`),
    unless it is resumed (``resume``) or replaced on request (``overwrite``): nothing a run made
    is replaced without asking."""
    if resume and overwrite:
        raise ConfigError(f"resume continues the run in {str(out_dir)!r} and overwrite replaces it: give one of "
                          "them (--resume or --overwrite).")
    found = [name for name in RUN_FILES if (out_dir / name).exists()]
    if found and not (resume or overwrite):
        raise OutputPathError(
            f"{str(out_dir)!r} already holds a run ({', '.join(found)}); a new run would replace it. Continue it "
            "with --resume, start the new run in another --output-dir, or replace it with --overwrite "
            "(train(..., overwrite=True) in Python).")


def clear_run_folder(out_dir: Path) -> None:
    """Remove what an earlier run wrote in ``out_dir`` (:data:`RUN_FILES` and its ``tensorboard``
    folder), so that nothing of it mixes with the run that replaces it. Other files stay."""
    for name in RUN_FILES:
        (out_dir / name).unlink(missing_ok=True)
    if (out_dir / "tensorboard").is_dir():
        shutil.rmtree(out_dir / "tensorboard")


def clip_groups(model: torch.nn.Module) -> List[List[torch.Tensor]]:
    """The parameters whose gradient norm is clipped together: the keypoint filter's apart from
    the rest. The filter reads the raw inputs and shares no weight with the matching, so clipped
    apart it leaves the matching's training exactly as it is without a filter."""
    filt = getattr(model, "keypoint_filter", None)
    if filt is None:
        return [list(model.parameters())]
    own = {id(p) for p in filt.parameters()}
    return [[p for p in model.parameters() if id(p) not in own], list(filt.parameters())]


class Trainer:
    """Runs :meth:`fit` over the parts of an :class:`~pyg_ssgm.experiment.Experiment`."""

    def __init__(self, experiment: Experiment, progress: bool = True):
        self.experiment = exp = experiment
        self.settings, self.cfg = exp.settings, exp.settings.train
        self.model, self.criterion, self.predictor = exp.model, exp.criterion, exp.predictor
        self.optimizer, self.loader, self.net = exp.optimizer, exp.loader, exp.net
        self.splits, self.device, self.is_main = exp.splits, exp.device, exp.is_main
        self.progress = progress and exp.is_main
        self.clip_groups = clip_groups(self.model)  # the same parameters every step
        self.out_dir = Path(self.cfg.output_dir)
        self.epoch, self.step = 0, 0
        self.running: Dict[str, float] = {}  # loss sums of the epoch in progress (kept across a resume)
        self.pending_row: Dict[str, float] = {}  # metrics row of a trained epoch not yet logged in full
        self.choice: List[Dict[str, Any]] = []  # the rows behind the inference settings chosen on validation

    def learning_rate(self, epoch: int) -> float:
        if self.cfg.lr_schedule == "constant":
            return self.cfg.lr
        return 0.5 * self.cfg.lr * (1 + math.cos(math.pi * epoch / self.cfg.epochs))

    # ----------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def state(self) -> Dict[str, Any]:
        settings = self.settings.to_dict()
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "model_config": settings["model"], "loss_config": settings["loss"],
            "inference_config": settings["inference"], "train_config": settings["train"],
            "synthetic_config": settings["synthetic"], "feature_config": settings["features"],
            "epoch": self.epoch, "step": self.step, "rng_state": torch.get_rng_state(),
            "running": dict(self.running), "pending_row": dict(self.pending_row),
            # what the predictor uses: the settings, or those chosen from them on validation
            "chosen_inference": asdict(self.predictor.config),
        }

    def save(self) -> Optional[Path]:
        return save_checkpoint(self.state(), self.checkpoint_path) if self.is_main else None

    def load(self, path: Optional[Path] = None) -> None:
        """Restore the run from a checkpoint. Its stored settings must equal this trainer's,
        except those of :data:`~pyg_ssgm.config.RESUME_MAY_CHANGE` (``--epochs`` may extend the
        run, not cut it): otherwise the resumed run would silently mix two configurations, so a
        :class:`ConfigError` lists each difference and nothing is loaded or written."""
        path = Path(path or self.checkpoint_path)
        state = load_checkpoint(path, map_location=self.device, entries=TRAINING_ENTRIES)
        with restoring(path):
            stored = stored_sections(state)
        changes = changed_settings(stored, self.settings.to_dict(), RESUME_MAY_CHANGE, INTRODUCED)
        if changes:
            # settings added since the run was saved: its config.json does not hold them either
            older = " ".join(f"--set {section}.{key}={json.dumps(value)}"
                             for section, keys in absent_introduced(stored, INTRODUCED).items()
                             for key, value in keys.items() if getattr(getattr(self.settings, section), key) != value)
            raise ConfigError(
                f"--resume would continue the run in {str(path.parent)!r} with other settings: {'; '.join(changes)}. "
                f"Resume with the run's own settings (--config {path.parent / 'config.json'}"
                f"{' ' + older if older else ''} --resume, changing only {', '.join(RESUME_MAY_CHANGE['train'])}), "
                f"or start a new run in another --output-dir.")
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
        if has_pairs(val):  # an empty split (or one without two instances of one category) is not validated
            report = evaluate_matching(self.predictor, val, max_pairs_per_category=self.cfg.val_pairs_per_category,
                                       device=self.device, desc="val pairs" if self.progress else None)
            row.update(val_f1=report["unfiltered"].mean.f1, val_precision=report["unfiltered"].mean.precision,
                       val_recall=report["unfiltered"].mean.recall,
                       val_intersection_acc=report["intersection"].mean.recall)
            if self.settings.model.completion:
                comp = completion_quality(self.predictor, val, self.cfg.pair_generator(), device=self.device)
                row.update(val_count_acc=comp["count_accuracy"], val_position_error=comp["position_error"])
        return row

    def test(self) -> Dict[str, Any]:
        """The test results (:func:`~pyg_ssgm.evaluation.evaluate_matching`, and the completion
        quality), or ``{"not_tested": reason}`` when the test split holds no real pair."""
        test = self.splits["test"]
        if not has_pairs(test):
            return {"not_tested": "the test split is empty" if not test else
                    "the test split has no two instances of one category"}
        results: Dict[str, Any] = evaluate_matching(
            self.predictor, test, max_pairs_per_category=self.cfg.test_pairs_per_category, device=self.device,
            desc="test pairs" if self.progress else None)
        if self.settings.model.completion:
            results["completion"] = completion_quality(self.predictor, test, self.cfg.pair_generator(),
                                                       device=self.device)
        return results

    # ----------------------------------------------------------------------- fit
    def fit(self, resume: bool = False, overwrite: bool = False) -> Dict[str, Any]:
        """Train (``resume``: on from the folder's checkpoint), then test. A new run into a folder
        that holds a run is refused unless ``overwrite`` (:func:`check_run_folder`)."""
        if self.is_main:
            check_run_folder(self.out_dir, resume, overwrite)
            prepare_output_dir(self.out_dir)  # a file in the way: a named error before any work
            if overwrite:
                clear_run_folder(self.out_dir)
        if resume:
            if not self.checkpoint_path.exists():
                raise CheckpointError(f"--resume: no checkpoint at {self.checkpoint_path}; run without --resume.")
            self.load()
        log = MetricsLog(self.out_dir, resume=resume) if self.is_main else None
        if self.is_main:
            write_text_atomic(self.out_dir / "config.json", json.dumps(self.settings.to_dict(), indent=2))
        memory = self.model.keypoint_filter.memory if self.model.keypoint_filter is not None else None
        if memory is not None and self.epoch < self.cfg.epochs:
            memory.clear()  # training goes on: what the filter remembers is fitted again at the end
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
        if memory is not None:  # refitted on every run to the end, a resumed one too
            remember_training_points(self.model, self.splits["train"])
        chosen = self.is_main and self.settings.inference.choose_on_validation and self.choose_inference()
        if memory is not None and not chosen:  # the choice saves the memory with it
            self.save()
        results = self.test() if self.is_main else {}
        if self.is_main:
            results["inference"] = asdict(self.predictor.config)
            if self.choice:
                results["inference_choice"] = self.choice
            write_text_atomic(self.out_dir / "test_results.json", json.dumps(report_to_dict(results), indent=2))
        return results

    def choose_inference(self) -> bool:
        """Choose the predictor's settings of inference on the validation pairs
        (:func:`~pyg_ssgm.tuning.choose_inference`), print the choice and save it with the
        checkpoint. Without a validation pair, the settings stay as they are, and say so. Returns
        whether it chose (and saved)."""
        val = self.splits["val"]
        if not has_pairs(val):
            if self.progress:
                tqdm.write("Inference settings kept as given: no validation pair to choose them on.")
            return False
        echo = tqdm.write if self.progress else None
        if echo is not None:
            echo("Choosing the settings of inference on the validation pairs:")
        self.predictor.config, self.choice = choose_inference(
            self.predictor, val, max_pairs_per_category=self.cfg.val_pairs_per_category, device=self.device,
            echo=echo)
        self.save()
        return True

    def _train_epoch(self, log: Optional[MetricsLog]) -> None:
        epoch, exp = self.epoch, self.experiment
        exp.pairs.set_epoch(epoch)
        exp.sampler.set_epoch(epoch)
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
            out = self.net(batch)
            losses = self.criterion(out, batch)
            loss = losses["loss"]
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.grad_clip > 0:
                for group in self.clip_groups:
                    torch.nn.utils.clip_grad_norm_(group, self.cfg.grad_clip)
            self.optimizer.step()
            self.step = step + 1
            for key, value in losses.items():
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
        if exp.world_size > 1:
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


def train(settings: Optional[Settings] = None, splits: Optional[Mapping[str, List[KeypointInstance]]] = None,
          resume: bool = False, progress: bool = True, overwrite: bool = False):
    """Build, train, test: the Python entry of ``python -m pyg_ssgm train``. Returns ``(trainer,
    test_results)``.

    ``splits`` trains on your own data instead of ``settings.train.dataset``: a dict of ``"train"``,
    ``"val"`` and ``"test"`` lists of :class:`~pyg_ssgm.data.KeypointInstance` (with ``x`` for
    appearance features, an ``image`` for ``settings.features``, or geometry only); ``"val"`` and
    ``"test"`` may be empty or absent. Without test pairs the run is trained and validated, and
    ``test_results`` is ``{"not_tested": reason}``.

    ``resume`` continues the run in ``settings.train.output_dir``; ``overwrite`` replaces the
    run found there. Without either, a folder that holds a run is refused before any work
    (:func:`check_run_folder`). Neither is a setting: a run's ``config.json`` never carries them.
    """
    settings = settings or Settings()
    check_run_folder(Path(settings.train.output_dir), resume, overwrite)  # before the data is read
    trainer = Trainer(build(settings, splits, progress=progress), progress=progress)
    results = trainer.fit(resume=resume, overwrite=overwrite)
    return trainer, results


__all__ = ["Trainer", "train", "check_run_folder", "clear_run_folder", "clip_groups", "RUN_FILES"]
