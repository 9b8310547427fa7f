"""All the settings of a run, by section, built in one place: from a preset, a YAML or JSON file,
``--set KEY=VALUE`` items and flags (each overriding the one before), into a :class:`Settings`.

Sections: ``train`` (:class:`TrainConfig`), ``model`` (:class:`ModelConfig`), ``loss``
(:class:`LossConfig`), ``inference`` (:class:`InferenceConfig`), ``features``
(:class:`~pyg_ssgm.features.FeatureConfig`; absent: no image features) and ``synthetic``
(:class:`~pyg_ssgm.data.SyntheticConfig`; the embedded data's knobs). A flat key goes to the
section that has it (the first of that order where two have it: ``seed`` is the train seed).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional

from ..data.synthetic import SyntheticConfig
from ..errors import ConfigError
from ..features import FeatureConfig
from .model import InferenceConfig, LossConfig, ModelConfig
from .train import TrainConfig

#: Section name -> its dataclass, in the order flat keys are looked up.
SECTIONS = {"train": TrainConfig, "model": ModelConfig, "loss": LossConfig, "inference": InferenceConfig,
            "synthetic": SyntheticConfig, "features": FeatureConfig}

#: Settings a resumed run may change: none of them changes what is trained (``epochs`` extends
#: the run; the data loader's items do not depend on ``num_workers``; validation draws nothing
#: from the training's RNG, so ``eval_every`` only changes which epochs are validated;
#: ``output_dir`` may differ when the run's folder was moved). The ``device`` and ``threads`` may
#: change too, within floating-point differences. Every other setting, of every section, must stay.
RESUME_MAY_CHANGE = {"train": ("epochs", "device", "num_workers", "eval_every", "output_dir", "threads"),
                     # where image features are cached and how they are batched change no value
                     "features": ("cache_dir", "batch_size", "device")}

#: Settings added after runs were first saved, with the value that does what a run saved before
#: them did: a checkpoint that lacks the key trained as that value says. Resuming compares with
#: it (so an old run resumes where its behaviour is today's default) and otherwise names the
#: ``--set`` that restores it, since the run's own ``config.json`` does not hold the key either.
INTRODUCED = {"train": {"outlier_region": "box",  # outliers were drawn in the keypoints' box
                        "pseudo_ratio": None,  # every pseudo-labelled pair, every epoch
                        "intact_rate": 0.0},  # every training pair dropped nodes at random
              "model": {"keypoint_filter": False,  # no keypoint filter
                        "keypoint_filter_geometry": False,  # a filter read descriptors alone
                        "keypoint_filter_memory": False},  # and kept no memory of the training points
              "loss": {"weight_keypoint": 1.0},  # (read only by a keypoint filter)
              "inference": {"epipolar": False, "epipolar_threshold": 3e-3,  # no epipolar re-matching
                            "epipolar_pool": False, "keypoint_threshold": 0.0,
                            "keypoint_prior": 0.0,  # the filter only removed points
                            "count_per_pair": False}}  # each query existed on its own


def _names(cls) -> set:
    return {f.name for f in fields(cls)}


def split_sections(values: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Sort a flat or sectioned mapping of settings into one dict per section (see the module
    docstring). Raises :class:`ConfigError` on an unknown key or a section that is not a mapping.
    A ``model`` section may still hold the loss and inference keys it held before they had
    sections of their own (config files and checkpoints of earlier versions); they go to their
    section, unchanged."""
    sections: Dict[str, Dict[str, Any]] = {name: {} for name in SECTIONS}
    owners = {name: _names(cls) for name, cls in SECTIONS.items()}
    for key, value in values.items():
        if key in sections and value is None:  # an empty section (`synthetic: null` in config.json)
            continue
        if key in sections and not isinstance(value, Mapping):
            raise ConfigError(f"the {key!r} section must be a mapping of {key} settings "
                              f"(e.g. {key}: {{{sorted(owners[key])[0]}: ...}}), got {value!r}.")
        if key in sections:
            for sub, v in value.items():
                target = key
                if sub not in owners[key]:
                    moved = [s for s in ("loss", "inference") if key == "model" and sub in owners[s]]
                    if not moved:
                        raise ConfigError(f"unknown {key} setting {sub!r}; known: {sorted(owners[key])}.")
                    target = moved[0]
                sections[target][sub] = v
            continue
        owner = [name for name, keys in owners.items() if key in keys]
        if not owner:
            raise ConfigError(f"unknown setting {key!r}; see `python -m pyg_ssgm train --help`.")
        sections[owner[0]][key] = value
    return sections


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> Dict[str, Any]:
    """``base`` updated by ``extra``, section by section (neither is changed)."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = dict(value) if isinstance(value, Mapping) else value
    return out


def read_settings_file(path: Optional[str]) -> Dict[str, Any]:
    """Settings from a YAML or JSON file: flat, or in sections (see the module docstring)."""
    if path is None:
        return {}
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: the config file is not UTF-8 text (byte {e.object[e.start]:#04x} "
                          f"at offset {e.start}); save it as UTF-8.") from None
    try:
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        raise ConfigError(f"{path}: cannot parse the config file: {e}") from e
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: the config file must hold a mapping of settings.")
    return values


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(values: Mapping[str, Any], items: Iterable[str]) -> Dict[str, Dict[str, Any]]:
    """``values`` (sectioned settings) updated by ``--set`` items ``KEY=VALUE``: the value is read
    as JSON, else kept as a string; ``KEY`` is a setting name or ``section.name``. Returns a new
    dict; raises :class:`ConfigError` on a malformed item or an unknown setting."""
    out = split_sections(values)
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}.")
        section, _, name = key.rpartition(".")
        value = _parse_value(text)
        out = merge(out, split_sections({section: {name: value}} if section else {name: value}))
    return out


@dataclass
class Settings:
    """Every setting of a run, one config per section (see the module docstring).

    ``features`` is ``None`` for no image features, ``synthetic`` ``None`` for the embedded
    data's defaults. Build one from a mapping with :meth:`from_dict`, or section by section.
    """

    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    features: Optional[FeatureConfig] = None
    synthetic: Optional[SyntheticConfig] = None

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            value = getattr(self, name)
            if not (value is None and name in ("features", "synthetic")) and not isinstance(value, cls):
                raise ConfigError(f"Settings.{name} must be a {cls.__name__}, got {type(value).__name__}.")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Settings":
        """Settings from a flat or sectioned mapping (a config file, a preset, ``config.json``).
        An empty ``features`` section, or ``backbone: none``, means no image features; a section
        with other settings but no ``backbone`` is refused (image features are switched on by
        naming the backbone, never by an option of it)."""
        sections = split_sections(values)
        features = sections["features"]
        if features and "backbone" not in features:  # options alone do not switch image features on
            raise ConfigError(
                f"image-feature settings {sorted(features)} were given without a backbone: add --features "
                "efficientnet_lite0 (or vgg16; features.backbone in a config file) to compute image features, "
                "or leave them out.")
        if not features or features["backbone"] == "none":
            features = None
        return cls(train=TrainConfig(**sections["train"]), model=ModelConfig(**sections["model"]),
                   loss=LossConfig(**sections["loss"]), inference=InferenceConfig(**sections["inference"]),
                   features=FeatureConfig.from_dict(features) if features is not None else None,
                   synthetic=SyntheticConfig(**sections["synthetic"]) if sections["synthetic"] else None)

    def to_dict(self) -> Dict[str, Any]:
        """The settings by section, as ``config.json`` stores them (``None`` for an absent section)."""
        return {"train": self.train.to_dict(), "model": self.model.to_dict(), "loss": self.loss.to_dict(),
                "inference": self.inference.to_dict(),
                "synthetic": asdict(self.synthetic) if self.synthetic is not None else None,
                "features": self.features.to_dict() if self.features is not None else None}

    def replace(self, **sections: Any) -> "Settings":
        """A copy with whole sections replaced, e.g. ``settings.replace(model=ModelConfig(...))``."""
        return replace(self, **sections)


__all__ = ["Settings", "SECTIONS", "RESUME_MAY_CHANGE", "INTRODUCED", "split_sections", "merge", "read_settings_file",
           "apply_overrides"]
