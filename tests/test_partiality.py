"""The training pairs' drop follows how partial the data's real pairs are, read from its names."""
import pytest
import torch

from pyg_ssgm.config import Settings, TrainConfig
from pyg_ssgm.data import KeypointInstance
from pyg_ssgm.data.partiality import FALLBACK_DROP_RATE, MIN_DROP_RATE, drop_rate_for, partner_share
from pyg_ssgm.errors import ConfigError
from pyg_ssgm.experiment import resolve


def instance(names, category="c"):
    return KeypointInstance(torch.rand(len(names), 2) * 100, list(names), category)


def test_the_partner_share_counts_every_ordered_pair_of_a_category():
    # a->b: 2 of a's 3 names are in b; b->a: both of b's; 4 of 5 in all. The unnamed point and
    # the other category's instance (alone in it: no pair) change nothing.
    insts = [instance(["x", "y", "z"]), instance(["x", "y", None]), instance(["x", "w"], "other")]
    assert partner_share(insts) == pytest.approx(4 / 5)
    three = [instance(["x", "y"]), instance(["y", "z"]), instance(["x", "y", "z"])]
    # by brute force over the six ordered pairs
    hits = sum(len(set(a.names) & set(b.names)) for a in three for b in three if a is not b)
    assert partner_share(three) == pytest.approx(hits / (2 * (2 + 2 + 3)))


def test_the_names_say_nothing_without_two_named_instances_of_a_category():
    assert partner_share([instance(["x"], "a"), instance(["x"], "b")]) is None
    assert partner_share([instance([None, None]), instance([None])]) is None
    assert drop_rate_for(None) == FALLBACK_DROP_RATE


def test_the_drop_is_what_a_real_pair_leaves_without_partner_rounded_and_bounded():
    assert drop_rate_for(1.0) == MIN_DROP_RATE  # complete pairs still train the unmatched decision
    assert drop_rate_for(0.859) == pytest.approx(0.15)  # CUB's birds
    assert drop_rate_for(0.748) == pytest.approx(0.25)  # the embedded data
    assert drop_rate_for(0.3) == pytest.approx(0.7)


def test_resolve_derives_an_unset_drop_and_keeps_a_given_one(capsys):
    complete = {"train": [instance(["x", "y", "z"]) for _ in range(3)], "val": [], "test": []}
    partial = {"train": [instance(["x", "y", "z"]), instance(["x", "y"])], "val": [], "test": []}
    assert resolve(Settings(), complete).train.drop_rate == MIN_DROP_RATE
    assert "drop_rate 0.05 from the data (100% of the named keypoints" in capsys.readouterr().err
    assert resolve(Settings(), partial).train.drop_rate == pytest.approx(0.2)
    capsys.readouterr()
    given = Settings(train=TrainConfig(drop_rate=0.3))
    assert resolve(given, complete).train.drop_rate == 0.3  # nothing the user set is rewritten
    assert capsys.readouterr().err == ""


def test_a_drop_out_of_range_or_unresolved_is_a_named_error():
    with pytest.raises(ConfigError, match="drop_rate"):
        TrainConfig(drop_rate=1.0)
    with pytest.raises(ConfigError, match="resolve the settings"):
        TrainConfig().pair_generator()
    assert TrainConfig(drop_rate=0.1).pair_generator().drop_rate == 0.1


def test_training_pairs_called_directly_read_the_drop_too(capsys):
    from pyg_ssgm.experiment import training_pairs

    complete = [instance(["x", "y", "z"]) for _ in range(3)]
    pairs = training_pairs(Settings(train=TrainConfig(pseudo_labels=False)), complete, progress=False)
    assert pairs.generator.drop_rate == MIN_DROP_RATE
    assert "drop_rate 0.05 from the data" in capsys.readouterr().err
