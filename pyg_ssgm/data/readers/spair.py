"""Reader of SPair-71k (Min et al., 2019).

Layout (as the tarball unpacks, and as pygmtools expects)::

    <root>/SPair-71k/ImageAnnotation/<category>/<image>.json   # "kps": {"0": [x, y] | null, ...}
    <root>/SPair-71k/JPEGImages/<category>/<image>.jpg
    <root>/SPair-71k/Layout/<large|small>/{trn,val,test}.txt   # "<pair id>-<src image>-<trg image>:<category>"

A ``null`` keypoint is not visible in that image: it is absent from the instance. Keypoint names
are the keys of ``kps`` (``"0"``, ``"1"``, ...), which identify the same part across the images of
a category. Coordinates stay in image pixels; ``bndbox`` goes to ``extra["bbox"]``.

Split: SPair-71k defines pairs, not images. The instances of a split are the images that appear
(as source or target) in that split's pair list, ``Layout/large`` by default as in pygmtools.
Use :func:`read_spair_pairs` to evaluate on exactly the official pairs. Image names repeat across
categories, so an instance is identified by ``(category, id)``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

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
    read_text,
    require_file,
    resolve_root,
    select_categories,
    to_float,
)

DATASET = "spair"
FOLDER = "SPair-71k"
SPLIT_ALIASES = {"train": "trn", "validation": "val"}
SPLITS = ("trn", "val", "test", "all")


def _base(root: PathLike) -> Path:
    return resolve_root(root, FOLDER, DATASET, markers=["ImageAnnotation"])


def read_spair_json(
    path: PathLike, category: Optional[str] = None, image_dir: Optional[PathLike] = None, with_images: bool = False
) -> KeypointInstance:
    """Read one ``ImageAnnotation`` JSON file into a :class:`KeypointInstance` (visible keypoints only)."""
    path = Path(path)
    text = read_text(path, DATASET)
    try:
        ann = json.loads(text)
    except json.JSONDecodeError as e:
        raise malformed(DATASET, path, f"invalid JSON ({e})") from e
    except RecursionError:  # a crafted file nested thousands deep exhausts Python's stack
        raise malformed(DATASET, path, "JSON nested too deeply to be an annotation") from None
    if not isinstance(ann, dict) or "kps" not in ann:
        raise malformed(DATASET, path, "no 'kps' entry")
    kps = ann["kps"]
    if not isinstance(kps, dict):
        raise malformed(DATASET, path, f"'kps' must map keypoint names to [x, y] or null, got {type(kps).__name__}")
    category = category or ann.get("category")
    if not category:
        raise malformed(DATASET, path, "no category given and no 'category' entry")

    names: List[str] = []
    pos: List[Tuple[float, float]] = []
    for name, xy in kps.items():
        if xy is None:
            continue  # invisible in this image: absent
        if not isinstance(xy, (list, tuple)) or len(xy) < 2:
            raise malformed(DATASET, path, f"keypoint {name!r} must be [x, y] or null, got {xy!r}")
        names.append(str(name))
        pos.append((to_float(xy[0], DATASET, path, f"x of keypoint {name!r}"),
                    to_float(xy[1], DATASET, path, f"y of keypoint {name!r}")))

    extra: Dict[str, object] = {}
    if "bndbox" in ann:
        box = ann["bndbox"]
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            raise malformed(DATASET, path, f"'bndbox' must be [xmin, ymin, xmax, ymax], got {box!r}")
        extra["bbox"] = tuple(to_float(v, DATASET, path, "'bndbox' value") for v in box)

    img = None
    if image_dir is not None:
        img = image_field(Path(image_dir) / f"{path.stem}.jpg", with_images, DATASET)
    try:
        return KeypointInstance(
            pos=np.asarray(pos, dtype=np.float64).reshape(-1, 2),
            names=names,
            category=str(category),
            image=img,
            id=path.stem,
            extra=extra,
        )
    except InvalidInputError as e:
        raise as_instance_error(DATASET, path, e) from e


def read_spair_pairs(
    root: PathLike, split: str = "test", categories: Optional[Iterable[str]] = None, layout: str = "large"
) -> List[Tuple[str, str, str]]:
    """The official pairs of ``split`` as ``(source id, target id, category)`` tuples, in file order."""
    split = check_split(split, SPLITS[:-1], SPLIT_ALIASES)
    base = _base(root)
    path = require_file(base / "Layout" / layout / f"{split}.txt", DATASET, "pair list")
    pairs = []
    for lineno, line in enumerate(read_text(path, DATASET).splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        head, sep, category = line.rpartition(":")
        parts = head.split("-")
        if not sep or len(parts) != 3 or not all(parts) or not category:
            raise malformed(
                DATASET, path, f"line {lineno} is not '<pair id>-<source>-<target>:<category>': {line!r}"
            )
        pairs.append((parts[1], parts[2], category))
    if categories is not None:
        wanted = {categories} if isinstance(categories, str) else set(categories)
        pairs = [p for p in pairs if p[2] in wanted]
    return pairs


def read_spair(
    root: PathLike,
    split: str = "train",
    categories: Optional[Iterable[str]] = None,
    with_images: bool = False,
    layout: str = "large",
) -> List[KeypointInstance]:
    r"""Read SPair-71k image instances.

    Args:
        root: the ``SPair-71k`` folder or the folder containing it.
        split: ``"train"`` (= ``"trn"``), ``"val"``, ``"test"``: the images used by that split's
            pairs; or ``"all"``: every annotated image.
        categories: category names (``"aeroplane"``, ...); all present ones when ``None``.
        with_images: load images as arrays; otherwise ``image`` holds the ``.jpg`` path when it exists.
        layout: ``"large"`` (standard) or ``"small"``.

    Returns:
        One :class:`KeypointInstance` per image, sorted by category then id; names are the SPair
        keypoint ids, ``null`` keypoints are absent.
    """
    split = check_split(split, SPLITS, SPLIT_ALIASES)
    base = _base(root)
    anno_dir = base / "ImageAnnotation"
    available = sorted(d.name for d in anno_dir.iterdir() if d.is_dir())
    if not available:
        raise not_found(DATASET, f"no <category>/*.json folders under {anno_dir}")
    chosen = select_categories(available, categories, DATASET, anno_dir)

    if split == "all":
        keys = sorted((c, p.stem) for c in chosen for p in (anno_dir / c).glob("*.json"))
    else:
        keys = sorted(
            {(cat, img) for src, trg, cat in read_spair_pairs(root, split, chosen, layout) for img in (src, trg)}
        )

    out = []
    for category, image in keys:
        path = require_file(anno_dir / category / f"{image}.json", DATASET, "image annotation listed in the pair list")
        out.append(
            read_spair_json(path, category=category, image_dir=base / "JPEGImages" / category, with_images=with_images)
        )
    return out
