"""Your own data from COCO keypoint files: the reader, the splits and their record, training and
evaluating from the command line, and left / right keypoints in any spelling (``data/sides.py``).

Every test writes its own small COCO file (``fixtures_native.make_coco``)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import pyg_ssgm.evaluate
import pyg_ssgm.train
from fixtures_native import COCO_KEYPOINTS, coco_document, coco_flag, coco_objects, coco_point, make_coco
from pyg_ssgm.cli.evaluate import evaluate_command
from pyg_ssgm.cli.train import train_command
from pyg_ssgm.cli.visualize import pairs_command
from pyg_ssgm.config import Settings, TrainConfig
from pyg_ssgm.data import KeypointInstance, PairGenerator, load_dataset, load_splits, mirror_identity, swap_sides
from pyg_ssgm.data.readers import RECORD_NAME, SplitRecord, coco_splits, read_coco_file
from pyg_ssgm.data.readers.coco_splits import split_by_image
from pyg_ssgm.data.sides import declared_sides, has_side
from pyg_ssgm.errors import DatasetNotFoundError, InvalidInputError, MalformedAnnotationError
from pyg_ssgm.experiment import prepare_splits


def write(path: Path, doc) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def write_bytes(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


# --------------------------------------------------------------------------- reader


def test_reader_fields_and_visibility_flags(tmp_path):
    path = make_coco(tmp_path / "ann.json", num_images=6, with_images=True)
    instances = read_coco_file(path)
    doc = coco_document(6)
    assert len(instances) == len(doc["annotations"])  # every annotation has a labelled point here
    objects = [(img, ci, obj) for img in range(6) for ci, obj in coco_objects(img)]  # in the file's order
    for inst, ann, (img, ci, obj) in zip(instances, doc["annotations"], objects):
        labelled = [k for k in range(len(COCO_KEYPOINTS)) if coco_flag(img, obj, k) > 0]
        assert inst.id == str(ann["id"]) and inst.category == ("bird", "fish")[ci]
        assert inst.names == [COCO_KEYPOINTS[k] for k in labelled]  # v=0 absent, v=1 and v=2 present
        expected = torch.tensor([coco_point(ci, img, obj, k) for k in labelled], dtype=inst.pos.dtype)
        assert torch.allclose(inst.pos, expected)
        assert inst.extra["image_id"] == ann["image_id"] and inst.extra["bbox"] == (10.0, 8.0, 54.0, 54.0)
        assert inst.image == str(tmp_path / f"img_{img:03d}.png")  # beside the file by default
        assert ("beak", "left_eye") in inst.extra["skeleton"]  # the 1-based skeleton, as names
        assert "sides" not in inst.extra  # nothing declared: the spelling decides
    assert any(coco_flag(i, o, k) == 1 for i in range(6) for _, o in coco_objects(i) for k in range(8))


def test_not_labelled_points_are_absent_never_at_the_origin(tmp_path):
    doc = coco_document(2)
    doc["annotations"][0]["keypoints"] = [5.0, 6.0, 2, 0, 0, 0, 7.0, 8.0, 1] + [9.0, 9.0, 0] * 5
    inst = read_coco_file(write(tmp_path / "a.json", doc))[0]
    assert inst.names == ["beak", "right_eye"] and inst.pos.tolist() == [[5.0, 6.0], [7.0, 8.0]]
    visible = read_coco_file(tmp_path / "a.json", visible_only=True)[0]
    assert visible.names == ["beak"]  # v=1 (labelled, not visible) kept only by default


def test_images_folder_and_skipped_annotations(tmp_path):
    doc = coco_document(3)
    doc["annotations"][0]["keypoints"] = [0, 0, 0] * 8  # nothing labelled (a crowd box): skipped
    doc["categories"].append({"id": 9, "name": "boxes only"})  # no keypoints: not a keypoint category
    doc["annotations"].append({"id": 1, "image_id": 1, "category_id": 9, "bbox": [0, 0, 1, 1]})
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "img_000.png").write_bytes(b"")  # the picture of image id 1 only
    instances = read_coco_file(write(tmp_path / "a.json", doc), images_dir=tmp_path / "pictures")
    assert len(instances) == len(coco_document(3)["annotations"]) - 1
    assert {i.category for i in instances} == {"bird", "fish"}
    assert instances[0].image == str(tmp_path / "pictures" / "img_000.png")
    assert all(i.image is None for i in instances if i.extra["image_id"] != 1)  # not there: geometry only


def _bad(doc_change):
    def make(tmp_path):
        doc = coco_document(3, flip_pairs=True)
        doc_change(doc)
        return write(tmp_path / "bad.json", doc)
    return make


def _set(path, value):
    def change(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


BAD_FILES = [
    pytest.param(lambda p: write(p / "bad.json", '{"images": [], '), "not valid JSON", id="truncated"),
    pytest.param(lambda p: write(p / "bad.json", "[1, 2]"), "top level", id="a-list"),
    pytest.param(lambda p: write_bytes(p / "bad.json", b'{"images": "caf\xe9"}'), "UTF-8", id="latin-1"),
    pytest.param(_bad(lambda d: d.pop("annotations")), "'annotations'", id="no-annotations"),
    pytest.param(_bad(lambda d: d.pop("categories")), "'categories'", id="no-categories"),
    pytest.param(_bad(lambda d: [c.pop("keypoints") for c in d["categories"]]), "no category declares", id="no-kp"),
    pytest.param(_bad(_set(["categories", 0, "keypoints"], ["a", "a"])), "repeats", id="repeated-names"),
    pytest.param(_bad(_set(["categories", 0, "keypoints"], "beak")), "'keypoints'", id="names-a-string"),
    pytest.param(_bad(_set(["categories", 1, "name"], "bird")), "unique", id="category-name-twice"),
    pytest.param(_bad(_set(["categories", 1, "id"], 1)), "used twice", id="category-id-twice"),
    pytest.param(_bad(_set(["categories", 0, "skeleton"], [[0, 1]])), "1-based", id="skeleton-0"),
    pytest.param(_bad(_set(["categories", 0, "flip_pairs"], [["left_eye", "nose"]])), "nose", id="flip-unknown"),
    pytest.param(_bad(_set(["categories", 0, "flip_pairs"], [["left_eye", "right_eye"], ["left_eye", "tail"]])),
                 "already paired", id="flip-twice"),
    pytest.param(_bad(_set(["images", 1, "id"], 1)), "id 1 is used twice in 'images'", id="image-id-twice"),
    pytest.param(_bad(lambda d: d["images"][0].pop("file_name")), "'file_name' is missing", id="no-file-name"),
    pytest.param(_bad(_set(["annotations", 1, "id"], 1000)), "used twice", id="annotation-id-twice"),
    pytest.param(_bad(_set(["annotations", 0, "image_id"], 99)), "'image_id' 99", id="unknown-image"),
    pytest.param(_bad(_set(["annotations", 0, "category_id"], 7)), "'category_id' 7", id="unknown-category"),
    pytest.param(_bad(_set(["annotations", 0, "keypoints"], [1.0, 2.0, 2] * 7)), "expected 3 x 8 = 24",
                 id="wrong-length"),
    pytest.param(_bad(_set(["annotations", 0, "keypoints"], [1.0, 2.0, 3] * 8)), "visibility flag", id="v-3"),
    pytest.param(_bad(_set(["annotations", 0, "keypoints"], ["1", 2.0, 2] * 8)), "not a finite number",
                 id="x-string"),
    pytest.param(_bad(_set(["annotations", 0, "keypoints"], [float("nan"), 2.0, 2] * 8)), "not a finite number",
                 id="x-nan"),
    pytest.param(_bad(_set(["annotations", 0, "bbox"], [0, 0, -5, 3])), "'bbox'", id="negative-box"),
    pytest.param(_bad(_set(["annotations", 0, "id"], 1.5)), "'id' must be an integer or a string", id="float-id"),
]


@pytest.mark.parametrize("make,mentions", BAD_FILES)
def test_bad_files_are_malformed_annotation_errors_naming_file_and_field(tmp_path, make, mentions):
    path = make(tmp_path)
    with pytest.raises(MalformedAnnotationError) as err:
        read_coco_file(path)
    assert str(path) in str(err.value) and mentions in str(err.value)


def test_missing_file_or_folder_is_dataset_not_found(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        read_coco_file(tmp_path / "missing.json")
    with pytest.raises(DatasetNotFoundError, match="folder"):
        read_coco_file(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="train.json"):
        coco_splits(tmp_path)  # a folder without the convention's train.json


def test_instance_errors_name_the_annotation(tmp_path):
    # the reader's own check of the instance (KeypointInstance validation) is named with the annotation
    doc = coco_document(2)
    doc["annotations"][0]["keypoints"][:3] = [1e16, 0.0, 2]
    with pytest.raises(MalformedAnnotationError, match=r"annotations\[0\] \(id 1000\)"):
        read_coco_file(write(tmp_path / "a.json", doc))


# --------------------------------------------------------------------------- splits


def test_one_file_is_split_by_image_seeded_and_recorded(tmp_path):
    path = make_coco(tmp_path / "ann.json", num_images=40)
    splits, record = coco_splits(path, seed=3)
    again, _ = coco_splits(path, seed=3)
    other, _ = coco_splits(path, seed=4)
    ids = {s: {i.extra["image_id"] for i in items} for s, items in splits.items()}
    assert [i.id for s in splits for i in splits[s]] == [i.id for s in again for i in again[s]]  # seeded
    assert {s: {i.extra["image_id"] for i in items} for s, items in other.items()} != ids
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    assert set().union(*ids.values()) == set(range(1, 41))  # every image, each in one split
    assert {s: len(v) for s, v in ids.items()} == {"train": 28, "val": 4, "test": 8}  # 70 / 10 / 20 %
    assert sum(map(len, splits.values())) == len(read_coco_file(path))
    assert record.seed == 3 and record.fractions == {"test": 0.2, "val": 0.1}
    assert record.image_ids == {s: sorted(v) for s, v in ids.items()}

    record.write(tmp_path / RECORD_NAME)
    back = SplitRecord.read(tmp_path / RECORD_NAME)
    assert back == record
    loaded = back.load()
    for s in splits:  # the very same instances, in the same order
        assert [i.id for i in loaded[s]] == [i.id for i in splits[s]]
        assert all(torch.equal(a.pos, b.pos) and a.names == b.names for a, b in zip(loaded[s], splits[s]))


def test_split_groups_images_by_their_categories():
    images = [KeypointInstance([[0.0, 0.0]], ["a"], category=c, extra={"image_id": i})
              for i in range(30) for c in (("bird",) if i < 20 else ("fish", "bird"))]
    ids = split_by_image(images, seed=0)
    birds_only = {s: len([i for i in v if i < 20]) for s, v in ids.items()}
    assert birds_only == {"train": 14, "val": 2, "test": 4}  # each group cut in the same shares
    with pytest.raises(InvalidInputError, match="sum"):
        split_by_image(images, fractions={"val": 0.5, "test": 0.5})


def test_separate_files_and_folder_convention(tmp_path):
    train = make_coco(tmp_path / "train.json", num_images=10)
    val = make_coco(tmp_path / "val.json", num_images=4, first_image=10)
    test = make_coco(tmp_path / "test.json", num_images=6, first_image=14)
    splits, record = coco_splits(train, val_data=val, test_data=test)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [len(read_coco_file(p)) for p in (train, val, test)]
    assert record.fractions == {} and record.files["test"] == str(test)
    by_folder, folder_record = coco_splits(tmp_path)  # <folder>/train.json, val.json, test.json
    assert folder_record.image_ids == record.image_ids
    assert {s: [i.id for i in v] for s, v in by_folder.items()} == {s: [i.id for i in v] for s, v in splits.items()}

    only_test, rec = coco_splits(train, test_data=test, seed=1)  # val still cut from train.json, by image:
    # 10 % of each group of 5 images (birds alone, birds with a fish), rounded: one image of each
    assert rec.fractions == {"val": 0.1} and len(rec.image_ids["val"]) == 2 and len(rec.image_ids["train"]) == 8
    with pytest.raises(InvalidInputError, match="two splits"):
        coco_splits(train, test_data=train)


def test_record_read_back_refuses_a_file_that_lost_images(tmp_path):
    path = make_coco(tmp_path / "ann.json", num_images=20)
    _, record = coco_splits(path)
    write(path, coco_document(10))  # the file changed: half of its images are gone
    with pytest.warns(UserWarning, match="changed"), pytest.raises(MalformedAnnotationError, match="no longer holds"):
        record.load()
    write(tmp_path / "bad_record.json", {"format": 1, "files": {"train": "x"}})
    with pytest.raises(MalformedAnnotationError, match="split record"):
        SplitRecord.read(tmp_path / "bad_record.json")


def test_train_config_dataset_coco_works_through_load_splits(tmp_path):
    path = make_coco(tmp_path / "ann.json", num_images=20)
    splits = load_splits("coco", str(path), seed=2)
    assert {s: [i.id for i in v] for s, v in splits.items()} == \
        {s: [i.id for i in v] for s, v in coco_splits(path, seed=2)[0].items()}
    assert [i.id for i in load_dataset("coco", str(path), "test", seed=2)] == [i.id for i in splits["test"]]
    settings = Settings(train=TrainConfig(dataset="coco", root=str(path)))
    prepared = prepare_splits(settings, progress=False)
    assert {s: len(v) for s, v in prepared.items()} == {s: len(v) for s, v in load_splits("coco", str(path)).items()}


# --------------------------------------------------------------------------- command line

TINY = ["--epochs", "1", "--batch-size", "4", "--hidden-channels", "16", "--num-queries", "4",
        "--set", "val_pairs_per_category=2", "--set", "test_pairs_per_category=4", "--no-progress"]


def scores(path: Path) -> dict:
    """The numbers of a results JSON (what training's test pass and evaluate both report)."""
    results = json.loads(path.read_text())
    return {k: results[k] for k in ("unfiltered", "intersection", "completion")}


def run_ok(command, args):
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result


def test_train_and_evaluate_a_coco_file_end_to_end(tmp_path):
    data = make_coco(tmp_path / "my_annotations.json", num_images=24, flip_pairs=True)
    run = tmp_path / "run"
    trained = run_ok(train_command, ["--data", str(data), "--output-dir", str(run), *TINY])
    assert "Unfiltered real pairs" in trained.output and "splits.json" in trained.stderr
    for name in ("checkpoint.pt", "metrics.csv", "config.json", "test_results.json", RECORD_NAME):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())["train"]
    assert config["dataset"] == "coco" and config["root"] == str(data)
    record = SplitRecord.read(run / RECORD_NAME)
    assert record.image_ids == coco_splits(data, seed=0)[1].image_ids

    # later, from the checkpoint alone: its own test split, the same numbers as after training
    tested = scores(run / "test_results.json")
    run_ok(evaluate_command, ["--checkpoint", str(run / "checkpoint.pt"), "--output", str(tmp_path / "e.json")])
    assert scores(tmp_path / "e.json") == tested
    # the same file named again (split again with the run's seed), through python -m pyg_ssgm.evaluate
    with pytest.raises(SystemExit) as exc:
        pyg_ssgm.evaluate.main(["--checkpoint", str(run / "checkpoint.pt"), "--data", str(data),
                                "--output", str(tmp_path / "d.json")])
    assert exc.value.code == 0 and scores(tmp_path / "d.json") == tested
    # another test file: scored whole
    other = make_coco(tmp_path / "new.json", num_images=5, first_image=30)
    run_ok(evaluate_command, ["--checkpoint", str(run / "checkpoint.pt"), "--test-data", str(other),
                              "--output", str(tmp_path / "n.json")])
    assert json.loads((tmp_path / "n.json").read_text())["unfiltered"]["mean"]["num_pairs"] > 0
    # and a picture of a real pair of its own test split
    pytest.importorskip("matplotlib")
    drawn = run_ok(pairs_command, ["--checkpoint", str(run / "checkpoint.pt"), "--kind", "real", "--num-pairs", "1",
                                   "--output-dir", str(tmp_path / "pictures")])
    assert (tmp_path / "pictures" / "real_0_matches.png").is_file() and "real_0_matches.png" in drawn.output


def test_evaluate_a_classical_solver_on_a_coco_file(tmp_path):
    data = make_coco(tmp_path / "ann.json", num_images=20)
    run_ok(evaluate_command, ["--solver", "hungarian", "--data", str(data), "--output", str(tmp_path / "h.json")])
    report = json.loads((tmp_path / "h.json").read_text())
    test = coco_splits(data)[0]["test"]  # the same split as training with --seed 0 makes
    birds, fish = (sum(i.category == c for i in test) for c in ("bird", "fish"))
    assert report["unfiltered"]["mean"]["num_pairs"] == birds * (birds - 1) // 2 + fish * (fish - 1) // 2


def test_train_shim_and_separate_files(tmp_path):
    train = make_coco(tmp_path / "train.json", num_images=12)
    test = make_coco(tmp_path / "test.json", num_images=6, first_image=12)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:  # python -m pyg_ssgm.train
        pyg_ssgm.train.main(["--data", str(train), "--test-data", str(test), "--output-dir", str(run), *TINY])
    assert exc.value.code == 0
    record = SplitRecord.read(run / RECORD_NAME)
    assert record.files["test"] == str(test) and record.image_ids["test"] == list(range(13, 19))

    # --resume with other files than the run's: refused before anything is trained or written
    result = CliRunner().invoke(train_command, ["--data", str(train), "--output-dir", str(run), "--resume", *TINY])
    assert result.exit_code == 2 and "other splits" in result.stderr
    assert SplitRecord.read(run / RECORD_NAME) == record


def test_train_and_evaluate_with_image_features_of_the_coco_images(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch", reason="the 'images' extra is not installed")
    pytest.importorskip("PIL", reason="Pillow is not installed")
    data = make_coco(tmp_path / "images" / "ann.json", num_images=16, with_images=True)
    features = ["--features", "efficientnet_lite0", "--set", "features.image_size=64", "--set", "features.num_views=1",
                "--set", f"features.cache_dir={tmp_path / 'cache'}"]
    run = tmp_path / "run"
    run_ok(train_command, ["--data", str(data), "--output-dir", str(run), *features, *TINY])
    assert json.loads((run / "config.json").read_text())["model"]["in_channels"] == 192  # the backbone's features
    run_ok(evaluate_command, ["--checkpoint", str(run / "checkpoint.pt"), "--output", str(tmp_path / "e.json")])
    assert scores(tmp_path / "e.json") == scores(run / "test_results.json")


@pytest.mark.parametrize("args,mentions", [
    (["--data", "x.json", "--dataset", "willow"], "--data"),
    (["--data", "x.json", "--root", "y"], "not both"),
    (["--images", "pictures"], "--images"),
    (["--data", "missing.json"], "does not exist"),
])
def test_bad_data_options_are_named_errors(tmp_path, monkeypatch, args, mentions):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(train_command, [*args, *TINY])
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and mentions in result.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_file_in_place_of_the_run_folder_is_a_named_error(tmp_path):
    data = make_coco(tmp_path / "ann.json", num_images=12)
    (tmp_path / "run").write_text("not a folder")
    result = CliRunner().invoke(train_command, ["--data", str(data), "--output-dir", str(tmp_path / "run"), *TINY])
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and "is a file" in result.stderr


# --------------------------------------------------------------------------- sides


@pytest.mark.parametrize("left,right", [
    ("left_eye", "right_eye"), ("left eye", "right eye"), ("LeftEye", "RightEye"), ("leftEye", "rightEye"),
    ("l_eye", "r_eye"), ("L_eye", "R_eye"), ("eye_l", "eye_r"), ("eye_left", "eye_right"), ("left-eye", "right-eye"),
    ("LEFT_EYE", "RIGHT_EYE"), ("LEye", "REye"), ("eyeLeft", "eyeRight"), ("EyeL", "EyeR"), ("lEye", "rEye"),
    ("LBigToe", "RBigToe"), ("t_l", "t_r"), ("left", "right"),
])
def test_sides_in_every_spelling_swap_in_their_spelling(left, right):
    assert swap_sides(left) == right and swap_sides(right) == left
    assert has_side(left) and has_side(right)
    assert mirror_identity([left, "beak", right]).tolist() == [2, 1, 0]


@pytest.mark.parametrize("name", ["tail", "l", "r", "L", "leftmost", "Lefteye", "L1", "r2", "kp0", "beak",
                                  "tarsus", "HEEL", 3, None])
def test_names_that_merely_contain_l_or_r_have_no_side(name):
    assert swap_sides(name) == name and not has_side(name)


def test_declared_pairs_decide_whatever_the_spelling():
    names = ["a1", "a2", "left_eye", "right_eye", "nose"]
    sides = declared_sides([["a1", "a2"]], names)
    assert sides == {"a1": "a2", "a2": "a1"}
    assert [swap_sides(n, sides) for n in names] == ["a2", "a1", "left_eye", "right_eye", "nose"]
    assert mirror_identity(names, sides).tolist() == [1, 0, 2, 3, 4]
    assert mirror_identity(names, {}).tolist() == [0, 1, 2, 3, 4]  # declared: nothing swaps
    for bad in ([["a1", "a1"]], [["a1", "x"]], [["a1", "a2"], ["a2", "nose"]], ["a1"]):
        with pytest.raises(InvalidInputError):
            declared_sides(bad, names)


def test_flip_pairs_of_a_coco_file_reach_the_instances(tmp_path):
    path = make_coco(tmp_path / "a.json", num_images=4, flip_pairs=True)
    bird = next(i for i in read_coco_file(path) if i.category == "bird")
    fish = next(i for i in read_coco_file(path) if i.category == "fish")
    assert bird.extra["sides"] == {"left_eye": "right_eye", "right_eye": "left_eye", "LeftWing": "RightWing",
                                   "RightWing": "LeftWing"}  # by name and by 1-based index
    assert fish.extra["sides"] == {}  # "flip_pairs": [] declares that nothing swaps


def test_mirror_pairs_exchange_underscore_names():
    """The swap_sides row of issue 23: a mirror pair exchanged nothing for 'left_eye' names."""
    inst = KeypointInstance(torch.rand(4, 2) * 10, ["left_eye", "right_eye", "beak", "tail"], category="bird")
    pair = PairGenerator(drop_rate=0.0, mirror_rate=1.0, shuffle=False)(inst, torch.Generator().manual_seed(0))
    assert pair.names_t == ["right_eye", "left_eye", "beak", "tail"]
    assert sorted(pair.y.t().tolist()) == [[0, 1], [1, 0], [2, 2], [3, 3]]


def test_mirror_pairs_follow_declared_sides():
    """Declared pairs (a COCO file's flip_pairs, extra["sides"]) decide the mirror pairs, whatever
    the spelling: 'a1' / 'a2' swap, 'left_eye' / 'right_eye' (not declared) stay."""
    inst = KeypointInstance(torch.rand(4, 2) * 10, ["a1", "a2", "left_eye", "right_eye"], category="bird",
                            extra={"sides": {"a1": "a2", "a2": "a1"}})
    pair = PairGenerator(drop_rate=0.0, mirror_rate=1.0, shuffle=False)(inst, torch.Generator().manual_seed(0))
    assert pair.names_t == ["a2", "a1", "left_eye", "right_eye"]
    assert sorted(pair.y.t().tolist()) == [[0, 1], [1, 0], [2, 2], [3, 3]]


def test_train_config_seed_decides_the_coco_split(tmp_path):
    """Through TrainConfig (the Python path), the split of one COCO file follows the run's seed."""
    path = make_coco(tmp_path / "ann.json", num_images=30)
    prepared = prepare_splits(Settings(train=TrainConfig(dataset="coco", root=str(path), seed=5)), progress=False)
    assert {s: [i.id for i in v] for s, v in prepared.items()} == \
        {s: [i.id for i in v] for s, v in coco_splits(path, seed=5)[0].items()}
