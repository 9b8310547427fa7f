"""Reader of CUB-200-2011 (Wah et al., 2011) part annotations.

Layout (as ``CUB_200_2011.tgz`` unpacks, and as pygmtools expects)::

    <root>/CUB_200_2011/images.txt               # <image id> <class dir>/<file>.jpg
    <root>/CUB_200_2011/classes.txt              # <class id> <class name>   (e.g. 001.Black_footed_Albatross)
    <root>/CUB_200_2011/image_class_labels.txt   # <image id> <class id>
    <root>/CUB_200_2011/train_test_split.txt     # <image id> <1 = train, 0 = test>
    <root>/CUB_200_2011/parts/parts.txt          # <part id> <part name, may contain spaces>
    <root>/CUB_200_2011/parts/part_locs.txt      # <image id> <part id> <x> <y> <visible>
    <root>/CUB_200_2011/bounding_boxes.txt       # optional: <image id> <x> <y> <width> <height>
    <root>/CUB_200_2011/images/<class dir>/<file>.jpg

Keypoint names are the 15 part names (``"beak"``, ``"left eye"``...), in part-id order; parts
with ``visible == 0`` are absent. The category is the class name of ``classes.txt``.

Split: the official ``train_test_split.txt`` (pygmtools' ``CUB2011`` with ``CLASS_SPLIT='ori'``).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from ...errors import InvalidInputError
from ..instance import KeypointInstance
from .common import (
    PathLike,
    check_split,
    image_field,
    malformed,
    not_found,
    read_table,
    resolve_root,
    to_float,
)

DATASET = "cub"
FOLDER = "CUB_200_2011"


def _select_classes(classes: Dict[str, str], categories: Optional[Iterable[str]], base: Path) -> set:
    """Class ids of the requested categories; a name may omit its number (``Black_footed_Albatross``)."""
    if categories is None:
        return set(classes)
    if isinstance(categories, str):
        categories = [categories]
    chosen = set()
    for cat in categories:
        ids = [cid for cid, name in classes.items() if cat in (name, name.split(".", 1)[-1])]
        if not ids:
            raise not_found(DATASET, f"category {cat!r} is not in {base / 'classes.txt'}")
        chosen.update(ids)
    return chosen


def read_cub(
    root: PathLike,
    split: str = "train",
    categories: Optional[Iterable[str]] = None,
    with_images: bool = False,
) -> List[KeypointInstance]:
    r"""Read CUB-200-2011 instances (one per image).

    Args:
        root: the ``CUB_200_2011`` folder or the folder containing it.
        split: ``"train"``, ``"test"`` (official ``train_test_split.txt``) or ``"all"``.
        categories: class names, with or without their number prefix; all when ``None``.
        with_images: load images as arrays; otherwise ``image`` holds the ``.jpg`` path when it exists.

    Returns:
        :class:`KeypointInstance` s in image-id order, names the part names, invisible parts
        absent, ``id`` the image file stem, ``extra["bbox"]`` when ``bounding_boxes.txt`` exists.
    """
    split = check_split(split, ("train", "test", "all"))
    base = resolve_root(root, FOLDER, DATASET, markers=["images.txt"])

    images = {i: p for i, p in read_table(base / "images.txt", 2, DATASET)}
    classes = {i: name for i, name in read_table(base / "classes.txt", 2, DATASET)}
    labels = {i: c for i, c in read_table(base / "image_class_labels.txt", 2, DATASET)}
    is_train = {i: flag for i, flag in read_table(base / "train_test_split.txt", 2, DATASET)}
    parts_file = base / "parts" / "parts.txt"
    parts = {pid: name for pid, name in read_table(parts_file, 2, DATASET, last_col_rest=True)}
    locs_file = base / "parts" / "part_locs.txt"
    locs: Dict[str, List[Tuple[int, str, float, float]]] = defaultdict(list)
    for lineno, (img, pid, x, y, vis) in enumerate(read_table(locs_file, 5, DATASET), start=1):
        if pid not in parts:
            raise malformed(DATASET, locs_file, f"row {lineno} uses part id {pid} that {parts_file} does not define")
        if to_float(vis, DATASET, locs_file, f"visible flag of row {lineno}") == 0:
            continue  # invisible part: absent (CUB stores it as 0 0)
        where = f"row {lineno}"
        order = int(pid) if pid.isdigit() else len(parts)  # keep the part-id order of parts.txt
        locs[img].append((order, pid, to_float(x, DATASET, locs_file, f"x of {where}"),
                          to_float(y, DATASET, locs_file, f"y of {where}")))
    bbox_file = base / "bounding_boxes.txt"
    bboxes = {}
    if bbox_file.exists():
        for img, *vals in read_table(bbox_file, 5, DATASET):
            x, y, w, h = (to_float(v, DATASET, bbox_file, f"box of image {img}") for v in vals)
            bboxes[img] = (x, y, x + w, y + h)

    wanted = _select_classes(classes, categories, base)
    out = []
    for img in sorted(images, key=lambda i: int(i) if i.isdigit() else i):
        for table, file in ((labels, "image_class_labels.txt"), (is_train, "train_test_split.txt")):
            if img not in table:
                raise malformed(DATASET, base / file, f"no row for image id {img} listed in images.txt")
        if labels[img] not in classes:
            raise malformed(DATASET, base / "image_class_labels.txt", f"image {img} has unknown class id {labels[img]}")
        if labels[img] not in wanted:
            continue
        if split != "all" and (is_train[img].strip() == "1") != (split == "train"):
            continue
        pts = sorted(locs.get(img, []))
        rel = images[img]
        try:
            inst = KeypointInstance(
                pos=np.asarray([(x, y) for _, _, x, y in pts], dtype=np.float64).reshape(-1, 2),
                names=[parts[pid] for _, pid, _, _ in pts],
                category=classes[labels[img]],
                image=image_field(base / "images" / rel, with_images, DATASET),
                id=Path(rel).stem,
                extra={"bbox": bboxes[img]} if img in bboxes else {},
            )
        except InvalidInputError as e:  # e.g. a part listed twice for one image
            raise malformed(DATASET, locs_file, f"image {img}: {e}") from e
        out.append(inst)
    return out
