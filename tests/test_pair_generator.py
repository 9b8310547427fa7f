"""Property tests of the self-supervised pair generator, real pairs and pair batching."""
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch_geometric.data import Batch

from pyg_ssgm.data import (GeometricAugmentation, KeypointInstance, PairData, PairGenerator, add_completion_targets,
                           delaunay_edges, make_pair, pair_loader, GeneratedPairs, RealPairs)
from pyg_ssgm.errors import ConfigError, InvalidInputError


def instance(n, feat=4, seed=0, names=None, category="c"):
    g = torch.Generator().manual_seed(seed)
    return KeypointInstance(pos=torch.rand(n, 2, generator=g) * 100, x=torch.randn(n, feat, generator=g),
                            names=names or [f"k{i}" for i in range(n)], category=category, id=f"i{seed}")


def original_ids(data, side):
    return [int(name[1:]) for name in getattr(data, f"names_{side}")]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 25), drop=st.floats(0.0, 0.9), seed=st.integers(0, 10_000), min_kept=st.integers(1, 5))
def test_categories_partition_and_maps_are_consistent(n, drop, seed, min_kept):
    inst = instance(n, seed=seed)
    data = PairGenerator(drop_rate=drop, min_kept=min_kept)(inst, torch.Generator().manual_seed(seed))
    ids_s, ids_t = original_ids(data, "s"), original_ids(data, "t")
    assert len(set(ids_s)) == len(ids_s) and len(set(ids_t)) == len(ids_t)
    assert len(ids_s) >= min(min_kept, n) and len(ids_t) >= min(min_kept, n)
    common = set(ids_s) & set(ids_t)
    comp_s = set(ids_t) - set(ids_s)  # the source lacks these
    comp_t = set(ids_s) - set(ids_t)
    hidden = set(range(n)) - set(ids_s) - set(ids_t)
    # the four sets partition the instance's nodes
    assert len(common) + len(comp_s) + len(comp_t) + len(hidden) == n
    assert data.num_hidden == len(hidden)
    # y pairs exactly the common nodes, each with its own copy
    assert data.y.size(1) == len(common)
    assert all(ids_s[i] == ids_t[j] for i, j in data.y.t().tolist())
    # completion maps point at the node of the other side that each missing node stands for
    assert sorted(ids_t[j] for j in data.comp_index_s.tolist()) == sorted(comp_s)
    assert sorted(ids_s[i] for i in data.comp_index_t.tolist()) == sorted(comp_t)
    assert data.comp_pos_s.shape == (len(comp_s), 2) and data.comp_pos_t.shape == (len(comp_t), 2)
    assert data.edge_index_s.max().item() < len(ids_s) if data.edge_index_s.numel() else True


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_transform_keeps_correspondences(seed):
    """Without jitter, each side is an exact planar transform of the instance: the completion
    targets of a side lie where its transform puts the missing nodes, consistent with the kept ones."""
    aug = GeometricAugmentation(jitter=0.0, perspective=0.0)
    inst = instance(15, seed=seed)
    data = PairGenerator(drop_rate=0.3, augmentation=aug)(inst, torch.Generator().manual_seed(seed))
    for side in "st":
        ids = original_ids(data, side)
        pos = getattr(data, f"pos_{side}")
        # solve the affine map instance -> side from kept nodes, then check the completion targets
        src = torch.cat([inst.pos[ids], torch.ones(len(ids), 1)], 1).double()
        sol = torch.linalg.lstsq(src, pos.double()).solution
        assert torch.allclose(src @ sol, pos.double(), atol=1e-3)
        other = "t" if side == "s" else "s"
        missing = [original_ids(data, other)[j] for j in getattr(data, f"comp_index_{side}").tolist()]
        if missing:
            pred = torch.cat([inst.pos[missing], torch.ones(len(missing), 1)], 1).double() @ sol
            assert torch.allclose(pred, getattr(data, f"comp_pos_{side}").double(), atol=1e-3)


def test_warp_is_smooth_non_affine_and_shared_by_kept_and_missing_nodes():
    """The non-rigid warp moves the points (by about ``deformation`` of the scale), more than any
    affine map explains; it is a field over the plane, so the completion targets are warped like
    the kept nodes; and switching it on leaves the affine part of the draw unchanged."""
    inst = instance(15, seed=1)
    affine = GeometricAugmentation(jitter=0.0)
    warped = GeometricAugmentation(jitter=0.0, deformation=0.15)
    tf_a = affine.sample(inst.pos, torch.Generator().manual_seed(3))
    tf_w = warped.sample(inst.pos, torch.Generator().manual_seed(3))
    assert tf_a.anchors is None or tf_a.anchors.numel() == 0
    assert torch.equal(tf_a.matrix, tf_w.matrix) and torch.equal(tf_a.shift, tf_w.shift)
    moved = tf_w.apply(inst.pos)
    src = torch.cat([inst.pos, torch.ones(15, 1)], 1).double()
    residual = src @ torch.linalg.lstsq(src, moved.double()).solution - moved.double()
    scale = (inst.pos - inst.pos.mean(0)).pow(2).sum(-1).mean().sqrt()
    assert residual.norm(dim=1).mean() > 0.01 * scale  # not an affine map
    assert (moved - tf_a.apply(inst.pos)).norm(dim=1).max() < 1.0 * scale  # a mild one
    assert torch.allclose(tf_w.apply(inst.pos[4:9]), moved[4:9])
    data = PairGenerator(drop_rate=0.3, augmentation=warped)(inst, torch.Generator().manual_seed(0))
    assert data.comp_pos_s.shape[0] + data.comp_pos_t.shape[0] > 0
    with pytest.raises(ConfigError):
        GeometricAugmentation(deformation=-0.1)
    with pytest.raises(ConfigError):
        GeometricAugmentation(deformation_bandwidth=0.0)


def test_deterministic_given_generator():
    inst, gen = instance(20), PairGenerator(drop_rate=0.3)
    a = gen(inst, torch.Generator().manual_seed(5))
    b = gen(inst, torch.Generator().manual_seed(5))
    c = gen(inst, torch.Generator().manual_seed(6))
    assert torch.equal(a.pos_s, b.pos_s) and torch.equal(a.y, b.y) and torch.equal(a.x_t, b.x_t)
    assert not torch.equal(a.pos_s, c.pos_s)


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 12), min_size=2, max_size=4), seed=st.integers(0, 1000))
def test_batching_offsets_every_index_field(sizes, seed):
    gen = PairGenerator(drop_rate=0.4, min_kept=1)
    pairs = [gen(instance(n, seed=seed + k), torch.Generator().manual_seed(seed + k)) for k, n in enumerate(sizes)]
    batch = Batch.from_data_list(pairs, follow_batch=PairData.FOLLOW_BATCH)
    off_s = off_t = 0
    for k, d in enumerate(pairs):
        back = batch.get_example(k)
        for key in ("y", "edge_index_s", "edge_index_t", "comp_index_s", "comp_index_t"):
            assert torch.equal(getattr(back, key), getattr(d, key)), key
        sel = (batch.y[0] >= off_s) & (batch.y[0] < off_s + d.num_nodes_s)
        assert torch.equal(batch.y[:, sel] - torch.tensor([[off_s], [off_t]]), d.y)
        assert (batch.x_s_batch[off_s:off_s + d.num_nodes_s] == k).all()
        off_s, off_t = off_s + d.num_nodes_s, off_t + d.num_nodes_t
    assert batch.comp_index_s.numel() == 0 or batch.comp_index_s.max() < batch.x_t.size(0)
    assert batch.comp_index_t.numel() == 0 or batch.comp_index_t.max() < batch.x_s.size(0)


def test_delaunay_fallbacks():
    assert delaunay_edges(torch.rand(0, 2)).shape == (2, 0)
    assert delaunay_edges(torch.rand(1, 2)).shape == (2, 0)
    assert delaunay_edges(torch.rand(2, 2)).tolist() == [[0, 1], [1, 0]]
    line = torch.stack([torch.tensor([3.0, 0.0, 2.0, 1.0]), torch.tensor([6.0, 0.0, 4.0, 2.0])], 1)
    chain = delaunay_edges(line)  # collinear: neighbours along the line, nothing else
    assert sorted(map(tuple, chain.t().tolist())) == sorted([(1, 3), (3, 1), (3, 2), (2, 3), (2, 0), (0, 2)])
    tri = delaunay_edges(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    assert tri.size(1) == 6
    dup = delaunay_edges(torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    assert set(dup.view(-1).tolist()) == set(range(5))  # duplicates stay connected


def test_delaunay_batched_equals_each_graph_alone():
    """One call over a batch gives each graph's own edges, offset: no edge crosses graphs, and
    the fallbacks (empty, single, pair, collinear, duplicate graphs) hold inside a batch."""
    g = torch.Generator().manual_seed(0)
    graphs = [torch.rand(7, 2, generator=g), torch.rand(0, 2), torch.rand(1, 2), torch.rand(2, 2),
              torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]),
              torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), torch.rand(12, 2, generator=g)]
    pos = torch.cat(graphs)
    batch = torch.cat([torch.full((p.size(0),), i) for i, p in enumerate(graphs)])
    offsets = torch.tensor([0] + [p.size(0) for p in graphs]).cumsum(0)
    expected = torch.cat([delaunay_edges(p) + offsets[i] for i, p in enumerate(graphs)], dim=1)
    got = delaunay_edges(pos, batch)
    assert torch.equal(got, expected)
    assert torch.equal(batch[got[0]], batch[got[1]])
    with pytest.raises(InvalidInputError, match="sorted vector"):  # unsorted: refused, not silently wrong
        delaunay_edges(pos, batch.flip(0))


def test_make_pair_no_filtering_and_intersection():
    a = instance(5, names=["a", "b", "c", "d", None], category="x")
    b = instance(4, names=["d", "e", "a", None], seed=1, category="x")
    pair = make_pair(a, b)
    assert pair.num_nodes_s == 5 and pair.num_nodes_t == 4  # nothing dropped
    assert sorted(map(tuple, pair.y.t().tolist())) == [(0, 2), (3, 0)]  # unnamed points never match
    inter = make_pair(a, b, intersection=True)
    assert inter.num_nodes_s == inter.num_nodes_t == 2 and inter.y.size(1) == 2


def test_completion_targets_of_a_real_pair_follow_the_fitted_affine_map():
    # The target is an exact affine image of the source on the shared names: the nodes each side
    # lacks land where that map (or its inverse) puts them.
    A = torch.tensor([[1.2, 0.3], [-0.2, 0.9], [15.0, -7.0]], dtype=torch.float64)
    full = instance(7, category="x")
    pos_t = (torch.cat([full.pos.double(), torch.ones(7, 1, dtype=torch.float64)], 1) @ A).float()
    tgt = KeypointInstance(pos=pos_t[2:], x=full.x[2:], names=full.names[2:], category="x")  # lacks k0, k1
    src = full.subset([0, 1, 2, 3, 4, 5])  # lacks k6
    pair = add_completion_targets(make_pair(src, tgt))
    assert pair.comp_index_s.tolist() == [4] and pair.comp_index_t.tolist() == [0, 1]
    assert torch.allclose(pair.comp_pos_t, pos_t[:2], atol=1e-3)  # k0, k1 in the target's frame
    assert torch.allclose(pair.comp_pos_s, full.pos[6:], atol=1e-3)  # k6 in the source's frame
    assert torch.equal(pair.comp_x_s, tgt.x[4:5]) and torch.equal(pair.comp_x_t, src.x[:2])
    # Fewer than 3 correspondences, or all on one line: no unique affine map, the mean shift alone.
    line = KeypointInstance(pos=torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [5.0, 1.0]]),
                            names=["a", "b", "c", "d"], category="x")
    moved = KeypointInstance(pos=torch.tensor([[10.0, 0.0], [12.0, 1.0], [14.0, 2.0]]), names=["a", "b", "c"],
                             category="x")
    shift = moved.pos.mean(0) - line.pos[:3].mean(0)
    assert torch.allclose(add_completion_targets(make_pair(line, moved)).comp_pos_t, line.pos[3:] + shift)
    two = add_completion_targets(make_pair(line.subset([0, 1, 3]), moved.subset([0, 1])))
    assert torch.allclose(two.comp_pos_t, line.pos[3:] + moved.pos[:2].mean(0) - line.pos[:2].mean(0))


BIRD = ["beak", "left eye", "right eye", "left leg", "right leg", "left wing", "tail", "crown"]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), shown=st.sets(st.integers(0, len(BIRD) - 1), min_size=3))
def test_mirror_pairs_exchange_left_and_right(seed, shown):
    """A mirror pair's target stands for the mirror image: its names swap left and right, its
    correspondences are exactly those of the names, and a node the source lacks is placed where
    the source's own copy of that keypoint would be (unknown, so absent, where the instance does
    not show it)."""
    names = [BIRD[k] for k in sorted(shown)]
    inst = instance(len(names), seed=seed, names=names)
    gen = PairGenerator(drop_rate=0.3, mirror_rate=1.0, augmentation=GeometricAugmentation(jitter=0.0))
    data = gen(inst, torch.Generator().manual_seed(seed))
    assert data.mirror.tolist() == [1]
    swap = {"left": "right", "right": "left"}
    kept_t = [n for n in data.names_t]
    assert all(" ".join(swap.get(w, w) for w in n.split()) in names for n in kept_t)
    by_name = {(i, j) for i, a in enumerate(data.names_s) for j, b in enumerate(data.names_t) if a == b}
    assert {tuple(p) for p in data.y.t().tolist()} == by_name
    partnered_t = {j for _, j in by_name}
    lacking = [j for j, n in enumerate(data.names_t) if j not in partnered_t and n in names]
    assert sorted(data.comp_index_s.tolist()) == sorted(lacking)
    ids_s = [names.index(n) for n in data.names_s]  # the source's affine map, from its kept nodes
    src = torch.cat([inst.pos[ids_s], torch.ones(len(ids_s), 1)], 1).double()
    affine = torch.linalg.lstsq(src, data.pos_s.double()).solution
    for j, pos in zip(data.comp_index_s.tolist(), data.comp_pos_s):
        where = torch.cat([inst.pos[names.index(data.names_t[j])], torch.ones(1)]).double() @ affine
        assert torch.allclose(where, pos.double(), atol=1e-3)


def test_mirror_flag_batches_and_stays_off_by_default():
    inst = instance(8, names=BIRD)
    assert not hasattr(PairGenerator()(inst, torch.Generator().manual_seed(0)), "mirror")
    gen = PairGenerator(mirror_rate=0.5)
    pairs = [gen(inst, torch.Generator().manual_seed(k)) for k in range(16)]
    flags = [int(p.mirror) for p in pairs]
    assert 0 < sum(flags) < 16
    batch = Batch.from_data_list(pairs, follow_batch=PairData.FOLLOW_BATCH)
    assert batch.mirror.tolist() == flags
    with pytest.raises(ConfigError, match="mirror_rate"):
        PairGenerator(mirror_rate=1.5)
    # plain(): the same pairs a generator without mirror pairs makes (completion is scored on them)
    plain = gen.plain()
    assert plain.mirror_rate == 0.0 and gen.mirror_rate == 0.5 and plain.drop_rate == gen.drop_rate
    for k in range(4):
        a, b = plain(inst, torch.Generator().manual_seed(k)), PairGenerator()(inst, torch.Generator().manual_seed(k))
        assert torch.equal(a.pos_s, b.pos_s) and torch.equal(a.y, b.y) and not hasattr(a, "mirror")


def test_intact_pairs_drop_nothing_and_stay_off_by_default():
    inst = instance(10)
    gen = PairGenerator(drop_rate=0.5, intact_rate=0.5)
    pairs = [gen(inst, torch.Generator().manual_seed(k)) for k in range(32)]
    intact = [p for p in pairs if p.y.size(1) == 10]
    assert 0 < len(intact) < 32  # about half; 0.5 ** 20 odds that a plain pair keeps all ten on both sides
    for p in intact:  # every node common, nothing to generate, nothing hidden
        assert p.pos_s.size(0) == p.pos_t.size(0) == 10 and p.num_hidden == 0
        assert p.comp_pos_s.numel() == p.comp_pos_t.numel() == 0
    # off: the same random numbers as before the option existed
    for k in range(4):
        a = PairGenerator(drop_rate=0.5)(inst, torch.Generator().manual_seed(k))
        b = PairGenerator(drop_rate=0.5, intact_rate=0.0)(inst, torch.Generator().manual_seed(k))
        assert torch.equal(a.pos_s, b.pos_s) and torch.equal(a.y, b.y)
    assert gen.plain().intact_rate == 0.0 and gen.intact_rate == 0.5  # completion is scored on plain pairs
    with pytest.raises(ConfigError, match="intact_rate"):
        PairGenerator(intact_rate=-0.1)


def test_bad_input_raises_named_errors():
    with pytest.raises(InvalidInputError):
        KeypointInstance(pos=torch.tensor([[0.0, float("nan")]]), names=["a"])
    with pytest.raises(InvalidInputError):
        KeypointInstance(pos=torch.rand(2, 2), names=["a", "a"])
    with pytest.raises(InvalidInputError):
        KeypointInstance(pos=torch.rand(2, 3), names=["a", "b"])
    with pytest.raises(ConfigError):
        PairGenerator(drop_rate=1.5)
    with pytest.raises(ConfigError):
        GeometricAugmentation(scale=(2.0, 1.0))
    with pytest.raises(InvalidInputError):
        make_pair(instance(3, feat=4), instance(3, feat=5))
    with pytest.raises(InvalidInputError):
        PairGenerator()(KeypointInstance(pos=torch.zeros(0, 2), names=[]))


def test_datasets_and_loader():
    insts = [instance(8, seed=k, category="ab"[k % 2]) for k in range(6)]
    gen_ds = GeneratedPairs(insts, seed=3)
    assert torch.equal(gen_ds[2].pos_s, gen_ds[2].pos_s)
    gen_ds.set_epoch(1)
    first = gen_ds[2].pos_s
    gen_ds.set_epoch(0)
    assert not torch.equal(first, gen_ds[2].pos_s)  # a new epoch gives new pairs
    real = RealPairs(insts)
    assert len(real) == 6  # 3 + 3 pairs within the two categories
    batch = next(iter(pair_loader(real, batch_size=4)))
    assert batch.num_graphs == 4 and batch.x_s_batch.max() == 3


def _cluttered(seed=0, named=10, unnamed=5):
    inst = instance(named + unnamed, seed=seed)
    return KeypointInstance(pos=inst.pos, x=inst.x, names=[f"k{i}" for i in range(named)] + [None] * unnamed,
                            category="c", id=f"i{seed}")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unnamed_points_get_no_partner_and_a_place_of_their_own(seed):
    """Clutter belongs to nothing: in a training pair an unnamed point has no partner and no
    completion target, and the target's copy is drawn anew inside the box of the instance's points."""
    inst = _cluttered(seed)
    aug = GeometricAugmentation(rotation=0.0, jitter=0.0, perspective=0.0, scale=(1.0, 1.0), anisotropy=0.0, shear=0.0,
                                translation=0.0)
    data = PairGenerator(drop_rate=0.2, augmentation=aug, shuffle=False)(inst, torch.Generator().manual_seed(seed))
    named_s = [i for i, n in enumerate(data.names_s) if n is not None]
    assert data.y.size(1) == len(set(data.names_s) & set(data.names_t) - {None})
    assert all(data.names_s[i] is not None and data.names_s[i] == data.names_t[j] for i, j in data.y.t().tolist())
    for side, other in (("s", "t"), ("t", "s")):
        partners = getattr(data, f"comp_index_{side}").tolist()
        assert all(getattr(data, f"names_{other}")[j] is not None for j in partners)
    # with no transform the named points keep their places; the unnamed ones of the target moved
    clutter_s = [i for i, n in enumerate(data.names_s) if n is None]
    clutter_t = [i for i, n in enumerate(data.names_t) if n is None]
    assert clutter_s and clutter_t and named_s
    assert torch.allclose(data.pos_s[named_s], inst.pos[[int(data.names_s[i][1:]) for i in named_s]], atol=1e-4)
    low, high = inst.pos.min(0).values, inst.pos.max(0).values
    moved = data.pos_t[clutter_t]
    assert ((moved >= low - 1e-4) & (moved <= high + 1e-4)).all()
    assert not any(torch.allclose(data.pos_t[j], data.pos_s[i]) for i in clutter_s for j in clutter_t)
    # switched off, an unnamed point is matched to its own copy, as before
    old = PairGenerator(drop_rate=0.0, redraw_unnamed=False)(inst, torch.Generator().manual_seed(seed))
    assert old.y.size(1) == inst.num_nodes


def test_redrawn_clutter_spreads_as_the_instances_own():
    """Clutter drawn across a whole image stays spread across it in the target copy, not pulled
    into the keypoints' box (where a keypoint filter could no longer tell it by its place)."""
    g = torch.Generator().manual_seed(0)
    pos = torch.cat([torch.rand(10, 2, generator=g) * 10 + 45, torch.tensor([[0.0, 0.0], [100.0, 100.0]]),
                     torch.rand(8, 2, generator=g) * 100])
    inst = KeypointInstance(pos=pos, names=[f"k{i}" for i in range(10)] + [None] * 10, category="c")
    aug = GeometricAugmentation(rotation=0.0, jitter=0.0, perspective=0.0, scale=(1.0, 1.0), anisotropy=0.0, shear=0.0,
                                translation=0.0)
    generate = PairGenerator(drop_rate=0.0, augmentation=aug, shuffle=False)
    clutter = torch.cat([generate(inst, torch.Generator().manual_seed(s)).pos_t[10:] for s in range(5)])
    outside = ((clutter < 45) | (clutter > 55)).any(-1).float().mean()
    assert outside > 0.8  # uniform over [0, 100]^2: 99 % of points lie outside the keypoints' box
    assert ((clutter >= 0) & (clutter <= 100)).all()


def test_instances_without_clutter_are_generated_exactly_as_before():
    """Nothing to redraw, no random number drawn: the same pairs with the option on or off."""
    for inst in (instance(12, seed=3), KeypointInstance(pos=torch.rand(6, 2), names=[None] * 6, category="c")):
        a = PairGenerator(drop_rate=0.3)(inst, torch.Generator().manual_seed(7))
        b = PairGenerator(drop_rate=0.3, redraw_unnamed=False)(inst, torch.Generator().manual_seed(7))
        assert torch.equal(a.pos_t, b.pos_t) and torch.equal(a.y, b.y) and torch.equal(a.x_t, b.x_t)
