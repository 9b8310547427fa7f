"""Settings chosen on a real dataset's *validation* split, as YAML files beside this module.

Each preset holds the sections of a settings file (``train``, ``model``, ``loss``,
``inference``, ``features``); everything it does not name keeps its default. Every value was
chosen on the dataset's validation split, never on its test split; the comments in each file
link to the measurements behind it (``docs/results.md``).

>>> from pyg_ssgm.presets import preset
>>> preset("willow_geometry")["inference"]["shape_context_weight"]
20.0
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

from ..errors import ConfigError

Preset = Dict[str, Dict[str, Any]]

_FOLDER = Path(__file__).resolve().parent

#: The presets shipped with the package, by name.
PRESETS: Tuple[str, ...] = tuple(sorted(p.stem for p in _FOLDER.glob("*.yaml")))


def preset(name: str) -> Preset:
    """The sections of preset ``name`` (a fresh copy: change it freely)."""
    import yaml

    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {list(PRESETS)}.")
    values = yaml.safe_load((_FOLDER / f"{name}.yaml").read_text(encoding="utf-8")) or {}
    return {section: dict(settings or {}) for section, settings in values.items()}


__all__ = ["PRESETS", "preset", "Preset"]
