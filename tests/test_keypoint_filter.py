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
from pyg_ssgm.nn.keypoint_filter import GEOMETRY_CHANNELS, KeypointFilter, KeypointMemory, point_geometry
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
    resolved = resolve(unset, splits).model
    assert resolved.keypoint_filter is True and resolved.keypoint_filter_geometry is True
    assert resolved.keypoint_filter_memory is True and resolve(unset, geometry).model.keypoint_filter_memory is False
    clean_model = resolve(unset, clean).model  # every point named: nothing to learn from
    assert clean_model.keypoint_filter is False and clean_model.keypoint_filter_geometry is False
    assert resolve(unset, geometry).model.keypoint_filter is True  # no descriptor: where the points lie
    # the filter's doubt weighs in the matching by default where it reads descriptors; a value set stays
    assert resolve(unset, splits).inference.keypoint_prior == 0.2
    assert resolve(unset, geometry).inference.keypoint_prior == resolve(unset, clean).inference.keypoint_prior == 0.0
    given = unset.replace(inference=replace(unset.inference, keypoint_prior=0.4))
    assert resolve(given, splits).inference.keypoint_prior == resolve(given, geometry).inference.keypoint_prior == 0.4
    blind = base.replace(model=replace(base.model, in_channels=None, keypoint_filter_geometry=False))
    assert resolve(blind, geometry).model.keypoint_filter is False  # nothing left to read
    assert resolve(blind, splits).model.keypoint_filter_geometry is False  # a setting given is kept
    forced = base.replace(model=replace(base.model, in_channels=None, keypoint_filter=True,
                                        keypoint_filter_geometry=False))
    with pytest.raises(ConfigError, match="keypoint_filter_geometry=False reads the points' appearance"):
        resolve(forced, geometry)


def test_point_geometry_is_where_a_point_lies_in_its_own_set():
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(13, 2, generator=g) * 100
    batch = torch.tensor([0] * 8 + [1] * 3 + [2] * 2)  # sets of 8, 3 (fewer than NEIGHBOURS) and 2 points
    geometry = point_geometry(pos, batch, 3)
    assert geometry.shape == (13, GEOMETRY_CHANNELS) and torch.isfinite(geometry).all()
    moved = torch.cat([pos[:8] * 3 + 7, pos[8:]])  # one set moved and scaled: nothing changes
    assert torch.allclose(point_geometry(moved, batch, 3), geometry, atol=1e-4)
    alone = point_geometry(pos[:8], torch.zeros(8, dtype=torch.long), 1)  # a set's terms are its own
    assert torch.allclose(alone, geometry[:8])
    single = point_geometry(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), 1)
    assert torch.isfinite(single).all()


def scattered(seed: int, n_named: int = 10, n_clutter: int = 6) -> KeypointInstance:
    """Named points on a jittered grid of one object; clutter anywhere in a box four times wider."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(torch.arange(5.0), torch.arange(2.0), indexing="ij"), -1).view(-1, 2)
    named = (grid[:n_named] + torch.randn(n_named, 2, generator=g) * 0.1) * 10 + 100
    clutter = torch.rand(n_clutter, 2, generator=g) * 200 + 20
    return KeypointInstance(torch.cat([named, clutter]), [f"k{i}" for i in range(n_named)] + [None] * n_clutter, "c")


def test_a_filter_without_descriptors_learns_clutter_from_where_it_lies():
    torch.manual_seed(0)
    filt = KeypointFilter(0, geometry=True)
    data = [scattered(s) for s in range(16)]
    pos = torch.cat([d.pos for d in data])
    batch = torch.cat([torch.full((d.num_nodes,), i) for i, d in enumerate(data)])
    named = torch.tensor([n is not None for d in data for n in d.names], dtype=torch.float)
    optimiser = torch.optim.Adam(filt.parameters(), 1e-2)
    for _ in range(300):
        optimiser.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(filt(pos.new_zeros(len(pos), 0), pos, batch, 16),
                                                             named).backward()
        optimiser.step()
    filt.eval()
    test = [scattered(s) for s in range(100, 120)]
    pos = torch.cat([d.pos for d in test])
    batch = torch.cat([torch.full((d.num_nodes,), i) for i, d in enumerate(test)])
    truth = torch.tensor([n is not None for d in test for n in d.names])
    logits = filt(pos.new_zeros(len(pos), 0), pos, batch, len(test))
    assert ((logits > 0) == truth).float().mean() >= 0.85
    assert logits[truth].mean() > logits[~truth].mean() + 2.0


def test_a_geometry_only_model_trains_its_filter(one_thread):
    t = tiny(seed=0, in_channels=0, keypoint_filter=True)
    assert t.model.keypoint_filter.geometry  # nothing else to read
    batch = to_batch([make_pair(scattered(1), scattered(2)), make_pair(scattered(3), scattered(4))])
    t.model.train()
    losses = t.criterion(t.model(batch), batch)
    losses["loss"].backward()
    assert t.model.keypoint_filter.score.weight.grad.abs().sum() > 0
    t.predictor.config = InferenceConfig(**{**t.predictor.config.to_dict(), "keypoint_threshold": 0.5})
    data, kept = t.predictor.keypoints(batch)
    assert data.num_graphs == 2 and all(len(ks) >= 3 and len(kt) >= 3 for ks, kt in kept)


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
    _hand_filter(t)
    pairs = [make_pair(cluttered(seed=1), cluttered(seed=2)), make_pair(cluttered(seed=3), cluttered(seed=4))]
    batch = to_batch(pairs)
    config = InferenceConfig(**{**t.predictor.config.to_dict(), "keypoint_threshold": 0.5, "keypoint_prior": 0.0})
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


def _hand_filter(t, weight: float = 10.0):
    """``t``'s keypoint filter set by hand: channel 0 (+1 named, -1 clutter in :func:`cluttered`)."""
    filt = t.model.keypoint_filter
    with torch.no_grad():
        filt.score.weight.zero_()
        filt.score.weight[0, 0] = weight
        filt.score.bias.zero_()
    filt.norm.running_mean.zero_()
    filt.norm.running_var.fill_(1.0)


def test_the_keypoint_prior_makes_doubtful_points_pay_to_be_matched(one_thread):
    """With ``keypoint_prior`` each point kept pays gamma * -log p on top of half the threshold; a
    prior large enough leaves the doubtful points unmatched, and 0 is the plain filter."""
    t = tiny(seed=0, keypoint_filter=True)
    _hand_filter(t, weight=1.0)  # soft: clutter has p near 0.27, keypoints near 0.73
    batch = to_batch([make_pair(cluttered(seed=1), cluttered(seed=2)), make_pair(cluttered(seed=3), cluttered(seed=4))])
    base = InferenceConfig(**{**t.predictor.config.to_dict(), "keypoint_threshold": 0.0, "keypoint_prior": None})
    t.predictor.config = base
    assert t.predictor.keypoint_prior() == 0.2  # unset: the default for a filter that reads descriptors
    base = replace(base, keypoint_prior=0.0)
    t.predictor.config = base
    plain = t.predictor(batch)
    assert any((m >= 8).any() for m in plain)  # nothing removed: clutter takes partners
    assert getattr(t.predictor.keypoints(batch)[0], "doubt_s", None) is None  # at 0 the matching reads no doubt
    # the unmatched scores grow by gamma / temperature * -log p on the real nodes, nowhere else
    t.predictor.config = replace(base, keypoint_prior=0.5)
    data, _ = t.predictor.keypoints(batch)
    prediction = t.predictor.match(data)
    out = prediction.output
    u1, _ = t.predictor.unmatched_scores(out)
    t.predictor.config = base
    v1, _ = t.predictor.unmatched_scores(out)
    t.model.keypoint_filter.eval()  # running statistics, as the predictor reads it
    p = torch.sigmoid(t.model.keypoint_filter(batch.x_s, batch.pos_s, batch.x_s_batch, batch.num_graphs))
    n = int(out.num_real_s[0])
    expected = 0.5 / t.model.temperature.detach() * -torch.log(p[:n])
    assert torch.allclose(u1[0, :n] - v1[0, :n], expected, atol=1e-4)
    assert torch.equal(u1[0, n:], v1[0, n:])
    # a prior this large matches no point of clutter, and fewer pairs in all
    t.predictor.config = replace(base, keypoint_prior=50.0)
    strict = t.predictor(batch)
    assert all((m < 8).all() for m in strict)
    assert sum(m.size(1) for m in strict) < sum(m.size(1) for m in plain)
    with pytest.raises(ConfigError, match="keypoint_prior"):
        InferenceConfig(keypoint_prior=-0.1)


def test_a_whole_quadratic_matching_ignores_the_prior_and_a_cut_one_pays_it(one_thread):
    """What the choice skips as inert changes nothing; cut by the unmatched scores, the quadratic
    matching leaves the doubtful points unmatched as the linear one does."""
    t = tiny(seed=0, keypoint_filter=True)
    _hand_filter(t, weight=1.0)
    batch = to_batch([make_pair(cluttered(seed=1), cluttered(seed=2))])
    whole = InferenceConfig(**{**t.predictor.config.to_dict(), "keypoint_threshold": 0.0, "keypoint_prior": 0.0,
                               "solver": "rrwm", "qap_partial": False, "mirror_test": False})
    t.predictor.config = whole
    plain = t.predictor(batch)
    t.predictor.config = replace(whole, keypoint_prior=50.0)
    assert torch.equal(plain[0], t.predictor(batch)[0])
    t.predictor.config = replace(whole, qap_partial=True, keypoint_prior=50.0)
    assert (t.predictor(batch)[0] < 8).all()


def test_the_choice_scores_the_filter_only_where_there_is_one(tiny_data):
    assert GROUPS[0][0] == "keypoint filter"
    t = tiny(seed=0)
    assert t.model.keypoint_filter is None
    printed = []
    _, rows = choose_inference(t.predictor, tiny_data.val, max_pairs_per_category=2, echo=printed.append,
                               groups=[g for g in GROUPS if g[0] in ("keypoint filter", "keypoint prior",
                                                                      "generated nodes")])
    assert {row["group"] for row in rows} <= {"start", "generated nodes"}
    # nor reports settings the model cannot use
    assert not any("keypoint" in line for line in printed) and "keypoint_threshold" not in rows[0]["option"]
    assert "generate_at_inference" in rows[0]["option"]


def test_the_filter_leaves_the_matching_it_trains_beside_as_it_is(tmp_path, one_thread):
    """The filter reads the raw inputs and its gradient is clipped apart: a run with it trains
    every other weight exactly as the same run without it."""
    from conftest import make_trainer

    weights = {}
    for name, filt in (("with", True), ("without", False)):
        trainer = make_trainer(tmp_path / name, model={"max_clutter": 3, "keypoint_filter": filt,
                                                       "choose_on_validation": False})
        assert (trainer.model.keypoint_filter is not None) == filt
        trainer.fit()
        weights[name] = {k: v for k, v in trainer.model.state_dict().items() if not k.startswith("keypoint_filter.")}
    assert weights["with"].keys() == weights["without"].keys()
    assert all(torch.equal(weights["with"][k], weights["without"][k]) for k in weights["with"])


def test_the_memory_corrects_the_score_by_the_nearest_training_points():
    """Clutter that no single linear score separates (keypoints at both ends of channel 0, clutter
    in the middle) is told apart by its nearest training points; each training point is scored
    against the other instances only, and an empty memory changes nothing."""
    g = torch.Generator().manual_seed(0)

    def points(n_inst):
        f, named, owner = [], [], []
        for b in range(n_inst):
            keypoints = torch.randn(8, 4, generator=g) * 0.2 + torch.tensor([3.0, 1.0, 0.0, 0.0]) * torch.tensor(
                [1.0, -1.0] * 4).view(8, 1)  # two clusters, at +3 and -3 in channel 0
            clutter = torch.randn(6, 4, generator=g) * 0.2 + torch.tensor([0.0, 0.0, 3.0, 0.0])
            f += [keypoints, clutter]
            named += [torch.ones(8, dtype=torch.bool), torch.zeros(6, dtype=torch.bool)]
            owner.append(torch.full((14,), b))
        return torch.cat(f), torch.cat(named), torch.cat(owner)

    memory = KeypointMemory(4, k=3)
    f, named, owner = points(6)
    logit = torch.zeros(len(f))  # a linear score that says nothing
    assert torch.equal(memory(logit, f), logit)  # empty: nothing changes
    memory.fit(f, named, owner, logit)
    assert memory.fitted and memory.keys.shape == (len(f), 4)
    test, truth, _ = points(2)
    corrected = memory(torch.zeros(len(test)), test)
    assert corrected[truth].min() > corrected[~truth].max()
    alone = memory.score(f[:1], exclude=owner[:1], owner=owner)  # its own instance left out: still named
    assert alone.item() > 0
    fresh = KeypointMemory(4, k=3)  # a checkpoint's memory loads into an empty one
    fresh.load_state_dict(memory.state_dict())
    assert (fresh.k_named, fresh.k_unnamed) == (memory.k_named, memory.k_unnamed) == (3, 3)
    assert torch.equal(fresh(torch.zeros(len(test)), test), corrected)
    memory.clear()
    assert not memory.fitted


@pytest.mark.parametrize("choose", [False, True], ids=["as-given", "chosen-on-validation"])
def test_a_trained_filter_remembers_its_training_points(tmp_path, one_thread, choose, monkeypatch):
    from conftest import make_trainer
    from pyg_ssgm.experiment import load_model

    trainer = make_trainer(tmp_path / "run", model={"max_clutter": 3, "choose_on_validation": choose})
    memory = trainer.model.keypoint_filter.memory
    saves = []
    original = trainer.save
    monkeypatch.setattr(trainer, "save", lambda: saves.append(memory.fitted) or original())
    trainer.fit()
    assert saves[-1] and saves.count(True) == 1  # saved once with what it remembers
    points = sum(inst.num_nodes for inst in trainer.splits["train"])
    assert memory.fitted and memory.keys.size(0) == points
    predictor, _ = load_model(tmp_path / "run" / "checkpoint.pt")
    assert torch.equal(predictor.model.keypoint_filter.memory.keys, memory.keys)
    assert torch.equal(predictor.model.keypoint_filter.memory.coef, memory.coef)
