"""The on-disk cache of image features: what identifies an entry, and how entries are stored.

Layout (see :func:`pyg_ssgm.features.attach_features`):

.. code-block:: text

    <cache_dir>/<backbone hash>/meta.json                  # the settings the hash stands for
    <cache_dir>/<backbone hash>/<image key>-orig.pt        # {"x": [N, F]}
    <cache_dir>/<backbone hash>/<image key>-<view key>-<v>.pt  # {"pos": [N, 2], "x": [N, F]}

Files are written atomically (:func:`pyg_ssgm.files.atomic_write`) and read with
``torch.load(weights_only=True)``; an entry that cannot be read or does not hold what it should
is recomputed.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import Tensor

from .data.image_features import describe_instance
from .data.instance import KeypointInstance
from .errors import DatasetNotFoundError, InvalidInputError
from .files import atomic_write

#: Bump when what a cache file holds, or how it is computed, changes: old files are then ignored.
CACHE_FORMAT = 1


def digest(obj: Any) -> str:
    """SHA-256 of a JSON-able object (sorted keys, so the dict order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# -- keys ---------------------------------------------------------------------------------
def image_identity(inst: KeypointInstance, i: int = 0) -> List[Any]:
    r"""What identifies an instance's image: a file's resolved path, size and mtime (not its
    content: hashing every image on every run would cost as much as decoding it), or a hash of
    an in-memory image's pixels, shape and dtype."""
    img = inst.image
    if img is None:
        raise InvalidInputError(f"{describe_instance(inst, i)} has no image; image features need one.")
    if isinstance(img, (str, bytes)) or hasattr(img, "__fspath__"):
        path = Path(os.fsdecode(img)).expanduser()
        try:
            st = path.stat()
        except FileNotFoundError as e:
            raise DatasetNotFoundError(f"image file '{img}' of {describe_instance(inst, i)} does not exist.") from e
        return ["file", str(path.resolve()), st.st_size, st.st_mtime_ns]
    if hasattr(img, "convert") and hasattr(img, "size") and not isinstance(img, (np.ndarray, Tensor)):
        img = img.convert("RGB")  # a PIL image
    arr = np.ascontiguousarray(img.detach().cpu().numpy() if isinstance(img, Tensor) else np.asarray(img))
    return ["array", list(arr.shape), str(arr.dtype), hashlib.sha256(arr.tobytes()).hexdigest()]


def image_key(inst: KeypointInstance, i: int, dataset: str, crop_to_bbox: bool) -> str:
    box = inst.extra.get("bbox") if crop_to_bbox else None
    return digest({
        "dataset": dataset,
        "image": image_identity(inst, i),
        # Exact coordinates: float64 holds every float32 exactly, and hex is lossless.
        "pos": [float(v).hex() for v in inst.pos.detach().to(torch.float64).flatten().tolist()],
        "bbox": None if box is None else [float(v) for v in box],
    })[:32]


def view_seed(key: str, seed: int, v: int) -> int:
    """The generator seed of view ``v``: a pure function of the seed, the image and ``v``."""
    return int(digest([key, seed, v])[:15], 16)


# -- the cache ----------------------------------------------------------------------------
class FeatureStore:
    r"""One cache folder; entries are ``{"x": [N, F]}`` or ``{"pos": [N, 2], "x": [N, F]}``."""

    def __init__(self, root: Path, identity: Dict[str, Any], width: int):
        self.dir = root / digest(identity)[:20]
        self.identity = identity
        self.width = width
        self._write_failed = False

    def load(self, name: str, num_nodes: int, with_pos: bool) -> Optional[Dict[str, Tensor]]:
        path = self.dir / name
        if not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # truncated, corrupt, or not ours: recompute rather than crash
            return None
        wanted = {"x": (num_nodes, self.width)}
        if with_pos:
            wanted["pos"] = (num_nodes, 2)
        if not isinstance(entry, dict) or set(entry) != set(wanted):
            return None
        for key, shape in wanted.items():
            value = entry[key]
            if not isinstance(value, Tensor) or tuple(value.shape) != shape or not value.is_floating_point() \
                    or not torch.isfinite(value).all():
                return None
        return entry

    def save(self, name: str, entry: Dict[str, Tensor]) -> None:
        # atomic_write: another process reading the cache sees the old file or the whole new one,
        # and a temporary left by a killed write is removed when that file is written again. Two
        # processes filling one cache at once may remove each other's temporary of the same file:
        # the loser's rename then fails with an OSError, handled below like an unwritable cache
        # (the winner wrote the same features).
        try:
            meta = self.dir / "meta.json"
            if not meta.exists():
                atomic_write(meta, lambda f: f.write(json.dumps(self.identity, indent=1).encode()))
            # clone(): a row slice of a batch would otherwise save the whole batch's storage.
            entry = {k: v.detach().to("cpu", torch.float32).clone() for k, v in entry.items()}
            atomic_write(self.dir / name, lambda f: torch.save(entry, f))
        except OSError as e:  # the cache is an optimisation: warn once, keep the features
            if not self._write_failed:
                warnings.warn(f"cannot write the feature cache in '{self.dir}' ({e}); features are "
                              "recomputed next time. Set FeatureConfig.cache_dir or $PYG_SSGM_CACHE to a "
                              "writable folder.", RuntimeWarning, stacklevel=3)
            self._write_failed = True


__all__ = ["FeatureStore", "image_identity", "image_key", "view_seed", "digest", "CACHE_FORMAT"]
