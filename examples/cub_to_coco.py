"""Convert CUB-200-2011's part annotations into a COCO keypoint file: a real-size "own data" file.

CUB-200-2011 (Wah et al., 2011): 11,788 bird photographs of 200 species, 15 named parts per bird
(beak, left eye, ...), the invisible ones marked so. This writes them in the format annotation
tools export (see docs/data.md), one category per species, so that the own-data path of pyg_ssgm
can be tried at full size:

    python examples/cub_to_coco.py data/CUB_200_2011 data/cub_keypoints.json
    python -m pyg_ssgm train --data data/cub_keypoints.json --preset cub --output-dir runs/cub_coco

    python examples/cub_to_coco.py data/CUB_200_2011 data/cub_coco --split-files   # CUB's own split:
    python -m pyg_ssgm train --data data/cub_coco --preset cub                      # train.json, test.json

What goes where: ``images[]`` are CUB's images (``file_name`` relative to ``CUB_200_2011/images``,
so pass ``--images data/CUB_200_2011/images`` when you have them), ``categories[]`` its species
(``keypoints``: the 15 part names, ``flip_pairs``: left / right eye, leg and wing), and
``annotations[]`` one bird per image: ``keypoints`` as x, y, v with v = 2 for a visible part and
0, 0, 0 for an invisible one, ``bbox`` CUB's box. The annotation id is the image id.

Get the data first (nothing is downloaded): CUB_200_2011.tgz from
https://www.vision.caltech.edu/datasets/cub_200_2011/, unpacked so that <root>/images.txt and
<root>/parts/ exist (the images themselves are not needed).
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

from pyg_ssgm.data import KeypointInstance
from pyg_ssgm.data.readers.common import read_table, resolve_root
from pyg_ssgm.data.readers.cub import DATASET, FOLDER, read_cub
from pyg_ssgm.errors import SSGMError

#: The parts a mirror image exchanges, declared so that mirror handling never depends on spelling.
FLIP_PAIRS = [["left eye", "right eye"], ["left leg", "right leg"], ["left wing", "right wing"]]


def coco_document(root: str, split: str = "all") -> Dict:
    """The COCO keypoint file of CUB's split ``split`` (``"train"``, ``"test"`` or ``"all"``)."""
    base = resolve_root(root, FOLDER, DATASET, markers=["images.txt"])
    parts = [name for _, name in read_table(base / "parts" / "parts.txt", 2, DATASET, last_col_rest=True)]
    classes = {name: int(cid) for cid, name in read_table(base / "classes.txt", 2, DATASET)}
    images = {Path(rel).stem: (int(iid), rel) for iid, rel in read_table(base / "images.txt", 2, DATASET)}
    instances: List[KeypointInstance] = read_cub(root, split)
    doc = {"info": {"description": f"CUB-200-2011 part annotations ({split}), converted by examples/cub_to_coco.py"},
           "images": [], "annotations": [],
           "categories": [{"id": cid, "name": name, "supercategory": "bird", "keypoints": parts, "skeleton": [],
                           "flip_pairs": FLIP_PAIRS} for name, cid in sorted(classes.items(), key=lambda c: c[1])]}
    for inst in instances:
        iid, rel = images[inst.id]
        where = {name: k for k, name in enumerate(inst.names)}
        keypoints: List[float] = []
        for name in parts:  # every part, in parts.txt order: x, y, v (0, 0, 0 when not labelled)
            keypoints += [*(round(v, 2) for v in inst.pos[where[name]].tolist()), 2] if name in where else [0, 0, 0]
        annotation = {"id": iid, "image_id": iid, "category_id": classes[inst.category], "keypoints": keypoints,
                      "num_keypoints": len(inst.names), "iscrowd": 0}
        if "bbox" in inst.extra:
            x0, y0, x1, y1 = inst.extra["bbox"]
            annotation.update(bbox=[x0, y0, x1 - x0, y1 - y0], area=(x1 - x0) * (y1 - y0))
        doc["images"].append({"id": iid, "file_name": rel})
        doc["annotations"].append(annotation)
    return doc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="the CUB_200_2011 folder (or the folder that holds it)")
    parser.add_argument("output", help="the .json file to write; with --split-files, the folder of train.json and "
                                       "test.json")
    parser.add_argument("--split-files", action="store_true", help="write CUB's official train / test split as "
                        "train.json and test.json (default: one file of every image, split later by image)")
    args = parser.parse_args(argv)
    try:
        outputs = ({Path(args.output) / "train.json": "train", Path(args.output) / "test.json": "test"}
                   if args.split_files else {Path(args.output): "all"})
        for path, split in outputs.items():
            doc = coco_document(args.root, split)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc))
            print(f"{path}: {len(doc['images'])} images, {len(doc['annotations'])} annotations, "
                  f"{len(doc['categories'])} categories")
    except SSGMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1 if isinstance(e, FileNotFoundError) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
