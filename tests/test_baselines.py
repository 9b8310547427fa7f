"""Classical pygmtools baselines on PairData batches: exact on identical graphs, batch-consistent, valid."""
import pytest
import torch
from torch_geometric.data import Batch

from pyg_ssgm import metrics as M
from pyg_ssgm.baselines import SOLVERS, ClassicalMatcher, shape_context
from pyg_ssgm.data import KeypointInstance, PairData, RealPairs, make_pair, pair_loader
from pyg_ssgm.data.synthetic import load_synthetic
from pyg_ssgm.errors import ConfigError, InvalidInputError


@pytest.fixture(scope="module")
def instances():
    return load_synthetic("val", num_categories=2, num_val=4, min_keypoints=6, max_keypoints=14)


def geometry_only(inst):
    return KeypointInstance(inst.pos, inst.names, inst.category, id=inst.id)


def batch_of(pairs):
    return Batch.from_data_list(pairs, follow_batch=PairData.FOLLOW_BATCH)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("features", [True, False], ids=["features", "geometry"])
def test_identical_graphs_are_matched_exactly(instances, solver, features):
    insts = instances if features else [geometry_only(i) for i in instances]
    pairs = [make_pair(i, i) for i in insts]
    preds = ClassicalMatcher(solver)(batch_of(pairs))
    for pred, data in zip(preds, pairs):
        assert M.f1(pred, data.y) == 1.0


@pytest.mark.parametrize("solver", SOLVERS)
def test_batch_equals_one_at_a_time(instances, solver):
    ds = RealPairs(instances)  # pairs of different sizes on both sides
    batch = next(iter(pair_loader(ds, batch_size=len(ds))))
    assert len(set(batch.x_s_ptr.diff().tolist())) > 1 and len(set(batch.x_t_ptr.diff().tolist())) > 1
    matcher = ClassicalMatcher(solver)
    together = matcher(batch)
    for k, pred in enumerate(together):
        alone = matcher(ds[k])
        assert len(alone) == 1 and torch.equal(alone[0], pred)


@pytest.mark.parametrize("solver", SOLVERS)
def test_outputs_are_valid_full_matchings(instances, solver):
    ds = RealPairs(instances)
    batch = next(iter(pair_loader(ds, batch_size=len(ds))))
    preds = ClassicalMatcher(solver)(batch)
    assert len(preds) == len(ds)
    for pred, data in zip(preds, ds):
        n = (data.num_nodes_s, data.num_nodes_t)
        M.check_matching(pred, num_nodes=n)  # long [2, K], in range, no node twice
        assert pred.size(1) == min(n)  # the plain solvers match as many nodes as possible
        assert torch.equal(pred[0], pred[0].sort().values)
    # the classical baselines do better than chance on real cross-instance pairs
    assert M.aggregate(M.batch_counts(preds, batch)).mean.f1 > 0.3


def test_degenerate_pairs_in_a_batch(instances):
    """Empty, single-node and edgeless sides sit next to normal pairs in one padded call."""
    g = torch.Generator().manual_seed(0)

    def inst(n, names):
        return KeypointInstance(torch.rand(n, 2, generator=g) * 10, names, "c", x=torch.randn(n, 32, generator=g))

    pairs = [
        make_pair(inst(0, []), inst(3, ["a", "b", "c"])),
        make_pair(inst(1, ["a"]), inst(2, ["b", "a"])),
        make_pair(instances[0], instances[1]),
        make_pair(inst(2, ["a", "b"]), inst(0, [])),
    ]
    for solver in SOLVERS:
        preds = ClassicalMatcher(solver)(batch_of(pairs))
        assert [p.size(1) for p in preds] == [0, 1, min(instances[0].num_nodes, instances[1].num_nodes), 0]
        for pred, data in zip(preds, pairs):
            M.check_matching(pred, num_nodes=(data.num_nodes_s, data.num_nodes_t))


def test_threshold_partial_mode(instances):
    ds = RealPairs(instances)
    batch = next(iter(pair_loader(ds, batch_size=len(ds))))
    plain = ClassicalMatcher("hungarian")
    full, aff = plain.predict(batch)
    assert all(((a >= 0) & (a <= 1)).all() for a in aff)  # node affinities live in [0, 1]
    assert all(torch.equal(a, b) for a, b in zip(ClassicalMatcher("hungarian", threshold=0.0)(batch), full))
    assert all(p.size(1) == 0 for p in ClassicalMatcher("hungarian", threshold=1.01)(batch))
    t = float(torch.cat(aff).median())
    partial = ClassicalMatcher("hungarian", threshold=t)(batch)
    for p, f, a in zip(partial, full, aff):
        assert torch.equal(p, f[:, a >= t])  # a subset of the full matching: the low-affinity pairs go


@pytest.mark.parametrize("solver", ["hungarian", "rrwm"])
def test_calibrated_threshold_is_no_worse_on_validation(instances, solver):
    loader = pair_loader(RealPairs(instances), batch_size=5)
    plain_f1 = ClassicalMatcher(solver).evaluate(loader).mean.f1
    matcher = ClassicalMatcher(solver)
    t = matcher.calibrate_threshold(loader)
    assert t is None or 0.0 <= t <= 1.0
    assert matcher.threshold == t
    assert matcher.evaluate(loader).mean.f1 >= plain_f1 - 1e-12  # chosen on this set: cannot lose


def test_shape_context_invariances():
    g = torch.Generator().manual_seed(1)
    pos = torch.rand(1, 7, 2, generator=g, dtype=torch.float64)
    mask = torch.ones(1, 7, dtype=torch.bool)
    d = shape_context(pos, mask)
    assert torch.allclose(d, shape_context(3 * pos + 5, mask))  # translation and scale
    assert torch.allclose(d.norm(dim=-1), torch.ones(1, 7, dtype=torch.float64))
    # padding does not change the real nodes' descriptors, padded rows are zero
    padded = torch.cat([pos, torch.zeros(1, 3, 2, dtype=torch.float64)], 1)
    pm = torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)], 1)
    dp = shape_context(padded, pm)
    assert torch.allclose(dp[:, :7], d) and (dp[:, 7:] == 0).all()


def test_invalid_configuration(instances):
    with pytest.raises(ConfigError):
        ClassicalMatcher("astar")
    with pytest.raises(ConfigError):
        ClassicalMatcher("sm", node_affinity="colour")
    with pytest.raises(ConfigError):
        ClassicalMatcher("sm", edge_sigma=0)
    geo = make_pair(geometry_only(instances[0]), geometry_only(instances[1]))
    with pytest.raises(InvalidInputError, match="no node features"):
        ClassicalMatcher("hungarian", node_affinity="features")(geo)
    with pytest.raises(InvalidInputError):
        ClassicalMatcher("hungarian")("not a batch")


def mirror_image(inst, seed=0):
    """The instance seen from the other side: x negated, nodes shuffled (names kept)."""
    perm = torch.randperm(inst.num_nodes, generator=torch.Generator().manual_seed(seed))
    return KeypointInstance(inst.pos[perm] * torch.tensor([-1.0, 1.0]), [inst.names[i] for i in perm],
                            inst.category, id=f"{inst.id}-mirror")


@pytest.mark.parametrize("solver", ["hungarian", "rrwm"])
def test_mirror_test_matches_mirror_images(instances, solver):
    """Geometry alone cannot relate a view to its mirror image (the shape context and the edge
    directions are mirrored); with the mirror test, the target mirrored back is the source itself."""
    insts = [geometry_only(i) for i in instances]
    pairs = [make_pair(i, mirror_image(i, k)) for k, i in enumerate(insts)]
    plain = M.aggregate(M.batch_counts(ClassicalMatcher(solver)(batch_of(pairs)), batch_of(pairs))).mean.f1
    mirror = ClassicalMatcher(solver, mirror_test=True)
    assert "mirror_test=True" in repr(mirror)
    preds = mirror(batch_of(pairs))
    for pred, data in zip(preds, pairs):
        assert M.f1(pred, data.y) == 1.0
    assert plain < 0.8
    # pairs that face the same way keep their exact matching
    same = [make_pair(i, i) for i in insts]
    for pred, data in zip(mirror(batch_of(same)), same):
        assert M.f1(pred, data.y) == 1.0
