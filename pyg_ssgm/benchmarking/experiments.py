"""What every study under ``benchmarks/`` does, in one place: train a variant (a preset and / or
section overrides, :func:`train_variant`), score it on validation or test pairs, also under other
inference settings of the same trained network (:func:`with_inference`, :func:`score`), compare
with a classical solver on the same pairs (:func:`calibrated_solver`), and write the study's
``<name>.md`` and ``<name>.json`` (:class:`Study`).

A study is then a table of overrides::

    VARIANTS = {"no_sc": {"model": {"shape_context": False}}, "base": {}}
    study = Study("willow_example")
    for key, overrides in VARIANTS.items():
        run = train_variant("willow_geometry", overrides, dataset="willow", root="data/WillowObject", epochs=30)
        study.rows.append({"key": key, **score(run.predictor, run.splits["val"])})
    study.write(["# Example", "", format_table(...)])
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Union

import torch

from ..baselines import calibrated_solver  # re-exported: the studies calibrate their classical rows with it
from .report import _json_default
from .tables import format_table

__all__ = ["DEFAULT_ROOTS", "Trained", "variant_settings", "train_variant", "with_inference", "with_model_settings",
           "score", "score_pair_list", "calibrated_solver", "per_class_table", "Study", "study_parser", "comma_list"]

#: Where the studies look for a real dataset unless told otherwise (``--root``).
DEFAULT_ROOTS = {"willow": "data/WillowObject", "cub": "data/CUB_200_2011"}

Sections = Dict[str, Dict[str, Any]]


class Trained(NamedTuple):
    """A trained variant: its :class:`~pyg_ssgm.trainer.Trainer` (model, criterion, predictor,
    resolved settings and splits), the results of its own test pass, its training wall time and
    the ``val_*`` scores of its last validated epoch (empty without a validation split)."""

    trainer: Any
    results: Dict[str, Any]
    train_s: float
    validation: Dict[str, float]

    @property
    def predictor(self):
        return self.trainer.predictor

    @property
    def settings(self):
        return self.trainer.settings

    @property
    def splits(self):
        return self.trainer.splits


def variant_settings(preset: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None,
                     **train: Any) -> Sections:
    """The sections of a variant: preset ``preset`` (:mod:`pyg_ssgm.presets`; ``None``: the
    defaults), updated by ``overrides`` (flat or sectioned settings), then by ``train`` (settings
    of the ``train`` section: dataset, root, epochs, ...). Unknown names raise
    :class:`~pyg_ssgm.errors.ConfigError`."""
    from ..config import merge, split_sections
    from ..presets import preset as load_preset

    sections = split_sections(load_preset(preset) if preset else {})
    sections = merge(sections, split_sections(overrides or {}))
    return merge(sections, {"train": train})


def train_variant(preset: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None,
                  progress: bool = False, splits: Optional[Mapping[str, Sequence]] = None, **train: Any) -> Trained:
    """Train one variant (:func:`variant_settings`) with :func:`pyg_ssgm.trainer.train`, on
    ``splits`` (``{"train", "val", "test"}`` lists of instances) where given. Unless
    ``train`` says otherwise, the run's folder is temporary (removed afterwards: the model stays in
    memory), it validates after the last epoch only (validation draws nothing from the training's
    random numbers, so this changes nothing of what is trained) and tests on one pair per class
    (its own cheap test pass: studies score their own pairs). Returns the :class:`Trained`
    variant, its network in eval mode."""
    from ..config import Settings, TrainConfig
    from ..metrics_log import read_metrics
    from ..trainer import train as run_training

    sections = variant_settings(preset, overrides, **train)
    options = sections["train"]
    options.setdefault("eval_every", options.get("epochs", TrainConfig().epochs))
    options.setdefault("test_pairs_per_category", 1)
    with tempfile.TemporaryDirectory(prefix="ssgm_variant_") as folder:
        options.setdefault("output_dir", folder)
        settings = Settings.from_dict(sections)
        start = time.perf_counter()
        trainer, results = run_training(settings, splits, progress=progress)
        train_s = time.perf_counter() - start
        rows = [r for r in read_metrics(Path(settings.train.output_dir)) or []
                if r.get("val_f1") is not None and r["val_f1"] == r["val_f1"]]  # not NaN
    validation = {k: v for k, v in rows[-1].items() if k.startswith("val_")} if rows else {}
    trainer.model.eval()
    return Trained(trainer, results, train_s, validation)


def with_inference(predictor, **changes: Any):
    """A new :class:`~pyg_ssgm.Predictor` of the same trained network under other inference
    settings (``changes``: fields of :class:`~pyg_ssgm.config.InferenceConfig`); ``predictor``
    is left as it is."""
    from ..model import Predictor

    return Predictor(predictor.model, replace(predictor.config, **changes))


def with_model_settings(predictor, **changes: Any):
    """A :class:`~pyg_ssgm.Predictor` of a copy of the trained network whose
    :class:`~pyg_ssgm.config.ModelConfig` differs by ``changes``, for settings that change no
    parameter (``coherence_rounds``, ``exist_threshold``, ...): the copy loads the network's
    weights, and a change that would alter them raises. ``predictor`` is left as it is."""
    from ..model import SSGM, Predictor

    model = predictor.model
    twin = SSGM(replace(model.config, **changes), model.matcher)
    twin.load_state_dict(model.state_dict())
    twin.to(next(model.parameters()).device).train(model.training)
    return Predictor(twin, predictor.config)


def score(predict: Callable, instances: Sequence, max_pairs_per_category: Optional[int] = None,
          generator=None, intersection: bool = True, device: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """``predict`` (a :class:`~pyg_ssgm.Predictor` or a classical matcher) on the real pairs of
    ``instances`` (seed 0): unfiltered precision / recall / F1 (macro over classes) and, unless
    ``intersection`` is off, the intersection accuracy and that accuracy per class
    (:func:`~pyg_ssgm.evaluation.evaluate_matching`). With a pair ``generator`` and a predictor
    of a completion model, also ``completion``: what it says is missing on generated pairs of
    ``instances`` (:func:`~pyg_ssgm.evaluation.completion_quality`; ``None`` otherwise)."""
    from ..evaluation import completion_quality, evaluate_matching, score_pairs
    from ..metrics import aggregate

    options = dict(max_pairs_per_category=max_pairs_per_category, device=device)
    if intersection:
        report = evaluate_matching(predict, instances, **options)
        unfiltered, filtered = report["unfiltered"].mean, report["intersection"]
    else:
        unfiltered, filtered = aggregate(score_pairs(predict, instances, **options)).mean, None
    out: Dict[str, Any] = {"f1": unfiltered.f1, "precision": unfiltered.precision, "recall": unfiltered.recall}
    if filtered is not None:
        out.update(intersection_accuracy=filtered.mean.recall,
                   per_class={k: v.recall for k, v in filtered.per_class.items()})
    if generator is not None:
        model = getattr(predict, "model", None)
        out["completion"] = (completion_quality(predict, instances, generator, device=device)
                             if model is not None and model.config.completion else None)
    return out


def score_pair_list(predict: Callable, instances: Sequence, pairs: Sequence[Sequence[int]], batch_size: int = 32,
                    device: Union[str, torch.device] = "cpu") -> Dict[str, float]:
    """``predict`` on the given real pairs ``(i, j)`` of ``instances`` (ground truth from the
    keypoint names, nothing filtered): unfiltered precision / recall / F1, macro over classes as
    :func:`score`, and ``num_pairs``. For studies that choose their pairs themselves (by the angle
    between two views, say) rather than :func:`score`'s seeded subset per class."""
    from ..data import make_pair
    from ..evaluation import count_matches
    from ..metrics import aggregate

    records = count_matches(predict, [make_pair(instances[i], instances[j]) for i, j in pairs], batch_size, device)
    mean = aggregate(records).mean
    return {"f1": mean.f1, "precision": mean.precision, "recall": mean.recall, "num_pairs": len(records)}


def per_class_table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]],
                    cells: Callable[[Mapping[str, Any]], Sequence[str]]) -> str:
    """Markdown table: ``columns`` (the leading ones, ``cells(row)`` their values), then
    ``val acc.`` (``row["val_accuracy"]``) and one column per class (``row["per_class"]``)."""
    classes = list(rows[0]["per_class"])
    return format_table([*columns, "val acc.", *classes],
                        [[*cells(r), f"{r['val_accuracy']:.3f}", *(f"{r['per_class'][c]:.3f}" for c in classes)]
                         for r in rows], "l" + "r" * (len(columns) + len(classes)))


class Study:
    """One study's results: ``rows`` to fill, then :meth:`write` puts ``<name>.json`` (the
    command, the rows, the wall time since the study began, torch's version and whatever else is
    given) and ``<name>.md`` into ``output_dir``."""

    def __init__(self, name: str, output_dir: Union[str, Path] = "benchmarks/results", command: Optional[str] = None):
        self.name, self.output_dir = name, Path(output_dir)
        self.command = command or "python " + shlex.join(sys.argv)
        self.rows: List[Dict[str, Any]] = []
        self.start = time.perf_counter()

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self.start

    def write(self, markdown: Union[str, Sequence[str]], **fields: Any) -> Path:
        """Write both files; ``markdown``: the document, or its lines. Returns the ``.md`` path."""
        from ..files import prepare_output_dir

        prepare_output_dir(self.output_dir)
        result = {"command": self.command, **fields, "rows": self.rows, "wall_s": self.wall_s,
                  "torch": torch.__version__}
        (self.output_dir / f"{self.name}.json").write_text(json.dumps(result, indent=2, default=_json_default))
        text = markdown if isinstance(markdown, str) else "\n".join(markdown)
        path = self.output_dir / f"{self.name}.md"
        path.write_text(text.rstrip("\n") + "\n")
        print(f"written {path} ({self.wall_s:.0f} s)")
        return path


def comma_list(kind: Callable[[str], Any]) -> Callable[[str], List[Any]]:
    """An argparse ``type`` for comma-separated values of ``kind`` (``json.loads`` for numbers and
    booleans alike); a value it cannot read is an argparse error, not a traceback."""

    def parse(text: str) -> List[Any]:
        try:
            return [kind(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated values, got {text!r}") from None

    return parse


def study_parser(doc: Optional[str]) -> argparse.ArgumentParser:
    """The argument parser of a study script: its docstring as help, and ``--output-dir``
    (default ``benchmarks/results``)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="benchmarks/results", help="where the .md and .json go")
    return parser
