"""Readers of the real benchmarks, on tiny datasets written in their native formats."""
import json
import warnings

import numpy as np
import pytest
import torch

from fixtures_native import (
    CUB_CLASSES,
    CUB_PARTS,
    CUB_PER_CLASS,
    SPAIR_IMAGES,
    SPAIR_NUM_KPS,
    VOC_KEYPOINTS,
    VOC_OBJECTS,
    VOC_SPLIT,
    VOC_TRUNCATED,
    cub_is_train,
    cub_point,
    cub_visible,
    make_coco,
    make_cub,
    make_pascal_voc,
    make_spair,
    make_willow,
    spair_point,
    spair_visible,
    voc_point,
    voc_visible,
    willow_point,
)
from pyg_ssgm.data import KeypointInstance
from pyg_ssgm.data.readers import (
    READERS,
    canonical_name,
    load_dataset,
    read_cub,
    read_pascal_voc,
    read_spair,
    read_spair_pairs,
    read_willow,
)
from pyg_ssgm.errors import DatasetNotFoundError, InvalidInputError, MalformedAnnotationError


def by_id(instances):
    return {(inst.category, inst.id): inst for inst in instances}


def assert_point(inst: KeypointInstance, name: str, xy):
    i = inst.names.index(name)
    assert torch.allclose(inst.pos[i], torch.tensor(xy, dtype=inst.pos.dtype), atol=1e-4), (name, inst.pos[i], xy)


# --------------------------------------------------------------------------------- Willow
def test_willow_positions_names_and_images(tmp_path):
    root = make_willow(tmp_path)
    insts = read_willow(root, split="all")
    assert len(insts) == 8
    inst = by_id(insts)[("Duck", "image_0003")]
    assert inst.names == [f"kp{k}" for k in range(10)]
    for k in range(10):
        assert_point(inst, f"kp{k}", willow_point(1, 2, k))
    assert inst.image.endswith("image_0003.png")
    # the folder itself works as root too, and images load as arrays
    inst2 = read_willow(root / "WILLOW-ObjectClass", split="all", categories=["Car"], with_images=True)[0]
    assert inst2.category == "Car" and inst2.image.shape == (64, 64, 3) and inst2.image.dtype == np.uint8


def test_willow_split_first_n_sorted(tmp_path):
    root = make_willow(tmp_path)
    train = read_willow(root, "train", train_num=3)
    test = read_willow(root, "test", train_num=3)
    assert [i.id for i in train if i.category == "Car"] == ["image_0001", "image_0002", "image_0003"]
    assert [(i.category, i.id) for i in test] == [("Car", "image_0004"), ("Duck", "image_0004")]
    # the standard 20 training images per class: the tiny set is all train
    assert len(read_willow(root, "train")) == 8 and read_willow(root, "test") == []


def test_willow_excludes_face_0160(tmp_path):
    from scipy.io import savemat

    face = tmp_path / "WILLOW-ObjectClass" / "Face"
    face.mkdir(parents=True)
    for name in ("image_0159", "image_0160", "image_0161"):
        savemat(face / f"{name}.mat", {"pts_coord": np.ones((2, 10))})
    assert [i.id for i in read_willow(tmp_path, "all")] == ["image_0159", "image_0161"]


def test_willow_malformed(tmp_path):
    from scipy.io import savemat

    root = make_willow(tmp_path, with_images=False)
    bad = root / "WILLOW-ObjectClass" / "Car" / "image_0002.mat"
    savemat(bad, {"something_else": np.ones((2, 10))})
    with pytest.raises(MalformedAnnotationError, match="image_0002.mat.*pts_coord"):
        read_willow(root, "all")
    savemat(bad, {"pts_coord": np.ones((3, 10))})
    with pytest.raises(MalformedAnnotationError, match="image_0002.mat.*2 x K"):
        read_willow(root, "all")
    bad.write_bytes(b"not a mat file at all")
    with pytest.raises(MalformedAnnotationError, match="image_0002.mat"):
        read_willow(root, "all")


def test_willow_bad_arguments(tmp_path):
    root = make_willow(tmp_path, with_images=False)
    with pytest.raises(InvalidInputError, match="split"):
        read_willow(root, "validation")
    with pytest.raises(DatasetNotFoundError, match="Motorbike"):
        read_willow(root, "all", categories=["Motorbike"])


# --------------------------------------------------------------------------------- Pascal VOC
def test_pascal_voc_standard_split_and_visibility(tmp_path):
    root = make_pascal_voc(tmp_path / "PascalVOC")
    train = read_pascal_voc(root, "train")
    test = read_pascal_voc(tmp_path, "test")  # parent of PascalVOC/ works too
    expected_train = [s for c in sorted(VOC_SPLIT["train"]) for s in VOC_SPLIT["train"][c] if s not in VOC_TRUNCATED]
    assert [i.id for i in train] == expected_train
    assert [i.id for i in test] == ["2008_000003_2", "2009_000003_1"]

    cats = sorted(VOC_KEYPOINTS)
    for inst in train + test:
        ci = cats.index(inst.category)
        oi = [s for c, s in VOC_OBJECTS if c == inst.category].index(inst.id)
        names = VOC_KEYPOINTS[inst.category]
        visible = [n for k, n in enumerate(names) if voc_visible(oi, k)]
        assert inst.names == visible and len(visible) < len(names)  # invisible ones are absent
        for k, n in enumerate(names):
            if voc_visible(oi, k):
                assert_point(inst, n, voc_point(ci, oi, k))
        assert not (inst.pos == 0).all(dim=1).any()  # never (0, 0)
        assert inst.extra["bbox"] == (4.0, 6.0, 56.0, 56.0)
        assert inst.image.endswith(f"{inst.id.rsplit('_', 1)[0]}.jpg")


def test_pascal_voc_filter_and_categories(tmp_path):
    root = make_pascal_voc(tmp_path)
    unfiltered = read_pascal_voc(root, "train", categories=["car"], filter_difficult=False)
    assert [i.id for i in unfiltered] == VOC_SPLIT["train"]["car"]
    assert len(read_pascal_voc(root, "all")) == len(VOC_OBJECTS) - len(VOC_TRUNCATED)
    # the filter needs the VOC2011 annotations and says so
    (root / "TrainVal" / "VOCdevkit" / "VOC2011" / "Annotations" / "2009_000001.xml").unlink()
    with pytest.raises(DatasetNotFoundError, match="2009_000001.xml.*voc2011"):
        read_pascal_voc(root, "train", categories=["car"])
    assert len(read_pascal_voc(root, "train", categories=["car"], filter_difficult=False)) == 3


def test_pascal_voc_fallback_split(tmp_path):
    root = make_pascal_voc(tmp_path, with_split_file=False)
    with pytest.warns(UserWarning, match="fallback"):
        train = read_pascal_voc(root, "train", filter_difficult=False)
    with pytest.warns(UserWarning, match="fallback"):
        test = read_pascal_voc(root, "test", filter_difficult=False)
    with pytest.warns(UserWarning):
        again = read_pascal_voc(root, "train", filter_difficult=False)
    train_ids, test_ids = {i.id for i in train}, {i.id for i in test}
    assert train_ids.isdisjoint(test_ids)
    assert train_ids | test_ids == {s for _, s in VOC_OBJECTS}
    assert [i.id for i in again] == [i.id for i in train]
    # objects of one image stay on one side
    assert ("2008_000003_1" in train_ids) == ("2008_000003_2" in train_ids)


def test_pascal_voc_malformed(tmp_path):
    root = make_pascal_voc(tmp_path)
    bad = root / "annotations" / "aeroplane" / "2008_000002_1.xml"
    bad.write_text("<annotation><image>2008_000002</image><keypoints><keypoint name='a'")
    with pytest.raises(MalformedAnnotationError, match="2008_000002_1.xml.*invalid XML"):
        read_pascal_voc(root, "train")
    bad.write_text("<annotation><image>2008_000002</image><keypoints>"
                   "<keypoint name='NoseTip' visible='1' x='abc' y='3'/></keypoints></annotation>")
    with pytest.raises(MalformedAnnotationError, match="2008_000002_1.xml.*not a number"):
        read_pascal_voc(root, "train")
    bad.write_text("<annotation><image>2008_000002</image><keypoints>"
                   "<keypoint name='NoseTip' x='1' y='3'/><keypoint name='NoseTip' x='2' y='3'/>"
                   "</keypoints></annotation>")
    with pytest.raises(MalformedAnnotationError, match="2008_000002_1.xml.*unique"):
        read_pascal_voc(root, "train")
    bad.write_text("<annotation><image>2008_000002</image></annotation>")
    with pytest.raises(MalformedAnnotationError, match="2008_000002_1.xml.*<keypoints>"):
        read_pascal_voc(root, "train")
    (root / "voc2011_pairs.npz").write_bytes(b"garbage")
    with pytest.raises(MalformedAnnotationError, match="voc2011_pairs.npz"):
        read_pascal_voc(root, "train")


# --------------------------------------------------------------------------------- SPair-71k
def test_spair_split_images_and_visibility(tmp_path):
    root = make_spair(tmp_path)
    train, val, test = (read_spair(root, s) for s in ("train", "val", "test"))
    ids = lambda insts: sorted((i.category, i.id) for i in insts)  # noqa: E731
    assert ids(train) == sorted((c, imgs[j]) for c, imgs in SPAIR_IMAGES.items() for j in (0, 1))
    assert ids(val) == sorted((c, imgs[j]) for c, imgs in SPAIR_IMAGES.items() for j in (0, 2))
    assert ids(test) == sorted((c, imgs[j]) for c, imgs in SPAIR_IMAGES.items() for j in (2, 3))
    assert len(read_spair(root / "SPair-71k", "all")) == 8

    cats = sorted(SPAIR_IMAGES)
    for inst in test:
        ci, ii = cats.index(inst.category), SPAIR_IMAGES[inst.category].index(inst.id)
        assert inst.names == [str(k) for k in range(SPAIR_NUM_KPS) if spair_visible(ii, k)]
        for k in range(SPAIR_NUM_KPS):
            if spair_visible(ii, k):
                assert_point(inst, str(k), spair_point(ci, ii, k))
        assert inst.extra["bbox"] == (2.0, 3.0, 60.0, 61.0)
        assert inst.image.endswith(f"{inst.category}/{inst.id}.jpg")
    assert read_spair(root, "trn", categories=["car"], with_images=True)[0].image.shape == (64, 64, 3)


def test_spair_pairs(tmp_path):
    root = make_spair(tmp_path)
    pairs = read_spair_pairs(root, "test", categories=["aeroplane"])
    imgs = SPAIR_IMAGES["aeroplane"]
    assert pairs == [(imgs[2], imgs[3], "aeroplane"), (imgs[3], imgs[2], "aeroplane")]
    assert len(read_spair_pairs(root, "train")) == 4


def test_spair_malformed(tmp_path):
    root = make_spair(tmp_path)
    ann = root / "SPair-71k" / "ImageAnnotation" / "car" / f"{SPAIR_IMAGES['car'][0]}.json"
    ann.write_text(json.dumps({"category": "car", "bndbox": [0, 0, 1, 1]}))
    with pytest.raises(MalformedAnnotationError, match=f"{SPAIR_IMAGES['car'][0]}.json.*'kps'"):
        read_spair(root, "train")
    ann.write_text("{not json")
    with pytest.raises(MalformedAnnotationError, match="invalid JSON"):
        read_spair(root, "train")
    ann.write_text(json.dumps({"kps": {"0": [1.0]}}))
    with pytest.raises(MalformedAnnotationError, match="keypoint '0'"):
        read_spair(root, "train")
    layout = root / "SPair-71k" / "Layout" / "large" / "val.txt"
    layout.write_text("000001-2007_000001-2007_000003:aeroplane\nbroken line\n")
    with pytest.raises(MalformedAnnotationError, match="val.txt.*line 2"):
        read_spair(root, "val")


# --------------------------------------------------------------------------------- CUB
def test_cub_split_positions_visibility(tmp_path):
    root = make_cub(tmp_path)
    train, test = read_cub(root, "train"), read_cub(root / "CUB_200_2011", "test")
    assert len(train) + len(test) == 2 * CUB_PER_CLASS
    for split_insts, is_train in ((train, True), (test, False)):
        for inst in split_insts:
            ci = CUB_CLASSES.index(inst.category)
            ii = int(inst.id.split("_")[-2]) - 1 - ci * CUB_PER_CLASS
            assert cub_is_train(ii) == is_train
            visible = [p for p in range(1, len(CUB_PARTS) + 1) if cub_visible(ii, p)]
            assert inst.names == [CUB_PARTS[p - 1] for p in visible]
            for p in visible:
                assert_point(inst, CUB_PARTS[p - 1], cub_point(ci, ii, p))
            assert inst.extra["bbox"] == (2.0, 3.0, 60.0, 60.0)
            assert inst.image.endswith(".jpg")
    assert "left eye" in train[0].names or "left eye" in train[1].names  # names with spaces survive
    only = read_cub(root, "all", categories=["Laysan_Albatross"], with_images=True)
    assert {i.category for i in only} == {"002.Laysan_Albatross"} and only[0].image.shape == (64, 64, 3)


def test_cub_malformed(tmp_path):
    root = make_cub(tmp_path)
    locs = root / "CUB_200_2011" / "parts" / "part_locs.txt"
    lines = locs.read_text().splitlines()
    locs.write_text("\n".join(lines[:3] + ["1 4 10.0 12.0"] + lines[4:]) + "\n")
    with pytest.raises(MalformedAnnotationError, match="part_locs.txt.*line 4 has 4 columns, expected 5"):
        read_cub(root)
    locs.write_text("\n".join(lines[:3] + ["1 99 10.0 12.0 1"] + lines[4:]) + "\n")
    with pytest.raises(MalformedAnnotationError, match="part_locs.txt.*part id 99"):
        read_cub(root)
    locs.write_text("\n".join(lines))
    (root / "CUB_200_2011" / "train_test_split.txt").write_text("1 1 extra\n")
    with pytest.raises(MalformedAnnotationError, match="train_test_split.txt.*line 1"):
        read_cub(root)


def test_cub_missing_index_file(tmp_path):
    root = make_cub(tmp_path, with_images=False)
    (root / "CUB_200_2011" / "parts" / "parts.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match="parts.txt.*caltech"):
        read_cub(root)


# --------------------------------------------------------------------------------- shared
@pytest.mark.parametrize("name,url", [
    ("willow", "di.ens.fr"), ("pascal_voc", "berkeley.edu"), ("spair", "cvlab.postech.ac.kr"),
    ("cub", "caltech.edu"),
])
def test_missing_root_names_the_source(tmp_path, name, url):
    with pytest.raises(DatasetNotFoundError, match=url) as info:
        load_dataset(name, tmp_path / "nowhere", "train")
    assert "nowhere" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    # an existing folder with the wrong content is reported the same way
    with pytest.raises(DatasetNotFoundError, match=url):
        load_dataset(name, tmp_path, "train")


def test_load_dataset_dispatch_and_aliases(tmp_path):
    roots = {"willow": make_willow(tmp_path / "w", with_images=False),
             "pascal_voc": make_pascal_voc(tmp_path / "p", with_images=False),
             "spair": make_spair(tmp_path / "s", with_images=False),
             "cub": make_cub(tmp_path / "c", with_images=False),
             "coco": make_coco(tmp_path / "k" / "annotations.json")}
    assert set(READERS) == set(roots)
    for name, root in roots.items():
        insts = load_dataset(name, root, "train")
        assert insts and all(isinstance(i, KeypointInstance) and i.id and i.category for i in insts)
        assert all(i.image is None for i in insts)  # no image files: geometry only
    assert canonical_name("SPair-71k") == "spair" and canonical_name("PascalVOC") == "pascal_voc"
    assert canonical_name("CUB_200_2011") == "cub" and canonical_name("WillowObject") == "willow"
    with pytest.raises(InvalidInputError, match="unknown dataset"):
        load_dataset("imagenet", tmp_path, "train")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the standard VOC split is present: no fallback warning
        load_dataset("voc", roots["pascal_voc"], "test")


def test_pascal_voc_drops_uncurated_persons(tmp_path):
    # The Berkeley README: person labels of 2009-2011 images are not curated; the standard
    # protocol keeps only persons of images up to 2008.
    root = make_pascal_voc(tmp_path, with_split_file=False, with_images=False)
    voc = root / "TrainVal" / "VOCdevkit" / "VOC2011" / "Annotations"
    (root / "annotations" / "person").mkdir()
    for image_id in ("2008_000010", "2010_000010"):
        (root / "annotations" / "person" / f"{image_id}_1.xml").write_text(
            f"<annotation><image>{image_id}</image><category>person</category><keypoints>"
            "<keypoint name='Nose' visible='1' x='5' y='6'/></keypoints></annotation>")
        (voc / f"{image_id}.xml").write_text(
            "<annotation><object><name>person</name><truncated>0</truncated><difficult>0</difficult>"
            "</object></annotation>")
    with pytest.warns(UserWarning, match="fallback"):
        kept = read_pascal_voc(root, "all", categories=["person"])
    assert [i.id for i in kept] == ["2008_000010_1"]
