"""The keypoint filter: points that belong to nothing are learned from the training points' names
and removed before matching."""
from dataclasses import replace

import pytest
import torch

from conftest import FEATURE_DIM, tiny, tiny_settings_of, to_batch
from pyg_ssgm.config import InferenceConfig
from pyg_ssgm.data import KeypointInstance, make_pair, subset_pair
from pyg_ssgm.errors import ConfigError
from pyg_ssgm.experiment import resolve
from pyg_ssgm.nn.keypoint_filter import KeypointFilter
from pyg_ssgm.tuning import GROUPS, choose_inference


def cluttered(n_named: int = 8, n_clutter: int = 6, seed: int = 0, category: str = "c") -> KeypointInstance:
    """An instance whose named points have descriptors near +1 in channel 0 and whose clutter has
    them near -1: what a filter can learn from names alone."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_named + n_clutter, FEATURE_DIM, generator=g) * 0.3
    x[:n_named, 0] += 1.0
    x[n_named:, 0] -= 1.0
    return KeypointInstance(torch.rand(n_named + n_clutter, 2, generator=g) * 100,
                            [f"k{i}" for i in range(n_named)] + [None] * n_clutter, category, x=x)


def test_the_filter_learns_clutter_from_names_alone():
    torch.manual_seed(0)
    filt = KeypointFilter(FEATURE_DIM)
    data = [cluttered(seed=s) for s in range(8)]
    x = torch.cat([d.x for d in data])
    named = torch.tensor([n is not None for d in data for n in d.names], dtype=torch.float)
    optimiser = torch.optim.Adam(filt.parameters(), 1e-2)
    for _ in range(300):
        optimiser.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(filt(x), named).backward()
        optimiser.step()
    filt.eval()
    test = cluttered(seed=99)
    logits = filt(test.x)
    assert logits.shape == (len(test.names),)
    assert logits[:8].min() > logits[8:].max()  # every keypoint above every point of clutter
    assert ((logits > 0) == torch.tensor([n is not None for n in test.names])).float().mean() >= 0.9
    filt.reset_parameters()
    assert filt.norm.num_batches_tracked == 0


def test_the_data_decides_whether_a_model_has_a_filter():
    splits = {"train": [cluttered(seed=s) for s in range(3)], "val": [], "test": []}
    clean = {"train": [i.subset(list(range(8))) for i in splits["train"]], "val": [], "test": []}
    geometry = {"train": [KeypointInstance(i.pos, i.names, i.category) for i in splits["train"]], "val": [], "test": []}
    base = tiny_settings_of()
    unset = base.replace(model=replace(base.model, in_channels=None))
    assert resolve(unset, splits).model.keypoint_filter is True
    assert resolve(unset, clean).model.keypoint_filter is False  # every point named: nothing to learn from
    assert resolve(unset, geometry).model.keypoint_filter is False  # no descriptor to read
    forced = base.replace(model=replace(base.model, in_channels=None, keypoint_filter=True))
    with pytest.raises(ConfigError, match="keypoint_filter=True reads the points' appearance descriptors"):
        resolve(forced, geometry)


def test_the_criterion_trains_the_filter_on_names():
    t = tiny(seed=0, keypoint_filter=True)
    pair = make_pair(cluttered(seed=1), cluttered(seed=2))
    batch = to_batch([pair, make_pair(cluttered(seed=3), cluttered(seed=4))])
    t.model.train()
    losses = t.criterion(t.model(batch), batch)
    assert "keypoint" in losses and losses["keypoint"] > 0
    losses["loss"].backward()
    assert t.model.keypoint_filter.score.weight.grad.abs().sum() > 0
    del batch.names_s  # pairs without names (built by hand): no keypoint loss, no error
    assert "keypoint" not in t.criterion(t.model(batch), batch)


def test_subset_pair_keeps_the_truth_of_the_points_kept():
    pair = make_pair(cluttered(seed=1), cluttered(seed=2))
    keep_s, keep_t = torch.tensor([0, 2, 3, 9]), torch.tensor([1, 2, 3, 4, 12])
    sub = subset_pair(pair, keep_s, keep_t)
    assert sub.pos_s.shape == (4, 2) and torch.equal(sub.pos_t, pair.pos_t[keep_t])
    assert sub.names_s == ["k0", "k2", "k3", None]
    assert sorted(map(tuple, sub.y.t().tolist())) == [(1, 1), (2, 2)]  # k2 and k3 kept on both sides
    assert int(sub.edge_index_s.max()) < 4 and sub.edge_attr_s.size(0) == sub.edge_index_s.size(1)


def test_the_predictor_removes_what_the_filter_rejects(one_thread):
    """A filter that rejects clutter by hand: no removed point is matched, and the matching is the
    one of the pair built without them, in the original indices."""
    t = tiny(seed=0, keypoint_filter=True)
    with torch.no_grad():
        t.model.keypoint_filter.score.weight.zero_()
        t.model.keypoint_filter.score.weight[0, 0] = 10.0  # channel 0: +1 named, -1 clutter
        t.model.keypoint_filter.score.bias.zero_()
    t.model.keypoint_filter.norm.running_mean.zero_()
    t.model.keypoint_filter.norm.running_var.fill_(1.0)
    pairs = [make_pair(cluttered(seed=1), cluttered(seed=2)), make_pair(cluttered(seed=3), cluttered(seed=4))]
    batch = to_batch(pairs)
    config = InferenceConfig(**{**t.predictor.config.to_dict(), "keypoint_threshold": 0.5})
    t.predictor.config = config
    matchings = t.predictor(batch)
    clean = to_batch([make_pair(*(inst.subset(list(range(8))) for inst in (cluttered(seed=a), cluttered(seed=b))))
                      for a, b in ((1, 2), (3, 4))])
    expected = t.predictor.orient(clean).pairs()
    for m, e in zip(matchings, expected):
        assert (m < 8).all()  # no clutter point matched
        assert torch.equal(m, e)
    t.predictor.config = InferenceConfig(**{**config.to_dict(), "keypoint_threshold": 0.0})
    assert any((m >= 8).any() for m in t.predictor(batch))  # unfiltered, clutter takes partners


def test_the_choice_scores_the_filter_only_where_there_is_one(tiny_data):
    assert GROUPS[0][0] == "keypoint filter"
    t = tiny(seed=0)
    assert t.model.keypoint_filter is None
    _, rows = choose_inference(t.predictor, tiny_data.val, max_pairs_per_category=2, echo=None, groups=GROUPS[:1])
    assert {row["group"] for row in rows} == {"start"}
