"""Epipolar re-matching (pyg_ssgm.matching.epipolar): two views of one rigid object."""
import math

import numpy as np
import pytest
import torch

from conftest import tiny
from pyg_ssgm import Predictor
from pyg_ssgm.baselines import ClassicalMatcher
from pyg_ssgm.config import InferenceConfig
from pyg_ssgm.data import make_pair
from pyg_ssgm.data.viewpoint import ViewpointConfig, house, load_viewpoint, project, viewpoint_pairs
from pyg_ssgm.errors import ConfigError
from pyg_ssgm.matching.epipolar import (affine_fundamental, epipolar_rematch, fundamental, hartley_normalise,
                                        sampson_distance, sampson_matrix)
from pyg_ssgm.metrics import batch_counts
from pyg_ssgm.model.predictor import EPIPOLAR_POOL


def two_views(yaw: float = 40.0, num_points: int = 25, seed: int = 0):
    """Pixels ``[N, 2]`` of one rigid house-like object seen from yaw 0 and ``yaw`` (perspective)."""
    points = house(np.random.default_rng(seed), num_points)
    return (torch.from_numpy(project(points, 0.0, 15.0, 5.0, 480.0)),
            torch.from_numpy(project(points, yaw, 15.0, 5.0, 480.0)))


def test_true_pairs_satisfy_the_fitted_geometry_and_wrong_ones_do_not():
    p, q = two_views()
    x1, x2 = hartley_normalise(p), hartley_normalise(q)
    F = fundamental(x1, x2)
    assert torch.linalg.matrix_rank(F) == 2
    d = sampson_matrix(F[None], x1, x2)[0]  # [N, N]: every source point against every target point
    assert torch.allclose(d.diagonal(), sampson_distance(F, x1, x2))
    assert d.diagonal().max() < 1e-12  # exact projections: the true pairs lie on their epipolar lines
    off = d[~torch.eye(len(p), dtype=torch.bool)]
    assert off.median() > 1e-3  # the threshold's scale: most wrong pairs are far from them


def test_four_pairs_fix_the_affine_geometry_of_a_distant_camera():
    """A camera far away (weak perspective): 4 pairs give F, and it holds for all the others."""
    points = house(np.random.default_rng(1), 20)
    p = torch.from_numpy(project(points, 0.0, 15.0, 500.0, 480.0))
    q = torch.from_numpy(project(points, 30.0, 15.0, 500.0, 480.0))
    x1, x2 = hartley_normalise(p), hartley_normalise(q)
    four = torch.tensor([0, 5, 8, 12])  # not coplanar: four corners of one face would leave F undetermined
    F = affine_fundamental(x1[None, four], x2[None, four])[0]
    assert F[:2, :2].abs().max() == 0
    assert sampson_distance(F, x1, x2).max() < 1e-4  # (what perspective is left at 500 radii), far under 3e-3


def test_rematch_repairs_a_matching_that_is_half_wrong():
    p, q = two_views(yaw=40.0)
    n = len(p)
    truth = torch.arange(n)
    guess = truth.clone()
    wrong = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: n // 2]
    guess[wrong] = wrong[torch.roll(torch.arange(len(wrong)), 1)]  # a cycle: every one of them wrong
    X = torch.zeros(n, n)
    X[truth, guess] = 1
    out = epipolar_rematch(X, torch.zeros(n, n), p, q)
    assert out.sum(1).eq(1).all() and out.sum(0).eq(1).all()  # a whole one-to-one matching
    assert out.diagonal().sum() >= n - 2  # where half the first matching was wrong


def test_a_pool_of_seeds_keeps_the_geometry_that_verifies_most():
    """A first matching with no right pair cannot seed the geometry; given a half-right one beside
    it, the re-matching is the half-right one's, whichever comes first."""
    p, q = two_views(yaw=40.0)
    n = len(p)
    wrong, half = torch.zeros(n, n), torch.zeros(n, n)
    wrong[torch.arange(n), torch.roll(torch.arange(n), 7)] = 1  # every pair wrong
    guess = torch.arange(n)
    swap = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: n // 2]
    guess[swap] = swap[torch.roll(torch.arange(len(swap)), 1)]
    half[torch.arange(n), guess] = 1
    affinity = torch.zeros(n, n)
    alone = epipolar_rematch(wrong, affinity, p, q)
    assert alone.diagonal().sum() <= n // 2  # from its own pairs alone it stays mostly wrong
    for first, others in ((wrong, [half]), (half, [wrong])):
        pooled = epipolar_rematch(first, affinity, p, q, alternatives=others)
        assert torch.equal(pooled, epipolar_rematch(half, affinity, p, q))
        assert pooled.diagonal().sum() >= n - 2
    few = torch.zeros(n, n)
    few[:4, :4] = torch.eye(4)  # too few pairs of its own: an alternative still seeds it
    assert epipolar_rematch(few, affinity, p, q, alternatives=[half]).diagonal().sum() >= n - 2


def test_a_seed_given_twice_is_re_matched_once(monkeypatch):
    import pyg_ssgm.matching.epipolar as epipolar

    p, q = two_views(yaw=40.0)
    X = torch.eye(len(p))
    X[0, 0], X[0, 1], X[1, 1], X[1, 0] = 0, 1, 0, 1
    alone = epipolar_rematch(X, torch.zeros_like(X), p, q)
    calls, rematch = [], epipolar._rematch
    monkeypatch.setattr(epipolar, "_rematch", lambda first, *args: calls.append(first) or rematch(first, *args))
    pooled = epipolar_rematch(X, torch.zeros_like(X), p, q, alternatives=[X.clone(), X.double()])
    assert torch.equal(pooled, alone) and len(calls) == 1


def test_rematch_is_deterministic_and_needs_five_pairs():
    p, q = two_views()
    X = torch.eye(len(p))
    X[0, 0], X[0, 1], X[1, 1], X[1, 0] = 0, 1, 0, 1
    assert torch.equal(epipolar_rematch(X, torch.zeros_like(X), p, q), epipolar_rematch(X, torch.zeros_like(X), p, q))
    few = torch.zeros_like(X)
    few[:4, :4] = torch.eye(4)
    assert epipolar_rematch(few, torch.zeros_like(X), p, q) is None


def test_the_solvers_re_matched_gain_under_a_large_turn():
    """RRWM on views 30-45 degrees apart, with and without the re-matching (the same pairs)."""
    test = load_viewpoint(ViewpointConfig(num_objects=2, num_frames=31))["test"]
    pairs = [make_pair(test[i], test[j]) for i, j in viewpoint_pairs(test, [30, 45])[(30, 45)]]
    assert len(pairs) >= 6

    def true_positives(matcher):
        return sum(c.tp for c in batch_counts(matcher(pairs), pairs))

    plain, epipolar = ClassicalMatcher("rrwm"), ClassicalMatcher("rrwm", epipolar=True)
    assert "epipolar=True" in repr(epipolar)
    # (296 against 255 of 702 points when written)
    assert true_positives(epipolar) > true_positives(plain) + 0.03 * sum(len(p.x_s) for p in pairs)


def test_the_model_re_matches_within_its_own_cut(real_batch):
    """Epipolar re-matching on the model's matching: one-to-one, and a pair is kept only where the
    learned affinity beats the threshold, as the matching it replaces."""
    t = tiny(seed=0)
    base = t.predictor.config
    plain = Predictor(t.model, base).match(real_batch)
    verified = Predictor(t.model, InferenceConfig(**{**base.to_dict(), "epipolar": True})).match(real_batch)
    X = verified.X
    assert X.sum(2).le(1).all() and X.sum(1).le(1).all()
    S, threshold = verified.output.S, Predictor(t.model, base).threshold(verified.output)
    assert (S[X.bool()] >= threshold.expand_as(S)[X.bool()]).all()
    assert len(verified.pairs) == len(plain.pairs)


def test_the_model_pools_its_own_matchings(real_batch):
    """``epipolar_pool``: the other first matchings seed the geometry too; the result is still
    one-to-one and cut as the configured matching cuts."""
    t = tiny(seed=0)
    base = t.predictor.config
    assert len({tuple(sorted(seed.items())) for seed in EPIPOLAR_POOL}) == len(EPIPOLAR_POOL)
    config = InferenceConfig(**{**base.to_dict(), "epipolar": True, "epipolar_pool": True})
    predictor = Predictor(t.model, config)
    pooled = predictor.match(real_batch)
    X = pooled.X
    assert X.sum(2).le(1).all() and X.sum(1).le(1).all()
    S, threshold = pooled.output.S, predictor.threshold(pooled.output)
    assert (S[X.bool()] >= threshold.expand_as(S)[X.bool()]).all()
    # the configured matching (here the linear one) is not seeded twice
    seen = []
    predictor.epipolar_verified = lambda out, X, soft, pool=(): seen.append(len(pool)) or X
    predictor.match(real_batch)
    assert seen == [len(EPIPOLAR_POOL) - 1]


def test_the_pool_builds_each_quadratic_affinity_once(real_batch, monkeypatch):
    """RRWM and IPFP of the pool solve one affinity matrix (the same unary weight, edges and
    frame): it is built once per setting, and the pooled matching is what it was."""
    import pyg_ssgm.model.predictor as predictor_module

    t = tiny(seed=0)
    config = InferenceConfig(**{**t.predictor.config.to_dict(), "epipolar": True, "epipolar_pool": True})
    expected = Predictor(t.model, config).match(real_batch).X
    built, build = [], predictor_module.quadratic_affinity
    monkeypatch.setattr(predictor_module, "quadratic_affinity",
                        lambda *args, **kwargs: built.append(kwargs["node_weight"]) or build(*args, **kwargs))
    assert torch.equal(Predictor(t.model, config).match(real_batch).X, expected)
    settings = {(s["qap_node_weight"], s["qap_align"]) for s in EPIPOLAR_POOL if s["solver"] != "hungarian"}
    assert sorted(built) == sorted(weight for weight, _ in settings)  # 3 quadratic seeds, 2 matrices


def test_the_solvers_pool_their_matchings():
    test = load_viewpoint(ViewpointConfig(num_objects=2, num_frames=31))["test"]
    pairs = [make_pair(test[i], test[j]) for i, j in viewpoint_pairs(test, [0, 15])[(0, 15)]][:8]
    pooled = ClassicalMatcher("rrwm", epipolar=True, epipolar_pool=("hungarian", "ipfp", "rrwm"))
    assert pooled.epipolar_pool == ("hungarian", "ipfp")  # the matcher's own solver is not repeated
    assert "epipolar_pool=('hungarian', 'ipfp')" in repr(pooled)
    single = ClassicalMatcher("rrwm", epipolar=True)

    def true_positives(matcher):
        return sum(c.tp for c in batch_counts(matcher(pairs), pairs))

    matchings = pooled(pairs)
    assert all(m[0].unique().numel() == m.size(1) == m[1].unique().numel() for m in matchings)
    # at small turns the Hungarian's matching seeds the geometry better (224 against 217 of 232
    # points when written)
    assert true_positives(pooled) > true_positives(single)
    with pytest.raises(ConfigError, match="epipolar_pool"):
        ClassicalMatcher("rrwm", epipolar=True, epipolar_pool=("hungarain",))
    with pytest.raises(ConfigError, match="epipolar_pool"):
        ClassicalMatcher("rrwm", epipolar=True, epipolar_pool="ipfp")
    with pytest.raises(ConfigError, match="set epipolar=True"):
        ClassicalMatcher("rrwm", epipolar_pool=("ipfp",))


def test_bad_epipolar_settings_are_refused():
    with pytest.raises(ConfigError, match="epipolar_pool seeds the epipolar re-matching, which is off"):
        InferenceConfig(epipolar_pool=True)  # a pool of seeds for a re-matching that does not run
    with pytest.raises(ConfigError, match="epipolar_threshold"):
        InferenceConfig(epipolar_threshold=0.0)
    with pytest.raises(ConfigError, match="epipolar_threshold"):
        ClassicalMatcher("rrwm", epipolar=True, epipolar_threshold=-1.0)
    assert math.isclose(InferenceConfig().epipolar_threshold, 3e-3) and not InferenceConfig().epipolar
    p, q = two_views()
    with pytest.raises(ConfigError, match="rounds >= 1"):
        epipolar_rematch(torch.eye(len(p)), torch.zeros(len(p), len(p)), p, q, rounds=0)
