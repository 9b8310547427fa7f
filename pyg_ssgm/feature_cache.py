"""The on-disk cache of image features: what identifies an entry, and how entries are stored.

Layout (see :func:`pyg_ssgm.features.attach_features`):

.. code-block:: text

    <cache_dir>/<backbone hash>/meta.json                          # the settings the hash stands for
    <cache_dir>/<backbone hash>/<image key>-orig.pt                # {"x": [N, F], "sha256": ...}
    <cache_dir>/<backbone hash>/<image key>-<view key>-<seed key>-<v>.pt  # {"pos": [N, 2], "x": [N, F], "sha256": ...}

The cache verifies what it serves. The *image key* hashes the image's content (the bytes of its
file, or the pixels of an in-memory image), so an image whose pixels changed is another image
even if its size and modification time are the same. Each entry stores the SHA-256 of its
tensors bound to its own name and folder (:func:`entry_digest`), so an entry whose bytes were
changed, or a well-formed entry planted under an entry's name, or copied from another
backbone's folder, fails the check: it is recomputed (and overwritten) with a warning. (The
digest detects damage and files this cache did not write; it is no signature: whoever can write
the cache folder can also write a matching digest.)

Files are written atomically (:func:`pyg_ssgm.files.atomic_write`) and read with
``torch.load(weights_only=True)``. A temporary left by a killed write is removed by the next
write of the same entry, and any temporary older than :data:`STALE_TEMPORARY_S` when a
:class:`FeatureStore` opens its folder (younger ones may be another process's write in progress).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .data.instance import KeypointInstance, describe_instance
from .errors import DatasetNotFoundError, InvalidInputError
from .files import atomic_write, remove_stale_temporaries

#: Bump when what a cache file holds, or how it is computed, changes: old files are then ignored.
#: 2: content-hashed image keys and weights, a digest in every entry.
CACHE_FORMAT = 2

#: Age (seconds) past which a temporary file in the cache is a killed write's, and removed.
STALE_TEMPORARY_S = 3600.0


def digest(obj: Any) -> str:
    """SHA-256 of a JSON-able object (sorted keys, so the dict order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes: reading them costs little beside decoding an image, or loading
    the weights a backbone is built from."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# -- keys ---------------------------------------------------------------------------------
def _image_file(inst: KeypointInstance, i: int) -> Optional[Path]:
    """The instance's image file (``None`` for an in-memory image); raises if there is none."""
    img = inst.image
    if img is None:
        raise InvalidInputError(f"{describe_instance(inst, i)} has no image; image features need one.")
    if isinstance(img, (str, bytes)) or hasattr(img, "__fspath__"):
        path = Path(os.fsdecode(img)).expanduser()
        if not path.is_file():
            problem = "is not a file" if path.exists() else "does not exist"
            raise DatasetNotFoundError(f"image file '{img}' of {describe_instance(inst, i)} {problem}.")
        return path
    return None


def _pixels_identity(img: Any) -> List[Any]:
    """An in-memory image (PIL image, array or tensor) by the hash of its pixels, shape and dtype."""
    if hasattr(img, "convert") and hasattr(img, "size") and not isinstance(img, (np.ndarray, Tensor)):
        img = img.convert("RGB")  # a PIL image
    arr = np.ascontiguousarray(img.detach().cpu().numpy() if isinstance(img, Tensor) else np.asarray(img))
    return ["array", list(arr.shape), str(arr.dtype), hashlib.sha256(arr.tobytes()).hexdigest()]


def image_content(inst: KeypointInstance, i: int = 0) -> List[Any]:
    """What an instance's image *is*: the SHA-256 of its file's bytes, or of an in-memory image's
    pixels (with their shape and dtype)."""
    path = _image_file(inst, i)
    return ["file", file_digest(path)] if path is not None else _pixels_identity(inst.image)


def image_identity(inst: KeypointInstance, i: int = 0) -> List[Any]:
    r"""Where an instance's image *is*: a file's resolved path, size and mtime (an in-memory
    image: as :func:`image_content`). It seeds the image's augmented views (:func:`view_seed`),
    as it did before the cache hashed contents, so the views (and the models trained on them)
    stay what they were; it is never trusted to say that a cached value is current."""
    path = _image_file(inst, i)
    if path is None:
        return _pixels_identity(inst.image)
    st = path.stat()
    return ["file", str(path.resolve()), st.st_size, st.st_mtime_ns]


def _key(inst: KeypointInstance, image: List[Any], dataset: str, crop_to_bbox: bool) -> str:
    box = inst.extra.get("bbox") if crop_to_bbox else None
    return digest({
        "dataset": dataset,
        "image": image,
        # Exact coordinates: float64 holds every float32 exactly, and hex is lossless.
        "pos": [float(v).hex() for v in inst.pos.detach().to(torch.float64).flatten().tolist()],
        "bbox": None if box is None else [float(v) for v in box],
    })[:32]


def image_key(inst: KeypointInstance, i: int, dataset: str, crop_to_bbox: bool) -> str:
    """The name of an instance's cache entries: the dataset, the image's content, the keypoints
    and (when cropping) the box."""
    return _key(inst, image_content(inst, i), dataset, crop_to_bbox)


def view_seed_key(inst: KeypointInstance, i: int, dataset: str, crop_to_bbox: bool) -> str:
    """What an instance's views are seeded from (with :func:`image_identity`); part of the views'
    entry names, since their values depend on it."""
    return _key(inst, image_identity(inst, i), dataset, crop_to_bbox)


def view_seed(key: str, seed: int, v: int) -> int:
    """The generator seed of view ``v``: a pure function of the seed, the image's
    :func:`view_seed_key` and ``v``."""
    return int(digest([key, seed, v])[:15], 16)


def entry_digest(where: str, entry: Dict[str, Tensor]) -> str:
    """SHA-256 of an entry's tensors (names, dtypes, shapes and bytes), bound to ``where`` (the
    entry's folder and file name), so an entry is valid under its own name only."""
    h = hashlib.sha256(f"pyg_ssgm feature cache {CACHE_FORMAT}: {where}".encode())
    for name in sorted(entry):
        value = entry[name].detach().cpu().contiguous()
        h.update(f"|{name}:{value.dtype}:{list(value.shape)}|".encode())
        h.update(value.numpy().tobytes())
    return h.hexdigest()


# -- the cache ----------------------------------------------------------------------------
class Plan(NamedTuple):
    """One list of instances: their entries' names, and the entries found so far
    (:meth:`FeatureStore.plan`)."""

    instances: List[KeypointInstance]
    num_views: int
    seed_keys: List[str]                       # what each instance's views are seeded from
    names: List[List[str]]                     # per instance: the original's entry, then one per view
    found: List[Dict[str, Dict[str, Tensor]]]  # per instance: entry name -> entry

    @property
    def todo(self) -> List[int]:
        """The instances with an entry still missing."""
        return [i for i, names in enumerate(self.names) if len(self.found[i]) < len(names)]

    def assemble(self) -> List[KeypointInstance]:
        """Copies of the instances with ``x`` and ``extra["views"]`` from their (complete) entries."""
        dtype = torch.get_default_dtype()
        out: List[KeypointInstance] = []
        for i, inst in enumerate(self.instances):
            entries = [self.found[i][name] for name in self.names[i]]
            extra = dict(inst.extra)
            extra.pop("views", None)
            if self.num_views > 0:
                extra["views"] = [(e["pos"].to(dtype), e["x"].to(dtype)) for e in entries[1:]]
            out.append(dataclasses.replace(inst, x=entries[0]["x"].to(dtype), extra=extra))
        return out


class FeatureStore:
    r"""One cache folder; entries are ``{"x": [N, F]}`` or ``{"pos": [N, 2], "x": [N, F]}``, each
    stored with its :func:`entry_digest` (``"sha256"``)."""

    def __init__(self, root: Path, identity: Dict[str, Any], width: int):
        self.dir = root / digest(identity)[:20]
        self.identity = identity
        self.width = width
        self.damaged = 0  # entries found but refused since the last warn_damaged()
        self._write_failed = False
        remove_stale_temporaries(self.dir, STALE_TEMPORARY_S)

    def load(self, name: str, num_nodes: int, with_pos: bool) -> Optional[Dict[str, Tensor]]:
        """The entry ``name`` if it is there and holds what it should (shapes, finite float32
        values, its digest); ``None`` otherwise (counted in ``damaged`` when a file was there)."""
        path = self.dir / name
        if not path.is_file():
            return None
        entry = self._read(path, num_nodes, with_pos)
        self.damaged += entry is None
        return entry

    def _read(self, path: Path, num_nodes: int, with_pos: bool) -> Optional[Dict[str, Tensor]]:
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # truncated, corrupt, or not ours: recompute rather than crash
            return None
        wanted = {"x": (num_nodes, self.width)}
        if with_pos:
            wanted["pos"] = (num_nodes, 2)
        if not isinstance(entry, dict) or set(entry) != {*wanted, "sha256"}:
            return None
        tensors = {key: entry[key] for key in wanted}
        for key, shape in wanted.items():
            value = tensors[key]
            if not isinstance(value, Tensor) or tuple(value.shape) != shape or value.dtype != torch.float32 \
                    or not torch.isfinite(value).all():
                return None
        if entry["sha256"] != entry_digest(f"{self.dir.name}/{path.name}", tensors):
            return None
        return tensors

    def plan(self, instances: Sequence[KeypointInstance], dataset: str, num_views: int, view_key: str,
             crop_to_bbox: bool) -> Plan:
        """Look up every entry of ``instances`` (the original and ``num_views`` views each); an
        entry that fails its checks counts as missing (see :meth:`load`)."""
        instances = list(instances)
        keys = [image_key(inst, i, dataset, crop_to_bbox) for i, inst in enumerate(instances)]
        seed_keys = [view_seed_key(inst, i, dataset, crop_to_bbox) for i, inst in enumerate(instances)]
        names = [[f"{key}-orig.pt"] + [f"{key}-{view_key}-{seed[:16]}-{v}.pt" for v in range(num_views)]
                 for key, seed in zip(keys, seed_keys)]
        found = [{name: entry for j, name in enumerate(names[i])
                  if (entry := self.load(name, inst.num_nodes, with_pos=j > 0)) is not None}
                 for i, inst in enumerate(instances)]
        return Plan(instances, num_views, seed_keys, names, found)

    def warn_damaged(self) -> None:
        """Warn (once per call, if any) about the entries :meth:`load` refused: they are recomputed."""
        if self.damaged:
            warnings.warn(f"{self.damaged} cached image-feature file(s) in '{self.dir}' were damaged or not "
                          "written by pyg_ssgm (their content does not match their digest); they are recomputed "
                          "and replaced.", RuntimeWarning, stacklevel=4)
        self.damaged = 0

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
            entry["sha256"] = entry_digest(f"{self.dir.name}/{name}", entry)
            atomic_write(self.dir / name, lambda f: torch.save(entry, f))
        except OSError as e:  # the cache is an optimisation: warn once, keep the features
            if not self._write_failed:
                warnings.warn(f"cannot write the feature cache in '{self.dir}' ({e}); features are "
                              "recomputed next time. Set FeatureConfig.cache_dir or $PYG_SSGM_CACHE to a "
                              "writable folder.", RuntimeWarning, stacklevel=3)
            self._write_failed = True


__all__ = ["FeatureStore", "Plan", "image_content", "image_identity", "image_key", "view_seed_key", "view_seed",
           "entry_digest", "digest", "file_digest", "CACHE_FORMAT", "STALE_TEMPORARY_S"]
