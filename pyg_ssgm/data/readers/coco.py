"""Reader of COCO keypoint files: your own data, as annotation tools export it.

One JSON file (the format of COCO's ``person_keypoints_*.json``, and of CVAT's "COCO Keypoints"
export)::

    {"images":      [{"id": 1, "file_name": "0001.jpg", ...}, ...],
     "categories":  [{"id": 1, "name": "bird",
                      "keypoints": ["beak", "left_eye", "right_eye", ...],   # the names, in order
                      "skeleton": [[1, 2], [1, 3], ...],                     # optional, 1-based
                      "flip_pairs": [["left_eye", "right_eye"], ...]}],     # optional (see below)
     "annotations": [{"id": 7, "image_id": 1, "category_id": 1,
                      "keypoints": [x1, y1, v1, x2, y2, v2, ...],            # 3 numbers per name
                      "bbox": [x, y, width, height]}, ...]}                  # optional

Each annotation is one :class:`~pyg_ssgm.data.KeypointInstance`: ``id`` the annotation id (as a
string), ``category`` the category's name, ``names`` its keypoint names, ``image`` the image file
(``images_dir / file_name`` with ``images_dir``, else ``file_name`` beside the JSON file; ``None``
when it is not there: geometry only), ``extra["image_id"]``, ``extra["bbox"] = (xmin, ymin, xmax,
ymax)`` from ``bbox``, ``extra["skeleton"]`` (pairs of names) and ``extra["sides"]`` (declared pairs).

Visibility flags ``v``: 0 means *not labelled*, so the point is **absent** whatever its ``x, y``
(tools write 0, 0); 2 means labelled and visible; 1 labelled but not visible (occluded): **present**
by default, because its position is annotated and what is matched is where a part is (COCO's own
keypoint evaluation counts it too); ``visible_only=True`` keeps ``v = 2`` only. An annotation
with no present keypoint (a COCO crowd box, a person seen from too far) is skipped. Categories
without ``keypoints`` (boxes only) and their annotations are skipped.

Mirror pairs: a category may declare its left/right counterparts as ``"flip_pairs"``, pairs of
keypoint names or of 1-based keypoint indices (as ``skeleton``); then the mirror pairs of training
and the mirror test exchange exactly those, whatever the names' spelling (``[]`` declares that
nothing swaps). Without it the sides are read from the names' spelling (:mod:`pyg_ssgm.data.sides`).

Every problem is a :class:`~pyg_ssgm.errors.MalformedAnnotationError` naming the file and the field
(``annotations[12] (id 40): 'keypoints' has 33 numbers, expected 3 x 15 = 45``); a missing file a
:class:`~pyg_ssgm.errors.DatasetNotFoundError`.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ...errors import DatasetNotFoundError, InvalidInputError, MalformedAnnotationError
from ..instance import KeypointInstance
from ..sides import SIDES_KEY, declared_sides
from .common import PathLike, image_field, not_found, where_to_get

DATASET = "coco"
#: Visibility flags of COCO: not labelled, labelled but not visible, labelled and visible.
NOT_LABELLED, OCCLUDED, VISIBLE = 0, 1, 2


class _File:
    """One COCO file being read: its path, for errors that name it and the field."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, where: str, problem: str, hint: bool = False) -> MalformedAnnotationError:
        """``<file>: <field>: <problem>``; ``hint`` adds what a COCO keypoint file holds."""
        return MalformedAnnotationError(f"COCO keypoint file {self.path}: {where}: {problem}."
                                        + (f" {where_to_get(DATASET)}" if hint else ""))

    def items(self, doc: Dict[str, Any], key: str) -> List[Any]:
        value = doc.get(key)
        if not isinstance(value, list):
            found = "is missing" if key not in doc else f"is a {type(value).__name__}, not a list"
            raise self.error(f"'{key}'", f"the top-level list {found}", hint=True)
        return value

    def entries(self, doc: Dict[str, Any], key: str) -> Iterator[Tuple[str, Dict[str, Any], Any]]:
        """``(where, object, id)`` for each object of the top-level list ``key``, its id checked
        to be unique; ``where`` names it in errors (``annotations[12] (id 40)``)."""
        seen = set()
        for k, item in enumerate(self.items(doc, key)):
            if not isinstance(item, dict):
                raise self.error(f"{key}[{k}]", f"must be an object, got {type(item).__name__} {item!r:.60}")
            ident = self.ident(item, "id", f"{key}[{k}]")
            where = f"{key}[{k}] (id {ident!r})"
            if ident in seen:
                raise self.error(where, f"id {ident!r} is used twice in '{key}'")
            seen.add(ident)
            yield where, item, ident

    def ident(self, item: Dict[str, Any], key: str, where: str) -> Any:
        """An id field: an integer or a string (JSON numbers with a fraction and booleans are refused)."""
        value = item.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.error(where, f"'{key}' must be an integer or a string, got {value!r}" if key in item
                             else f"'{key}' is missing")
        return value

    def text(self, item: Dict[str, Any], key: str, where: str) -> str:
        value = item.get(key)
        if not isinstance(value, str) or not value:
            raise self.error(where, f"'{key}' must be a non-empty string, got {value!r}" if key in item
                             else f"'{key}' is missing")
        return value

    def numbers(self, item: Dict[str, Any], key: str, where: str) -> List[float]:
        value = item.get(key)
        if not isinstance(value, list):
            raise self.error(where, f"'{key}' must be a list of numbers, got {value!r:.60}" if key in item
                             else f"'{key}' is missing")
        out = []
        for k, v in enumerate(value):
            try:  # JSON integers have no bound: float() of a huge one overflows
                number = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise self.error(where, f"'{key}'[{k}] is {v!r:.40}, not a finite number")
            out.append(number)
        return out


def _load(path: Path) -> Tuple[_File, Dict[str, Any]]:
    if path.is_dir():
        raise DatasetNotFoundError(f"{path} is a folder; give the COCO keypoint file (.json) itself.")
    if not path.exists():
        raise not_found(DATASET, f"COCO keypoint file {path} does not exist")
    file = _File(path)
    try:
        doc = json.loads(path.read_bytes().decode("utf-8-sig"))  # -sig: tools on Windows write a BOM
    except UnicodeDecodeError as e:
        raise file.error("text", f"not UTF-8 (byte {e.object[e.start]:#04x} at offset {e.start})") from None
    except json.JSONDecodeError as e:
        raise file.error("JSON", f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except RecursionError:  # [[[[...]]]] nested beyond Python's limit
        raise file.error("JSON", "nested too deeply") from None
    if not isinstance(doc, dict):
        raise file.error("top level", f"must be an object, got a {type(doc).__name__}", hint=True)
    return file, doc


class _Category:
    """A keypoint category: its name, keypoint names, skeleton and declared mirror pairs."""

    def __init__(self, file: _File, item: Dict[str, Any], where: str):
        self.name = file.text(item, "name", where)
        names = item["keypoints"]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise file.error(where, f"'keypoints' must be a non-empty list of keypoint names, got {names!r:.80}")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise file.error(where, f"'keypoints' repeats {repeated}: every keypoint needs its own name")
        self.names: List[str] = names
        self.skeleton = tuple(self._pairs(file, item.get("skeleton", []), f"{where}: 'skeleton'", by_name=False))
        self.sides = None
        if "flip_pairs" in item:
            pairs = self._pairs(file, item["flip_pairs"], f"{where}: 'flip_pairs'", by_name=True)
            try:
                self.sides = declared_sides(pairs, names)
            except InvalidInputError as e:
                raise file.error(f"{where}: 'flip_pairs'", str(e)) from None

    def _pairs(self, file: _File, value: Any, where: str, by_name: bool) -> List[Tuple[str, str]]:
        """``[[a, b], ...]`` of 1-based keypoint indices (or, ``by_name``, names too) as name pairs."""
        if not isinstance(value, list):
            raise file.error(where, f"must be a list of [a, b] pairs, got {value!r:.60}")
        out = []
        for k, pair in enumerate(value):
            if not isinstance(pair, list) or len(pair) != 2:
                raise file.error(where, f"entry {k} must be a pair [a, b], got {pair!r}")
            named = []
            for end in pair:
                if by_name and isinstance(end, str):
                    named.append(end)  # declared_sides checks that it is a keypoint
                elif isinstance(end, int) and not isinstance(end, bool) and 1 <= end <= len(self.names):
                    named.append(self.names[end - 1])
                else:
                    raise file.error(where, f"entry {k} {pair!r}: {end!r} is not a keypoint "
                                            f"{'name or ' if by_name else ''}index from 1 to {len(self.names)} "
                                            "(indices are 1-based, as in COCO's skeleton)")
            out.append((named[0], named[1]))
        return out


def _categories(file: _File, doc: Dict[str, Any]) -> Dict[Any, Optional[_Category]]:
    """Category id -> its :class:`_Category` (``None`` for a category without keypoints)."""
    out: Dict[Any, Optional[_Category]] = {}
    seen_names: Dict[str, str] = {}
    for where, item, cid in file.entries(doc, "categories"):
        out[cid] = _Category(file, item, where) if "keypoints" in item else None
        if out[cid] is not None:
            if out[cid].name in seen_names:
                raise file.error(where, f"the name {out[cid].name!r} is also that of {seen_names[out[cid].name]}: "
                                        "pairs are made within a category name, so it must be unique")
            seen_names[out[cid].name] = where
    if not any(out.values()):
        raise file.error("'categories'", "no category declares 'keypoints': this is not a COCO keypoint file",
                         hint=True)
    return out


def _images(file: _File, doc: Dict[str, Any]) -> Dict[Any, str]:
    """Image id -> its ``file_name``."""
    out: Dict[Any, str] = {}
    for where, item, iid in file.entries(doc, "images"):
        out[iid] = file.text(item, "file_name", where)
    return out


def _box(file: _File, item: Dict[str, Any], where: str) -> Optional[Tuple[float, float, float, float]]:
    if "bbox" not in item:
        return None
    box = file.numbers(item, "bbox", where)
    if len(box) != 4 or box[2] < 0 or box[3] < 0:
        raise file.error(where, f"'bbox' must be [x, y, width, height] with width, height >= 0, got {item['bbox']!r}")
    x, y, w, h = box
    return (x, y, x + w, y + h)


def read_coco_file(path: PathLike, images_dir: Optional[PathLike] = None, with_images: bool = False,
                   visible_only: bool = False, categories: Optional[Iterable[str]] = None) -> List[KeypointInstance]:
    r"""Every annotation of a COCO keypoint file as a :class:`KeypointInstance`, in file order.

    Args:
        path: the ``.json`` file.
        images_dir: the folder ``images[].file_name`` is relative to (default: the file's folder).
        with_images: decode the images into arrays (they must exist); otherwise ``image`` holds the
            path when the file is there, else ``None``.
        visible_only: keep the points labelled visible (``v = 2``) only; by default occluded but
            labelled points (``v = 1``) are present too.
        categories: keep the annotations of these category names only (all when ``None``).

    See the module docstring for the fields and the errors.
    """
    path = Path(os.path.expanduser(os.fspath(path)))
    file, doc = _load(path)
    cats, images = _categories(file, doc), _images(file, doc)
    if categories is not None:
        wanted = {categories} if isinstance(categories, str) else set(categories)
        missing = wanted - {c.name for c in cats.values() if c is not None}
        if missing:
            raise not_found(DATASET, f"categories {sorted(missing)} are not in {path}")
    base = Path(os.path.expanduser(os.fspath(images_dir))) if images_dir is not None else path.parent
    least = VISIBLE if visible_only else OCCLUDED
    out: List[KeypointInstance] = []
    for where, item, aid in file.entries(doc, "annotations"):
        cid, iid = file.ident(item, "category_id", where), file.ident(item, "image_id", where)
        if cid not in cats:
            raise file.error(where, f"'category_id' {cid!r} is not the id of any of 'categories'")
        if iid not in images:
            raise file.error(where, f"'image_id' {iid!r} is not the id of any of 'images'")
        cat = cats[cid]
        if cat is None or (categories is not None and cat.name not in wanted):
            continue
        values = file.numbers(item, "keypoints", where)
        if len(values) != 3 * len(cat.names):
            raise file.error(where, f"'keypoints' has {len(values)} numbers, expected 3 x {len(cat.names)} = "
                                    f"{3 * len(cat.names)} (x, y, v for each keypoint of {cat.name!r})")
        flags = values[2::3]
        bad = [(n, v) for n, v in zip(cat.names, flags) if v not in (NOT_LABELLED, OCCLUDED, VISIBLE)]
        if bad:
            raise file.error(where, f"visibility flag of {bad[0][0]!r} is {bad[0][1]:g}; COCO's flags are 0 (not "
                                    "labelled), 1 (labelled, not visible) and 2 (visible)")
        keep = [j for j, v in enumerate(flags) if v >= least]
        if not keep:
            continue  # nothing labelled: no graph to match
        extra: Dict[str, Any] = {"image_id": iid, "skeleton": cat.skeleton}
        box = _box(file, item, where)
        if box is not None:
            extra["bbox"] = box
        if cat.sides is not None:
            extra[SIDES_KEY] = cat.sides
        try:
            out.append(KeypointInstance(
                pos=[(values[3 * j], values[3 * j + 1]) for j in keep], names=[cat.names[j] for j in keep],
                category=cat.name, image=image_field(base / images[iid], with_images, DATASET), id=str(aid),
                extra=extra))
        except InvalidInputError as e:
            raise file.error(where, str(e)) from None
    return out


def image_ids(instances: Sequence[KeypointInstance]) -> List[Any]:
    """The image ids of ``instances`` (read by :func:`read_coco_file`), each once, in order."""
    return list(dict.fromkeys(inst.extra["image_id"] for inst in instances))


__all__ = ["read_coco_file", "image_ids", "DATASET", "NOT_LABELLED", "OCCLUDED", "VISIBLE"]
