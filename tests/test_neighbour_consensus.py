"""The neighbourhood consensus layer (DGMC's): identity when untrained, deterministic and
batch-independent at inference, able to learn to repair a matching, wired into the model."""
from __future__ import annotations

import pytest
import torch

from conftest import tiny, to_batch
from pyg_ssgm.data.graph import delaunay_edges
from pyg_ssgm.errors import ConfigError
from pyg_ssgm.nn.neighbour_consensus import NeighbourConsensus


def _isomorphic_pairs(num_pairs: int, n: int, noise: float, seed: int):
    """Pairs of the same Delaunay graph, the target's nodes permuted, and an affinity that is the
    true permutation plus noise strong enough that row-wise argmax errs often."""
    g = torch.Generator().manual_seed(seed)
    S, edges_s, edges_t, truth = [], [], [], []
    for b in range(num_pairs):
        pos = torch.rand(n, 2, generator=g)
        perm = torch.randperm(n, generator=g)  # source node i is target node perm[i]
        e = delaunay_edges(pos)
        edges_s.append(e + b * n)
        edges_t.append(perm[e] + b * n)
        X = torch.zeros(n, n)
        X[torch.arange(n), perm] = 1.0
        S.append(3.0 * X + noise * torch.randn(n, n, generator=g))
        truth.append(perm)
    batch = torch.arange(num_pairs).repeat_interleave(n)
    return torch.stack(S), batch, torch.cat(edges_s, 1), torch.cat(edges_t, 1), torch.stack(truth)


def _accuracy(S, truth):
    return float((S.argmax(-1) == truth).float().mean())


def test_untrained_consensus_leaves_the_affinity_unchanged():
    S, batch, e_s, e_t, _ = _isomorphic_pairs(3, 12, 1.0, seed=0)
    layer = NeighbourConsensus(16, steps=3)
    for mode in (layer.train(), layer.eval()):
        assert torch.equal(mode(S, batch, e_s, batch, e_t), S)


def test_inference_is_deterministic_and_independent_of_the_batch():
    S, batch, e_s, e_t, _ = _isomorphic_pairs(3, 10, 1.0, seed=1)
    torch.manual_seed(0)
    layer = NeighbourConsensus(16, steps=2).eval()
    torch.nn.init.normal_(layer.score[-1].weight)  # a consensus that does something
    together = layer(S, batch, e_s, batch, e_t)
    assert not torch.allclose(together, S)
    assert torch.equal(together, layer(S, batch, e_s, batch, e_t))
    alone = layer(S[1:2], batch[:10], e_s[:, (e_s[0] >= 10) & (e_s[0] < 20)] - 10, batch[:10],
                  e_t[:, (e_t[0] >= 10) & (e_t[0] < 20)] - 10)
    torch.testing.assert_close(alone[0], together[1])


def test_consensus_learns_to_repair_a_noisy_matching_from_the_neighbours():
    torch.manual_seed(0)
    layer = NeighbourConsensus(32, steps=2)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    for step in range(150):
        S, batch, e_s, e_t, truth = _isomorphic_pairs(8, 12, 2.0, seed=100 + step)
        loss = torch.nn.functional.cross_entropy(layer.train()(S, batch, e_s, batch, e_t).flatten(0, 1),
                                                 truth.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    S, batch, e_s, e_t, truth = _isomorphic_pairs(32, 12, 2.0, seed=1)
    with torch.no_grad():
        refined = layer.eval()(S, batch, e_s, batch, e_t)
    before, after = _accuracy(S, truth), _accuracy(refined, truth)
    assert after > before + 0.15, (before, after)


def test_the_model_scores_the_affinity_before_and_after_the_consensus(generated_batch):
    model, criterion, predictor = tiny(neighbour_consensus_steps=2)
    assert model.neighbour_consensus is not None
    out = model.train()(generated_batch)
    assert out.S_initial is not None and out.S_initial.shape == out.S.shape
    losses = criterion(out, generated_batch)
    assert "match_initial" in losses and torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert model.neighbour_consensus.score[-1].weight.grad.abs().sum() > 0
    assert tiny().model.neighbour_consensus is None and tiny().model.train()(generated_batch).S_initial is None


def test_batched_predictions_with_the_consensus_equal_one_pair_at_a_time(real_pairs):
    model, _, predictor = tiny(seed=2, neighbour_consensus_steps=2)
    with torch.no_grad():
        model.match_threshold.fill_(0.0)
        torch.nn.init.normal_(model.neighbour_consensus.score[-1].weight)
    batched = predictor(to_batch(real_pairs))
    for pair, pred in zip(real_pairs, batched):
        assert torch.equal(predictor(to_batch([pair]))[0], pred)


@pytest.mark.parametrize("options", [dict(neighbour_consensus_steps=-1), dict(neighbour_consensus_channels=0)])
def test_bad_consensus_settings_are_refused(options):
    with pytest.raises(ConfigError):
        tiny(**options)
