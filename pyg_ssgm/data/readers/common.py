"""Helpers shared by the benchmark readers: locating a root, naming errors, splits, images.

Every reader works on a local copy of a dataset laid out exactly as it ships (the layout
pygmtools' ``dataset`` module expects). Nothing here downloads anything: when data is missing
the error says where the official copy lives and how the folder must look, and the user fetches it.
"""
from __future__ import annotations

import os
import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from ...errors import DatasetNotFoundError, InvalidInputError, MalformedAnnotationError, require

PathLike = Union[str, "os.PathLike[str]"]

#: Where each dataset can be obtained (shown as text in error messages; never fetched).
SOURCES: Dict[str, str] = {
    "willow": (
        "Willow ObjectClass: download "
        "http://www.di.ens.fr/willow/research/graphlearning/WILLOW-ObjectClass_dataset.zip "
        "and unzip it so that <root>/WILLOW-ObjectClass/<Category>/*.mat (+ .png) exist."
    ),
    "pascal_voc": (
        "Pascal VOC Keypoints: the Berkeley keypoint annotations "
        "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/shape/poselets/voc2011_keypoints_Feb2012.tgz "
        "unpacked as <root>/annotations/<category>/*.xml, the VOC2011 train/val images "
        "http://host.robots.ox.ac.uk/pascal/VOC/voc2011/VOCtrainval_25-May-2011.tar "
        "unpacked as <root>/TrainVal/VOCdevkit/VOC2011/{JPEGImages,Annotations}, and the standard split "
        "https://github.com/Thinklab-SJTU/PCA-GM/raw/master/data/PascalVOC/voc2011_pairs.npz "
        "saved as <root>/voc2011_pairs.npz."
    ),
    "spair": (
        "SPair-71k: download http://cvlab.postech.ac.kr/research/SPair-71k/data/SPair-71k.tar.gz "
        "and unpack it so that <root>/SPair-71k/{ImageAnnotation,JPEGImages,Layout} exist."
    ),
    "cub": (
        "CUB-200-2011: download it from https://www.vision.caltech.edu/datasets/cub_200_2011/ "
        "(CUB_200_2011.tgz) and unpack it so that <root>/CUB_200_2011/images.txt, parts/ and images/ exist."
    ),
    "coco": (
        "A COCO keypoint file is the JSON that annotation tools export (CVAT: 'COCO Keypoints 1.0'): "
        "'images' (id, file_name), 'categories' (id, name, keypoints: the names; optional skeleton and "
        "flip_pairs) and 'annotations' (id, image_id, category_id, keypoints: x, y, v for each name; "
        "optional bbox)."
    ),
}


def where_to_get(dataset: str) -> str:
    """The sentence, appended to every data error, that says where ``dataset`` can be obtained."""
    return SOURCES.get(dataset, "")


def not_found(dataset: str, what: str) -> DatasetNotFoundError:
    """A :class:`DatasetNotFoundError` for ``what`` with the download hint of ``dataset``."""
    return DatasetNotFoundError(f"{what}. {where_to_get(dataset)} pyg_ssgm never downloads data itself.")


def malformed(dataset: str, path: PathLike, problem: str) -> MalformedAnnotationError:
    """A :class:`MalformedAnnotationError` naming ``path`` and what is wrong with it."""
    return MalformedAnnotationError(
        f"malformed annotation file {os.fspath(path)}: {problem}. The file may be truncated or "
        f"from another dataset version; re-extract the original. {where_to_get(dataset)}"
    )


def resolve_root(root: PathLike, folder: str, dataset: str, markers: Sequence[str]) -> Path:
    """Find the dataset folder from ``root``.

    ``root`` may be the dataset folder itself (``.../SPair-71k``) or the folder that contains
    it (``.../data``), because both conventions are common (pygmtools uses the latter).
    The dataset folder is recognised by containing at least one of ``markers``.
    """
    if root is None:
        raise not_found(dataset, "no dataset root given")
    root = Path(os.path.expanduser(os.fspath(root)))
    for candidate in (root / folder, root):
        if any((candidate / m).exists() for m in markers):
            return candidate
    if not root.exists():
        raise not_found(dataset, f"dataset root {root} does not exist")
    raise not_found(
        dataset,
        f"{root} does not look like the dataset: none of {list(markers)} exists in {root / folder} or {root}",
    )


def require_file(path: Path, dataset: str, what: str = "required file") -> Path:
    """Return ``path`` or raise :class:`DatasetNotFoundError` naming it."""
    if not path.exists():
        raise not_found(dataset, f"{what} {path} does not exist")
    return path


def check_split(split: str, allowed: Sequence[str], aliases: Optional[Dict[str, str]] = None) -> str:
    """Validate ``split`` (after mapping ``aliases``) against ``allowed`` and return it."""
    key = (aliases or {}).get(split, split)
    if key not in allowed:
        raise InvalidInputError(f"unknown split {split!r}; choose one of {sorted(set(allowed) | set(aliases or {}))}.")
    return key


def select_categories(
    available: Sequence[str], categories: Optional[Iterable[str]], dataset: str, where: PathLike
) -> List[str]:
    """The requested categories (all of ``available`` when ``None``), each checked to exist."""
    if categories is None:
        return list(available)
    if isinstance(categories, str):  # a single name is a common slip; accept it
        categories = [categories]
    chosen = list(categories)
    missing = [c for c in chosen if c not in available]
    if missing:
        raise not_found(dataset, f"categories {missing} not found under {os.fspath(where)} (found: {list(available)})")
    return chosen


def stable_fraction(key: str) -> float:
    """A number in ``[0, 1)`` that depends only on ``key``.

    Used for fallback splits: CRC32 is the same on every machine and Python version (unlike
    ``hash``), and a key's side of the split does not move when other files are added or removed.
    """
    return (zlib.crc32(key.encode("utf-8")) & 0xFFFFFFFF) / 2**32


def read_text(path: Path, dataset: str) -> str:
    """The UTF-8 text of an annotation file, or a :class:`MalformedAnnotationError` naming the
    file when it is not UTF-8 (a corrupt download, another encoding)."""
    require_file(path, dataset)
    try:
        return Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise malformed(dataset, path, f"not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})") from None


def read_table(
    path: Path, num_cols: int, dataset: str, last_col_rest: bool = False
) -> List[List[str]]:
    """Read a whitespace-separated text table, checking every line has ``num_cols`` columns.

    Blank lines are skipped. With ``last_col_rest`` the last column takes the rest of the line
    (CUB part names contain spaces: ``"7 left eye"``).
    """
    rows: List[List[str]] = []
    for lineno, line in enumerate(read_text(path, dataset).splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        cols = line.split(None, num_cols - 1) if last_col_rest else line.split()
        if len(cols) != num_cols:
            raise malformed(dataset, path, f"line {lineno} has {len(cols)} columns, expected {num_cols}: {line!r}")
        rows.append(cols)
    return rows


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays of plain values (str, numbers, lists...) and
    nothing else. numpy stores object arrays (such as the per-category name lists of the
    published Pascal VOC split) as pickles, and a plain unpickler calls whatever a pickle names:
    a crafted file would run code. Every global a pickle may name is checked here; only numpy's
    array and dtype constructors pass."""

    _ALLOWED = {
        "_reconstruct": np.empty(0).__reduce__()[0],  # numpy.core / numpy._core .multiarray._reconstruct
        "ndarray": np.ndarray,
        "dtype": np.dtype,
        "scalar": np.float64(0).__reduce__()[0],  # numpy's scalar constructor (np.str_, np.int64...)
    }
    _MODULES = ("numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                "numpy._core.numeric")

    def find_class(self, module: str, name: str):
        if module in self._MODULES and name in self._ALLOWED:
            return self._ALLOWED[name]
        raise pickle.UnpicklingError(f"refused to unpickle {module}.{name}: only numpy arrays of plain values "
                                     "are read, since anything else could run code")


def load_npz(path: Path, dataset: str) -> Dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file, read without running code from it.

    Plain arrays are read with ``allow_pickle=False``; object arrays (stored as pickles) through
    :class:`_ArraysOnlyUnpickler`, which rebuilds numpy arrays and builtin values only. A file that
    asks for anything else (a crafted payload) or cannot be read raises
    :class:`MalformedAnnotationError` naming it.
    """
    require_file(path, dataset)
    arrays: Dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                key = member[:-4] if member.endswith(".npy") else member
                with archive.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    if version not in ((1, 0), (2, 0)):
                        raise malformed(dataset, path, f"array {key!r} uses .npy format {version}, expected 1.0 or 2.0")
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    _, _, dtype = read_header(f)
                    if dtype.hasobject:
                        array = _ArraysOnlyUnpickler(f).load()
                    else:
                        with archive.open(member) as again:
                            array = np.lib.format.read_array(again, allow_pickle=False)
                if not isinstance(array, np.ndarray):
                    raise malformed(dataset, path, f"entry {key!r} is a {type(array).__name__}, not an array")
                arrays[key] = array
    except MalformedAnnotationError:
        raise
    except Exception as e:  # BadZipFile, truncated data, a refused pickle global, bad header...
        raise malformed(dataset, path, f"cannot read it as an .npz of arrays ({type(e).__name__}: {e})") from None
    return arrays


def to_float(value: object, dataset: str, path: PathLike, what: str) -> float:
    """``float(value)``, finite, or a :class:`MalformedAnnotationError` naming ``path``."""
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise malformed(dataset, path, f"{what} is not a number: {value!r}") from None
    if not np.isfinite(out):
        raise malformed(dataset, path, f"{what} is not finite: {value!r}")
    return out


def image_field(path: Path, with_images: bool, dataset: str):
    """What goes in ``KeypointInstance.image``.

    Without ``with_images`` this is the path as a string when the file exists (so a later stage
    can load it lazily) and ``None`` otherwise: geometry-only copies of a dataset are fine. With
    ``with_images`` it is the decoded ``H x W x 3`` uint8 array and the file must exist.
    """
    if not with_images:
        return str(path) if path.exists() else None
    require_file(path, dataset, "image")
    image_mod = require("PIL.Image", "images")
    try:
        with image_mod.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as e:
        raise malformed(dataset, path, f"cannot decode image ({e})") from e


def as_instance_error(dataset: str, path: PathLike, err: Exception) -> MalformedAnnotationError:
    """Turn a :class:`KeypointInstance` validation error into one naming the annotation file."""
    return malformed(dataset, path, str(err))

