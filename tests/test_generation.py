"""The generation measured on real pairs (pyg_ssgm.generation) and the completed graph users take
(Predictor.complete, evaluate --generation / --completions): each measure on a constructed case
whose answer is known."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import tiny, tiny_settings, to_batch
from pyg_ssgm import Predictor
from pyg_ssgm.data import KeypointInstance, make_pair, mirrored
from pyg_ssgm.generation import (ALL_QUERIES, affine_transfer, auroc, completion_records, count_measures,
                                 generation_measures, inference_switch, lacking, lacking_scores, pck,
                                 placement_measures, tps_transfer)
from pyg_ssgm.metrics import batch_targets
from pyg_ssgm.model.completion import paired_existence
from pyg_ssgm.nn.query_decoder import QueryOutput
from pyg_ssgm.model.predictor import Oriented, Prediction

NAMES = [f"kp{i}" for i in range(8)]
SOURCE = torch.tensor([[0.0, 0.0], [4.0, 0.5], [8.0, 0.0], [9.0, 5.0], [7.5, 9.0], [3.5, 10.0], [0.5, 7.0],
                       [4.5, 4.0]])
AFFINE = torch.tensor([[1.3, 0.2], [-0.3, 0.9]])  # p -> p M + b, with a translation of (40, -7)


def affine_copy(pos: torch.Tensor) -> torch.Tensor:
    return pos @ AFFINE + torch.tensor([40.0, -7.0])


def instance(pos, names, id):
    return KeypointInstance(pos, list(names), category="thing", id=id)


class Oracle(Predictor):
    """A predictor whose matching is the ground truth (the names'): what each measure should
    report about a perfect matching is then known."""

    def match(self, data, return_attention=False):
        prediction = super().match(data, return_attention)
        X = torch.zeros_like(prediction.X)
        for b, y in enumerate(batch_targets(data)):
            X[b, y[0], y[1]] = 1
        out = prediction.output
        pairs = [X[b, :out.num_real_s[b], :out.num_real_t[b]].nonzero().t() for b in range(X.size(0))]
        return Prediction(out, X, pairs)


def truth_matcher(batch):
    """RRWM's place in the place measure, given the true matches."""
    return batch_targets(batch)


@pytest.fixture
def oracle():
    return Oracle(tiny(in_channels=0).model)


# --------------------------------------------------------------------------- pieces


def test_lacking_counts_named_points_only():
    assert lacking(["a", "b"], ["a", "c", "d", None]) == 2  # c, d; an outlier is lacked by no graph
    assert lacking(["a", "c", "d", None], ["a", "b"]) == 1
    assert lacking(["a"], ["a", None, None]) == 0


def test_affine_and_tps_transfer_are_exact_on_an_affine_copy():
    target = affine_copy(SOURCE).numpy()
    query = np.array([[2.0, 3.0], [6.0, 8.0], [-1.0, 11.0]])
    expected = affine_copy(torch.as_tensor(query, dtype=torch.float32)).numpy()
    assert np.allclose(affine_transfer(SOURCE.numpy(), target, query), expected, atol=1e-4)
    # the spline's affine part takes the map whole, smoothed or not
    for smoothing in (0.0, 0.1):
        assert np.allclose(tps_transfer(SOURCE.numpy(), target, query, smoothing), expected, atol=1e-3)


def test_tps_follows_a_bend_that_an_affine_map_cannot():
    src = SOURCE.numpy().astype(np.float64)
    dst = src + np.stack([np.zeros(len(src)), 0.05 * (src[:, 0] - 4) ** 2], 1)  # a parabola
    assert np.allclose(tps_transfer(src, dst, src, smoothing=0.0), dst, atol=1e-6)  # exact at the matches
    assert not np.allclose(affine_transfer(src, dst, src), dst, atol=1e-2)


def test_transfers_fall_back_to_the_mean_shift_with_two_matches():
    src, dst = np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[5.0, 5.0], [6.0, 5.0]])
    for transfer in (affine_transfer, tps_transfer):
        assert np.allclose(transfer(src, dst, np.array([[0.0, 3.0]])), [[5.0, 8.0]])


def test_pck_counts_misses_as_wrong():
    assert pck([0.01, 0.07, 0.2, math.inf]) == {"pck@0.05": 0.25, "pck@0.1": 0.5}


# --------------------------------------------------------------------------- count


def test_count_of_a_perfect_matching_is_exact_unless_an_outlier_is_left(oracle):
    source = instance(SOURCE, NAMES, "s")
    lacks_two = instance(affine_copy(SOURCE[:6]), NAMES[:6], "t1")  # lacks kp6, kp7
    counts = count_measures(oracle, [source, lacks_two])
    assert counts["num_pairs"] == 1 and counts["true_mean"] == 1.0  # (0 + 2) / 2 graphs
    matching = counts["matching"]
    assert {k: matching[k] for k in ("exact", "exact_graph", "mae", "generated_mean")} == {
        "exact": 1.0, "exact_graph": 1.0, "mae": 0.0, "generated_mean": 1.0}
    assert matching["precision"] == 1.0  # both generated nodes stand for kp6 and kp7
    assert matching["brier"] < 0.1  # and their confidence says so

    # an outlier in the target: nothing lacks it, yet the matching leaves it unmatched, so the
    # source is said to lack one point more
    with_outlier = instance(torch.cat([affine_copy(SOURCE[:6]), torch.tensor([[30.0, 30.0]])]), NAMES[:6] + [None],
                            "t2")
    counts = count_measures(oracle, [source, with_outlier])
    assert counts["true_mean"] == 1.0
    matching = counts["matching"]
    assert {k: matching[k] for k in ("exact", "exact_graph", "mae", "generated_mean")} == {
        "exact": 0.0, "exact_graph": 0.5, "mae": 0.5, "generated_mean": 1.5}
    assert abs(matching["precision"] - 2 / 3) < 1e-9  # the node standing for the outlier is not lacking
    assert set(counts) >= {"queries", "matching"}  # the model has a decoder: both sources


def test_clean_pairs_lack_nothing(oracle):
    pair = [instance(SOURCE, NAMES, "a"), instance(affine_copy(SOURCE), NAMES, "b")]
    counts = count_measures(oracle, pair)
    assert counts["true_zero"] == 1.0 and counts["matching"]["exact"] == 1.0


# --------------------------------------------------------------------------- place


def test_place_of_hidden_points_on_an_affine_copy():
    oracle = Oracle(tiny(in_channels=0, query_fraction=1.0).model)  # a query seeded from every node
    source = instance(SOURCE, NAMES, "s")
    target = instance(affine_copy(SOURCE), NAMES, "t")
    place = placement_measures(oracle, [source, target], hidden_counts=(1, 3, 6), baseline=truth_matcher)
    for k in (1, 3):
        row = place[f"k={k}"]
        assert row["num_pairs"] == 1 and row["num_points"] == k
        for method in ("affine (model matches)", "tps (model matches)", "affine (rrwm matches)",
                       "tps (rrwm matches)"):
            assert row[method]["pck@0.05"] == 1.0 and row[method]["median"] < 1e-4, method
        # the matching leaves the hidden points' partners unmatched: one generated node each, where
        # the affine map of the (true) matches takes them (a ridge-regularised fit, hence not 1e-6)
        assert row["generated (matching)"]["found"] == 1.0 and row["generated (matching)"]["pck@0.05"] == 1.0
        assert {"generated (queries)", f"generated ({ALL_QUERIES})"} <= set(row)
        assert row[f"generated ({ALL_QUERIES})"]["found"] == 1.0  # every partner seeds a query
    assert place["k=6"]["num_pairs"] == 0  # 8 common points: 6 hidden would leave fewer than 3


def test_hidden_points_are_seeded(oracle):
    data = [instance(SOURCE, NAMES, "s"), instance(affine_copy(SOURCE) + 0.3 * torch.randn(8, 2), NAMES, "t")]
    a = placement_measures(oracle, data, hidden_counts=(2,), baseline=truth_matcher, seed=3)
    b = placement_measures(oracle, data, hidden_counts=(2,), baseline=truth_matcher, seed=3)
    assert a == b


# --------------------------------------------------------------------------- completed graphs


def test_complete_returns_the_matching_and_pixel_frame_points(oracle):
    source = instance(SOURCE, NAMES, "s")
    target = instance(affine_copy(SOURCE[[0, 1, 2, 3, 5, 7]]), [NAMES[i] for i in (0, 1, 2, 3, 5, 7)], "t")
    batch = to_batch([make_pair(source, target)])
    for mirror_test in (False, True):
        oracle.config = replace(oracle.config, mirror_test=mirror_test)
        (completion,) = oracle.complete(batch)
        assert torch.equal(completion.matches, oracle(batch)[0])
        # the target lacks kp4 and kp6: nodes partnered with them, where the affine copy has them
        assert sorted(completion.target.partner.tolist()) == [4, 6]
        order = completion.target.partner.argsort()
        assert torch.allclose(completion.target.pos[order], affine_copy(SOURCE[[4, 6]]), atol=0.05)
        assert ((completion.target.confidence >= 0) & (completion.target.confidence <= 1)).all()
        assert len(completion.source.pos) == 0  # the source lacks nothing


def test_a_kept_mirror_orientation_is_turned_back_to_the_target_frame(oracle):
    source = instance(SOURCE, NAMES, "s")
    target = instance(affine_copy(SOURCE[:6]), NAMES[:6], "t")
    batch = to_batch([make_pair(source, target)])
    with oracle._evaluating():
        plain, flipped = oracle.match(batch), oracle.match(mirrored(batch, "t"))
    for keep in (True, False):
        (completion,) = oracle.completions(Oriented(plain, flipped, torch.tensor([keep])), batch)
        assert completion.mirrored is not keep
        order = completion.target.partner.argsort()
        # within the pull of the fit's ridge towards the identity (the mirrored frame is far from
        # it); a frame left mirrored would be off by the width of the graph (~10 px)
        assert torch.allclose(completion.target.pos[order], affine_copy(SOURCE[6:]), atol=0.2)


def test_completion_to_dict_names_the_partners():
    data = [instance(SOURCE, NAMES, "bird_1"), instance(affine_copy(SOURCE[:5]), NAMES[:5], "bird_2")]
    oracle = Oracle(tiny(in_channels=0).model)
    records = completion_records(oracle, data)
    assert records["completion_source"] == "matching" and len(records["pairs"]) == 1
    pair = records["pairs"][0]
    assert (pair["source_id"], pair["target_id"]) == ("bird_1", "bird_2")
    assert pair["matches"] == [[n, n] for n in NAMES[:5]]
    assert sorted(p["partner"] for p in pair["generated"]["target"]) == NAMES[5:]
    assert all(len(p["position"]) == 2 and 0 <= p["confidence"] <= 1 for p in pair["generated"]["target"])
    json.dumps(records)


def test_queries_give_partners_in_the_other_graph_and_their_existence():
    t = tiny(in_channels=0)
    data = [instance(SOURCE, NAMES, "s"), instance(affine_copy(SOURCE[:5]), NAMES[:5], "t")]
    batch = to_batch([make_pair(*data), make_pair(data[1], data[0])])
    prediction = t.predictor.match(batch)
    every_s, every_t = t.predictor.generated_nodes(prediction, "queries", exist_threshold=-1.0)
    out = prediction.output
    assert torch.allclose(every_t.confidence, torch.sigmoid(out.queries_t.exist_logit))
    for nodes, other in ((every_s, out.num_real_t), (every_t, out.num_real_s)):
        assert (nodes.partner < other[nodes.batch]).all() and (nodes.partner >= -1).all()
    if getattr(out, "seeds_t", None) is not None:  # the partner is the node the query was seeded from
        first = torch.cumsum(out.num_real_s, 0) - out.num_real_s
        seeded = out.seeds_t >= 0
        assert torch.equal(every_t.partner[seeded], out.seeds_t[seeded] - first[out.queries_t.batch[seeded]])
        assert (every_t.partner[~seeded] == -1).all()
    by_query = Predictor(t.model, replace(t.predictor.config, count_per_pair=False))
    kept_s, _ = by_query.generated_nodes(prediction, "queries")
    assert (kept_s.confidence > t.model.config.exist_threshold).all()


def _queries(logits, batch):
    logits = torch.tensor(logits)
    return QueryOutput(logits.new_zeros(len(logits), 1), torch.tensor(batch), logits, logits.new_zeros(len(logits), 2),
                       logits.new_zeros(len(logits), 1))


def test_a_paired_count_decides_both_sides_together():
    """The source lacks n_t - c nodes and the target n_s - c: one number. Alone, the source's
    queries say 2 and the target's 0 (inconsistent with n_t - n_s = 1); together, the target's
    doubtful query exists (3.4 - 0.2 against 3.0)."""
    s, t = _queries([3.0, 0.4, -5.0], [0, 0, 0]), _queries([-0.2, -4.0], [0, 0])
    exists_s, exists_t = paired_existence(s, t, torch.tensor([4]), torch.tensor([5]), 0.5)
    assert exists_s.tolist() == [True, True, False] and exists_t.tolist() == [True, False]
    # a stricter threshold: the same pair, now one node in common fewer is less likely than more
    exists_s, exists_t = paired_existence(s, t, torch.tensor([4]), torch.tensor([5]), 0.8)
    assert exists_s.tolist() == [True, False, False] and exists_t.tolist() == [False, False]


@pytest.mark.parametrize("seed", range(5))
def test_a_paired_count_is_the_most_likely_consistent_one(seed):
    """Brute force over the counts in common, on random pairs of a batch (some with more lacking
    nodes than queries: then every query exists)."""
    g = torch.Generator().manual_seed(seed)
    n_s, n_t = torch.randint(1, 9, (4,), generator=g), torch.randint(1, 9, (4,), generator=g)
    q_s, q_t = torch.randint(1, 5, (4,), generator=g), torch.randint(1, 5, (4,), generator=g)
    s = _queries(torch.randn(int(q_s.sum()), generator=g).tolist(), torch.arange(4).repeat_interleave(q_s).tolist())
    t = _queries(torch.randn(int(q_t.sum()), generator=g).tolist(), torch.arange(4).repeat_interleave(q_t).tolist())
    exists_s, exists_t = paired_existence(s, t, n_s, n_t, 0.5)
    for b in range(4):
        ls, lt = s.exist_logit[s.batch == b], t.exist_logit[t.batch == b]

        def top(logits, k):
            return float(logits.sort(descending=True).values[:k].sum())

        value = {c: top(ls, int(n_t[b]) - c) + top(lt, int(n_s[b]) - c) for c in range(int(min(n_s[b], n_t[b])) + 1)}
        best = max(value.values())
        made_s, made_t = int(exists_s[s.batch == b].sum()), int(exists_t[t.batch == b].sum())
        assert any(abs(value[c] - best) < 1e-5 and made_s == min(int(n_t[b]) - c, len(ls))
                   and made_t == min(int(n_s[b]) - c, len(lt)) for c in value)
        # the queries that exist are the most probable ones of their graph
        if 0 < made_s < len(ls):
            assert ls[exists_s[s.batch == b]].min() >= ls[~exists_s[s.batch == b]].max()


def test_the_queries_count_per_pair_unless_told_otherwise(real_batch):
    t = tiny(seed=0)
    prediction = t.predictor.match(real_batch)
    out = prediction.output
    paired = t.predictor.generated_nodes(prediction, "queries")
    by_query = Predictor(t.model, replace(t.predictor.config, count_per_pair=False)).generated_nodes(prediction,
                                                                                                     "queries")
    made = [torch.bincount(n.batch, minlength=real_batch.num_graphs) for n in paired]
    queries = [torch.bincount(q.batch, minlength=real_batch.num_graphs) for q in (out.queries_s, out.queries_t)]
    enough = (out.num_real_t - out.num_real_s).abs() <= torch.minimum(*queries)
    assert torch.equal((made[0] - made[1])[enough], (out.num_real_t - out.num_real_s)[enough])
    threshold = t.model.config.exist_threshold
    assert torch.equal(by_query[0].confidence, torch.sigmoid(out.queries_s.exist_logit)[
        torch.sigmoid(out.queries_s.exist_logit) > threshold])


def test_seeded_nodes_are_the_matchings_placed_by_their_queries():
    """``completion_source="seeded"``: the nodes the matching leaves (same partners, same
    confidence), each at the position of the query seeded from its partner where there is one,
    else where the affine map takes it."""
    t = tiny(in_channels=0)
    data = [instance(SOURCE, NAMES, "s"), instance(affine_copy(SOURCE[:5]), NAMES[:5], "t")]
    batch = to_batch([make_pair(*data), make_pair(data[1], data[0])])
    prediction = t.predictor.match(batch)
    out = prediction.output
    queries = t.predictor.generated_nodes(prediction, "queries", exist_threshold=-1.0)
    moved = 0
    for matched, seeded, every in zip(t.predictor.generated_nodes(prediction, "matching"),
                                      t.predictor.generated_nodes(prediction, "seeded"), queries):
        assert torch.equal(seeded.batch, matched.batch) and torch.equal(seeded.partner, matched.partner)
        assert torch.equal(seeded.confidence, matched.confidence)
        for k in range(seeded.pos.size(0)):
            mine = (every.batch == seeded.batch[k]) & (every.partner == seeded.partner[k])
            expected = every.pos[mine][0] if mine.any() else matched.pos[k]
            assert torch.allclose(seeded.pos[k], expected.to(seeded.pos.dtype))
            moved += int(mine.any())
    assert moved > 0  # some node was placed by its query, so the comparison above tested it
    assert out.queries_s is not None


# --------------------------------------------------------------------------- matching, all together


def test_inference_switch_scores_the_same_model_both_ways(tiny_data):
    t = tiny()
    switch = inference_switch(t.predictor, tiny_data.test)
    assert set(switch) == {"on", "off"}
    assert all(0.0 <= s["f1"] <= 1.0 for s in switch.values())
    from pyg_ssgm.evaluation import evaluate_matching

    current = evaluate_matching(t.predictor, tiny_data.test)
    state = "on" if t.predictor.config.generate_at_inference else "off"
    assert switch[state]["f1"] == current["unfiltered"].mean.f1
    assert inference_switch(t.predictor, tiny_data.test, current=current) == switch


def test_generation_measures_hold_all_three(tiny_data):
    t = tiny()
    gen = generation_measures(t.predictor, tiny_data.test, hidden_counts=(1,))
    assert set(gen) == {"count", "place", "matching"}
    assert set(gen["place"]) == {"k=1"}
    assert set(gen["count"]["auroc"]) == {"queries", "affinity"}
    for source in ("queries", "matching"):
        judged = gen["count"][source]
        if judged["generated_mean"] > 0:  # a share and a squared error of probabilities
            assert 0.0 <= judged["precision"] <= 1.0 and 0.0 <= judged["brier"] <= 1.0
        else:
            assert judged["precision"] is None and judged["brier"] is None
    assert all(0.0 <= v <= 1.0 for v in gen["count"]["auroc"].values())  # the test pairs lack nodes


def test_auroc_ranks_the_lacking_nodes_above_the_others():
    assert auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5, 0.5], [True, False, False]) == 0.5  # ties count half
    assert auroc([0.9, 0.1, 0.5], [True, False, False]) == 1.0 and auroc([0.1, 0.9, 0.5], [True, False, False]) == 0.0
    assert math.isnan(auroc([0.3, 0.4], [True, True])) and math.isnan(auroc([0.3], [False]))


def test_lacking_scores_read_the_seeded_queries_and_the_best_affinity():
    """Per node of the other graph: the existence of the query seeded from it (0 where none) and
    minus its best affinity to a real node of the graph that may lack it."""
    t = tiny(in_channels=0)
    data = [instance(SOURCE, NAMES, "s"), instance(affine_copy(SOURCE[:5]), NAMES[:5], "t")]
    batch = to_batch([make_pair(*data), make_pair(data[1], data[0])])
    oriented = t.predictor.orient(batch)
    out = oriented.plain.output
    every_s, every_t = t.predictor.generated_nodes(oriented.plain, "queries", exist_threshold=-1.0)
    for b in range(2):
        n_s, n_t = int(out.num_real_s[b]), int(out.num_real_t[b])
        S = out.S[b, :n_s, :n_t].double()
        for side, every, n_other, best in (("s", every_s, n_t, S.amax(0)), ("t", every_t, n_s, S.amax(1))):
            scores = lacking_scores(oriented, b, side)
            assert scores["affinity"].shape == (n_other,) and np.allclose(scores["affinity"], -best.numpy())
            expected = np.zeros(n_other)
            mine = (every.batch == b) & (every.partner >= 0)
            expected[every.partner[mine].numpy()] = every.confidence[mine].double().numpy()
            assert np.allclose(scores["queries"], expected)


def test_evaluate_writes_the_generation_and_the_completions(tmp_path):
    from pyg_ssgm.cli.evaluate import evaluate_command
    from pyg_ssgm.cli.train import train_command

    runner = CliRunner()
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_settings(tmp_path / "run", epochs=1)))
    result = runner.invoke(train_command, ["--config", str(tmp_path / "tiny.json"), "--no-progress"])
    assert result.exit_code == 0, result.output
    checkpoint = str(tmp_path / "run" / "checkpoint.pt")
    result = runner.invoke(evaluate_command, ["--checkpoint", checkpoint, "--generation", "--completions",
                                              str(tmp_path / "c.json"), "--output", str(tmp_path / "e.json")])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "Generated-node count" in result.output and "PCK" in result.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert set(report["generation"]) == {"count", "place", "matching"}
    assert report["generation"]["count"]["num_pairs"] == report["unfiltered"]["mean"]["num_pairs"]
    completions = json.loads((tmp_path / "c.json").read_text())
    assert len(completions["pairs"]) == report["unfiltered"]["mean"]["num_pairs"]
    # the default command is unchanged: no generation measures
    plain = runner.invoke(evaluate_command, ["--checkpoint", checkpoint, "--output", str(tmp_path / "p.json")])
    assert plain.exit_code == 0 and "generation" not in json.loads((tmp_path / "p.json").read_text())
    assert json.loads((tmp_path / "p.json").read_text())["inference"]["count_per_pair"] is True
    by_query = runner.invoke(evaluate_command, ["--checkpoint", checkpoint, "--completion-source", "queries",
                                                "--count-per-query", "--output", str(tmp_path / "q.json")])
    assert by_query.exit_code == 0, by_query.output
    assert json.loads((tmp_path / "q.json").read_text())["inference"]["count_per_pair"] is False


@pytest.mark.parametrize("flag", [["--generation"], ["--completions", "x.json"], ["--count-per-query"]])
def test_generation_options_need_a_checkpoint(flag):
    from pyg_ssgm.cli.evaluate import evaluate_command

    result = CliRunner().invoke(evaluate_command, ["--solver", "hungarian", *flag])
    assert result.exit_code == 2 and "--checkpoint" in result.stderr


def test_the_benchmark_report_puts_the_three_f1_side_by_side():
    from pyg_ssgm.benchmarking.report import format_generation_tables

    count = {"num_pairs": 2, "true_mean": 1.0, "true_zero": 0.0,
             "matching": {"exact": 0.5, "exact_graph": 0.75, "mae": 0.25, "generated_mean": 1.0},
             "auroc": {"affinity": 0.875, "queries": 0.625}}
    place = {"k=1": {"num_pairs": 2, "num_points": 2,
                     "generated (matching)": {"pck@0.05": 0.5, "pck@0.1": 1.0, "median": 0.06, "found": 1.0},
                     "affine (rrwm matches)": {"pck@0.05": 0.0, "pck@0.1": 0.5, "median": 0.1}}}
    methods = [{"key": "ssgm", "label": "SSGM", "f1": 0.7, "generation": {"count": count, "place": place}},
               {"key": "ssgm_generated_on", "label": "SSGM, on", "f1": 0.8},
               {"key": "ssgm_supervised", "label": "SSGM sup", "f1": 0.9,
                "generation": {"count": count, "place": place}},
               {"key": "ssgm_no_completion", "label": "SSGM w/o", "f1": 0.6, "generation": {"count": count}}]
    text = format_generation_tables({"methods": methods})
    assert "generated nodes on at inference 0.800, off 0.700, trained without them 0.600" in text
    assert text.count("affine (rrwm matches)") == 1  # the same RRWM rows once
    assert "| SSGM " in text and "50.0%" in text and "| SSGM w/o" in text  # a row with the count only
    assert "0.875" in text and "0.625" not in text  # the matching row's score; no queries row here
    assert format_generation_tables({"methods": [{"key": "rrwm", "f1": 0.5}]}) == ""


def test_plot_completed_pair_draws_a_real_pair(oracle, tmp_path):
    pytest.importorskip("matplotlib")
    from pyg_ssgm.generation import hide_common
    from pyg_ssgm.viz import plot_completed_pair, save

    hidden = hide_common(instance(SOURCE, NAMES, "s"), instance(affine_copy(SOURCE), NAMES, "t"), 2,
                         torch.Generator().manual_seed(0))
    batch = to_batch([hidden.pair])
    completion = oracle.complete(batch)[0]
    fig = plot_completed_pair(batch, completion, hidden=dict(zip(hidden.names, hidden.truth)))
    assert len(fig.axes) == 2 and "2 keypoint(s) hidden" in fig._suptitle.get_text()
    assert save(fig, tmp_path / "completed.png").stat().st_size > 0
