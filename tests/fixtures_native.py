"""Tiny copies of the real benchmarks, written in their native on-disk formats.

Each ``make_*`` writes a small but valid dataset (2 categories x 4 instances, invisible keypoints
included except in Willow, where every keypoint is annotated) under ``root`` and returns ``root``,
which can be passed straight to the matching reader. Images are small solid-colour pictures
(64 x 64) so the keypoints, all inside ``[2, 62]``, fall on them.

The coordinates follow the closed formulas below (``*_point``), so tests can check parsed
positions without hard-coding tables.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np

PathLike = Union[str, Path]
IMAGE_SIZE = 64


def _write_image(path: Path, seed: int) -> None:
    """A tiny RGB picture (PNG or JPEG by suffix); skipped when Pillow is missing."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow ships with torchvision / matplotlib
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, size=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


# --------------------------------------------------------------------------- Willow ObjectClass
WILLOW_CATEGORIES = ("Car", "Duck")


def willow_point(cat: int, img: int, k: int) -> Tuple[float, float]:
    """Position of keypoint ``k`` of image ``img`` of category number ``cat``."""
    return 4.0 + 5 * k + img % 12, 8.0 + 4 * k + cat  # inside the 64 x 64 image for any number of images


def make_willow(root: PathLike, num_per_category: int = 4, with_images: bool = True) -> Path:
    """``<root>/WILLOW-ObjectClass/{Car,Duck}/image_000<i>.mat`` (``pts_coord`` 2 x 10) + ``.png``."""
    from scipy.io import savemat

    root = Path(root)
    for ci, cat in enumerate(WILLOW_CATEGORIES):
        folder = root / "WILLOW-ObjectClass" / cat
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(num_per_category):
            pts = np.array([willow_point(ci, i, k) for k in range(10)], dtype=np.float64).T  # 2 x 10
            savemat(folder / f"image_{i + 1:04d}.mat", {"pts_coord": pts})
            if with_images:
                _write_image(folder / f"image_{i + 1:04d}.png", seed=100 * ci + i)
    return root


# --------------------------------------------------------------------------- Pascal VOC Keypoints
VOC_KEYPOINTS: Dict[str, List[str]] = {
    "aeroplane": ["NoseTip", "Nose_Top", "L_WingTip", "R_WingTip", "Top_Rudder", "Bot_Rudder"],
    "car": ["L_HeadLight", "R_HeadLight", "L_F_WheelCenter", "R_F_WheelCenter", "L_B_WheelCenter", "R_B_WheelCenter"],
}
#: (category, annotation stem) of the 8 objects; the 3rd aeroplane image holds two of them.
VOC_OBJECTS: List[Tuple[str, str]] = [
    ("aeroplane", "2008_000001_1"), ("aeroplane", "2008_000002_1"),
    ("aeroplane", "2008_000003_1"), ("aeroplane", "2008_000003_2"),
    ("car", "2009_000001_1"), ("car", "2009_000002_1"), ("car", "2009_000003_1"), ("car", "2009_000004_1"),
]
#: Objects flagged truncated in the VOC2011 annotations (dropped by the standard filter).
VOC_TRUNCATED = {"2009_000004_1"}
#: The standard split written to voc2011_pairs.npz, per category.
VOC_SPLIT = {
    "train": {"aeroplane": ["2008_000001_1", "2008_000002_1", "2008_000003_1"],
              "car": ["2009_000001_1", "2009_000002_1", "2009_000004_1"]},
    "test": {"aeroplane": ["2008_000003_2"], "car": ["2009_000003_1"]},
}


def voc_point(cat: int, obj: int, k: int) -> Tuple[float, float]:
    return 6.0 + 8 * k + obj, 10.0 + 6 * k + 2 * cat


def voc_visible(obj: int, k: int) -> bool:
    return (k + obj) % 4 != 3


def make_pascal_voc(root: PathLike, with_split_file: bool = True, with_images: bool = True) -> Path:
    """``<root>/annotations/<cat>/*.xml``, ``<root>/TrainVal/VOCdevkit/VOC2011/{Annotations,JPEGImages}``
    and (optionally) ``<root>/voc2011_pairs.npz``. Invisible keypoints are written with
    ``visible="0"`` at ``(0, 0)``, the trap a reader must not fall into."""
    root = Path(root)
    voc = root / "TrainVal" / "VOCdevkit" / "VOC2011"
    (voc / "Annotations").mkdir(parents=True, exist_ok=True)
    objects_per_image: Dict[str, List[Tuple[str, str]]] = {}
    for cat_name, stem in VOC_OBJECTS:
        ci = sorted(VOC_KEYPOINTS).index(cat_name)
        oi = [s for c, s in VOC_OBJECTS if c == cat_name].index(stem)
        image_id, obj_idx = stem.rsplit("_", 1)
        kps = []
        for k, name in enumerate(VOC_KEYPOINTS[cat_name]):
            if voc_visible(oi, k):
                x, y = voc_point(ci, oi, k)
                kps.append(f'    <keypoint name="{name}" visible="1" x="{x:.2f}" y="{y:.2f}" z="0.00"/>')
            else:
                kps.append(f'    <keypoint name="{name}" visible="0" x="0.00" y="0.00" z="0.00"/>')
        xml = (
            '<?xml version="1.0" encoding="utf-8"?>\n<annotation>\n'
            f"  <image>{image_id}</image>\n  <voc_id>{obj_idx}</voc_id>\n  <category>{cat_name}</category>\n"
            '  <visible_bounds height="50.00" width="52.00" xmin="4.00" ymin="6.00"/>\n'
            "  <keypoints>\n" + "\n".join(kps) + "\n  </keypoints>\n</annotation>\n"
        )
        folder = root / "annotations" / cat_name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.xml").write_text(xml)
        objects_per_image.setdefault(image_id, []).append((cat_name, stem))

    for n, (image_id, objs) in enumerate(sorted(objects_per_image.items())):
        body = "".join(
            f"  <object><name>{c}</name><pose>Unspecified</pose>"
            f"<truncated>{int(s in VOC_TRUNCATED)}</truncated><occluded>0</occluded><difficult>0</difficult>"
            "<bndbox><xmin>4</xmin><ymin>6</ymin><xmax>56</xmax><ymax>56</ymax></bndbox></object>\n"
            for c, s in sorted(objs, key=lambda o: o[1])
        )
        (voc / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><folder>VOC2011</folder><filename>{image_id}.jpg</filename>\n{body}</annotation>\n"
        )
        if with_images:
            _write_image(voc / "JPEGImages" / f"{image_id}.jpg", seed=n)

    if with_split_file:
        arrays = {}
        for split, per_cat in VOC_SPLIT.items():
            arr = np.empty(len(per_cat), dtype=object)  # one array of names per category, as published
            for i, cat_name in enumerate(sorted(per_cat)):
                arr[i] = np.array([f"{cat_name}/{s}.xml" for s in per_cat[cat_name]], dtype=object)
            arrays[split] = arr
        np.savez(root / "voc2011_pairs.npz", **arrays)
    return root


# --------------------------------------------------------------------------- SPair-71k
SPAIR_IMAGES: Dict[str, List[str]] = {
    "aeroplane": ["2007_000001", "2007_000002", "2007_000003", "2007_000004"],
    "car": ["2010_000001", "2010_000002", "2010_000003", "2010_000004"],
}
SPAIR_NUM_KPS = 6
#: Pair lists: train uses images 0-1, val image 0 and 2, test images 2-3 (indices per category).
SPAIR_LAYOUT = {"trn": [(0, 1), (1, 0)], "val": [(0, 2)], "test": [(2, 3), (3, 2)]}


def spair_point(cat: int, img: int, k: int) -> Tuple[float, float]:
    return 5.0 + 7 * k + img, 9.0 + 5 * k + cat


def spair_visible(img: int, k: int) -> bool:
    return (k + img) % 3 != 2


def make_spair(root: PathLike, with_images: bool = True) -> Path:
    """``<root>/SPair-71k/{ImageAnnotation,JPEGImages}/<cat>/...`` and ``Layout/large/{trn,val,test}.txt``."""
    root = Path(root)
    base = root / "SPair-71k"
    for ci, (cat_name, imgs) in enumerate(sorted(SPAIR_IMAGES.items())):
        (base / "ImageAnnotation" / cat_name).mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(imgs):
            kps = {str(k): (list(spair_point(ci, i, k)) if spair_visible(i, k) else None) for k in range(SPAIR_NUM_KPS)}
            ann = {
                "filename": f"{img}.jpg", "image_width": IMAGE_SIZE, "image_height": IMAGE_SIZE, "image_depth": 3,
                "category": cat_name, "pose": "Unspecified", "truncated": 0, "occluded": 0, "difficult": 0,
                "bndbox": [2, 3, 60, 61], "kps": kps,
            }
            (base / "ImageAnnotation" / cat_name / f"{img}.json").write_text(json.dumps(ann))
            if with_images:
                _write_image(base / "JPEGImages" / cat_name / f"{img}.jpg", seed=10 * ci + i)
    layout = base / "Layout" / "large"
    layout.mkdir(parents=True, exist_ok=True)
    for split, pairs in SPAIR_LAYOUT.items():
        lines, n = [], 0
        for cat_name, imgs in sorted(SPAIR_IMAGES.items()):
            for s, t in pairs:
                n += 1
                lines.append(f"{n:06d}-{imgs[s]}-{imgs[t]}:{cat_name}")
        (layout / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


# --------------------------------------------------------------------------- CUB-200-2011
CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
CUB_PARTS = ["back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg", "left wing",
             "nape", "right eye", "right leg", "right wing", "tail", "throat"]
CUB_PER_CLASS = 4


def cub_image_id(cat: int, img: int) -> int:
    return cat * CUB_PER_CLASS + img + 1


def cub_point(cat: int, img: int, part: int) -> Tuple[float, float]:
    """``part`` is the 1-based CUB part id."""
    return 2.0 + 3 * part + img, 4.0 + 3 * part + cat


def cub_visible(img: int, part: int) -> bool:
    return (part + img) % 4 != 0


def cub_is_train(img: int) -> bool:
    return img % 2 == 0


def make_cub(root: PathLike, with_images: bool = True) -> Path:
    """``<root>/CUB_200_2011/`` with every index file, ``parts/`` and ``images/``."""
    root = Path(root)
    base = root / "CUB_200_2011"
    (base / "parts").mkdir(parents=True, exist_ok=True)
    images, labels, split, locs, boxes = [], [], [], [], []
    for ci, cls in enumerate(CUB_CLASSES):
        species = cls.split(".", 1)[1]
        for i in range(CUB_PER_CLASS):
            iid = cub_image_id(ci, i)
            rel = f"{cls}/{species}_{iid:04d}_{1000 + iid}.jpg"
            images.append(f"{iid} {rel}")
            labels.append(f"{iid} {ci + 1}")
            split.append(f"{iid} {int(cub_is_train(i))}")
            boxes.append(f"{iid} 2.0 3.0 58.0 57.0")
            for pid in range(1, len(CUB_PARTS) + 1):
                if cub_visible(i, pid):
                    x, y = cub_point(ci, i, pid)
                    locs.append(f"{iid} {pid} {x:.1f} {y:.1f} 1")
                else:
                    locs.append(f"{iid} {pid} 0.0 0.0 0")  # how CUB stores an invisible part
            if with_images:
                _write_image(base / "images" / rel, seed=iid)
    files = {
        "images.txt": images,
        "classes.txt": [f"{i + 1} {c}" for i, c in enumerate(CUB_CLASSES)],
        "image_class_labels.txt": labels,
        "train_test_split.txt": split,
        "bounding_boxes.txt": boxes,
        "parts/parts.txt": [f"{i + 1} {p}" for i, p in enumerate(CUB_PARTS)],
        "parts/part_locs.txt": locs,
    }
    for name, lines in files.items():
        (base / name).write_text("\n".join(lines) + "\n")
    return root


def make_all(root: PathLike) -> Dict[str, Path]:
    """All four tiny datasets under ``root``; returns name -> root to pass to the reader."""
    root = Path(root)
    return {
        "willow": make_willow(root / "willow"),
        "pascal_voc": make_pascal_voc(root / "PascalVOC"),
        "spair": make_spair(root / "spair"),
        "cub": make_cub(root / "cub"),
    }


# --------------------------------------------------------------------------- COCO keypoint files
COCO_CATEGORIES = ("bird", "fish")
#: Keypoint names in several spellings of left and right (the sides module reads them all).
COCO_KEYPOINTS = ("beak", "left_eye", "right_eye", "crown", "LeftWing", "RightWing", "tail", "belly")


def coco_point(cat: int, img: int, obj: int, k: int) -> Tuple[float, float]:
    """Position of keypoint ``k`` of object ``obj`` of image ``img`` of category number ``cat``:
    the points of a circle, turned a little per image and moved per object (all inside the image)."""
    angle = 2 * np.pi * k / len(COCO_KEYPOINTS) + 0.05 * img + 0.3 * cat
    radius = 14.0 + 2 * ((k * 3 + cat) % 4)
    return round(32 + radius * np.cos(angle) + 3 * obj, 2), round(32 + radius * np.sin(angle) - 2 * obj, 2)


def coco_flag(img: int, obj: int, k: int) -> int:
    """Visibility flag: 0 (not labelled) for about one point in seven, 1 (occluded) for another."""
    r = (img * 3 + obj * 5 + k) % 7
    return 0 if r == 0 else 1 if r == 3 else 2


def coco_objects(img: int) -> List[Tuple[int, int]]:
    """(category number, object number) of image ``img``: a bird in every image, a second bird in
    every fourth, a fish in every other one."""
    objects = [(0, 0)] + ([(0, 1)] if img % 4 == 1 else []) + ([(1, 0)] if img % 2 == 0 else [])
    return objects


def coco_document(num_images: int = 12, first_image: int = 0, flip_pairs: bool = False) -> Dict:
    """A COCO keypoint file's content: images ``first_image ..`` (ids from 1), their objects
    (:func:`coco_objects`), every keypoint of :data:`COCO_KEYPOINTS` with its flag. ``flip_pairs``
    declares the bird's left/right pairs (the fish declares none)."""
    categories = []
    for ci, name in enumerate(COCO_CATEGORIES):
        cat = {"id": ci + 1, "name": name, "supercategory": "animal", "keypoints": list(COCO_KEYPOINTS),
               "skeleton": [[1, 2], [1, 3], [2, 4], [3, 4], [5, 8], [6, 8], [7, 8]]}
        if flip_pairs:
            cat["flip_pairs"] = [["left_eye", "right_eye"], [5, 6]] if ci == 0 else []
        categories.append(cat)
    images, annotations = [], []
    for img in range(first_image, first_image + num_images):
        images.append({"id": img + 1, "file_name": f"img_{img:03d}.png", "width": IMAGE_SIZE, "height": IMAGE_SIZE})
        for ci, obj in coco_objects(img):
            values: List[float] = []
            for k in range(len(COCO_KEYPOINTS)):
                flag = coco_flag(img, obj, k)
                values += [*coco_point(ci, img, obj, k), flag] if flag else [0, 0, 0]
            annotations.append({"id": 1000 + len(annotations) + 100 * first_image, "image_id": img + 1,
                                "category_id": ci + 1, "keypoints": values,
                                "num_keypoints": sum(1 for v in values[2::3] if v), "bbox": [10.0, 8.0, 44.0, 46.0],
                                "area": 44.0 * 46.0, "iscrowd": 0})
    return {"info": {"description": "tiny COCO keypoint file of the tests"}, "images": images,
            "annotations": annotations, "categories": categories}


def make_coco(path: PathLike, num_images: int = 12, first_image: int = 0, flip_pairs: bool = False,
              with_images: bool = False) -> Path:
    """Write :func:`coco_document` to ``path`` (a ``.json`` file), and its images beside it with
    ``with_images``; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = coco_document(num_images, first_image, flip_pairs)
    path.write_text(json.dumps(doc))
    if with_images:
        for image in doc["images"]:
            _write_image(path.parent / image["file_name"], seed=image["id"])
    return path
