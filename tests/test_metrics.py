"""Metrics of partial matchings: hand-made pairs with known answers, aggregation, pygmtools agreement."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from pyg_ssgm import metrics as M
from pyg_ssgm.data import KeypointInstance, RealPairs, pair_loader
from pyg_ssgm.errors import InvalidInputError


def m(*pairs):
    """A matching from (i, j) tuples."""
    return torch.tensor(pairs, dtype=torch.long).view(-1, 2).t().contiguous()


EMPTY = torch.empty(2, 0, dtype=torch.long)


def scores(pred, gt):
    return M.precision(pred, gt), M.recall(pred, gt), M.f1(pred, gt)


# ----------------------------------------------------------------------------------------- one pair
@pytest.mark.parametrize("pred, gt, expected", [
    (m((0, 1), (1, 0), (2, 2)), m((0, 1), (1, 0), (2, 2)), (1.0, 1.0, 1.0)),  # perfect
    (m((0, 0), (1, 1), (2, 3), (3, 2)), m((0, 0), (1, 1), (2, 2), (3, 3)), (0.5, 0.5, 0.5)),  # half right
    (EMPTY, m((0, 0), (1, 1)), (0.0, 0.0, 0.0)),  # empty prediction, something to find
    (EMPTY, EMPTY, (1.0, 1.0, 1.0)),  # nothing to find, nothing claimed
    (m((0, 0)), EMPTY, (0.0, 0.0, 0.0)),  # claims where there is nothing
    (m((0, 0), (1, 1), (2, 4), (3, 5)), m((0, 0), (1, 1)), (0.5, 1.0, 2 / 3)),  # extra predictions
    # partial ground truth: 3 of 5 nodes have a partner, a full matching gets those 3 right
    (m((0, 0), (1, 1), (2, 2), (3, 3), (4, 4)), m((0, 0), (1, 1), (2, 2)), (0.6, 1.0, 0.75)),
    (m((0, 1), (1, 0)), m((0, 0), (1, 1)), (0.0, 0.0, 0.0)),  # no overlap at all
])
def test_known_answers(pred, gt, expected):
    assert scores(pred, gt) == pytest.approx(expected)


def test_column_order_does_not_matter():
    pred, gt = m((0, 0), (1, 2), (2, 1)), m((2, 1), (0, 0), (1, 3))
    assert scores(pred, gt) == scores(pred[:, [2, 0, 1]], gt[:, [1, 2, 0]]) == pytest.approx((2 / 3,) * 3)


def test_counts_record():
    c = M.match_counts(m((0, 0), (1, 1), (2, 4)), m((0, 0), (1, 2)), category="car")
    assert (c.tp, c.num_pred, c.num_gt, c.category) == (1, 3, 2, "car")
    assert (c + M.MatchCounts(2, 2, 3, "car")) == M.MatchCounts(3, 5, 5, "car")
    assert (c + M.MatchCounts(0, 0, 0, "duck")).category is None
    with pytest.raises(InvalidInputError):
        M.MatchCounts(3, 2, 5)


@pytest.mark.parametrize("bad", [
    [[0, 1], [1, 0]],  # not a tensor
    torch.tensor([[0, 1], [1, 0]], dtype=torch.float),  # wrong dtype
    torch.tensor([[0, 1], [1, 0]], dtype=torch.int32),
    torch.tensor([[0, 1], [1, 0], [2, 2]]),  # [K, 2] instead of [2, K]
    torch.tensor([0, 1]),  # 1-D
    torch.tensor([[0, 0], [1, 2]]),  # source node 0 twice: not a matching
    torch.tensor([[0, 1], [2, 2]]),  # target node 2 twice
    torch.tensor([[-1], [0]]),  # negative index
])
def test_invalid_inputs_raise(bad):
    with pytest.raises(InvalidInputError):
        M.precision(bad, m((0, 0)))
    with pytest.raises(InvalidInputError):
        M.f1(m((0, 0)), bad)


def test_num_nodes_range_check():
    assert M.f1(m((1, 2)), m((1, 2)), num_nodes=(2, 3)) == 1.0
    with pytest.raises(InvalidInputError, match="target node 3"):
        M.f1(m((1, 3)), m((1, 2)), num_nodes=(2, 3))


def test_intersection_accuracy():
    # nodes 0..2 have partners; source 3 and target 4 have none (visible in one image only)
    gt = m((0, 0), (1, 1), (2, 2))
    pred = m((0, 0), (1, 2), (2, 1), (3, 4))  # one right, two swapped, one on partnerless nodes
    assert M.intersection_accuracy(pred, gt) == pytest.approx(1 / 3) == pytest.approx(M.recall(pred, gt))
    c = M.intersection_counts(pred, gt)
    assert (c.tp, c.num_pred, c.num_gt) == (1, 3, 3)  # (3, 4) dropped: not in the intersection
    # a full matching of the intersection: accuracy = precision = recall
    full = m((0, 0), (1, 1), (2, 2))
    assert M.intersection_accuracy(full, gt) == M.precision(full, gt) == 1.0


def test_perm_mat_round_trip():
    pred = m((0, 2), (2, 0), (1, 3))
    mat = M.to_perm_mat(pred, (3, 4))
    assert mat.dtype == np.float32 and mat.shape == (3, 4) and mat.sum() == 3
    assert torch.equal(M.from_perm_mat(mat), pred[:, pred[0].argsort()])


pairs_strategy = st.integers(0, 8).flatmap(lambda n: st.tuples(st.permutations(range(n)), st.permutations(range(n)),
                                                              st.lists(st.booleans(), min_size=n, max_size=n),
                                                              st.lists(st.booleans(), min_size=n, max_size=n)))


def _from_perm(perm, keep):
    kept = [(i, j) for i, (j, k) in enumerate(zip(perm, keep)) if k]
    return m(*kept) if kept else EMPTY


@settings(max_examples=200, deadline=None)
@given(data=pairs_strategy)
def test_properties(data):
    perm_p, perm_g, keep_p, keep_g = data
    pred, gt = _from_perm(perm_p, keep_p), _from_perm(perm_g, keep_g)
    p, r, f = scores(pred, gt)
    assert 0 <= p <= 1 and 0 <= r <= 1 and 0 <= f <= 1
    assert M.precision(pred, gt) == M.recall(gt, pred)  # precision and recall swap with the roles
    assert M.f1(pred, gt) == M.f1(gt, pred)
    assert f == pytest.approx(0.0 if p + r == 0 else 2 * p * r / (p + r))  # F1 = harmonic mean
    if M.match_counts(pred, gt).tp == 0 and pred.size(1) + gt.size(1) > 0:
        assert f == 0.0


# -------------------------------------------------------------------------------------- aggregation
def test_aggregate_per_class_and_means():
    recs = [
        M.MatchCounts(4, 4, 4, "car"),  # f1 1
        M.MatchCounts(1, 2, 2, "car"),  # f1 0.5
        M.MatchCounts(0, 3, 3, "duck"),  # f1 0
    ]
    rep = M.aggregate(recs)
    assert list(rep.per_class) == ["car", "duck"]
    car = rep.per_class["car"]
    assert (car.precision, car.recall, car.f1, car.num_pairs) == (0.75, 0.75, 0.75, 2)
    assert car.f1_std == pytest.approx(0.25)  # population std, like np.std / pygmtools
    assert rep.mean.f1 == pytest.approx((0.75 + 0.0) / 2)  # every class weighs the same
    assert rep.mean.f1_std == pytest.approx(0.25 / 2)
    assert rep.mean.num_pairs == 3
    assert (rep.micro.tp, rep.micro.num_pred, rep.micro.num_gt) == (5, 9, 9)
    assert rep.micro.f1 == pytest.approx(5 / 9)  # pooled: every correspondence weighs the same
    assert rep.per_class_micro["car"] == M.MatchCounts(5, 6, 6, "car")
    assert set(rep.to_dict()) == {"per_class", "mean", "micro", "per_class_micro", "skipped"}
    assert rep.skipped == 0 and rep.to_dict()["skipped"] == 0  # no pair left out
    assert "car" in str(rep) and "micro" in str(rep)


def test_aggregate_categories_argument_and_errors():
    recs = [M.MatchCounts(1, 1, 1), M.MatchCounts(0, 1, 1)]
    assert list(M.aggregate(recs).per_class) == ["all"]
    rep = M.aggregate(recs, categories=["a", "b"])
    assert rep.per_class["a"].f1 == 1.0 and rep.per_class["b"].f1 == 0.0 and rep.mean.f1 == 0.5
    with pytest.raises(InvalidInputError):
        M.aggregate(recs, categories=["a"])
    with pytest.raises(InvalidInputError):
        M.aggregate([])


# ------------------------------------------------------------------------------ pygmtools agreement
def _random_problem(seed):
    """Pairs of 3 classes with partial ground truths and predictions (some empty, some perfect)."""
    g = torch.Generator().manual_seed(seed)
    preds, gts, sizes, cats = [], [], [], []
    for k in range(24):
        ns, nt = int(torch.randint(2, 12, (1,), generator=g)), int(torch.randint(2, 12, (1,), generator=g))
        n = min(ns, nt)
        rows, cols = torch.randperm(ns, generator=g)[:n], torch.randperm(nt, generator=g)[:n]
        keep = torch.rand(n, generator=g) < 0.7
        keep[0] = True  # pygmtools refuses pairs without a true correspondence
        gt = torch.stack([rows[keep], cols[keep]])
        kind = k % 4
        if kind == 0:
            pred = gt.clone()
        elif kind == 1:
            pred = EMPTY
        else:  # a random matching that reuses some true pairs
            pr, pc = torch.randperm(ns, generator=g)[:n], torch.randperm(nt, generator=g)[:n]
            pred = torch.stack([pr, pc])[:, torch.rand(n, generator=g) < 0.8]
            if kind == 3:
                pred = torch.cat([gt[:, : gt.size(1) // 2 + 1], pred], 1)
                pred = pred[:, ~_dupes(pred)]
        preds.append(pred), gts.append(gt), sizes.append((ns, nt)), cats.append(f"c{k % 3}")
    return preds, gts, sizes, cats


def _dupes(pred):
    """Mask of the columns that repeat an earlier column's source or target node."""
    seen_s, seen_t, out = set(), set(), []
    for i, j in pred.t().tolist():
        out.append(i in seen_s or j in seen_t)
        seen_s.add(i), seen_t.add(j)
    return torch.tensor(out, dtype=torch.bool)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_pygmtools_benchmark_eval(seed):
    """pygmtools' ``Benchmark.eval`` itself is called (on a gt cache written by ``pygmtools_eval``,
    no dataset download), and must agree with :func:`aggregate` up to float32 rounding: pygmtools
    computes on float32 0/1 matrices, as its ``get_data`` builds them."""
    preds, gts, sizes, cats = _random_problem(seed)
    ref = M.pygmtools_eval(preds, gts, sizes, cats)
    rep = M.aggregate([M.match_counts(p, g, c, n) for p, g, c, n in zip(preds, gts, cats, sizes)])
    assert set(ref) == set(rep.per_class) | {"mean"}
    for key in ("precision", "recall", "f1", "precision_std", "recall_std", "f1_std"):
        for c, s in rep.per_class.items():
            assert getattr(s, key) == pytest.approx(ref[c][key], rel=1e-6, abs=1e-7), (c, key)
        assert getattr(rep.mean, key) == pytest.approx(ref["mean"][key], rel=1e-6, abs=1e-7), key


def test_pygmtools_eval_refuses_empty_ground_truth():
    with pytest.raises(InvalidInputError, match="no true correspondence"):
        M.pygmtools_eval([EMPTY], [EMPTY], [(2, 2)], ["a"])


# --------------------------------------------------------------------------------------- batches
def _instances():
    g = torch.Generator().manual_seed(0)
    out = []
    for cat, sizes in (("a", (5, 7, 4)), ("b", (6, 3))):
        for k, n in enumerate(sizes):
            names = [f"p{i}" for i in torch.randperm(8, generator=g)[:n].tolist()]
            out.append(KeypointInstance(torch.rand(n, 2, generator=g) * 50, names, cat, x=torch.randn(n, 3, generator=g)))
    return out


def test_batch_targets_and_counts():
    ds = RealPairs(_instances())
    batch = next(iter(pair_loader(ds, batch_size=len(ds))))
    ys = M.batch_targets(batch)
    assert len(ys) == len(ds)
    for y, data in zip(ys, ds):
        assert torch.equal(y, data.y)
    recs = M.batch_counts(ys, batch)
    assert [r.category for r in recs] == [d.category for d in ds]
    assert all(r.f1 == 1.0 for r in recs)
    # a single PairData and a Batch made without follow_batch work too
    assert torch.equal(M.batch_targets(ds[0])[0], ds[0].y)
    from torch_geometric.data import Batch
    plain = Batch.from_data_list([ds[k] for k in range(len(ds))])
    assert all(torch.equal(a, b) for a, b in zip(M.batch_targets(plain), ys))
    with pytest.raises(InvalidInputError):
        M.batch_counts(ys[:-1], batch)
    with pytest.raises(InvalidInputError):  # prediction out of range for its pair
        M.batch_counts([m((50, 0))] + ys[1:], batch)
