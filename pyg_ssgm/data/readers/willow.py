"""Reader of the Willow ObjectClass dataset (Cho et al., ICCV 2013).

Layout (as the zip ships, and as pygmtools expects)::

    <root>/WILLOW-ObjectClass/<Category>/<image>.mat   # 'pts_coord': 2 x 10 (row 0 = x, row 1 = y)
    <root>/WILLOW-ObjectClass/<Category>/<image>.png

Each category has 10 ordered keypoints, all annotated in every image, so the i-th column of
``pts_coord`` is the same semantic part in every image of a category; we name it ``"kp<i>"``.

Split (same as pygmtools ``WillowObject`` with its defaults ``TRAIN_NUM=20, SPLIT_OFFSET=0``, which
is also BB-GM's and ThinkMatch's): per category the ``.mat`` files are sorted by name, the first
``train_num`` are the training set, the rest the test set. ``Face/image_0160.mat`` is left out of
both, as pygmtools does, so that our test set is the one the literature reports on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional

import numpy as np

from ...errors import InvalidInputError
from ..instance import KeypointInstance
from .common import (
    PathLike,
    as_instance_error,
    check_split,
    image_field,
    malformed,
    not_found,
    resolve_root,
    select_categories,
)

DATASET = "willow"
FOLDER = "WILLOW-ObjectClass"
CATEGORIES = ["Car", "Duck", "Face", "Motorbike", "Winebottle"]
NUM_KEYPOINTS = 10
TRAIN_NUM = 20
#: Files the standard protocol drops (pygmtools removes it before splitting).
EXCLUDED = {("Face", "image_0160")}


def _willow_dir(root: PathLike) -> Path:
    # The folder is recognised by its category sub-folders.
    return resolve_root(root, FOLDER, DATASET, markers=CATEGORIES)


def read_willow_mat(path: PathLike, category: str, with_images: bool = False) -> KeypointInstance:
    """Read one Willow ``.mat`` file into a :class:`KeypointInstance` (names ``kp0..kp9``)."""
    from scipy.io import loadmat  # scipy is a core dependency; imported lazily to keep import time low

    path = Path(path)
    try:
        mat = loadmat(str(path))
    except Exception as e:  # scipy raises ValueError, TypeError, MatReadError... on bad files
        raise malformed(DATASET, path, f"scipy.io.loadmat cannot read it ({type(e).__name__}: {e})") from e
    if "pts_coord" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise malformed(DATASET, path, f"no 'pts_coord' variable (found {keys})")
    pts = np.asarray(mat["pts_coord"])
    if pts.ndim != 2 or pts.shape[0] != 2 or not np.issubdtype(pts.dtype, np.number):
        raise malformed(DATASET, path, f"'pts_coord' must be a numeric 2 x K array, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise malformed(DATASET, path, "'pts_coord' contains NaN or infinite values")
    try:
        return KeypointInstance(
            pos=pts.T.astype(np.float64),
            names=[f"kp{i}" for i in range(pts.shape[1])],
            category=category,
            image=image_field(path.with_suffix(".png"), with_images, DATASET),
            id=path.stem,
        )
    except InvalidInputError as e:
        raise as_instance_error(DATASET, path, e) from e


def willow_split_files(
    root: PathLike, split: str = "train", categories: Optional[Iterable[str]] = None, train_num: int = TRAIN_NUM
) -> List[Path]:
    """The ``.mat`` files of ``split`` (``"train"``, ``"test"`` or ``"all"``), category by category."""
    split = check_split(split, ("train", "test", "all"))
    if train_num < 0:
        raise InvalidInputError(f"train_num must be >= 0, got {train_num}.")
    base = _willow_dir(root)
    available = sorted(d.name for d in base.iterdir() if d.is_dir() and any(d.glob("*.mat")))
    if not available:
        raise not_found(DATASET, f"no <Category>/*.mat files under {base}")
    files: List[Path] = []
    for cat in select_categories(available, categories, DATASET, base):
        mats = sorted(p for p in (base / cat).glob("*.mat") if (cat, p.stem) not in EXCLUDED)
        if split == "train":
            mats = mats[:train_num]
        elif split == "test":
            mats = mats[train_num:]
        files.extend(mats)
    return files


def read_willow(
    root: PathLike,
    split: str = "train",
    categories: Optional[Iterable[str]] = None,
    with_images: bool = False,
    train_num: int = TRAIN_NUM,
) -> List[KeypointInstance]:
    r"""Read Willow ObjectClass instances.

    Args:
        root: the ``WILLOW-ObjectClass`` folder or the folder containing it.
        split: ``"train"`` (first ``train_num`` sorted files per category), ``"test"`` (the rest)
            or ``"all"``.
        categories: category folder names (``"Car"``, ``"Duck"``, ``"Face"``, ``"Motorbike"``,
            ``"Winebottle"``); all present ones when ``None``.
        with_images: load images as arrays; otherwise ``image`` holds the ``.png`` path when it exists.
        train_num: training images per category (20 in the standard protocol).

    Returns:
        One :class:`KeypointInstance` per image, names ``kp0 .. kp9``, ``id`` the file stem.
    """
    return [
        read_willow_mat(path, category=path.parent.name, with_images=with_images)
        for path in willow_split_files(root, split, categories, train_num)
    ]
