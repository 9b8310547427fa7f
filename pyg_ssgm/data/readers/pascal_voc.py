"""Reader of Pascal VOC Keypoints (VOC2011 images, Berkeley keypoint annotations of Bourdev et al.).

Layout (as the archives unpack, and as pygmtools expects)::

    <root>/annotations/<category>/<image>_<k>.xml      # Berkeley keypoints of object k of <image>
    <root>/TrainVal/VOCdevkit/VOC2011/JPEGImages/<image>.jpg
    <root>/TrainVal/VOCdevkit/VOC2011/Annotations/<image>.xml   # VOC boxes + difficult/occluded/truncated
    <root>/voc2011_pairs.npz                            # standard split (from PCA-GM / ThinkMatch)

A Berkeley XML looks like::

    <annotation><image>2007_000033</image><voc_id>2</voc_id><category>aeroplane</category>
      <visible_bounds height="26" width="61" xmin="421" ymin="200"/>
      <keypoints><keypoint name="NoseTip" visible="1" x="421.1" y="217.6" z="0"/> ...</keypoints>
    </annotation>

Keypoints with ``visible="0"`` are dropped (absent, never placed at ``(0, 0)``); a missing
``visible`` attribute means visible. Coordinates stay in image pixels; the visible bounds are kept
in ``extra["bbox"]`` as ``(xmin, ymin, xmax, ymax)`` for whoever wants to crop.

Split: the standard one is ``voc2011_pairs.npz`` (keys ``train`` and ``test``, each one list of
``"<category>/<stem>.xml"`` per category), used by PCA-GM, BB-GM, ThinkMatch, pygmtools and PyG.
Like them we then drop objects marked difficult, occluded or truncated in the VOC2011 annotations
and the uncurated ``person`` annotations of 2009-2011 images (``filter_difficult=True``).
If the ``.npz`` file is absent we fall back to a deterministic split and warn: an image goes to
test when ``crc32(image id) / 2**32 < 0.2`` (about the 7020 / 1682 ratio of the standard split).
All objects of one image share a side, and a file's side never depends on which other files exist.
"""
from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
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
    load_npz,
    malformed,
    not_found,
    require_file,
    resolve_root,
    select_categories,
    stable_fraction,
    to_float,
)

DATASET = "pascal_voc"
FOLDER = "PascalVOC"
VOC_SUBDIR = Path("TrainVal") / "VOCdevkit" / "VOC2011"
SPLIT_FILE = "voc2011_pairs.npz"
#: Test fraction of the fallback split, close to the standard 1682 / (7020 + 1682).
FALLBACK_TEST_FRACTION = 0.2
CATEGORIES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]


def _parse_xml(path: Path) -> ET.Element:
    try:
        return ET.parse(str(path)).getroot()
    except ET.ParseError as e:
        raise malformed(DATASET, path, f"invalid XML ({e})") from e


def read_pascal_voc_xml(
    path: PathLike, category: Optional[str] = None, image_dir: Optional[PathLike] = None, with_images: bool = False
) -> KeypointInstance:
    """Read one Berkeley keypoint XML file into a :class:`KeypointInstance`.

    ``category`` defaults to the XML's ``<category>``; ``image_dir`` is the VOC2011 ``JPEGImages``
    folder (the image is looked up there as ``<image>.jpg``).
    """
    path = Path(path)
    root = _parse_xml(path)
    image = root.findtext("image")
    if image is None or not image.strip():
        raise malformed(DATASET, path, "missing <image> element")
    category = category or (root.findtext("category") or "").strip()
    if not category:
        raise malformed(DATASET, path, "missing <category> element")
    kps = root.find("keypoints")
    if kps is None:
        raise malformed(DATASET, path, "missing <keypoints> element")

    names: List[str] = []
    pos: List[Tuple[float, float]] = []
    for i, kp in enumerate(kps.findall("keypoint")):
        attr = kp.attrib
        if "name" not in attr or "x" not in attr or "y" not in attr:
            raise malformed(DATASET, path, f"keypoint #{i} lacks one of the attributes name, x, y: {attr}")
        if str(attr.get("visible", "1")).strip() in ("0", "0.0", "false", "False"):
            continue  # invisible keypoints are absent, not (0, 0)
        names.append(attr["name"])
        pos.append(
            (
                to_float(attr["x"], DATASET, path, f"x of keypoint {attr['name']!r}"),
                to_float(attr["y"], DATASET, path, f"y of keypoint {attr['name']!r}"),
            )
        )

    extra: Dict[str, object] = {"image_name": image.strip()}
    bounds = root.find("visible_bounds")
    if bounds is not None:
        try:
            b = {k: float(bounds.attrib[k]) for k in ("xmin", "ymin", "width", "height")}
        except (KeyError, ValueError) as e:
            raise malformed(DATASET, path, f"<visible_bounds> needs numeric xmin, ymin, width, height ({e})") from e
        extra["bbox"] = (b["xmin"], b["ymin"], b["xmin"] + b["width"], b["ymin"] + b["height"])
    voc_id = root.findtext("voc_id")
    if voc_id is not None and voc_id.strip():
        extra["voc_id"] = int(to_float(voc_id, DATASET, path, "<voc_id>"))

    img = None
    if image_dir is not None:
        img = image_field(Path(image_dir) / f"{image.strip()}.jpg", with_images, DATASET)
    try:
        return KeypointInstance(
            pos=np.asarray(pos, dtype=np.float64).reshape(-1, 2),
            names=names,
            category=category,
            image=img,
            id=path.stem,
            extra=extra,
        )
    except InvalidInputError as e:
        raise as_instance_error(DATASET, path, e) from e


def _flatten(entries) -> List[str]:
    """The ``.npz`` holds one array of names per category; accept a flat list too."""
    out: List[str] = []
    for e in entries:
        if isinstance(e, (str, np.str_, bytes)):
            out.append(e.decode() if isinstance(e, bytes) else str(e))
        else:
            out.extend(_flatten(e))
    return out


def _standard_split(split_file: Path, split: str) -> List[str]:
    """The ``"<category>/<stem>.xml"`` entries of ``split`` (``"train"``/``"test"``/``"all"``)."""
    # The published file stores object arrays (one array of names per category), which numpy
    # keeps as pickles; load_npz rebuilds those without ever running code named in the file.
    arrays = load_npz(split_file, DATASET)
    keys = ("train", "test") if split == "all" else (split,)
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise malformed(DATASET, split_file, f"no {missing} array (found {sorted(arrays)})")
    try:
        return [name for k in keys for name in _flatten(arrays[k])]
    except TypeError as e:  # an entry that is neither a name nor a list of names
        raise malformed(DATASET, split_file, f"entries must be file names or arrays of them ({e})") from None


def _fallback_split(anno_dir: Path, split: str) -> List[str]:
    out = []
    for cat_dir in sorted(d for d in anno_dir.iterdir() if d.is_dir()):
        for xml in sorted(cat_dir.glob("*.xml")):
            image_id = xml.stem.rsplit("_", 1)[0]  # all objects of one image on the same side
            is_test = stable_fraction(image_id) < FALLBACK_TEST_FRACTION
            if split == "all" or (split == "test") == is_test:
                out.append(f"{cat_dir.name}/{xml.name}")
    return out


def _keep_object(entry: str, category: str, voc_anno_dir: Path) -> bool:
    """The standard filter: no difficult / occluded / truncated objects, no uncurated persons."""
    stem = Path(entry).stem
    image_id, _, obj_idx = stem.rpartition("_")
    # README of the Berkeley annotations: person labels of 2009-2011 images are not curated.
    if category == "person" and image_id[:4].isdigit() and int(image_id[:4]) > 2008:
        return False
    voc_xml = require_file(voc_anno_dir / f"{image_id}.xml", DATASET, "VOC2011 annotation (needed by filter_difficult)")
    objects = _parse_xml(voc_xml).findall("object")
    if not obj_idx.isdigit() or not 1 <= int(obj_idx) <= len(objects):
        raise malformed(
            DATASET, voc_xml, f"has {len(objects)} <object>s but the keypoint file {entry} refers to object {obj_idx}"
        )
    obj = objects[int(obj_idx) - 1]  # the suffix of the keypoint file is the 1-based object index
    for flag in ("difficult", "occluded", "truncated"):
        text = obj.findtext(flag)
        if text is not None and text.strip() not in ("", "0"):
            return False
    return True


def pascal_voc_split_entries(
    root: PathLike,
    split: str = "train",
    categories: Optional[Iterable[str]] = None,
    filter_difficult: bool = True,
    split_file: Optional[PathLike] = None,
) -> List[str]:
    """The ``"<category>/<stem>.xml"`` annotation entries of ``split``, after filtering."""
    split = check_split(split, ("train", "test", "all"))
    base = resolve_root(root, FOLDER, DATASET, markers=["annotations"])
    anno_dir = base / "annotations"
    split_path = Path(split_file) if split_file is not None else base / SPLIT_FILE
    if split_path.exists():
        entries = _standard_split(split_path, split)
    elif split_file is not None:
        raise not_found(DATASET, f"split file {split_path} does not exist")
    else:
        warnings.warn(
            f"{split_path} not found: using pyg_ssgm's deterministic fallback split of Pascal VOC "
            f"(crc32 of the image id, {FALLBACK_TEST_FRACTION:.0%} test), which is NOT the standard "
            "split; results are not comparable with the literature.",
            UserWarning,
            stacklevel=3,
        )
        entries = _fallback_split(anno_dir, split)

    available = sorted(d.name for d in anno_dir.iterdir() if d.is_dir())
    chosen = set(select_categories(available, categories, DATASET, anno_dir))
    voc_anno_dir = base / VOC_SUBDIR / "Annotations"
    out = []
    for entry in entries:
        category = entry.replace("\\", "/").split("/")[0]
        if category not in chosen:
            continue
        if filter_difficult and not _keep_object(entry, category, voc_anno_dir):
            continue
        out.append(entry)
    return out


def read_pascal_voc(
    root: PathLike,
    split: str = "train",
    categories: Optional[Iterable[str]] = None,
    with_images: bool = False,
    filter_difficult: bool = True,
    split_file: Optional[PathLike] = None,
) -> List[KeypointInstance]:
    r"""Read Pascal VOC Keypoints instances (one per annotated object).

    Args:
        root: the ``PascalVOC`` folder (containing ``annotations/``) or the folder containing it.
        split: ``"train"``, ``"test"`` or ``"all"``; from ``<root>/voc2011_pairs.npz`` when present,
            otherwise the documented fallback split (with a warning).
        categories: VOC class names (``"aeroplane"``, ...); all present ones when ``None``.
        with_images: load images as arrays; otherwise ``image`` holds the ``.jpg`` path when it exists.
        filter_difficult: drop difficult / occluded / truncated objects and uncurated persons as the
            standard protocol does (needs ``TrainVal/VOCdevkit/VOC2011/Annotations``).
        split_file: another split ``.npz`` in the same format.

    Returns:
        :class:`KeypointInstance` s with the Berkeley keypoint names, only visible keypoints,
        ``id`` the annotation file stem (``"2007_000033_2"``) and ``extra["bbox"]``.
    """
    base = resolve_root(root, FOLDER, DATASET, markers=["annotations"])
    image_dir = base / VOC_SUBDIR / "JPEGImages"
    out = []
    for entry in pascal_voc_split_entries(root, split, categories, filter_difficult, split_file):
        path = base / "annotations" / entry
        require_file(path, DATASET, "keypoint annotation listed in the split")
        category = entry.replace("\\", "/").split("/")[0]
        out.append(read_pascal_voc_xml(path, category=category, image_dir=image_dir, with_images=with_images))
    return out
