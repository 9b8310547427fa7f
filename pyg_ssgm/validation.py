"""Checks shared by every settings dataclass: field types, finite numbers, device names."""
from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import torch

from .errors import ConfigError

# Accepted Python types for the annotation strings used by the config dataclasses.
_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def is_finite(value: Any) -> bool:
    """``math.isfinite`` that says False (instead of raising) for an int too large for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_field_types(config: Any) -> None:
    """Raise :class:`ConfigError` when a field of a config dataclass has the wrong type (a value
    from a config file or ``--set`` that is a string where a number belongs, say) or is a NaN or
    infinite float: a range check such as ``x < 0`` is False for NaN, so NaN would slip through
    every later check and switch features off silently (``grad_clip=NaN`` disables clipping)."""
    for f in fields(config):
        annotation = str(f.type).replace("typing.", "")
        optional = annotation.startswith("Optional[")
        name = annotation[len("Optional["):-1] if optional else annotation
        if name not in _TYPES:
            continue
        value = getattr(config, f.name)
        if value is None and optional:
            continue
        ok = isinstance(value, _TYPES[name]) and not (name in ("int", "float") and isinstance(value, bool))
        if not ok:
            raise ConfigError(f"{type(config).__name__}.{f.name} must be {'an' if name == 'int' else 'a'} {name}"
                              f"{' or null' if optional else ''}, got {value!r}.")
        if name == "float" and not is_finite(value):
            raise ConfigError(f"{type(config).__name__}.{f.name} must be a finite number, got {value!r}.")


def check_choice(config: Any, name: str, choices) -> None:
    """Raise :class:`ConfigError` unless field ``name`` of ``config`` is one of ``choices``."""
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {tuple(choices)}, got {value!r}.")


def check_at_least(config: Any, minimum: float, *names: str, strict: bool = False, note: str = "") -> None:
    """Raise :class:`ConfigError` unless each field of ``names`` is ``>= minimum`` (``> minimum``
    with ``strict``); ``note`` says what the bound means (e.g. "0 switches it off")."""
    for name in names:
        value = getattr(config, name)
        if value < minimum or (strict and value == minimum):
            raise ConfigError(f"{name} must be {'>' if strict else '>='} {minimum}{f' ({note})' if note else ''}, "
                              f"got {value}.")


def parse_device(name: str) -> torch.device:
    """``name`` as a :class:`torch.device` (``"auto"``: CUDA when available, else CPU), or a
    :class:`ConfigError` that lists the accepted forms. Availability is not checked here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device must be cpu, cuda, cuda:N (N a GPU index) or auto, got {name!r}.") from None


def resolve_device(name: str) -> torch.device:
    """:func:`parse_device`, and a :class:`ConfigError` when it names a CUDA device that is absent."""
    device = parse_device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but no CUDA GPU is available; use --device cpu.")
    return device


__all__ = ["check_field_types", "check_choice", "check_at_least", "is_finite", "parse_device", "resolve_device"]
