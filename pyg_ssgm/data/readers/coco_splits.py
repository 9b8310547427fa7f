"""Train / val / test splits of COCO keypoint files, and their record (``splits.json``).

**Separate files.** ``coco_splits(train.json, val_data=val.json, test_data=test.json)`` takes each
split from its file. A folder works too, by convention: ``<folder>/train.json`` and, when they
exist, ``<folder>/val.json`` and ``<folder>/test.json``.

**One file.** A split without a file of its own is cut from the training file **by image**, never
by instance, so that every object of an image falls in the same split and no test image is seen in
training: the images are grouped by the categories they show, and each group is shuffled by a
generator seeded with the run's seed and cut into ``test`` (:data:`FRACTIONS`: 20 % of the images),
``val`` (10 %) and ``train`` (the rest), each rounded to the nearest image. A split needs two
instances of a category for a real pair of it, so tiny categories may have none in val or test.

**The record.** :class:`SplitRecord` lists each split's file and image ids (and the images folder,
seed, fractions, reader options and each file's SHA-256); training from the command line writes it
as ``splits.json`` into the run's folder, and :meth:`SplitRecord.load` reads the very same
instances back (``python -m pyg_ssgm evaluate`` does, for a checkpoint's own data).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ...errors import DatasetNotFoundError, InvalidInputError, MalformedAnnotationError
from ..instance import KeypointInstance
from .coco import image_ids, read_coco_file
from .common import PathLike, check_split

Splits = Dict[str, List[KeypointInstance]]
SPLITS = ("train", "val", "test")
#: Shares of the training file's images that become the test and val splits when no file is given
#: for them (the test split is cut first).
FRACTIONS = {"test": 0.2, "val": 0.1}
#: The record's file name in a run folder.
RECORD_NAME = "splits.json"
RECORD_FORMAT = 1
#: Per-split files of a folder given as the data (``train.json`` is required).
FOLDER_FILES = {split: f"{split}.json" for split in SPLITS}


def _absolute(path: Optional[PathLike]) -> Optional[str]:
    return None if path is None else os.path.abspath(os.path.expanduser(os.fspath(path)))


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _id_order(image_id: Any) -> Tuple[bool, Any]:
    """Sort key of image ids, which may be integers or strings (never compared with each other)."""
    return isinstance(image_id, str), image_id


def check_fractions(fractions: Mapping[str, float]) -> Dict[str, float]:
    """``fractions`` (shares of images for ``val`` and ``test``), each in ``[0, 1)`` and with a
    sum below 1 so that training keeps images."""
    out = dict(fractions)
    if set(out) - {"val", "test"}:
        raise InvalidInputError(f"fractions are given for 'val' and 'test' only, got {sorted(out)}.")
    for name, share in out.items():
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
            raise InvalidInputError(f"the {name} fraction must be a number in [0, 1), got {share!r}.")
    if sum(out.values()) >= 1:
        raise InvalidInputError(f"the val and test fractions sum to {sum(out.values())}: training would keep no image.")
    return out


def split_by_image(instances: Iterable[KeypointInstance], seed: int = 0,
                   fractions: Mapping[str, float] = FRACTIONS) -> Dict[str, List[Any]]:
    """The image ids of each split (``"train"`` and those of ``fractions``) when one file's
    ``instances`` (with ``extra["image_id"]``) are split by image, as the module docstring says.
    A pure function of the image ids, their categories, ``seed`` and ``fractions``."""
    fractions = check_fractions(fractions)
    shown: Dict[Any, set] = {}
    for inst in instances:
        shown.setdefault(inst.extra["image_id"], set()).add(inst.category)
    groups: Dict[Tuple[str, ...], List[Any]] = {}
    for image_id, cats in shown.items():
        groups.setdefault(tuple(sorted(cats)), []).append(image_id)
    out: Dict[str, List[Any]] = {name: [] for name in ("train", *(s for s in ("test", "val") if s in fractions))}
    for key in sorted(groups):
        ids = sorted(groups[key], key=_id_order)
        # A string seed is hashed with SHA-512 by random.Random: the same on every machine and version.
        random.Random(f"pyg_ssgm/{seed}/{'/'.join(key)}").shuffle(ids)
        start = 0
        for name in ("test", "val"):
            if name in fractions:
                count = int(len(ids) * fractions[name] + 0.5)
                out[name] += ids[start:start + count]
                start += count
        out["train"] += ids[start:]
    return {name: sorted(ids, key=_id_order) for name, ids in out.items()}


def _select(instances: List[KeypointInstance], ids: Iterable[Any]) -> List[KeypointInstance]:
    wanted = set(ids)
    return [inst for inst in instances if inst.extra["image_id"] in wanted]


def data_files(data: PathLike, val_data: Optional[PathLike] = None,
               test_data: Optional[PathLike] = None) -> Dict[str, Optional[str]]:
    """The file of each split (``None``: cut from the training file), absolute; a folder ``data``
    gives ``train.json`` and, where they exist and no file is given, ``val.json`` / ``test.json``."""
    if data is None:
        raise InvalidInputError("a COCO keypoint file is needed (--data annotations.json, or root= in Python).")
    files = {"train": _absolute(data), "val": _absolute(val_data), "test": _absolute(test_data)}
    folder = Path(files["train"])
    if folder.is_dir():
        files["train"] = str(folder / FOLDER_FILES["train"])
        if not Path(files["train"]).is_file():
            raise DatasetNotFoundError(f"{folder} is a folder without {FOLDER_FILES['train']}: give the COCO keypoint "
                                       f"file itself, or a folder holding {', '.join(FOLDER_FILES.values())}.")
        for split in ("val", "test"):
            if files[split] is None and (folder / FOLDER_FILES[split]).is_file():
                files[split] = str(folder / FOLDER_FILES[split])
    given = [f for f in files.values() if f is not None]
    if len(set(given)) != len(given):
        raise InvalidInputError(f"one file is given for two splits ({files}): a split would be trained and "
                                "scored on the same images.")
    return files


@dataclass
class SplitRecord:
    """Which images of which COCO file make each split of a run (see the module docstring)."""

    files: Dict[str, str]                 # split -> its annotation file (absolute)
    image_ids: Dict[str, List[Any]]       # split -> the image ids of its instances, sorted
    images: Optional[str] = None          # the images folder (None: beside each file)
    seed: int = 0
    fractions: Dict[str, float] = field(default_factory=dict)  # shares cut from the training file
    options: Dict[str, Any] = field(default_factory=dict)      # reader options (visible_only, categories)
    digests: Dict[str, str] = field(default_factory=dict)      # file -> SHA-256 when the split was made

    def to_dict(self) -> Dict[str, Any]:
        return {"format": RECORD_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "the split record") -> "SplitRecord":
        keys = {"files", "image_ids", "images", "seed", "fractions", "options", "digests"}
        if (not isinstance(data, Mapping) or data.get("format") != RECORD_FORMAT
                or not {"files", "image_ids"} <= set(data)):
            raise MalformedAnnotationError(f"{where} is not a split record of format {RECORD_FORMAT} (an object with "
                                           "'format', 'files' and 'image_ids').")
        files, ids = data["files"], data["image_ids"]
        if (not isinstance(files, dict) or not isinstance(ids, dict) or set(files) != set(ids)
                or not set(files) <= set(SPLITS) or not all(isinstance(v, list) for v in ids.values())):
            raise MalformedAnnotationError(f"{where}: 'files' and 'image_ids' must map the same splits "
                                           f"({', '.join(SPLITS)}) to a file and a list of image ids.")
        return cls(**{k: v for k, v in data.items() if k in keys})

    def write(self, path: PathLike) -> Path:
        """Write the record as JSON to ``path`` (atomically)."""
        from ...files import write_text_atomic

        return write_text_atomic(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def read(cls, path: PathLike) -> "SplitRecord":
        """The record written to ``path``; a damaged one raises
        :class:`~pyg_ssgm.errors.MalformedAnnotationError` naming it."""
        path = Path(path)
        if not path.is_file():
            raise DatasetNotFoundError(f"no split record at {path}.")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise MalformedAnnotationError(f"split record {path} cannot be read ({e}).") from None
        return cls.from_dict(data, where=f"split record {path}")

    def load(self, with_images: bool = False) -> Splits:
        """The instances of each split, read again from the recorded files: the same instances, in
        the same order, as when the record was made. A file changed since then is named in a
        warning; an image id it no longer holds is a
        :class:`~pyg_ssgm.errors.MalformedAnnotationError`."""
        read: Dict[str, List[KeypointInstance]] = {}
        splits: Splits = {name: [] for name in SPLITS}
        for split, path in self.files.items():
            if path not in read:
                if path in self.digests and Path(path).is_file() and _digest(path) != self.digests[path]:
                    warnings.warn(f"{path} has changed since its split was recorded; the recorded image ids are "
                                  "used, with the annotations the file holds now.", stacklevel=2)
                read[path] = read_coco_file(path, self.images, with_images=with_images, **self.options)
            splits[split] = _select(read[path], self.image_ids[split])
            missing = set(self.image_ids[split]) - set(image_ids(splits[split]))
            if missing:
                raise MalformedAnnotationError(
                    f"{path} no longer holds the images {sorted(missing, key=_id_order)[:5]} of the recorded "
                    f"{split} split ({len(missing)} in all): it changed since the split was made.")
        return splits


def coco_splits(data: PathLike, val_data: Optional[PathLike] = None, test_data: Optional[PathLike] = None,
                images: Optional[PathLike] = None, seed: int = 0, fractions: Mapping[str, float] = FRACTIONS,
                with_images: bool = False, visible_only: bool = False,
                categories: Optional[Iterable[str]] = None) -> Tuple[Splits, SplitRecord]:
    """The ``train`` / ``val`` / ``test`` instances of COCO keypoint files, and their record.

    Args:
        data: the training file (or a folder, see the module docstring).
        val_data, test_data: the files of those splits; a split without one is cut from ``data`` by
            image (``fractions``, seeded by ``seed``).
        images: the folder the files' ``file_name`` are relative to (default: each file's folder).
        with_images, visible_only, categories: as :func:`~pyg_ssgm.data.readers.coco.read_coco_file`.
    """
    files = data_files(data, val_data, test_data)
    options = {"visible_only": visible_only, "categories": None if categories is None else
               sorted({categories} if isinstance(categories, str) else set(categories))}
    images = _absolute(images)
    read = {split: read_coco_file(path, images, with_images=with_images, **options)
            for split, path in files.items() if path is not None}
    cut = {name: share for name, share in check_fractions(fractions).items() if files[name] is None}
    ids = split_by_image(read["train"], seed, cut)
    for split in ("val", "test"):
        if files[split] is None:
            files[split] = files["train"]
            read[split] = read["train"]
        else:
            ids[split] = sorted(image_ids(read[split]), key=_id_order)
    ids.setdefault("val", [])
    splits = {split: _select(read[split], ids[split]) for split in SPLITS}
    record = SplitRecord(files=files, image_ids={s: ids[s] for s in SPLITS}, images=images, seed=seed, fractions=cut,
                         options=options, digests={path: _digest(path) for path in set(files.values())})
    return splits, record


def run_splits(data: PathLike, val_data: Optional[PathLike] = None, test_data: Optional[PathLike] = None,
               images: Optional[PathLike] = None, seed: int = 0, run: Optional[PathLike] = None,
               with_images: bool = False) -> Splits:
    """The splits of a run trained on COCO files: those its record (``<run>/splits.json``) lists,
    read with ``images`` when the images have moved since, or, without a record or with other
    ``val_data`` / ``test_data`` named, :func:`coco_splits` of the files (seeded by ``seed``)."""
    record = None if run is None else Path(run) / RECORD_NAME
    if record is not None and record.is_file() and val_data is None and test_data is None:
        recorded = SplitRecord.read(record)
        if images is not None:
            recorded.images = _absolute(images)
        return recorded.load(with_images=with_images)
    return coco_splits(data, val_data, test_data, images, seed=seed, with_images=with_images)[0]


def read_coco(root: PathLike, split: str = "all", categories: Optional[Iterable[str]] = None,
              with_images: bool = False, images: Optional[PathLike] = None, seed: int = 0,
              visible_only: bool = False) -> List[KeypointInstance]:
    """One split (``"train"``, ``"val"``, ``"test"``, or ``"all"``: every file's instances) of
    :func:`coco_splits` of ``root``: the reader of ``load_dataset("coco", root, split)``."""
    split = check_split(split, ("all", *SPLITS))
    splits, _ = coco_splits(root, images=images, seed=seed, with_images=with_images, visible_only=visible_only,
                            categories=categories)
    return splits[split] if split != "all" else splits["train"] + splits["val"] + splits["test"]


__all__ = ["coco_splits", "run_splits", "read_coco", "split_by_image", "data_files", "check_fractions", "SplitRecord", "FRACTIONS",
           "RECORD_NAME", "FOLDER_FILES"]
