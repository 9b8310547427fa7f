"""Tests of pyg_ssgm.matching: solvers, blackbox gradient, losses, set matcher, conversions."""
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from pyg_ssgm.errors import InvalidInputError
from pyg_ssgm.matching import (
    SetMatcher, blackbox_hungarian, dense_to_pairs, hamming_loss, hungarian, info_nce,
    matching_cross_entropy, pairs_list_to_dense, pairs_to_dense, partial_hungarian,
    set_prediction_loss, sinkhorn, size_mask, threshold_to_unmatch,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def padded_batch(sizes, seed=0, pad_value=1e6):
    """Random similarities for pairs of the given (n1, n2) sizes, padding filled with a
    value that would win every assignment if padding were ever looked at."""
    g = torch.Generator().manual_seed(seed)
    N1, N2 = max(s[0] for s in sizes), max(s[1] for s in sizes)
    S = torch.full((len(sizes), N1, N2), pad_value)
    for b, (a, c) in enumerate(sizes):
        S[b, :a, :c] = torch.randn(a, c, generator=g)
    n1 = torch.tensor([s[0] for s in sizes])
    n2 = torch.tensor([s[1] for s in sizes])
    return S, n1, n2


def brute_force_partial(S, t):
    """max over all partial one-to-one matchings of sum(S_ij - t) (tiny problems)."""
    n1, n2 = S.shape
    best = 0.0
    for k in range(1, min(n1, n2) + 1):
        for rows in itertools.combinations(range(n1), k):
            for cols in itertools.permutations(range(n2), k):
                best = max(best, sum(float(S[r, c]) - t for r, c in zip(rows, cols)))
    return best


# ----------------------------------------------------------------------------- solvers


@pytest.mark.parametrize("device", DEVICES)
def test_hungarian_maximises_similarity(device):
    S = torch.randn(2, 5, 5) + 10 * torch.eye(5)
    X = hungarian(S.to(device))
    assert X.device.type == device and X.dtype == S.dtype
    assert torch.equal(X.cpu(), torch.eye(5).expand(2, 5, 5))


def test_hungarian_agrees_with_scipy_on_negated_similarity():
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        S = torch.randn(1, 6, 8, generator=g, dtype=torch.float64)
        X = hungarian(S)[0]
        r, c = linear_sum_assignment(-S[0].numpy())  # scipy minimises: cost = -similarity
        ref = torch.zeros(6, 8, dtype=torch.float64)
        ref[r, c] = 1
        assert torch.equal(X, ref)
        # Feeding the similarity as a cost is the sign bug: it finds the worst matching.
        r_bad, c_bad = linear_sum_assignment(S[0].numpy())
        assert (S[0] * X).sum() > S[0, r_bad, c_bad].sum()


def test_padding_never_matched_and_smaller_side_fully_matched():
    sizes = [(3, 5), (5, 2), (4, 4), (1, 1), (0, 3)]
    S, n1, n2 = padded_batch(sizes)
    S[0, 3:, :] = float("nan")  # padding may even hold NaN / inf
    S[1, :, 2:] = float("inf")
    X = hungarian(S, n1, n2)
    assert X[~size_mask(n1, n2, 5, 5)].abs().sum() == 0
    assert X.sum((1, 2)).tolist() == [min(a, c) for a, c in sizes]
    assert X.sum(1).max() <= 1 and X.sum(2).max() <= 1


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=5), st.integers(0, 99))
def test_batched_equals_one_by_one_and_scipy(sizes, seed):
    S, n1, n2 = padded_batch(sizes, seed=seed)
    X = hungarian(S, n1, n2)
    for b, (a, c) in enumerate(sizes):
        alone = hungarian(S[b:b + 1, :a, :c])
        assert torch.equal(X[b, :a, :c], alone[0])
        r, cc = linear_sum_assignment(-S[b, :a, :c].numpy())
        assert torch.isclose((X[b, :a, :c] * S[b, :a, :c]).sum(), S[b, r, cc].sum())


def test_unmatch_scores_leave_node_unmatched():
    # node 0 prefers target 0 (0.9), node 1's best affinity (0.2) is below its unmatched score.
    S = torch.tensor([[[0.9, 0.1], [0.2, 0.1]]])
    u1 = torch.tensor([[0.0, 0.5]])
    u2 = torch.zeros(1, 2)
    X = hungarian(S, unmatch1=u1, unmatch2=u2)
    assert X.tolist() == [[[1.0, 0.0], [0.0, 0.0]]]
    # Without unmatched scores, the maximal matching forces node 1 onto target 1.
    assert hungarian(S).tolist() == [[[1.0, 0.0], [0.0, 1.0]]]
    # Exact pygmtools semantics: i-j matched iff S_ij > u1_i + u2_j (single pair).
    one = torch.ones(1, 1, 1)
    assert hungarian(one, unmatch1=torch.full((1, 1), 0.4), unmatch2=torch.full((1, 1), 0.5)).item() == 1
    assert hungarian(one, unmatch1=torch.full((1, 1), 0.4), unmatch2=torch.full((1, 1), 0.7)).item() == 0


def test_partial_hungarian_threshold_semantics():
    g = torch.Generator().manual_seed(3)
    S = torch.randn(6, 3, 4, generator=g, dtype=torch.float64)
    for t in (-0.5, 0.0, 0.7):
        X = partial_hungarian(S, None, None, t)
        assert not bool(((X > 0) & (S < t)).any())  # never a pair worth less than t
        for b in range(6):
            value = float(((S[b] - t) * X[b]).sum())
            assert value == pytest.approx(brute_force_partial(S[b], t))  # and optimal
    # per-pair thresholds; a huge one leaves everything unmatched, a tiny one is maximal
    X = partial_hungarian(S[:2], None, None, torch.tensor([100.0, -100.0], dtype=torch.float64))
    assert X[0].sum() == 0 and X[1].sum() == 3


def test_partial_hungarian_with_padding():
    S, n1, n2 = padded_batch([(2, 3), (4, 1)], seed=5)
    X = partial_hungarian(S, n1, n2, -10.0)
    assert X[~size_mask(n1, n2, 4, 3)].sum() == 0
    assert X.sum((1, 2)).tolist() == [2, 1]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("partial", [False, True])
def test_sinkhorn_is_substochastic(device, partial):
    sizes = [(3, 5), (5, 2), (4, 4), (0, 2)]
    S, n1, n2 = padded_batch(sizes, seed=2, pad_value=0.0)
    S = S.double().to(device).requires_grad_()
    u = threshold_to_unmatch(0.0, S) if partial else (None, None)
    P = sinkhorn(S, n1, n2, tau=0.5, max_iter=200, unmatch1=u[0], unmatch2=u[1])
    assert P.device.type == device
    assert P.min() >= 0
    assert P.sum(2).max() <= 1 + 1e-6 and P.sum(1).max() <= 1 + 1e-6
    assert P[~size_mask(n1.to(device), n2.to(device), 5, 5)].abs().sum() == 0
    if not partial:  # the smaller side is fully (softly) matched
        for b, (a, c) in enumerate(sizes):
            side = P[b, :a, :c].sum(1 if a <= c else 0)
            assert torch.allclose(side, torch.ones_like(side), atol=1e-4)
    P.sum().backward()
    assert torch.isfinite(S.grad).all()


def test_sinkhorn_low_temperature_approaches_hungarian():
    S, n1, n2 = padded_batch([(4, 6), (5, 3)], seed=4, pad_value=0.0)
    S = S.double()
    # (convergence is slow at low temperature: many iterations, still well under a second)
    P = sinkhorn(S, n1, n2, tau=0.01, max_iter=4000)
    assert torch.allclose(P, hungarian(S, n1, n2), atol=1e-2)
    u1, u2 = threshold_to_unmatch(0.3, S)
    P = sinkhorn(S, n1, n2, tau=0.01, max_iter=4000, unmatch1=u1, unmatch2=u2)
    assert torch.allclose(P, partial_hungarian(S, n1, n2, 0.3), atol=1e-2)


def test_sinkhorn_transpose_symmetry_and_threshold_gradient():
    # N1 > N2 overall and per pair; swapping the graphs transposes the result
    S, n1, n2 = padded_batch([(6, 3), (2, 3), (5, 1)], seed=1, pad_value=0.0)
    S = S.double()
    t = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    for partial in (False, True):
        u, ut = ((threshold_to_unmatch(t, S), threshold_to_unmatch(t, S.transpose(1, 2))) if partial
                 else ((None, None), (None, None)))
        P = sinkhorn(S, n1, n2, tau=0.3, max_iter=400, unmatch1=u[0], unmatch2=u[1])
        PT = sinkhorn(S.transpose(1, 2), n2, n1, tau=0.3, max_iter=400, unmatch1=ut[0], unmatch2=ut[1])
        assert torch.allclose(P, PT.transpose(1, 2), atol=1e-6)
    # a higher threshold means less matched mass: d(total mass)/dt < 0
    P.sum().backward()
    assert t.grad.item() < 0


# ----------------------------------------------------------------------------- blackbox


def test_blackbox_forward_is_hungarian_and_gradient_sign():
    S = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], requires_grad=True)
    X = blackbox_hungarian(S, lambda_val=10.0)
    assert torch.equal(X.detach(), hungarian(S.detach()))
    X_gt = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    hamming_loss(X, X_gt, torch.tensor([2]), torch.tensor([2]), normalize=False).backward()
    # dL/dX = 1 - 2 X_gt; S' = S - lambda * (1 - 2 X_gt) selects X_gt; grad = (X - X_gt) / lambda.
    assert torch.allclose(S.grad, (X.detach() - X_gt) / 10.0)


@pytest.mark.parametrize("partial", [False, True])
def test_blackbox_gradient_descent_reaches_zero_hamming(partial):
    g = torch.Generator().manual_seed(0)
    sizes = [(6, 6), (5, 7), (4, 3)]
    S, n1, n2 = padded_batch(sizes, seed=7, pad_value=0.0)
    gts = []
    for a, c in sizes:  # random partial ground truth: one node of each pair has no partner
        k = min(a, c) - (1 if partial else 0)
        gts.append(torch.stack([torch.randperm(a, generator=g)[:k], torch.randperm(c, generator=g)[:k]]))
    X_gt = pairs_list_to_dense(gts, n1, n2, 6, 7)
    S = S.requires_grad_()
    # lambda must beat the scale of S *after* the loss normalisation (dL/dX = +-1/(|gt| B)):
    # 80 / 18 ~ 4 > spread of randn similarities. The gradient is (X - X')/lambda, so the
    # step lr/lambda = 0.5 moves S by half a unit towards the better matching X'.
    lam, lr = 80.0, 40.0
    losses = []
    for _ in range(30):
        u = threshold_to_unmatch(0.0, S) if partial else (None, None)
        X = blackbox_hungarian(S, n1, n2, lambda_val=lam, unmatch1=u[0], unmatch2=u[1])
        loss = hamming_loss(X, X_gt, n1, n2)
        losses.append(loss.item())
        if loss.item() == 0:
            break
        S.grad = None
        loss.backward()
        assert S.grad.abs().sum() > 0  # never a vanishing gradient while the loss is > 0
        with torch.no_grad():
            S -= lr * S.grad
    assert losses[0] > 0 and losses[1] < losses[0]
    assert losses[-1] == 0 and len(losses) <= 15


def test_blackbox_learnable_threshold_gets_gradient():
    # All pairs look good (0.9 > threshold 0), but nothing truly matches: the loss must
    # push the threshold up (negative gradient) to stop matching.
    S = 0.9 * torch.eye(3).unsqueeze(0)
    t = torch.zeros(1, requires_grad=True)
    u1, u2 = threshold_to_unmatch(t, S)
    X = blackbox_hungarian(S, lambda_val=5.0, unmatch1=u1, unmatch2=u2)
    assert X.sum() == 3
    hamming_loss(X, torch.zeros_like(X), torch.tensor([3]), torch.tensor([3])).backward()
    assert t.grad.item() < 0


# ----------------------------------------------------------------------------- losses


def test_hamming_loss_values_and_padding():
    X_gt = torch.zeros(2, 3, 3)
    X_gt[0, [0, 1], [0, 1]] = 1
    X = torch.zeros(2, 3, 3)
    X[0, 0, 0] = X[0, 1, 2] = 1  # one right, one wrong (and thus one missed)
    X[1, 2, 2] = 1  # padding of pair 1 (sizes 2 x 2): ignored
    n1 = n2 = torch.tensor([3, 2])
    per_pair = hamming_loss(X, X_gt, n1, n2, reduction="none")
    assert per_pair.tolist() == [1.0, 0.0]  # (1 false + 1 missed) / 2 true matches
    assert hamming_loss(X, X_gt, n1, n2, normalize=False, reduction="sum").item() == 2.0
    assert hamming_loss(X, X_gt, n1, n2).item() == 0.5


def test_matching_cross_entropy_partial_and_grad():
    S, n1, n2 = padded_batch([(3, 4), (2, 2)], seed=8, pad_value=0.0)
    S.requires_grad_()
    X_gt = pairs_list_to_dense([torch.tensor([[0, 2], [1, 3]]), torch.zeros(2, 0, dtype=torch.long)], n1, n2)
    u1, u2 = threshold_to_unmatch(0.0, S)
    P = sinkhorn(S, n1, n2, unmatch1=u1, unmatch2=u2)
    loss = matching_cross_entropy(P, X_gt, n1, n2)
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(S.grad).all() and S.grad.abs().sum() > 0
    # a perfect soft matching has (near) zero loss; a row without partner wants all zeros
    assert matching_cross_entropy(X_gt, X_gt, n1, n2).item() == pytest.approx(0.0, abs=1e-6)


def test_info_nce():
    torch.manual_seed(0)
    h = torch.randn(6, 8)
    pairs = torch.tensor([[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]])
    h_s = h.clone().requires_grad_()
    good = info_nce(h_s, h, pairs, 0.1)
    bad = info_nce(h_s, h[torch.randperm(6)], pairs, 0.1)  # wrong partners
    assert good < bad
    good.backward()
    assert torch.isfinite(h_s.grad).all()
    # negatives restricted to the own pair; with two 3-node pairs the loss changes
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    assert info_nce(h, h, pairs, 0.1, batch, batch) <= good + 1e-6
    empty = info_nce(h_s, h, torch.zeros(2, 0, dtype=torch.long))
    assert empty.item() == 0 and empty.requires_grad


# ----------------------------------------------------------------------------- set matcher


def _toy_completion():
    # graph 0: 3 queries, 2 targets; graph 1: 1 query, 3 targets (C > Q); graph 2: 2 queries, 0 targets
    tgt_pos = torch.tensor([[0.0, 0.0], [5.0, 5.0], [1.0, 1.0], [2.0, 2.0], [9.0, 9.0]])
    tgt_batch = torch.tensor([0, 0, 1, 1, 1])
    pos = torch.tensor([[5.1, 4.9], [20.0, 20.0], [0.1, 0.0], [8.8, 9.1], [3.0, 3.0], [4.0, 4.0]])
    query_batch = torch.tensor([0, 0, 0, 1, 2, 2])
    exist_logit = torch.tensor([3.0, -3.0, 3.0, 2.0, -1.0, -1.0])
    D = 4
    tgt_feat = torch.randn(5, D, generator=torch.Generator().manual_seed(0))
    feat = torch.stack([tgt_feat[1], -tgt_feat[0], tgt_feat[0], tgt_feat[4], tgt_feat[0], tgt_feat[1]])
    return exist_logit, pos, feat, query_batch, tgt_pos, tgt_feat, tgt_batch


def test_set_matcher_obvious_assignment_and_more_targets_than_queries():
    exist_logit, pos, feat, qb, tgt_pos, tgt_feat, tb = _toy_completion()
    qi, ti, unmatched = SetMatcher()(exist_logit, pos, feat, qb, tgt_pos, tgt_feat, tb, 3,
                                     return_unmatched=True)
    assert sorted(zip(qi.tolist(), ti.tolist())) == [(0, 1), (2, 0), (3, 4)]
    assert unmatched.tolist() == [2, 3]  # graph 1 has 3 targets but 1 query
    qi2, ti2 = SetMatcher(cost_feat=0.0)(exist_logit, pos, None, qb, tgt_pos, None, tb, 3)
    assert torch.equal(qi, qi2) and torch.equal(ti, ti2)


def test_set_matcher_empty_cases():
    exist_logit, pos, feat, qb, tgt_pos, tgt_feat, tb = _toy_completion()
    m = SetMatcher()
    # no targets at all
    qi, ti, un = m(exist_logit, pos, feat, qb, tgt_pos[:0], tgt_feat[:0], tb[:0], 3, return_unmatched=True)
    assert qi.numel() == ti.numel() == un.numel() == 0
    # no queries at all: every target unmatched
    qi, ti, un = m(exist_logit[:0], pos[:0], feat[:0], qb[:0], tgt_pos, tgt_feat, tb, 3, return_unmatched=True)
    assert qi.numel() == 0 and un.tolist() == [0, 1, 2, 3, 4]
    # graph 0 without queries (queries only in graphs 1, 2)
    qi, ti = m(exist_logit[3:], pos[3:], feat[3:], qb[3:], tgt_pos, tgt_feat, tb, 3)
    assert qi.tolist() == [0] and ti.tolist() == [4]


def test_set_prediction_loss_gradients_and_zero_targets():
    exist_logit, pos, feat, qb, tgt_pos, tgt_feat, tb = _toy_completion()
    exist_logit, pos, feat = (t.clone().requires_grad_() for t in (exist_logit, pos, feat))
    qi, ti = SetMatcher()(exist_logit, pos, feat, qb, tgt_pos, tgt_feat, tb, 3)
    out = set_prediction_loss(exist_logit, pos, feat, qi, ti, tgt_pos, tgt_feat)
    assert set(out) == {"loss", "loss_exist", "loss_pos", "loss_feat"}
    out["loss"].backward()
    for t in (exist_logit, pos, feat):
        assert t.grad is not None and torch.isfinite(t.grad).all()
    assert pos.grad[[1, 4, 5]].abs().sum() == 0  # unmatched queries get no position loss
    assert exist_logit.grad[1] > 0  # an unmatched query is pushed towards "no object"
    # no matched target: zero position / feature loss, graph intact
    none = torch.empty(0, dtype=torch.long)
    out = set_prediction_loss(exist_logit, pos, feat, none, none, tgt_pos[:0], tgt_feat[:0])
    assert out["loss_pos"].item() == 0 and out["loss_feat"].item() == 0
    out["loss"].backward()
    # no queries at all
    q0 = torch.zeros(0, requires_grad=True)
    out = set_prediction_loss(q0, torch.zeros(0, 2, requires_grad=True), None, none, none, tgt_pos, None)
    assert out["loss"].item() == 0 and out["loss"].requires_grad


def test_eos_weight_downweights_no_object():
    logit = torch.zeros(4, requires_grad=True)
    pos = torch.zeros(4, 2)
    qi, ti = torch.tensor([0]), torch.tensor([0])
    for w in (0.1, 1.0):
        logit.grad = None
        set_prediction_loss(logit, pos, None, qi, ti, torch.zeros(1, 2), None, eos_weight=w)["loss_exist"].backward()
        g = logit.grad.clone()
        assert g[0] < 0 < g[1]
        assert g[1] / -g[0] == pytest.approx(w)


# ----------------------------------------------------------------------------- conversions


def test_pairs_to_dense_and_back():
    # two pairs: sources of sizes (3, 2), targets of sizes (2, 4); y in global indices
    batch_s = torch.tensor([0, 0, 0, 1, 1])
    batch_t = torch.tensor([0, 0, 1, 1, 1, 1])
    y = torch.tensor([[0, 2, 3, 4], [1, 0, 5, 2]])
    X = pairs_to_dense(y, batch_s, batch_t)
    assert X.shape == (2, 3, 4)
    assert X[0, 0, 1] == 1 and X[0, 2, 0] == 1 and X[1, 0, 3] == 1 and X[1, 1, 0] == 1 and X.sum() == 4
    pairs = dense_to_pairs(X, torch.tensor([3, 2]), torch.tensor([2, 4]))
    assert pairs[0].tolist() == [[0, 2], [1, 0]] and pairs[1].tolist() == [[0, 1], [3, 0]]
    assert torch.equal(pairs_list_to_dense(pairs, torch.tensor([3, 2]), torch.tensor([2, 4])), X)
    with pytest.raises(InvalidInputError):  # links nodes of different pairs
        pairs_to_dense(torch.tensor([[0], [3]]), batch_s, batch_t)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call", [
    lambda: hungarian(torch.randn(3, 3)),  # not batched
    lambda: hungarian(torch.randint(0, 3, (1, 3, 3))),  # integer
    lambda: hungarian(torch.tensor([[[float("nan"), 0.0], [0.0, 1.0]]])),
    lambda: hungarian(torch.randn(2, 3, 3), torch.tensor([3, 4]), torch.tensor([3, 3])),
    lambda: hungarian(torch.randn(2, 3, 3), torch.tensor([3]), torch.tensor([3])),
    lambda: hungarian(torch.randn(2, 3, 3), torch.tensor([3.0, 1.0]), torch.tensor([3, 3])),
    lambda: hungarian(torch.randn(1, 3, 3), unmatch1=torch.zeros(1, 3)),  # only one side
    lambda: hungarian(torch.randn(1, 3, 3), unmatch1=torch.zeros(1, 2), unmatch2=torch.zeros(1, 3)),
    lambda: partial_hungarian(torch.randn(2, 3, 3), None, None, torch.zeros(3)),
    lambda: sinkhorn(torch.randn(1, 3, 3), tau=0.0),
    lambda: blackbox_hungarian(torch.randn(1, 3, 3), lambda_val=0.0),
    lambda: hamming_loss(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3), torch.tensor([2]), torch.tensor([2])),
    lambda: matching_cross_entropy(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), torch.tensor([2]),
                                   torch.tensor([2]), reduction="avg"),
    lambda: SetMatcher()(torch.zeros(2), torch.zeros(2, 3), None, torch.zeros(2, dtype=torch.long),
                         torch.zeros(1, 2), None, torch.zeros(1, dtype=torch.long), 1),
    lambda: SetMatcher()(torch.zeros(2), torch.zeros(2, 2), None, torch.tensor([1, 0]),
                         torch.zeros(1, 2), None, torch.zeros(1, dtype=torch.long), 2),  # unsorted batch
    lambda: SetMatcher(cost_pos=-1.0),
    lambda: pairs_to_dense(torch.tensor([0, 1]), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)),
])
def test_bad_input_raises(call):
    with pytest.raises(InvalidInputError):
        call()


def test_empty_batch():
    S = torch.zeros(0, 3, 3)
    assert hungarian(S).shape == (0, 3, 3)
    assert sinkhorn(S).shape == (0, 3, 3)
    assert np.isclose(hamming_loss(S, S, torch.zeros(0), torch.zeros(0)).item(), 0.0)
