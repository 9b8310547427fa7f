"""Datasets by name: the embedded synthetic data, a real benchmark read from a local root, or COCO
keypoint files of your own."""
from __future__ import annotations

from typing import Dict, List, Optional

from ..errors import InvalidInputError
from .instance import KeypointInstance
from .readers import canonical_name, coco_splits, load_dataset
from .synthetic import SyntheticConfig, load_synthetic


# Share of a real dataset's training instances held out for validation, when the dataset has
# no validation split of its own: the last ones of each category, so the choice is fixed.
VAL_FRACTION = 0.1
# Willow has 20 training images per class: 10 % would leave 1 validation pair per class, too few
# to choose anything; 30 % leaves 6 images, 15 pairs per class (75 in all).
VAL_FRACTIONS = {"willow": 0.3}


def _hold_out(instances: List[KeypointInstance], fraction: float) -> Dict[str, List[KeypointInstance]]:
    by_cat: Dict[str, List[KeypointInstance]] = {}
    for inst in instances:
        by_cat.setdefault(inst.category, []).append(inst)
    train, val = [], []
    for cat in sorted(by_cat):
        items = by_cat[cat]
        n_val = int(round(len(items) * fraction)) if len(items) >= 4 else 0
        train += items[: len(items) - n_val]
        val += items[len(items) - n_val:]
    return {"train": train, "val": val}


def load_splits(dataset: str = "synthetic", root: Optional[str] = None,
                synthetic: Optional[SyntheticConfig] = None, seed: int = 0,
                **reader_kwargs) -> Dict[str, List[KeypointInstance]]:
    """``{"train", "val", "test"}`` lists of instances of ``dataset``.

    The synthetic data has its own three splits (fixed by ``synthetic.seed``). A real benchmark is
    read from ``root`` with its standard train/test split; its validation split is the last
    ``VAL_FRACTION`` (``VAL_FRACTIONS[dataset]`` where set) of each category's training
    instances (SPair-71k uses its own ``val``). ``"coco"`` reads your own COCO keypoint file
    ``root`` (or a folder of ``train.json`` / ``val.json`` / ``test.json``) and cuts the splits it
    lacks by image, seeded by ``seed`` (the run's seed; see
    :mod:`~pyg_ssgm.data.readers.coco_splits`, whose ``coco_splits`` also takes separate files and
    returns the record of the split). ``reader_kwargs`` go to the reader (``images`` for COCO).
    """
    if dataset == "synthetic":
        if root is not None:
            raise InvalidInputError("the synthetic dataset is generated in memory; do not pass a root.")
        return {split: load_synthetic(split, synthetic) for split in ("train", "val", "test")}
    if root is None:
        raise InvalidInputError(f"dataset {dataset!r} is read from disk: pass its root directory (--root).")
    name = canonical_name(dataset)
    if name == "coco":
        return coco_splits(root, seed=seed, **reader_kwargs)[0]
    test = load_dataset(name, root, "test", **reader_kwargs)
    if name == "spair":
        return {"train": load_dataset(name, root, "train", **reader_kwargs),
                "val": load_dataset(name, root, "val", **reader_kwargs), "test": test}
    fraction = VAL_FRACTIONS.get(name, VAL_FRACTION)
    return {**_hold_out(load_dataset(name, root, "train", **reader_kwargs), fraction), "test": test}
