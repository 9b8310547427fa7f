"""Readers of the real keypoint benchmarks, from a local copy laid out as the datasets ship, and of
COCO keypoint files (your own data, :mod:`~pyg_ssgm.data.readers.coco`).

Each reader returns a ``list`` of :class:`~pyg_ssgm.data.KeypointInstance` (named keypoints,
invisible ones absent, ``category``, ``id`` = file stem) for one split. None of them downloads
anything: a missing root raises :class:`~pyg_ssgm.errors.DatasetNotFoundError` saying where the
data can be obtained, a broken file :class:`~pyg_ssgm.errors.MalformedAnnotationError` naming it.

>>> from pyg_ssgm.data.readers import load_dataset
>>> train = load_dataset("willow", "data/WillowObject", "train")  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List

from ...errors import InvalidInputError
from ..instance import KeypointInstance
from .coco import read_coco_file
from .coco_splits import RECORD_NAME, SplitRecord, coco_splits, read_coco, run_splits
from .common import SOURCES, PathLike
from .cub import read_cub
from .pascal_voc import read_pascal_voc, read_pascal_voc_xml
from .spair import read_spair, read_spair_json, read_spair_pairs
from .willow import read_willow, read_willow_mat

#: Canonical dataset name -> reader ``(root, split="train", categories=None, with_images=False, **kw)``.
READERS: Dict[str, Callable[..., List[KeypointInstance]]] = {
    "willow": read_willow,
    "pascal_voc": read_pascal_voc,
    "spair": read_spair,
    "cub": read_cub,
    "coco": read_coco,
}

# Spellings people use for the same datasets (compared after lower-casing and dropping - and _).
_ALIASES = {
    "willow": "willow", "willowobject": "willow", "willowobjectclass": "willow",
    "pascalvoc": "pascal_voc", "voc": "pascal_voc", "pascalvockeypoints": "pascal_voc", "voc2011": "pascal_voc",
    "spair": "spair", "spair71k": "spair",
    "cub": "cub", "cub2011": "cub", "cub200": "cub", "cub2002011": "cub",
    "coco": "coco", "mscoco": "coco", "cocokeypoints": "coco",
}


def canonical_name(name: str) -> str:
    """The :data:`READERS` key for a dataset name such as ``"SPair-71k"`` or ``"PascalVOC"``."""
    key = "".join(ch for ch in str(name).lower() if ch not in "-_ ")
    if key not in _ALIASES:
        raise InvalidInputError(f"unknown dataset {name!r}; choose one of {sorted(READERS)}.")
    return _ALIASES[key]


def load_dataset(name: str, root: PathLike, split: str = "train", **kwargs: Any) -> List[KeypointInstance]:
    """Read split ``split`` of dataset ``name`` from ``root``; ``kwargs`` go to the reader
    (``categories``, ``with_images`` and the reader's own options)."""
    return READERS[canonical_name(name)](root, split=split, **kwargs)


__all__ = [
    "READERS",
    "RECORD_NAME",
    "SOURCES",
    "SplitRecord",
    "canonical_name",
    "coco_splits",
    "load_dataset",
    "read_coco",
    "read_coco_file",
    "read_cub",
    "read_pascal_voc",
    "read_pascal_voc_xml",
    "read_spair",
    "read_spair_json",
    "read_spair_pairs",
    "read_willow",
    "read_willow_mat",
    "run_splits",
]
