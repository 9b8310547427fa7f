"""Checkpoints: written atomically, loaded without unpickling arbitrary objects, checked entry by entry."""
from __future__ import annotations

import contextlib
import pickle
import re
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Union

import torch

from .errors import CheckpointError, ConfigError
from .files import atomic_write

#: Format of the checkpoints this version writes. Format 1 (before the settings had ``loss`` and
#: ``inference`` sections) kept those settings in ``model_config``; it is still read
#: (:func:`stored_settings` sorts them into their sections).
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

#: The entries of a checkpoint that evaluating its model needs (a checkpoint stripped of the
#: optimiser state still evaluates), and their types.
EVALUATION_ENTRIES: Dict[str, type] = {"model": dict, "model_config": dict, "train_config": dict}
#: The entries of a training checkpoint (``Trainer.state``) that resuming it needs.
TRAINING_ENTRIES: Dict[str, type] = {**EVALUATION_ENTRIES, "optimizer": dict, "epoch": int, "step": int,
                                     "rng_state": torch.Tensor}

#: Sections of the run settings (as in ``config.json``) and the checkpoint entries that store them.
SETTINGS_ENTRIES = {"train": "train_config", "model": "model_config", "loss": "loss_config",
                    "inference": "inference_config", "synthetic": "synthetic_config", "features": "feature_config"}


def save_checkpoint(state: Dict[str, Any], path: Union[str, Path]) -> Path:
    """Write ``state`` to ``path`` through a temporary file in the same folder and an atomic
    rename, so an interruption never leaves a truncated checkpoint behind (and the temporaries of
    earlier, killed saves are removed)."""
    return atomic_write(path, lambda f: torch.save({"format_version": FORMAT_VERSION, **state}, f))


def _why_unreadable(error: Exception) -> str:
    """What is wrong with a file ``torch.load(weights_only=True)`` refused, in our words: torch's
    own message suggests ``weights_only=False``, which would run whatever code the file holds."""
    refused = re.search(r"GLOBAL ([\w.]+)", str(error))
    if refused:
        return (f"it holds a Python object ({refused.group(1)}), not only tensors, numbers and strings; "
                "loading it could run code hidden in it, so pyg_ssgm refuses it")
    if isinstance(error, pickle.UnpicklingError) or "weights_only" in str(error):
        return "it is corrupt, or not a file of tensors written by torch.save"
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"it is corrupt or not a PyTorch file ({first_line[:200]})"


def load_tensors(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu", what: str = "checkpoint"):
    """``torch.load(path, weights_only=True)``: tensors, numbers, strings and containers only, so
    no code runs while loading. Any failure is a :class:`CheckpointError` naming ``what`` and the
    file; its message never suggests loading the file unsafely."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {str(path)!r} does not exist.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt file, or one holding arbitrary objects
        # `from None`: the chained torch error would show its weights_only=False advice again.
        raise CheckpointError(f"cannot read {what} {str(path)!r}: {_why_unreadable(e)}. Use a file from a "
                              "source you trust, written by pyg_ssgm (or torch.save of tensors).") from None


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu",
                    entries: Optional[Mapping[str, type]] = None) -> Dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (see :func:`load_tensors`) and check
    that it holds each of ``entries`` (name -> type; :data:`TRAINING_ENTRIES` for a training
    checkpoint, :data:`EVALUATION_ENTRIES` to evaluate one), raising :class:`CheckpointError` naming the
    first one missing or of another type."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; pass the file written by training "
                              "(e.g. runs/<name>/checkpoint.pt).")
    state = load_tensors(path, map_location)
    if not isinstance(state, dict) or state.get("format_version") not in READABLE_VERSIONS:
        raise CheckpointError(f"{str(path)!r} is not a pyg_ssgm checkpoint (format {FORMAT_VERSION}).")
    for name, kind in (entries or {}).items():
        value = state.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            found = "missing" if name not in state else f"a {type(value).__name__}"
            raise CheckpointError(f"checkpoint {str(path)!r} is damaged or from another program: its entry "
                                  f"{name!r} should be a {kind.__name__}, it is {found}. Use the checkpoint.pt "
                                  "written by pyg_ssgm.train.")
    return state


@contextlib.contextmanager
def restoring(path: Union[str, Path]) -> Iterator[None]:
    """Turn the errors of rebuilding objects from a checkpoint's entries (a config key this
    version does not know, tensors whose sizes do not fit the model...) into a :class:`CheckpointError`."""
    try:
        yield
    except CheckpointError:
        raise
    except (ConfigError, KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit this version of pyg_ssgm: {e} "
                              "Use a checkpoint written by this version's pyg_ssgm.train (or train again).") from e


def stored_settings(state: Mapping[str, Any]) -> Dict[str, Optional[Dict[str, Any]]]:
    """The run settings a checkpoint stores, by section (as in ``config.json``; ``None`` for an
    absent section)."""
    return {section: (dict(state[entry]) if state.get(entry) is not None else None)
            for section, entry in SETTINGS_ENTRIES.items()}


def absent_introduced(stored: Mapping[str, Optional[Mapping[str, Any]]],
                      introduced: Optional[Mapping[str, Mapping[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    """Per section the stored run holds, the settings of ``introduced`` (added since runs were
    first saved) that it lacks, with the value that does what it did."""
    return {section: {key: value for key, value in keys.items() if key not in stored[section]}
            for section, keys in (introduced or {}).items() if stored.get(section)}


def changed_settings(stored: Mapping[str, Optional[Mapping[str, Any]]],
                     settings: Mapping[str, Optional[Mapping[str, Any]]],
                     may_change: Optional[Mapping[str, Any]] = None,
                     introduced: Optional[Mapping[str, Mapping[str, Any]]] = None) -> list:
    """``"section.key: old -> new"`` for each setting of ``settings`` (by section, as in
    ``config.json``) that differs from the ``stored`` one, except the keys listed in
    ``may_change[section]``. A key the stored run lacks but ``introduced[section]`` lists (a
    setting added since that run was saved) counts as the value listed there."""
    def plain(value):  # a tuple comes back from JSON or YAML as a list
        return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value

    absent = "(absent)"
    changes = []
    for section in SETTINGS_ENTRIES:
        old = {**absent_introduced(stored, introduced).get(section, {}), **(stored.get(section) or {})}
        new = settings.get(section) or {}
        for key in sorted(set(old) | set(new)):
            if key in (may_change or {}).get(section, ()):
                continue
            before, after = old.get(key, absent), new.get(key, absent)
            if plain(before) != plain(after):
                changes.append(f"{section}.{key}: {before!r} -> {after!r}")
    return changes
