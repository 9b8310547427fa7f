"""Tests of the whole model: the network :class:`pyg_ssgm.SSGM`, its :class:`~pyg_ssgm.Criterion`
and its :class:`~pyg_ssgm.Predictor`: gradients, symmetries, partial matching, configuration
variants, input validation and a short training run on the embedded data."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch_geometric.data import Batch

import pyg_ssgm.model.criterion as criterion_module
import pyg_ssgm.nn.consensus as consensus_module
from conftest import FEATURE_DIM, tiny, tiny_settings_of, to_batch
from pyg_ssgm import Criterion, InferenceConfig, Predictor, SSGMOutput
from pyg_ssgm.data import GeneratedPairs, PairData, PairGenerator, make_pair, pair_loader
from pyg_ssgm.errors import ConfigError, InvalidInputError, SSGMError
from pyg_ssgm.matching import hamming_loss, hungarian
from pyg_ssgm.model.predictor import transferred_nodes
from pyg_ssgm.nn.alignment import apply_affine

# Parameter groups that must all learn from the total loss (prefixes of named_parameters()).
PARAMETER_GROUPS = ("features.", "encoder.", "decoder.exist_head.", "decoder.pos_head.", "decoder.feat_head.",
                    "decoder.query_content", "decoder.query_pos", "decoder.layers.", "rebuilder.",
                    "log_temperature", "match_threshold")


def assert_valid_matching(pairs, n_s: int, n_t: int) -> None:
    assert isinstance(pairs, torch.Tensor) and pairs.dtype == torch.long
    assert pairs.dim() == 2 and pairs.size(0) == 2
    if pairs.numel():
        assert int(pairs[0].min()) >= 0 and int(pairs[0].max()) < n_s
        assert int(pairs[1].min()) >= 0 and int(pairs[1].max()) < n_t
    # one-to-one: no node in two pairs
    assert pairs[0].unique().numel() == pairs.size(1)
    assert pairs[1].unique().numel() == pairs.size(1)
    assert pairs.size(1) <= min(n_s, n_t)


def as_set(pairs: torch.Tensor) -> set:
    return {tuple(p) for p in pairs.t().tolist()}


def match(t, batch, **inference):
    """One orientation's prediction of the tiny model ``t`` in eval mode, with its inference
    settings changed by ``inference``."""
    t.model.eval()
    predictor = Predictor(t.model, replace(t.predictor.config, **inference)) if inference else t.predictor
    with torch.no_grad():
        return predictor.match(batch)


# --------------------------------------------------------------------------- gradients


def test_coincident_keypoints_keep_the_gradients_finite(generated_pairs):
    """Two keypoints on one spot (real annotations do this: CUB's eyes of a bird seen head-on) give
    a zero nearest-neighbour distance; the node spacing must not turn it into a NaN gradient."""
    pairs = []
    for pair in generated_pairs[:4]:
        pair = pair.clone()
        pair.pos_s[1] = pair.pos_s[0]
        pair.pos_t[2] = pair.pos_t[0]
        pairs.append(pair)
    t = tiny(seed=0)
    batch = to_batch(pairs)
    loss = t.criterion(t.model.train()(batch), batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    model = t.model
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("matching_loss", ["sinkhorn", "hamming"])
def test_gradients_reach_every_parameter_group(generated_batch, matching_loss):
    model, criterion, _ = tiny(matching_loss=matching_loss)
    model.train()
    losses = criterion(model(generated_batch), generated_batch)
    loss = losses["loss"]
    assert loss.dim() == 0 and torch.isfinite(loss)
    for key in ("match", "exist", "pos", "feat"):
        assert key in losses and torch.isfinite(torch.as_tensor(losses[key]))
    loss.backward()

    names = [n for n, _ in model.named_parameters()]
    for group in PARAMETER_GROUPS:
        assert any(n.startswith(group) for n in names), f"no parameter named {group}*"
    for name, p in model.named_parameters():
        if not p.requires_grad:  # frozen on purpose (e.g. a switched-off term)
            continue
        assert p.grad is not None, f"{name} got no gradient ({matching_loss})"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    for group in PARAMETER_GROUPS:
        total = sum(float(p.grad.abs().sum()) for n, p in model.named_parameters() if n.startswith(group))
        assert total > 0, f"parameter group {group} got an all-zero gradient ({matching_loss})"


def test_hamming_blackbox_gradient_points_downhill(generated_batch, monkeypatch):
    """Through the model's own loss path: the gradient of the Hamming loss w.r.t. the affinity
    ``S`` (from the blackbox backward) is a descent direction: a step along ``-grad`` gives a
    Hungarian matching with a lower Hamming loss against the same ground truth."""
    captured = {}
    real_bb, real_hamming = criterion_module.blackbox_hungarian, criterion_module.hamming_loss

    def spy_bb(S, n1, n2, lam, u1, u2):
        captured.update(S=S, n1=n1, n2=n2, lam=lam, u1=u1.detach(), u2=u2.detach())
        S.retain_grad()
        return real_bb(S, n1, n2, lam, u1, u2)

    def spy_hamming(X, X_gt, n1, n2, **kwargs):
        captured.update(X=X.detach(), X_gt=X_gt.detach())
        return real_hamming(X, X_gt, n1, n2, **kwargs)

    monkeypatch.setattr(criterion_module, "blackbox_hungarian", spy_bb)
    monkeypatch.setattr(criterion_module, "hamming_loss", spy_hamming)

    model, criterion, _ = tiny(seed=3, matching_loss="hamming", match_threshold=0.0)
    criterion(model(generated_batch), generated_batch)["match"].backward()
    S, X_gt, n1, n2 = captured["S"], captured["X_gt"], captured["n1"], captured["n2"]
    u1, u2 = captured["u1"], captured["u2"]
    grad = S.grad
    assert grad is not None and grad.abs().sum() > 0, "the blackbox gave no gradient on a wrong matching"

    def loss_at(S_value):
        X = hungarian(S_value.detach(), n1, n2, u1, u2)
        return float(hamming_loss(X, X_gt, n1, n2, reduction="sum", normalize=False))

    before = loss_at(S)
    assert before == pytest.approx(float(hamming_loss(captured["X"], X_gt, n1, n2, reduction="sum",
                                                      normalize=False)))
    assert before > 0
    # The blackbox gradient is (X - X') / lambda: a step of lambda along -grad moves S towards the
    # "better" matching X' (which cannot be worse: see pyg_ssgm.matching.blackbox). Any large
    # enough step along -grad must therefore lower the loss, and the gradient is never uphill.
    for scale in (1.0, 10.0, 100.0):
        after = loss_at(S - scale * captured["lam"] * grad)
        assert after <= before
    assert loss_at(S - 100.0 * captured["lam"] * grad) < before
    assert loss_at(S + 100.0 * captured["lam"] * grad) >= before


# --------------------------------------------------------------------------- symmetries


def _pair_of(tiny_data, category="cat0", i=0, j=1):
    insts = [inst for inst in tiny_data.test if inst.category == category]
    return insts[i], insts[j]


@pytest.mark.parametrize("threshold", [0.5, -1.0])
def test_predictions_are_equivariant_to_source_node_permutation(tiny_data, threshold):
    inst_s, inst_t = _pair_of(tiny_data)
    t = tiny(seed=1)
    with torch.no_grad():
        t.model.match_threshold.fill_(threshold)
    perm = torch.randperm(inst_s.num_nodes, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(perm, torch.arange(inst_s.num_nodes))
    pair = make_pair(inst_s, inst_t)
    pair_p = make_pair(inst_s.subset(perm), inst_t)  # new source node k is old node perm[k]
    prediction, prediction_p = match(t, to_batch([pair])), match(t, to_batch([pair_p]))
    out, out_p = prediction.output, prediction_p.output
    n_s = inst_s.num_nodes
    # The affinities of real source nodes are permuted rows; everything else is unchanged.
    torch.testing.assert_close(out_p.S[0, :n_s], out.S[0, :n_s][perm], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out_p.S[0, n_s:], out.S[0, n_s:], atol=1e-4, rtol=1e-4)
    assert torch.equal(out_p.n1, out.n1) and torch.equal(out_p.n2, out.n2)
    # Predicted pairs map through the permutation: (k, j) in the permuted pair <=> (perm[k], j).
    expected = {(int(perm[k]), j) for k, j in as_set(prediction_p.pairs[0])}
    assert expected == as_set(prediction.pairs[0])
    if threshold < 0:
        assert prediction.pairs[0].size(1) > 0


@pytest.mark.parametrize("options", [{}, dict(query_fraction=0.5, num_queries=2), dict(coherence_rounds=0)],
                         ids=["default", "queries-follow-size", "affine-only"])
def test_batched_predictions_equal_one_pair_at_a_time(real_pairs, options):
    model, _, predictor = tiny(seed=2, **options)
    with torch.no_grad():
        model.match_threshold.fill_(0.0)  # more pairs: a stronger check
    batched = predictor(to_batch(real_pairs))
    assert len(batched) == len(real_pairs)
    total = 0
    for pair, pred in zip(real_pairs, batched):
        single = predictor(to_batch([pair]))
        assert len(single) == 1
        assert torch.equal(single[0], pred), f"batched {pred.tolist()} != single {single[0].tolist()}"
        total += pred.size(1)
    assert total > 0


# --------------------------------------------------------------------------- partial matching


def test_match_threshold_controls_partial_matching(real_batch):
    t = tiny(seed=4)
    model = t.model.eval()
    B = real_batch.num_graphs
    n_s = torch.bincount(real_batch.x_s_batch, minlength=B)
    n_t = torch.bincount(real_batch.x_t_batch, minlength=B)

    with torch.no_grad():
        model.match_threshold.fill_(1e3)  # above every cosine similarity: nothing is worth matching
    preds = t.predictor(real_batch)
    assert all(p.shape == (2, 0) and p.dtype == torch.long for p in preds)

    with torch.no_grad():
        model.match_threshold.fill_(-1e3)  # below every similarity: a maximal matching
    prediction = match(t, real_batch)
    out, X = prediction.output, prediction.X
    for b in range(B):
        n1, n2 = int(out.n1[b]), int(out.n2[b])
        assert int(X[b].sum()) == min(n1, n2)  # complete over the completed graphs
        pairs = prediction.pairs[b]
        assert_valid_matching(pairs, int(n_s[b]), int(n_t[b]))
        # real-to-real pairs: all but those taken by generated nodes (the outlier sinks)
        k = pairs.size(1)
        gen = int(out.num_generated_s[b]) + int(out.num_generated_t[b])
        assert min(n1, n2) - gen <= k <= min(int(n_s[b]), int(n_t[b]))
        real_to_gen = int(X[b, :n_s[b], n_t[b]:n2].sum()) + int(X[b, n_s[b]:n1, :n_t[b]].sum())
        assert k == min(n1, n2) - real_to_gen - int(X[b, n_s[b]:n1, n_t[b]:n2].sum())


def test_without_completion_a_low_threshold_gives_a_full_matching(real_batch):
    t = tiny(seed=4, completion=False)
    with torch.no_grad():
        t.model.match_threshold.fill_(-1e3)
    prediction = match(t, real_batch)
    out = prediction.output
    assert int(out.num_generated_s.sum()) == 0 and int(out.num_generated_t.sum()) == 0
    for b, pairs in enumerate(prediction.pairs):
        assert pairs.size(1) == min(int(out.num_real_s[b]), int(out.num_real_t[b]))


def test_unmatched_nodes_have_affinity_below_the_threshold(real_batch):
    """At an intermediate threshold the matching is partial, every pair made is worth more than
    the threshold, and no two unmatched nodes could have been matched profitably."""
    parts = tiny(seed=5)
    model = parts.model
    out0 = match(parts, real_batch).output
    real = out0.S[0, :int(out0.num_real_s[0]), :int(out0.num_real_t[0])]
    with torch.no_grad():
        # the threshold parameter is divided by the temperature, like the appearance part of S
        model.match_threshold.fill_(float(real.quantile(0.8) * model.temperature))
    prediction = match(parts, real_batch)
    out = prediction.output
    torch.testing.assert_close(out.S, out0.S)  # the threshold does not change the affinity
    t = float(model.match_threshold.detach() / model.temperature.detach())
    some_unmatched = False
    for b in range(real_batch.num_graphs):
        n1, n2 = int(out.n1[b]), int(out.n2[b])
        S, X = out.S[b, :n1, :n2], prediction.X[b, :n1, :n2].bool()
        assert (S[X] >= t - 1e-5).all()
        free_rows, free_cols = ~X.any(1), ~X.any(0)
        if free_rows.any() and free_cols.any():
            some_unmatched = True
            assert (S[free_rows][:, free_cols] <= t + 1e-5).all()
        pairs = prediction.pairs[b]
        if pairs.numel():
            assert (S[pairs[0], pairs[1]] >= t - 1e-5).all()
    assert some_unmatched  # the "no profitable pair left" check did run
    assert any(p.numel() for p in prediction.pairs)


# --------------------------------------------------------------------------- variants


@pytest.mark.parametrize("options", [
    dict(structure="delaunay"), dict(structure="knn", knn_k=3), dict(structure="learned"),
    dict(completion=False), dict(completion=False, matching_loss="hamming"),
    dict(use_appearance=False), dict(weight_contrastive=0.5), dict(query_fraction=0.5, num_queries=2),
    dict(coherence_rounds=0),
], ids=["delaunay", "knn", "learned", "no-completion", "no-completion-hamming", "geometry-only",
        "contrastive", "queries-follow-size", "affine-only"])
def test_structure_and_ablation_options_run_forward_and_backward(generated_batch, options):
    model, criterion, predictor = tiny(**options)
    out = model.train()(generated_batch)
    assert isinstance(out, SSGMOutput)
    losses = criterion(out, generated_batch)
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    if options.get("completion") is False:
        assert model.decoder is None and out.queries_s is None
        assert int(out.num_generated_s.sum()) == 0
    if "weight_contrastive" in options:
        assert "contrastive" in losses
    for pairs, n_s, n_t in zip(predictor(generated_batch), out.num_real_s, out.num_real_t):
        assert_valid_matching(pairs, int(n_s), int(n_t))


@pytest.mark.parametrize("matching_loss", ["sinkhorn", "hamming"])
def test_real_only_matching_loss_leaves_partnerless_real_nodes_unmatched(generated_batch, monkeypatch,
                                                                        matching_loss):
    """``weight_match_real``: the main loss matches each real node whose partner the other graph
    lacks to the generated node forced in for it; the second loss, over the real nodes alone,
    wants exactly the common pairs, so the unmatched threshold learns to leave the others out."""
    seen = []
    matching_loss_fn = Criterion.matching_loss

    def spy(self, S, X_gt, n1, n2, threshold):
        seen.append((X_gt.detach(), n1, n2))
        return matching_loss_fn(self, S, X_gt, n1, n2, threshold)

    monkeypatch.setattr(Criterion, "matching_loss", spy)
    model, criterion, _ = tiny(matching_loss=matching_loss)
    assert "match_real" not in criterion(model.train()(generated_batch), generated_batch)
    seen.clear()
    model, criterion, _ = tiny(matching_loss=matching_loss, weight_match_real=1.0)
    out = model.train()(generated_batch)
    losses = criterion(out, generated_batch)
    (X_all, n1, n2), (X_real, r1, r2) = seen
    assert torch.equal(n1, out.n1) and torch.equal(r1, out.num_real_s) and torch.equal(r2, out.num_real_t)
    assert int(X_real.sum()) == generated_batch.y.size(1)  # the common pairs, nothing else
    assert int(X_all.sum()) > int(X_real.sum())  # the premise: generated partners absorb the rest
    assert torch.isfinite(losses["match_real"])
    losses["match_real"].backward()
    assert sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None) > 0
    if matching_loss == "sinkhorn":  # the blackbox gradient is 0 wherever a small step changes no decision
        assert float(model.match_threshold.grad.abs()) > 0


def test_negative_real_only_matching_weight_is_refused():
    with pytest.raises(ConfigError, match="weight_match_real"):
        tiny_settings_of(weight_match_real=-1.0)


@pytest.mark.parametrize("num_nodes", [1, 2, 3])
@pytest.mark.parametrize("options", [{}, dict(structure="knn"), dict(completion=False, matching_loss="hamming")],
                         ids=["default", "knn", "no-completion-hamming"])
def test_tiny_graphs_run(tiny_data, num_nodes, options):
    """Graphs too small for a triangulation (1-3 keypoints) go through training and prediction."""
    a, b = [inst for inst in tiny_data.test if inst.category == "cat0"][:2]
    small = a.subset(list(range(num_nodes)))
    model, criterion, predictor = tiny(**options)
    gen = PairGenerator(drop_rate=0.3, min_kept=1)
    batch = to_batch([gen(small, torch.Generator().manual_seed(k)) for k in range(2)])
    loss = criterion(model.train()(batch), batch)["loss"]
    assert torch.isfinite(loss)
    loss.backward()
    preds = predictor(to_batch([make_pair(small, b), make_pair(b, small)]))
    assert_valid_matching(preds[0], num_nodes, b.num_nodes)
    assert_valid_matching(preds[1], b.num_nodes, num_nodes)


# --------------------------------------------------------------------------- bad input


def _empty_source_pair(like: PairData) -> PairData:
    return PairData(x_s=torch.zeros(0, FEATURE_DIM), pos_s=torch.zeros(0, 2),
                    edge_index_s=torch.zeros(2, 0, dtype=torch.long), edge_attr_s=torch.zeros(0, 2),
                    x_t=like.x_t, pos_t=like.pos_t, edge_index_t=like.edge_index_t, edge_attr_t=like.edge_attr_t,
                    y=torch.zeros(2, 0, dtype=torch.long), names_s=[], names_t=list(like.names_t),
                    category=like.category)


def test_empty_graph_raises_invalid_input(real_pairs):
    model, _, predictor = tiny()
    with pytest.raises(InvalidInputError, match="empty"):
        model(to_batch([real_pairs[0], _empty_source_pair(real_pairs[1])]))
    with pytest.raises(InvalidInputError, match="empty"):
        predictor(to_batch([_empty_source_pair(real_pairs[1])]))


def test_nan_positions_raise_invalid_input(real_pairs):
    model, _, predictor = tiny()
    for field in ("pos_s", "pos_t"):
        batch = to_batch(real_pairs[:2])
        getattr(batch, field)[3, 1] = float("nan")
        with pytest.raises(InvalidInputError, match="NaN"):
            model(batch)
    batch = to_batch(real_pairs[:2])
    batch.pos_t[0, 0] = float("inf")
    with pytest.raises(InvalidInputError):
        predictor(batch)


def test_mismatched_feature_sizes_raise_invalid_input(real_pairs):
    model = tiny().model.eval()
    pair = real_pairs[0]
    narrow = pair.clone()
    narrow.x_s, narrow.x_t = pair.x_s[:, :5], pair.x_t[:, :5]  # the model expects FEATURE_DIM
    with pytest.raises(InvalidInputError, match="features"):
        model(to_batch([narrow]))
    one_side = pair.clone()
    one_side.x_t = torch.cat([pair.x_t, pair.x_t], 1)  # target wider than source and model
    with pytest.raises(InvalidInputError, match="features"):
        model(to_batch([one_side]))


def test_batch_without_follow_batch_raises_invalid_input(real_pairs):
    model, _, predictor = tiny()
    batch = Batch.from_data_list(real_pairs[:2])  # no follow_batch: no x_s_batch / x_t_batch
    with pytest.raises(InvalidInputError, match="follow_batch"):
        model(batch)
    with pytest.raises(SSGMError):
        predictor(batch)


def test_predict_restores_the_training_flag(real_batch, real_pairs):
    model, _, predictor = tiny()
    model.train()
    preds = predictor(real_batch)
    assert model.training
    assert all(m.training for m in model.modules())
    model.eval()
    assert predictor(real_batch)[0].tolist() == preds[0].tolist()
    assert not model.training and not any(m.training for m in model.modules())
    # ... also when the prediction fails
    model.train()
    with pytest.raises(InvalidInputError):
        predictor(Batch.from_data_list(real_pairs[:1]))
    assert model.training
    # and it computes no loss, builds no graph
    assert not any(p.requires_grad for p in preds)


# --------------------------------------------------------------------------- a short training run


def test_ssgm_learns_on_generated_pairs_and_predicts_partial_matchings(tiny_data, real_batch, real_pairs):
    torch.manual_seed(0)
    model, criterion, predictor = tiny(seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    dataset = GeneratedPairs(tiny_data.train, PairGenerator(drop_rate=0.25), seed=0)  # 12 instances
    losses = []
    model.train()
    for epoch in range(10):  # 10 epochs x 3 steps of 4 pairs
        dataset.set_epoch(epoch)
        for batch in pair_loader(dataset, batch_size=4, shuffle=True, seed=epoch):
            loss = criterion(model(batch), batch)["loss"]
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first, f"loss did not go down: first 5 {losses[:5]}, last 5 {losses[-5:]}"

    assert model.training
    preds = predictor(real_batch)
    assert model.training
    assert isinstance(preds, list) and len(preds) == len(real_pairs)
    for pred, pair in zip(preds, real_pairs):
        assert_valid_matching(pred, pair.num_nodes_s, pair.num_nodes_t)
    assert sum(p.size(1) for p in preds) > 0


def test_queries_follow_the_size_of_the_other_graph(real_batch):
    """``query_fraction``: each graph gets max(num_queries, ceil(fraction * size of the other graph))
    queries, the learned ones reused cyclically."""
    out = match(tiny(seed=0, query_fraction=0.5, num_queries=2), real_batch).output
    size_s = torch.bincount(real_batch.x_s_batch, minlength=real_batch.num_graphs)
    size_t = torch.bincount(real_batch.x_t_batch, minlength=real_batch.num_graphs)
    expected_s = (0.5 * size_t).ceil().long().clamp(min=2)
    expected_t = (0.5 * size_s).ceil().long().clamp(min=2)
    assert torch.equal(torch.bincount(out.queries_s.batch, minlength=real_batch.num_graphs), expected_s)
    assert torch.equal(torch.bincount(out.queries_t.batch, minlength=real_batch.num_graphs), expected_t)
    assert int(expected_s.max()) > 2  # the check covers graphs with more queries than learned ones


def test_mirror_test_keeps_the_orientation_of_higher_objective(real_batch):
    from pyg_ssgm.data import mirrored

    flipped = mirrored(real_batch, "t")
    assert torch.equal(flipped.pos_t[:, 0], -real_batch.pos_t[:, 0])
    assert torch.equal(flipped.pos_t[:, 1], real_batch.pos_t[:, 1])
    assert torch.equal(flipped.pos_s, real_batch.pos_s) and flipped.x_t is real_batch.x_t
    assert not torch.equal(real_batch.pos_t, flipped.pos_t)  # the original is left as it was
    assert flipped.mirror.tolist() == [1] * real_batch.num_graphs and not hasattr(real_batch, "mirror")
    assert mirrored(flipped, "t").mirror.tolist() == [0] * real_batch.num_graphs  # flipped back
    t = tiny(seed=3)
    model, predictor = t.model, t.predictor
    plain, mirror = match(t, real_batch), match(t, flipped)
    chosen = Predictor(model, replace(predictor.config, mirror_test=True))(real_batch)
    keep = predictor.objective(plain) >= predictor.objective(mirror)
    for b, pred in enumerate(chosen):
        assert torch.equal(pred, (plain if keep[b] else mirror).pairs[b])
    threshold = (model.match_threshold / model.temperature).detach()
    expected = sum(float(plain.output.S[b, i, j] - threshold) for b in range(len(plain.pairs))
                   for i, j in (plain.X[b].nonzero().tolist()))
    assert abs(float(predictor.objective(plain).sum()) - expected) < 1e-3


def test_a_mirror_aware_model_is_told_which_pairs_face_their_mirror_image(real_batch, tiny_data):
    """``mirror_aware``: the mirror flag changes the target's embeddings (and so the matching's
    affinity) and nothing else; a model without it, or a pair without the flag, is unaffected."""
    from pyg_ssgm.data import mirrored

    t = tiny(seed=2, mirror_aware=True)
    model, predictor = t.model, t.predictor
    told = mirrored(real_batch, "t")
    told.pos_t = real_batch.pos_t  # the flag alone, on unchanged positions
    plain, flagged = match(t, real_batch), match(t, told)
    assert torch.equal(plain.output.encoded_s.h, flagged.output.encoded_s.h)
    assert not torch.allclose(plain.output.encoded_t.h, flagged.output.encoded_t.h)
    unaware = tiny(seed=2)
    assert torch.equal(match(unaware, real_batch).output.S, match(unaware, told).output.S)
    # the mirror test: the orientation is chosen by the flipped pass not told about the mirror
    # (told, the model leaves the exchanged parts unmatched, which lowers that objective), the
    # matching of the flipped orientation comes from the pass that is told
    untold = mirrored(real_batch, "t", tell=False)
    assert not hasattr(untold, "mirror") and torch.equal(untold.pos_t, mirrored(real_batch, "t").pos_t)
    flipped_told, flipped_untold = match(t, mirrored(real_batch, "t")), match(t, untold)
    keep = predictor.objective(plain) >= predictor.objective(flipped_untold)
    assert keep.any() and not keep.all()  # both orientations occur, so the check means something
    for b, pred in enumerate(Predictor(model, replace(predictor.config, mirror_test=True))(real_batch)):
        assert torch.equal(pred, (plain if keep[b] else flipped_told).pairs[b])
    model.train()
    gen = PairGenerator(mirror_rate=0.5)
    batch = to_batch([gen(inst, torch.Generator().manual_seed(k)) for k, inst in enumerate(tiny_data.train[:6])])
    t.criterion(model(batch), batch)["loss"].backward()
    assert all(float(p.grad.abs().sum()) > 0 for p in model.mirror_shift.parameters())


def test_generated_nodes_can_stay_out_of_the_matching_at_inference(generated_batch):
    t = tiny(seed=1, exist_threshold=0.01)  # nearly every query would exist
    on = match(t, generated_batch).output
    off = match(t, generated_batch, generate_at_inference=False).output
    assert int(on.num_generated_s.sum() + on.num_generated_t.sum()) > 0
    assert int(off.num_generated_s.sum() + off.num_generated_t.sum()) == 0
    t.model.train()  # training still completes the graphs and trains the queries
    out = t.model(generated_batch)
    assert int(out.num_generated_s.sum()) > 0 and "exist" in t.criterion(out, generated_batch)


def test_completion_quality_counts_the_generated_nodes_whatever_the_inference_switch(tiny_data):
    """The count is the model's completion, not whether the nodes enter the matching: a model
    with ``generate_at_inference=False`` must not be scored as predicting 0 missing nodes."""
    from pyg_ssgm.evaluation import completion_quality

    model, _, predictor = tiny(seed=1, exist_threshold=0.01,  # nearly every query exists: counts far from 0
                               completion_source="queries")
    on = completion_quality(predictor, tiny_data.test)
    off = completion_quality(Predictor(model, replace(predictor.config, generate_at_inference=False)),
                             tiny_data.test)
    assert on == off
    model.config = replace(model.config, exist_threshold=0.999999)  # no query exists: exact only where
    none = completion_quality(predictor, tiny_data.test)  # nothing is missing
    assert none["count_accuracy_graph"] != on["count_accuracy_graph"]


def test_matching_decided_completion_transfers_the_unmatched_nodes():
    """``completion_source="matching"``: a side lacks exactly the real nodes of the other graph that
    the matching leaves without a real partner, placed by the affine map of the matched pairs;
    padding and nodes matched to a generated node are not real partners."""
    g = torch.Generator().manual_seed(0)
    P_t = torch.randn(1, 7, 2, generator=g)
    A = torch.tensor([[[0.9, 0.3], [-0.2, 1.1], [0.5, -0.4]]])  # [3, 2]: target -> source
    P_s = torch.cat([apply_affine(A, P_t)[:, :5], torch.randn(1, 2, 2, generator=g)], 1)
    X = torch.zeros(1, 7, 7)
    X[0, torch.arange(5), torch.arange(5)] = 1  # real target nodes 0-4 matched to real source nodes
    X[0, 5, 5] = 1  # target node 5 matched to the generated source node 5: no real partner
    real_s = torch.tensor([[True] * 5 + [False, True]])  # source node 5: generated; 6: a real one, unmatched
    real_t = torch.tensor([[True] * 6 + [False]])  # target node 6: padding
    into_s, into_t = transferred_nodes(X, P_s, P_t, real_s, real_t)
    assert into_s.batch.tolist() == [0] and into_t.batch.tolist() == [0]
    assert torch.allclose(into_s.pos, apply_affine(A, P_t)[0, 5:6], atol=0.05)  # where the source lacks it
    inverse = torch.linalg.solve(A[0, :2], torch.eye(2))
    assert torch.allclose(into_t.pos, (P_s[0, 6:7] - A[0, 2]) @ inverse, atol=0.05)
    with pytest.raises(ConfigError):
        tiny_settings_of(completion_source="oracle")


def test_alone_probability_knows_two_nodes_cannot_share_a_partner():
    """The confidence of a node the matching leaves: the probability, under the soft matching with
    the threshold as slack, that it has no real partner. Two source nodes that both want the one
    target node (affinity far above the threshold) share it: together they are alone once; a node
    whose affinity is far below the threshold is alone; padding is 0. The best affinity alone
    would call both of the first two nodes partnered."""
    from types import SimpleNamespace

    t = tiny()
    S = torch.tensor([[[10.0, -9.0], [10.0, -9.0], [-9.0, -9.0]]])  # source 2 wants nothing
    out = SimpleNamespace(S=S, threshold=torch.tensor(0.0), n1=torch.tensor([3]), n2=torch.tensor([1]),
                          num_real_s=torch.tensor([3]), num_real_t=torch.tensor([1]), queries_s=None)
    alone_s, alone_t = Predictor(t.model, InferenceConfig()).alone_probability(out)
    assert alone_s.shape == (1, 3) and alone_t.shape == (1, 2)
    assert abs(float(alone_s[0, 0] + alone_s[0, 1]) - 1.0) < 0.05  # one of the two goes without
    assert float(alone_s[0, 2]) > 0.95 and float(alone_t[0, 0]) < 0.05
    assert float(alone_t[0, 1]) == 0.0  # padding


def test_matching_decided_completion_counts_what_the_matching_leaves(generated_batch):
    t = tiny(seed=2, completion_source="matching")
    prediction = match(t, generated_batch)
    out = prediction.output
    into_s, into_t = t.predictor.generated_nodes(prediction)
    for b, pairs in enumerate(prediction.pairs):
        assert int((into_s.batch == b).sum()) == int(out.num_real_t[b]) - pairs.size(1)
        assert int((into_t.batch == b).sum()) == int(out.num_real_s[b]) - pairs.size(1)
    queries = Predictor(t.model, replace(t.predictor.config, completion_source="queries", count_per_pair=False))
    queried_s, _ = queries.generated_nodes(prediction)
    assert queried_s.pos.size(0) == int((torch.sigmoid(out.queries_s.exist_logit) > 0.5).sum())


def test_both_sides_in_one_pass_equal_each_side_alone(real_pairs):
    """Encoder and query decoder run both graphs of every pair in one call; nothing may cross from
    one graph to another: a source graph encodes the same whatever its target, and the fused
    decoder call gives the queries of one call per side (the attention path)."""
    t = tiny(seed=3)
    model = t.model.eval()
    batch = to_batch(real_pairs[:3])
    swapped = [p.clone() for p in real_pairs[:3]]
    for p, q in zip(swapped, real_pairs[3:6]):
        p.x_t, p.pos_t, p.edge_index_t = q.x_t, q.pos_t, q.edge_index_t
        p.y = p.y[:, :0]
    with torch.no_grad():
        enc_s, _ = model.encode(batch, 3)
        other_s, _ = model.encode(to_batch(swapped), 3)
        fused = t.predictor.match(batch)
        apart = t.predictor.match(batch, return_attention=True)
    assert torch.allclose(enc_s.h, other_s.h, atol=1e-5)
    for side in ("queries_s", "queries_t"):
        a, b = getattr(fused.output, side), getattr(apart.output, side)
        assert torch.equal(a.batch, b.batch)
        for field in ("exist_logit", "pos", "feat", "embedding"):
            assert torch.allclose(getattr(a, field), getattr(b, field), atol=1e-5), (side, field)
    assert all(torch.equal(x, y) for x, y in zip(fused.pairs, apart.pairs))


def test_inference_aligns_with_its_own_number_of_consensus_rounds(real_batch, monkeypatch):
    calls = []
    fit = consensus_module.fit_affine
    monkeypatch.setattr(consensus_module, "fit_affine", lambda *a, **k: calls.append(1) or fit(*a, **k))

    def fits(model, inference):
        calls.clear()
        with torch.no_grad():
            model(real_batch, inference=inference)
        return len(calls)  # one fit per round, plus the reverse map

    model = tiny(consensus_iterations=2).model.eval()
    training, inference = fits(model, None), fits(model, InferenceConfig(inference_consensus_iterations=5))
    assert (training, inference) == (3, 6)
    assert fits(model, InferenceConfig(inference_consensus_iterations=None)) == 3  # as in training


def test_decoder_dustbin_lets_the_existence_decide_who_stays_unmatched(real_batch):
    """``dustbin_weight``: a node's score for staying unmatched is half the threshold plus the
    weight times the existence logit of the query seeded from it in the other graph; the matching
    is the partial assignment with those scores, and a large weight leaves unmatched exactly the
    nodes whose partner the decoder calls missing (where it can: a node needs nothing to match)."""
    from pyg_ssgm.matching import threshold_to_unmatch

    t = tiny(seed=6, dustbin_weight=1.0)
    prediction = match(t, real_batch, generate_at_inference=False)
    out = prediction.output
    predictor = Predictor(t.model, replace(t.predictor.config, generate_at_inference=False))
    u1, u2 = predictor.unmatched_scores(out)
    half1, _ = threshold_to_unmatch(out.threshold, out.S)
    ptr = torch.cat([out.num_real_s.new_zeros(1), out.num_real_s.cumsum(0)])
    seeded = torch.zeros_like(u1, dtype=torch.bool)
    for q, node in enumerate(out.seeds_t.tolist()):
        if node < 0:
            continue
        b = int(out.encoded_s.batch[node])
        local = node - int(ptr[b])
        seeded[b, local] = True
        assert float(u1[b, local] - half1[b, local]) == pytest.approx(float(out.queries_t.exist_logit[q]), abs=1e-5)
    assert seeded.any() and torch.equal(u1[~seeded], half1[~seeded])
    assert torch.equal(prediction.X, hungarian(out.S, out.n1, out.n2, u1, u2))
    strong = Predictor(t.model, replace(predictor.config, dustbin_weight=1e4)).match(real_batch)
    missing = seeded.clone()
    for q, node in enumerate(out.seeds_t.tolist()):
        if node >= 0 and float(out.queries_t.exist_logit[q]) <= 0:
            b = int(out.encoded_s.batch[node])
            missing[b, node - int(ptr[b])] = False
    assert missing.any() and int(strong.X.sum(2)[missing].sum()) == 0


def test_threshold_shift_makes_the_matching_stricter_in_cosine_units(real_batch):
    """``threshold_shift`` raises the learned threshold by that many cosine units (the affinity's
    units times the temperature): every kept pair beats the raised threshold, no more pairs are
    kept than before, and a shift above any cosine leaves everything unmatched."""
    t = tiny(seed=3)
    plain = match(t, real_batch)
    stricter = match(t, real_batch, threshold_shift=0.3)
    out = stricter.output
    raised = Predictor(t.model, replace(t.predictor.config, threshold_shift=0.3)).threshold(out)
    assert float(raised - out.threshold) == pytest.approx(0.3 / float(t.model.temperature.detach()))
    assert bool((out.S[stricter.X.bool()] >= raised).all())
    assert stricter.X.sum() <= plain.X.sum()
    assert match(t, real_batch, threshold_shift=3.0).X.sum() == 0  # cosines lie in [-1, 1]
