"""Choosing the settings of inference on validation (pyg_ssgm.tuning): the evidence rule."""
import math

import torch

from conftest import tiny
from pyg_ssgm.evaluation import format_results
from pyg_ssgm.tuning import GROUPS, _paired_evidence, choose_inference, chosen_changes

SWITCH = (("generated nodes", ({"generate_at_inference": True}, {"generate_at_inference": False})),)


def test_paired_evidence_is_the_mean_difference_in_standard_errors():
    assert _paired_evidence([1.0, 1.0], [0.0, 0.0]) == math.inf  # the same gain on every pair
    assert _paired_evidence([0.5, 0.5], [0.5, 0.5]) == 0.0
    # differences 0.2, 0.0, 0.1: mean 0.1, sample sd 0.1, standard error 0.1 / sqrt(3)
    assert abs(_paired_evidence([0.7, 0.5, 0.6], [0.5, 0.5, 0.5]) - math.sqrt(3)) < 1e-9


def test_a_change_is_kept_only_where_validation_shows_it(tiny_data):
    t = tiny(seed=0)
    assert t.predictor.config.generate_at_inference  # where the search starts: the option it holds is not re-scored
    config, rows = choose_inference(t.predictor, tiny_data.val, max_pairs_per_category=3, groups=SWITCH, echo=None)
    start, challenger = rows
    assert start["group"] == "start" and start["kept"] and challenger["option"] == {"generate_at_inference": False}
    shown = challenger["val_f1"] > start["val_f1"] + 0.002 and challenger["evidence"] > 2.0
    assert challenger["kept"] == shown and config.generate_at_inference == (not shown)
    # without a bar to clear, the challenger is taken
    config, rows = choose_inference(t.predictor, tiny_data.val, max_pairs_per_category=3, groups=SWITCH,
                                    min_gain=-1.0, evidence=-math.inf, echo=None)
    assert not config.generate_at_inference and rows[1]["kept"]
    assert not config.choose_on_validation  # the chosen settings are final: loading them chooses nothing again


def test_the_generated_nodes_are_chosen_before_the_matching():
    """They change the graphs that the quadratic assignment and every later option match."""
    names = [group for group, _ in GROUPS]
    assert names[0] == "keypoint filter"  # which points there are to match, first of all
    assert names[1] == "generated nodes" and names.index("matching") == 3
    assert names.index("epipolar geometry") == 2  # the re-matching changes what the matching is for
    # the cost of the filter's doubt is scored under the matching chosen, beside the threshold
    assert names.index("keypoint prior") == names.index("threshold shift") - 1
    # re-matched from the configured matching alone, or from the pool of the model's matchings
    assert {"epipolar": True, "epipolar_pool": True} in dict(GROUPS)["epipolar geometry"]


def test_groups_that_cannot_change_the_matching_are_not_scored(tiny_data):
    """Under the whole quadratic matching with no unary term and no generated node, the threshold,
    the dustbin and the affinity's own settings change nothing: no validation pass is spent on them."""
    from dataclasses import replace

    t = tiny(seed=0)
    blind = replace(t.predictor.config, solver="rrwm", qap_node_weight=0.0, qap_align=False, qap_partial=False,
                    generate_at_inference=False, mirror_test=False)
    t.predictor.config = blind
    _, rows = choose_inference(t.predictor, tiny_data.val, max_pairs_per_category=2, echo=None,
                               groups=[g for g in GROUPS
                                       if g[0] not in ("matching", "generated nodes", "epipolar geometry")])
    scored = {row["group"] for row in rows}
    assert scored == {"start", "mirror test"}
    # with the learned threshold cutting the matching, the threshold shift counts again
    t.predictor.config = replace(blind, qap_partial=True)
    _, rows = choose_inference(t.predictor, tiny_data.val, max_pairs_per_category=2, echo=None,
                               groups=[g for g in GROUPS if g[0] == "threshold shift"])
    assert {row["group"] for row in rows} == {"start", "threshold shift"}


def test_the_groups_skipped_as_inert_indeed_change_nothing(real_batch):
    from dataclasses import replace

    from pyg_ssgm import Predictor

    t = tiny(seed=1)
    blind = replace(t.predictor.config, solver="rrwm", qap_node_weight=0.0, qap_align=False, qap_partial=False,
                    generate_at_inference=False, mirror_test=False)
    changed = replace(blind, threshold_shift=0.2, dustbin_weight=2.0, shape_context_weight=20.0,
                      appearance_weight=40.0, inference_consensus_iterations=2)
    for a, b in zip(Predictor(t.model, blind)(real_batch), Predictor(t.model, changed)(real_batch)):
        assert torch.equal(a, b)


def _scored_by(table, monkeypatch):
    """Make every validation pass score ``table(config)`` (tp of 10 on each of 20 pairs, the
    pairs' F1 varying a little so that the evidence rule has a spread to measure)."""
    from pyg_ssgm import tuning
    from pyg_ssgm.metrics import MatchCounts

    def score_pairs(predictor, instances, **_):
        tp = table(predictor.config)
        return [MatchCounts(tp + (i % 2), 11, 11, "a") for i in range(20)]

    monkeypatch.setattr(tuning, "score_pairs", score_pairs)


def test_an_earlier_group_is_chosen_again_once_a_later_one_changed(monkeypatch):
    """On birds the generated nodes are a wash until the mirror test is on, then they cost: the walk
    must go round again and drop them (the first sweep alone kept them)."""
    t = tiny(seed=0)
    _scored_by(lambda c: 5 + 3 * c.mirror_test - 2 * (c.mirror_test and c.generate_at_inference), monkeypatch)
    groups = (next(g for g in GROUPS if g[0] == "generated nodes"), GROUPS[-1])  # ..., mirror test
    assert t.predictor.config.generate_at_inference and not t.predictor.config.mirror_test
    config, rows = choose_inference(t.predictor, [], groups=groups, echo=None)
    assert config.mirror_test and not config.generate_at_inference
    assert [(r["group"], r["sweep"], r["kept"]) for r in rows] == [
        ("start", 0, True), ("generated nodes", 0, False), ("mirror test", 0, True), ("generated nodes", 1, True),
        ("mirror test", 1, False)]  # decided before the generated nodes changed: scored once more
    assert chosen_changes(rows) == {"generate_at_inference": False, "mirror_test": True}
    # one sweep: the old walk, which keeps the generated nodes
    config, _ = choose_inference(t.predictor, [], groups=groups, echo=None, max_sweeps=1)
    assert config.mirror_test and config.generate_at_inference


def test_what_the_choice_changed_is_its_last_word():
    """A group changed and changed back is no change; the printout says what ``chosen_changes`` says."""
    start = {"generate_at_inference": True, "mirror_test": False}
    rows = [{"option": start, "kept": True, "val_f1": 0.5},
            {"option": {"generate_at_inference": False}, "kept": True, "val_f1": 0.6},
            {"option": {"mirror_test": True}, "kept": True, "val_f1": 0.7},
            {"option": {"generate_at_inference": True}, "kept": True, "val_f1": 0.8},
            {"option": {"mirror_test": False}, "kept": False, "val_f1": 0.1}]
    assert chosen_changes(rows) == {"mirror_test": True}
    text = format_results({"inference_choice": rows})
    assert "chosen on validation: mirror_test=True (validation F1 0.5000 as given, 0.8000 as chosen)" in text
    assert "none changed" in format_results({"inference_choice": rows[:1]})


def test_the_walk_stops_after_max_sweeps(monkeypatch):
    """Where every challenger wins (no bar to clear) the walk would go round for ever."""
    t = tiny(seed=0)
    _scored_by(lambda c: 5, monkeypatch)
    _, rows = choose_inference(t.predictor, [], groups=SWITCH, echo=None, min_gain=-1.0, evidence=-math.inf,
                               max_sweeps=3)
    # one group: decided once, nothing else changes, so no second round
    assert [r["sweep"] for r in rows] == [0, 0]
    two = (SWITCH[0], ("mirror test", ({"mirror_test": False}, {"mirror_test": True})))
    _, rows = choose_inference(t.predictor, [], groups=two, echo=None, min_gain=-1.0, evidence=-math.inf,
                               max_sweeps=3)
    assert max(r["sweep"] for r in rows) == 2 and len(rows) == 1 + 2 * 3


def test_max_sweeps_below_one_is_a_named_error():
    """Zero rounds would choose nothing and say nothing."""
    import pytest

    from pyg_ssgm.errors import ConfigError

    t = tiny(seed=0)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="max_sweeps"):
            choose_inference(t.predictor, [], groups=SWITCH, echo=None, max_sweeps=bad)
