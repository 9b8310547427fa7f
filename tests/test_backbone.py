"""VGG16 keypoint backbone, and attach_features loading images for it (tiny images, CPU, seconds)."""
import sys

import numpy as np
import pytest
import torch
from torch import nn

from pyg_ssgm.data.instance import KeypointInstance
from pyg_ssgm.errors import CheckpointError, ConfigError, DatasetNotFoundError, InvalidInputError, MissingExtraError
from pyg_ssgm.features import FeatureConfig, attach_features, build_backbone
from pyg_ssgm.nn import backbone as bb
from pyg_ssgm.nn.backbone import RELU4_2, RELU5_1, VGG16Features, sample_at_keypoints

# torchvision's vgg16 "D" configuration, written out: ("conv", in, out) / ("relu",) / ("pool",).
TORCHVISION_VGG16_FEATURES = []
_in = 3
for _v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
    if _v == "M":
        TORCHVISION_VGG16_FEATURES.append(("pool",))
    else:
        TORCHVISION_VGG16_FEATURES += [("conv", _in, _v), ("relu",)]
        _in = _v


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: image work on one thread


@pytest.fixture(scope="module")
def random_vgg():
    torch.manual_seed(0)
    return VGG16Features(weights="random", normalize=False).eval()


def _vgg_state(fill_weight=0.0, biases=None, classifier=True):
    """A torchvision-style vgg16 state_dict (features.N.*, all 31 layers, plus classifier keys)."""
    state = {}
    for i, spec in enumerate(TORCHVISION_VGG16_FEATURES):
        if spec[0] == "conv":
            _, cin, cout = spec
            state[f"features.{i}.weight"] = torch.full((cout, cin, 3, 3), fill_weight)
            b = (biases or {}).get(i)
            state[f"features.{i}.bias"] = b.clone() if b is not None else torch.ones(cout)
    if classifier:
        state["classifier.0.weight"] = torch.zeros(4, 8)
        state["classifier.0.bias"] = torch.zeros(4)
    return state


def test_layout_matches_torchvision_indices():
    layers = bb.vgg16_layers(len(TORCHVISION_VGG16_FEATURES))
    assert len(layers) == 31
    for i, (mod, spec) in enumerate(zip(layers, TORCHVISION_VGG16_FEATURES)):
        if spec[0] == "conv":
            assert isinstance(mod, nn.Conv2d), i
            got = (mod.in_channels, mod.out_channels, mod.kernel_size, mod.padding)
            assert got == (spec[1], spec[2], (3, 3), (1, 1)), i
        elif spec[0] == "relu":
            assert isinstance(mod, nn.ReLU), i
        else:
            assert isinstance(mod, nn.MaxPool2d), i
    assert [i for i, s in enumerate(TORCHVISION_VGG16_FEATURES) if s[0] == "pool"] == [4, 9, 16, 23, 30]
    # relu4_2: second relu after the third pool; relu5_1: first relu after the fourth pool.
    assert TORCHVISION_VGG16_FEATURES[RELU4_2 - 1] == ("conv", 512, 512) and RELU4_2 == 20
    assert TORCHVISION_VGG16_FEATURES[RELU5_1 - 1] == ("conv", 512, 512) and RELU5_1 == 25
    model = VGG16Features(weights="random")
    assert len(model.features) == RELU5_1 + 1
    assert all(not p.requires_grad for p in model.parameters())
    assert any(p.requires_grad for p in VGG16Features(weights="random", freeze=False).parameters())


def test_loads_torchvision_state_dict_and_uses_it(tmp_path):
    # Zero kernels: every conv outputs its bias, so relu4_2 = bias of conv 19, relu5_1 = bias of conv 24.
    b19, b24 = torch.arange(512.0) / 100, torch.arange(512.0).flip(0) / 50
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(_vgg_state(biases={19: b19, 24: b24}), path)
    model = VGG16Features(weights=path, normalize=False)
    assert model.weights_path == path
    out = model(torch.rand(1, 3, 32, 32), [torch.tensor([[3.0, 5.0], [20.0, 30.0]])])
    assert out.shape == (2, 1024)
    assert torch.allclose(out[:, :512], b19.expand(2, -1), atol=1e-5)
    assert torch.allclose(out[:, 512:], b24.expand(2, -1), atol=1e-5)
    normed = VGG16Features(weights=path)(torch.rand(1, 3, 32, 32), torch.tensor([[3.0, 5.0]]))
    assert torch.allclose(normed[:, :512].norm(dim=-1), torch.ones(1))
    assert torch.allclose(normed[:, 512:].norm(dim=-1), torch.ones(1))


def test_default_path_is_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    expected = tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert bb.default_vgg16_path() == expected
    with pytest.raises(CheckpointError) as e:
        VGG16Features()
    assert str(expected) in str(e.value) and bb.VGG16_URL in str(e.value)
    expected.parent.mkdir(parents=True)
    torch.save(_vgg_state(), expected)
    VGG16Features()  # found in the cache


def test_missing_file_names_path(tmp_path):
    missing = tmp_path / "nowhere" / "vgg.pth"
    with pytest.raises(CheckpointError, match="never downloads") as e:
        VGG16Features(weights=missing)
    assert str(missing) in str(e.value) and bb.VGG16_URL in str(e.value)


def test_bad_keys_raise_checkpoint_error(tmp_path):
    state = _vgg_state()
    del state["features.21.weight"]
    torch.save(state, tmp_path / "a.pth")
    with pytest.raises(CheckpointError, match=r"features\.21\.weight"):
        VGG16Features(weights=tmp_path / "a.pth")
    state = _vgg_state()
    state["features.24.bias"] = torch.zeros(7)
    torch.save(state, tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match=r"features\.24\.bias.*\(7,\)"):
        VGG16Features(weights=tmp_path / "b.pth")
    (tmp_path / "c.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        VGG16Features(weights=tmp_path / "c.pth")


def test_sample_at_cell_centres():
    torch.manual_seed(1)
    fmap = torch.randn(2, 5, 4, 4)  # covers 32 x 32 images: cells of 8 px
    ij = [(0, 0), (1, 3), (3, 2), (2, 1)]
    pos = torch.tensor([[(j + 0.5) * 8, (i + 0.5) * 8] for i, j in ij])
    batch = torch.tensor([1, 0, 1, 0])
    out = sample_at_keypoints(fmap, pos, batch, (32, 32))
    want = torch.stack([fmap[b, :, i, j] for b, (i, j) in zip(batch.tolist(), ij)])
    assert torch.allclose(out, want, atol=1e-6)
    # Halfway between two cell centres: their mean.
    mid = sample_at_keypoints(fmap, torch.tensor([[16.0, 4.0]]), torch.tensor([0]), (32, 32))
    assert torch.allclose(mid[0], (fmap[0, :, 0, 1] + fmap[0, :, 0, 2]) / 2, atol=1e-6)


def test_backbone_samples_feature_maps_and_permutes(random_vgg):
    torch.manual_seed(2)
    images = torch.rand(2, 3, 32, 32)
    maps = random_vgg.feature_maps(images)
    f4, f5 = maps["relu4_2"], maps["relu5_1"]
    assert f4.shape == (2, 512, 4, 4) and f5.shape == (2, 512, 2, 2)
    # Cell (i, j) of a map with c-px cells is centred at (c j + c/2, c i + c/2): (24, 8) is the centre
    # of relu5_1 cell (0, 1) and the corner shared by relu4_2 cells (0..1, 2..3); (20, 12) is the
    # centre of relu4_2 cell (1, 2).
    out = random_vgg(images, [torch.tensor([[24.0, 8.0]]), torch.tensor([[20.0, 12.0]])])
    assert torch.allclose(out[0, 512:], f5[0, :, 0, 1], atol=1e-5)
    assert torch.allclose(out[0, :512], f4[0, :, 0:2, 2:4].mean(dim=(1, 2)), atol=1e-5)
    assert torch.allclose(out[1, :512], f4[1, :, 1, 2], atol=1e-5)
    # Permuting keypoints permutes rows; list input == (pos, batch) input.
    pos = [torch.rand(5, 2) * 32, torch.rand(3, 2) * 32]
    ref = random_vgg(images, pos)
    perm = torch.tensor([4, 0, 3, 1, 2])
    got = random_vgg(images, [pos[0][perm], pos[1]])
    assert torch.allclose(got[:5], ref[:5][perm], atol=1e-5) and torch.allclose(got[5:], ref[5:], atol=1e-5)
    flat = random_vgg(images, torch.cat(pos), torch.tensor([0] * 5 + [1] * 3))
    assert torch.allclose(flat, ref, atol=1e-5)
    with pytest.raises(InvalidInputError, match="batch"):
        random_vgg(images, torch.cat(pos))


def _png(path, seed, size=16):
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return str(path)


def _vgg_features(tmp_path, **kw):
    """VGG16's width (1024) at 32 px, no views, cached in ``tmp_path``: what ``random_vgg`` computes."""
    return FeatureConfig(**{"backbone": "vgg16", "weights": "random", "image_size": 32, "num_views": 0,
                            "cache_dir": str(tmp_path), **kw})


class RecordingBackbone(nn.Module):
    """Records the images and keypoints ``attach_features`` gives a backbone; returns zeros."""

    def __init__(self, width):
        super().__init__()
        self.width, self.calls = width, []

    def forward(self, images, pos, batch):
        self.calls.append((images.clone(), pos.clone(), batch.clone()))
        return pos.new_zeros(pos.size(0), self.width)


def test_attach_features_on_png_files(tmp_path, random_vgg):
    a = KeypointInstance(pos=torch.tensor([[1.0, 2.0], [8.0, 8.0], [15.0, 3.0]]), names=["a", "b", "c"],
                         image=_png(tmp_path / "a.png", 0), id="a")
    b = KeypointInstance(pos=torch.tensor([[4.0, 4.0], [10.0, 12.0]]), names=["a", "b"],
                         image=_png(tmp_path / "b.png", 1), id="b", x=torch.ones(2, 3))
    out = attach_features([a, b], _vgg_features(tmp_path / "one", batch_size=1), "toy", backbone=random_vgg,
                          progress=False)
    # b's previous x is replaced, not extended: a stale x of another width never mixes in.
    assert [o.x.shape for o in out] == [(3, 1024), (2, 1024)]
    assert out[0].id == "a" and torch.equal(out[0].pos, a.pos) and a.x is None  # new objects
    assert torch.isfinite(out[0].x).all() and out[0].x.abs().sum() > 0
    # Same result with one batch of two, and with the image given as an array.
    from PIL import Image

    arr = np.asarray(Image.open(b.image).convert("RGB"))
    b_arr = KeypointInstance(pos=b.pos, names=b.names, image=arr, id="b", x=b.x)
    out2 = attach_features([a, b_arr], _vgg_features(tmp_path / "two", batch_size=2), "toy", backbone=random_vgg,
                           progress=False)
    assert torch.allclose(out2[1].x, out[1].x, atol=1e-5) and torch.allclose(out2[0].x, out[0].x, atol=1e-5)


def test_attach_features_keypoint_scaling_and_crop(tmp_path):
    # A 64x48 image resized to 32x32: keypoint (x, y) -> (x / 2, y * 2 / 3).
    torch.manual_seed(3)
    img = (torch.rand(48, 64, 3) * 255).to(torch.uint8).numpy()
    inst = KeypointInstance(pos=torch.tensor([[10.0, 9.0]]), names=["p"], image=img, id="i",
                            extra={"bbox": (16, 12, 48, 36)})
    seen = RecordingBackbone(1024)
    attach_features([inst], _vgg_features(tmp_path / "whole"), "toy", backbone=seen, progress=False)
    (image, pos, _), = seen.calls
    assert image.shape == (1, 3, 32, 32) and torch.allclose(pos, torch.tensor([[5.0, 6.0]]))
    seen = RecordingBackbone(1024)
    attach_features([inst], _vgg_features(tmp_path / "crop", crop_to_bbox=True), "toy", backbone=seen,
                    progress=False)
    (image, pos, _), = seen.calls
    assert torch.allclose(pos, torch.tensor([[-6.0, -4.0]]))  # (10-16, 9-12) * (32/32, 32/24)
    crop = torch.from_numpy(img[12:36, 16:48]).permute(2, 0, 1).float().div(255).unsqueeze(0)
    want = torch.nn.functional.interpolate(crop, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(image, want, atol=1e-6)


def test_attach_features_errors(tmp_path, random_vgg, monkeypatch):
    cfg = _vgg_features(tmp_path)

    def run(inst):
        return attach_features([inst], cfg, "toy", backbone=random_vgg, progress=False)

    no_img = KeypointInstance(pos=torch.zeros(2, 2), names=["a", "b"], id="lonely")
    with pytest.raises(InvalidInputError, match="'lonely'.*no image"):
        run(no_img)
    with pytest.raises(ConfigError):
        _vgg_features(tmp_path, image_size=30)
    bad = KeypointInstance(pos=torch.zeros(1, 2), names=["a"], image=np.full((16, 16, 3), 7.0), id="f")
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        run(bad)
    gone = KeypointInstance(pos=torch.zeros(1, 2), names=["a"], image=str(tmp_path / "gone.png"), id="g")
    with pytest.raises(DatasetNotFoundError, match="gone.png.*'g'.*does not exist"):
        run(gone)
    with_path = KeypointInstance(pos=torch.zeros(1, 2), names=["a"], image=_png(tmp_path / "p.png", 0), id="p")
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(MissingExtraError, match=r"pyg_ssgm\[images\]"):
        run(with_path)


def test_several_image_sizes(tmp_path, random_vgg):
    """``image_size=(S, s)``: the image is loaded at ``S``, also resized to ``s`` with its
    keypoints, and each stage's part is the normalised sum of the two; one size stays an integer
    (runs saved before several sizes existed keep their cache key)."""
    assert FeatureConfig().sizes == (384, 256)
    assert FeatureConfig(image_size=[64, 32]).image_size == (64, 32)
    assert FeatureConfig(image_size=[64]).image_size == 64 and FeatureConfig(image_size=64).identity()["image_size"] == 64
    for bad in ([64, 64], [64, 30], [], [64, True]):
        with pytest.raises(ConfigError, match="image_size"):
            FeatureConfig(image_size=bad)
    torch.manual_seed(0)
    images, pos = torch.rand(2, 3, 64, 64), torch.tensor([[10.0, 20.0], [40.0, 50.0], [33.0, 3.0]])
    batch = torch.tensor([0, 0, 1])
    net = build_backbone(_vgg_features(tmp_path, image_size=(64, 32)))  # what attach_features builds
    with torch.no_grad():
        both = net(images, pos, batch, sizes=[32])
        small = net(nn.functional.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False,
                                              antialias=True), pos / 2, batch)
        large = net(images, pos, batch)
    want = torch.cat([nn.functional.normalize(large[:, k:k + 512] + small[:, k:k + 512], dim=-1) for k in (0, 512)], 1)
    assert torch.allclose(both, want, atol=1e-5) and not torch.allclose(both, large, atol=1e-3)
    # attach_features gives the backbone the sizes after the first, and keeps a one-size backbone's signature
    img = (torch.rand(48, 64, 3) * 255).to(torch.uint8).numpy()
    inst = KeypointInstance(pos=torch.tensor([[10.0, 9.0]]), names=["p"], image=img, id="i")
    out = attach_features([inst], _vgg_features(tmp_path / "two", image_size=(64, 32)), "toy", progress=False)
    seen = RecordingBackbone(1024)
    attach_features([inst], _vgg_features(tmp_path / "one", image_size=64), "toy", backbone=seen, progress=False)
    (image, _, _), = seen.calls
    with torch.no_grad():
        assert torch.allclose(out[0].x, net(image, torch.tensor([[10.0, 12.0]]), sizes=[32]), atol=1e-5)
