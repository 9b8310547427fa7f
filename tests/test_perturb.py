"""Outliers and extra dropped parts (pyg_ssgm.data.perturb): the protocols of the harder real tables."""
from __future__ import annotations

import pytest
import torch

from fixtures_native import make_willow
from pyg_ssgm.data import KeypointInstance, add_outliers, drop_parts, load_splits, make_pair, perturb_splits
from pyg_ssgm.data.perturb import MIN_KEPT
from pyg_ssgm.errors import ConfigError, InvalidInputError


def _instances(n=6, k=10):
    gen = torch.Generator().manual_seed(1)
    return [KeypointInstance(pos=torch.rand(k, 2, generator=gen) * 100, names=[f"p{j}" for j in range(k)],
                             category="c", id=f"img{i}") for i in range(n)]


def test_add_outliers_unnamed_inside_box_and_deterministic():
    insts = _instances()
    out = add_outliers(insts, 3, seed=5)
    for before, after in zip(insts, out):
        n = before.pos.size(0)
        assert after.pos.size(0) == n + 3 and after.names[n:] == [None] * 3
        assert torch.equal(after.pos[:n], before.pos) and after.names[:n] == before.names
        low, high = before.pos.min(0).values, before.pos.max(0).values
        assert ((after.pos[n:] >= low) & (after.pos[n:] <= high)).all()
    again = add_outliers(list(reversed(insts)), 3, seed=5)[::-1]  # per image, not per list position
    assert all(torch.equal(a.pos, b.pos) for a, b in zip(out, again))
    other = add_outliers(insts, 3, seed=6)
    assert not torch.equal(out[0].pos, other[0].pos)
    assert add_outliers(insts, 0) == insts
    assert insts[0].pos.size(0) == 10  # the inputs are not modified


def test_add_outliers_inside_the_image(tmp_path):
    """region="image" draws in [0, W] x [0, H] of the image (a path: its header; or an array), the
    same draw as the box's otherwise; without an image it says what to give."""
    import numpy as np
    from PIL import Image

    path = tmp_path / "img.png"
    Image.new("RGB", (400, 300)).save(path)
    base = _instances(2, k=5)
    insts = [KeypointInstance(pos=base[0].pos, names=base[0].names, category="c", id="a", image=str(path)),
             KeypointInstance(pos=base[1].pos, names=base[1].names, category="c", id="b",
                              image=np.zeros((300, 400, 3), dtype=np.uint8))]
    out = add_outliers(insts, 200, seed=0, region="image")
    for inst in out:
        points = inst.pos[5:]
        assert inst.names[5:] == [None] * 200
        assert (points >= 0).all() and (points[:, 0] <= 400).all() and (points[:, 1] <= 300).all()
        assert (points[:, 0] > 200).any() and (points[:, 1] > 150).any()  # beyond the keypoints' box (< 100)
    assert torch.equal(add_outliers(insts, 200, seed=0, region="image")[0].pos, out[0].pos)
    spread = perturb_splits({"test": insts}, 200, outlier_region="image")["test"]
    assert torch.equal(spread[1].pos, out[1].pos)
    with pytest.raises(InvalidInputError, match="has no image"):
        add_outliers(_instances(1), 2, region="image")
    with pytest.raises(InvalidInputError, match="region must be one of"):
        add_outliers(_instances(1), 2, region="everywhere")
    missing = KeypointInstance(pos=base[0].pos, names=base[0].names, category="c", id="m",
                               image=str(tmp_path / "gone.png"))
    with pytest.raises(InvalidInputError, match="cannot be read"):
        add_outliers([missing], 2, region="image")
    with pytest.raises(ConfigError, match="outlier_region"):
        from pyg_ssgm.config import TrainConfig
        TrainConfig(outlier_region="everywhere")


def test_outliers_have_no_partner_in_real_pairs():
    a, b = add_outliers(_instances(2), 2)
    pair = make_pair(a, b)
    assert pair.y.size(1) == 10  # only the named keypoints are correspondences
    assert (pair.y < 10).all()


def test_drop_parts_share_minimum_and_determinism():
    insts = _instances(n=200, k=15)
    out = drop_parts(insts, 0.3, seed=0)
    kept = sum(i.pos.size(0) for i in out) / sum(i.pos.size(0) for i in insts)
    assert 0.6 < kept < 0.8
    for before, after in zip(insts, out):
        assert set(after.names) <= set(before.names)
        where = {n: j for j, n in enumerate(before.names)}
        assert all(torch.equal(after.pos[i], before.pos[where[n]]) for i, n in enumerate(after.names))
    assert all(i.pos.size(0) >= MIN_KEPT for i in drop_parts(insts, 0.95, seed=0))
    assert all(torch.equal(a.pos, b.pos) for a, b in zip(out, drop_parts(insts, 0.3, seed=0)))


def test_perturb_errors():
    insts = _instances(1)
    with pytest.raises(InvalidInputError, match="outliers per image"):
        add_outliers(insts, -1)
    with pytest.raises(InvalidInputError, match=r"\[0, 1\)"):
        drop_parts(insts, 1.0)
    with pytest.raises(InvalidInputError, match="before sampling image features"):
        add_outliers([KeypointInstance(pos=torch.rand(4, 2), names=list("abcd"), x=torch.rand(4, 3))], 1)
    with pytest.raises(InvalidInputError, match="KeypointInstance"):
        add_outliers([torch.rand(3, 2)], 1)


def test_perturb_splits_on_real_files_and_configs(tmp_path):
    from pyg_ssgm.benchmarking import BenchmarkConfig
    from pyg_ssgm.config import TrainConfig

    root = make_willow(tmp_path / "willow", with_images=False)
    splits = load_splits("willow", str(root))
    out = perturb_splits(splits, outliers=2, extra_drop=0.2)
    for name in splits:
        for before, after in zip(splits[name], out[name]):
            assert after.names.count(None) == 2 and after.pos.size(0) <= before.pos.size(0) + 2
    assert perturb_splits(splits) is splits
    with pytest.raises(ConfigError, match="outliers"):
        TrainConfig(outliers=-1)
    with pytest.raises(ConfigError, match="extra_drop"):
        TrainConfig(extra_drop=1.5)
    with pytest.raises(ConfigError, match="real dataset"):
        BenchmarkConfig(outliers=2)
    assert BenchmarkConfig(dataset="willow", root=str(root), outliers=4, skip_speed=True).name.startswith(
        "willow_outliers4_full")
