"""Tests of the embedded synthetic keypoint dataset (pyg_ssgm.data.synthetic)."""
import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_ssgm.data.instance import KeypointInstance
from pyg_ssgm.data.synthetic import SPLITS, SyntheticConfig, SyntheticKeypoints, load_synthetic
from pyg_ssgm.errors import ConfigError

# Small but not tiny: enough instances for statistics, fast enough for every test.
SMALL = SyntheticConfig(num_categories=3, num_train=12, num_val=4, num_test=8)


@pytest.fixture(scope="module")
def default_ds() -> SyntheticKeypoints:
    return SyntheticKeypoints()


def nn_accuracy(instances) -> float:
    """Raw-feature nearest-neighbour matching accuracy over all same-category pairs.

    Every named point of ``a`` whose name is present in ``b`` counts; it is correct when its
    Euclidean nearest neighbour in ``b`` (clutter included) has the same name.
    """
    by_cat = {}
    for inst in instances:
        # Names as integer ids (-1 for clutter) so each pair is a few array ops.
        ids = np.array([-1 if n is None else int(n[2:]) for n in inst.names])
        x = inst.x.double().numpy()
        by_cat.setdefault(inst.category, []).append((x, (x ** 2).sum(1), ids))
    correct = total = 0
    for group in by_cat.values():
        for (xa, _, ia), (xb, sb, ib) in itertools.combinations(group, 2):
            pred = ib[(sb[None, :] - 2 * xa @ xb.T).argmin(1)]  # argmin of squared distance
            has_partner = (ia >= 0) & np.isin(ia, ib)
            total += int(has_partner.sum())
            correct += int((has_partner & (pred == ia)).sum())
    return correct / total


def assert_same(a: KeypointInstance, b: KeypointInstance) -> None:
    assert a.id == b.id and a.category == b.category and a.names == b.names
    assert torch.equal(a.pos, b.pos) and torch.equal(a.x, b.x)


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------
def test_same_seed_gives_bitwise_same_data_regardless_of_global_rng():
    torch.manual_seed(123)
    np.random.seed(123)
    a = SyntheticKeypoints(SMALL)
    torch.manual_seed(999)
    np.random.seed(999)
    torch.rand(10), np.random.rand(10)
    b = SyntheticKeypoints(SMALL)
    for split in SPLITS:
        assert len(a[split]) == len(b[split])
        for x, y in zip(a[split], b[split]):
            assert_same(x, y)


def test_generation_leaves_global_rng_untouched():
    torch.manual_seed(5)
    np.random.seed(5)
    expected_t, expected_n = torch.rand(3), np.random.rand(3)
    torch.manual_seed(5)
    np.random.seed(5)
    SyntheticKeypoints(SMALL)
    assert torch.equal(torch.rand(3), expected_t)
    assert np.array_equal(np.random.rand(3), expected_n)


def test_different_seed_gives_different_data():
    a = SyntheticKeypoints(SMALL)
    b = SyntheticKeypoints(replace(SMALL, seed=1))
    assert any(
        x.names != y.names or x.pos.shape != y.pos.shape or not torch.equal(x.pos, y.pos)
        for x, y in zip(a.test, b.test)
    )
    assert any(a.templates[c].shape != b.templates[c].shape or not torch.equal(a.templates[c], b.templates[c])
               for c in a.categories)


def test_split_sizes_do_not_change_other_splits():
    a = SyntheticKeypoints(SMALL)
    b = SyntheticKeypoints(SMALL, num_train=3)
    for x, y in zip(a.test, b.test):
        assert_same(x, y)


def test_feature_noise_only_changes_features():
    a = SyntheticKeypoints(SMALL, feature_noise=0.1)
    b = SyntheticKeypoints(SMALL, feature_noise=2.0)
    for x, y in zip(a.test, b.test):
        assert x.names == y.names and torch.equal(x.pos, y.pos)
        assert not torch.equal(x.x, y.x)


# ---------------------------------------------------------------------------------------------
# Structure
# ---------------------------------------------------------------------------------------------
def test_splits_sizes_ids_and_disjointness(default_ds):
    cfg = default_ds.config
    ids = {}
    for split in SPLITS:
        insts = default_ds[split]
        assert len(insts) == cfg.num_categories * cfg.num_instances(split)
        ids[split] = {inst.id for inst in insts}
        assert len(ids[split]) == len(insts)
        assert all(inst.id.split("/")[1] == split for inst in insts)
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert "cat0/train/0007" in ids["train"]
    assert default_ds.train is default_ds.splits["train"] and default_ds.test is default_ds["test"]


def test_splits_are_distinct_draws(default_ds):
    # Same category and index in two splits must not be the same instance.
    for a, b in zip(default_ds.train, default_ds.test):
        assert a.names != b.names or not torch.equal(a.pos, b.pos)


def test_shapes_names_categories(default_ds):
    cfg = default_ds.config
    assert default_ds.categories == [f"cat{c}" for c in range(cfg.num_categories)]
    for cat in default_ds.categories:
        names = default_ds.keypoint_names[cat]
        assert cfg.min_keypoints <= len(names) <= cfg.max_keypoints
        assert names[0] == "kp00" and len(set(names)) == len(names)
        assert default_ds.templates[cat].shape == (len(names), 2)
        assert default_ds.latents[cat].shape == (len(names), cfg.feature_dim)
    for inst in default_ds.train + default_ds.val + default_ds.test:
        assert isinstance(inst, KeypointInstance)
        n = inst.num_nodes
        assert inst.pos.shape == (n, 2) and inst.pos.dtype == torch.float32
        assert inst.x.shape == (n, cfg.feature_dim) and inst.x.dtype == torch.float32
        assert inst.id.startswith(inst.category + "/")
        assert set(inst.names) <= set(default_ds.keypoint_names[inst.category])  # no clutter by default
        assert torch.isfinite(inst.pos).all() and torch.isfinite(inst.x).all()


def test_node_order_is_shuffled(default_ds):
    # A model must not be able to read identities off the node index.
    sorted_count = sum(inst.names == sorted(inst.names) for inst in default_ds.train)
    assert sorted_count < len(default_ds.train) // 10
    unshuffled = SyntheticKeypoints(SMALL, shuffle_nodes=False)
    assert all(inst.names == sorted(inst.names) for inst in unshuffled.train)


def test_geometry_is_a_deformed_template():
    # Without deformation, jitter and occlusion an instance is an exact similarity of the template.
    ds = SyntheticKeypoints(SMALL, deformation=0.0, jitter=0.0, shear=0.0, occlusion_prob=0.0,
                            region_occlusion_prob=0.0, shuffle_nodes=False)
    for inst in ds.test:
        t = ds.templates[inst.category].double()
        p = inst.pos.double()
        t, p = t - t.mean(0), p - p.mean(0)
        # Rigid + scale: pairwise distance ratios are constant.
        ratio = torch.pdist(p) / torch.pdist(t)
        assert torch.allclose(ratio, ratio.mean().expand_as(ratio), rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# Occlusion and clutter
# ---------------------------------------------------------------------------------------------
def test_occlusion_hides_points_and_varies_name_sets(default_ds):
    for cat in default_ds.categories:
        name_sets = {tuple(sorted(i.names)) for i in default_ds.train if i.category == cat}
        assert len(name_sets) > 1
    sizes = [i.num_nodes for i in default_ds.train]
    totals = [len(default_ds.keypoint_names[i.category]) for i in default_ds.train]
    assert any(s < t for s, t in zip(sizes, totals))


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5])
def test_visible_fraction_matches_occlusion_prob(p):
    ds = SyntheticKeypoints(num_categories=4, num_train=60, num_val=0, num_test=0, occlusion_prob=p,
                            region_occlusion_prob=0.0, min_visible=1, min_keypoints=15,
                            max_keypoints=25)
    visible = sum(i.num_nodes for i in ds.train) / sum(len(ds.keypoint_names[i.category]) for i in ds.train)
    assert visible == pytest.approx(1 - p, abs=0.03)


def test_region_occlusion_hides_more():
    base = dict(num_categories=3, num_train=60, num_val=0, num_test=0, occlusion_prob=0.0)
    none = SyntheticKeypoints(**base, region_occlusion_prob=0.0)
    always = SyntheticKeypoints(**base, region_occlusion_prob=1.0, region_occlusion_max_fraction=0.6)
    n_none = sum(i.num_nodes for i in none.train)
    n_always = sum(i.num_nodes for i in always.train)
    assert n_none == sum(len(none.keypoint_names[i.category]) for i in none.train)
    assert n_always < 0.85 * n_none


def test_min_visible_is_respected():
    ds = SyntheticKeypoints(SMALL, occlusion_prob=0.95, region_occlusion_prob=1.0, min_visible=5)
    assert all(sum(n is not None for n in i.names) >= 5 for i in ds.train + ds.test)
    assert any(i.num_nodes == 5 for i in ds.train)
    # The extreme: everything hidden, min_visible points come back.
    ds = SyntheticKeypoints(SMALL, occlusion_prob=1.0, min_visible=3)
    assert all(i.num_nodes == 3 for i in ds.train)


def test_clutter_points_are_unnamed_and_confusable():
    ds = SyntheticKeypoints(SMALL, max_clutter=6)
    counts = [sum(n is None for n in i.names) for i in ds.train]
    assert max(counts) <= 6 and max(counts) > 0 and min(counts) < max(counts)
    named = torch.cat([i.x[[n is not None for n in i.names]] for i in ds.train])
    clutter = torch.cat([i.x[[n is None for n in i.names]] for i in ds.train])
    # Same feature distribution: comparable norms.
    assert clutter.norm(dim=1).mean() == pytest.approx(named.norm(dim=1).mean().item(), rel=0.15)
    # Named content is unchanged by adding clutter (clutter has its own random stream).
    plain = SyntheticKeypoints(SMALL)
    for a, b in zip(plain.train, ds.train):
        keep = [k for k, n in enumerate(b.names) if n is not None]
        assert sorted(a.names) == sorted(b.names[k] for k in keep)


def test_load_synthetic_matches_class():
    insts = load_synthetic("val", SMALL)
    ref = SyntheticKeypoints(SMALL).val
    assert len(insts) == len(ref)
    for a, b in zip(insts, ref):
        assert_same(a, b)
    assert len(load_synthetic("test", SMALL, num_test=2)) == 2 * SMALL.num_categories
    with pytest.raises(ConfigError, match="split"):
        load_synthetic("training")


# ---------------------------------------------------------------------------------------------
# Appearance
# ---------------------------------------------------------------------------------------------
def test_default_features_are_informative_but_imperfect(default_ds):
    acc = nn_accuracy(default_ds.test)
    assert 0.45 < acc < 0.85


def test_feature_noise_controls_nn_accuracy():
    accs = [nn_accuracy(SyntheticKeypoints(SMALL, feature_noise=s).test) for s in (0.3, 1.25, 2.5)]
    assert accs[0] > accs[1] > accs[2]
    assert accs[0] > 0.95 and accs[2] < 0.5


def test_default_build_is_fast():
    import time

    start = time.perf_counter()
    SyntheticKeypoints()
    assert time.perf_counter() - start < 2.0


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value",
    [
        ("num_categories", 0),
        ("num_train", -1),
        ("min_keypoints", 2),
        ("min_keypoints", 25),  # > max_keypoints
        ("min_visible", 0),
        ("min_visible", 11),  # > min_keypoints
        ("occlusion_prob", 1.5),
        ("region_occlusion_prob", -0.1),
        ("flip_prob", 2.0),
        ("feature_noise", -1.0),
        ("feature_dim", 0),
        ("scale_range", (1.2, 0.8)),
        ("scale_range", (0.0, 1.0)),
        ("deformation_bandwidth", 0.0),
        ("jitter", float("nan")),
        ("num_test", 2.5),
        ("max_clutter", True),
    ],
)
def test_bad_config_raises(field, value):
    with pytest.raises(ConfigError, match=field):
        SyntheticConfig(**{field: value})
    with pytest.raises(ConfigError, match=field):
        SyntheticKeypoints(**{field: value})


def test_mutated_config_is_revalidated():
    cfg = SyntheticConfig()
    cfg.occlusion_prob = -0.5
    with pytest.raises(ConfigError, match="occlusion_prob"):
        SyntheticKeypoints(cfg)


def test_unknown_override_raises():
    with pytest.raises(ConfigError, match="nosuchfield"):
        SyntheticKeypoints(nosuchfield=1)


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        SyntheticConfig(num_train=-3)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    kmin=st.integers(3, 12),
    extra=st.integers(0, 10),
    occ=st.floats(0.0, 1.0),
    region=st.floats(0.0, 1.0),
    clutter=st.integers(0, 4),
    min_visible=st.integers(1, 3),
)
def test_any_valid_config_gives_valid_instances(seed, kmin, extra, occ, region, clutter, min_visible):
    ds = SyntheticKeypoints(num_categories=2, num_train=3, num_val=1, num_test=2, seed=seed,
                            min_keypoints=kmin, max_keypoints=kmin + extra, occlusion_prob=occ,
                            region_occlusion_prob=region, max_clutter=clutter,
                            min_visible=min_visible, flip_prob=0.5)
    for inst in ds.train + ds.val + ds.test:
        named = [n for n in inst.names if n is not None]
        assert min_visible <= len(named) <= len(ds.keypoint_names[inst.category])
        assert len(inst.names) - len(named) <= clutter
        assert inst.x.shape == (inst.num_nodes, 32)
        assert torch.isfinite(inst.pos).all()
