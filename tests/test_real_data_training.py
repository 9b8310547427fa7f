"""The pieces that train on real data without labels: second-order (RRWM) matching over the
completed graphs, cycle-consistent pseudo-labels, image views in the pair generator, the raw
appearance term, user splits, and image features end to end (train -> checkpoint -> evaluate)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from conftest import tiny, tiny_settings_of, tiny_synthetic_config
from fixtures_native import make_willow
from pyg_ssgm import FeatureConfig, InferenceConfig
from pyg_ssgm.cli.evaluate import evaluate_command
from pyg_ssgm.cli.train import train_command
from pyg_ssgm.config import TrainConfig
from pyg_ssgm.data import GeometricAugmentation, KeypointInstance, PairGenerator, pair_loader
from pyg_ssgm.data.synthetic import SyntheticKeypoints
from pyg_ssgm.errors import ConfigError, InvalidInputError
from pyg_ssgm.matching import quadratic_refine, solve_quadratic
from pyg_ssgm.pseudo_labels import PseudoLabelledPairs, is_mirror_image, pseudo_label
from pyg_ssgm.experiment import build
from pyg_ssgm.trainer import Trainer

SHARED_WILLOW = Path(__file__).resolve().parents[2] / "shared" / "data" / "WillowObject"


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: image work on one thread


# ------------------------------------------------------------------ second-order matching
@pytest.mark.parametrize("solver", ["rrwm", "ipfp"])
def test_quadratic_refine_lets_edges_decide_what_the_unary_cannot(solver):
    # Three points on a line and a fourth off it; the unary is flat (no preference at all), so
    # only the edges (Delaunay-like: every pair) can find the permutation.
    pos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    perm = torch.tensor([2, 0, 3, 1])  # target node perm[i] is source node i
    pos_t = torch.empty_like(pos)
    pos_t[perm] = pos
    conn = torch.tensor([[i, j] for i in range(4) for j in range(4) if i != j]).unsqueeze(0)
    ne = torch.tensor([conn.size(1)])
    n = torch.tensor([4])
    U = torch.full((1, 4, 4), 0.5)
    X = quadratic_refine(U, n, n, pos.unsqueeze(0), pos_t.unsqueeze(0), conn, ne, conn, ne, edge_sigma=0.5,
                         solver=solver)
    assert X[0].argmax(1).tolist() == perm.tolist()


def test_quadratic_refine_names_the_solvers_it_has():
    one, conn, ne = torch.tensor([2]), torch.zeros(1, 0, 2, dtype=torch.long), torch.tensor([0])
    with pytest.raises(ConfigError, match="ipfp"):
        quadratic_refine(torch.ones(1, 2, 2), one, one, torch.rand(1, 2, 2), torch.rand(1, 2, 2), conn, ne, conn, ne,
                         solver="hungarian")
    with pytest.raises(ConfigError, match="rrwm"):
        solve_quadratic(torch.eye(4).unsqueeze(0), one, one, 2, 2, solver="sm")


@pytest.mark.parametrize("solver", ["rrwm", "ipfp"])
def test_model_with_a_quadratic_solver_predicts_valid_partial_matchings(generated_pairs, solver):
    model, _, predictor = tiny(seed=0, solver=solver)
    model.eval()
    batch = next(iter(pair_loader(generated_pairs[:4], 4)))
    prediction = predictor.match(batch)
    out = prediction.output
    for b, pairs in enumerate(prediction.pairs):
        assert pairs.size(0) == 2
        assert pairs[0].unique().numel() == pairs.size(1) and pairs[1].unique().numel() == pairs.size(1)
        if pairs.numel():
            assert int(pairs[0].max()) < int(out.num_real_s[b]) and int(pairs[1].max()) < int(out.num_real_t[b])
        threshold = model.match_threshold / model.temperature
        assert bool((out.S[b, pairs[0], pairs[1]] >= threshold).all())  # the threshold still decides


def test_whole_qap_matching_keeps_every_pair_the_partial_one_cuts(generated_pairs):
    """``qap_partial=False``: the quadratic matching as RRWM and the assignment give it (every node
    of the smaller completed graph matched); the partial one is that matching cut by the threshold."""
    from pyg_ssgm import Predictor

    model, _, predictor = tiny(seed=0, solver="rrwm")
    model.eval()
    batch = next(iter(pair_loader(generated_pairs[:4], 4)))
    partial = predictor.match(batch)
    whole = Predictor(model, dataclasses.replace(predictor.config, qap_partial=False)).match(batch)
    out = whole.output
    assert torch.equal(whole.X.sum((1, 2)), torch.minimum(out.n1, out.n2).to(whole.X.dtype))
    assert torch.equal(partial.X, whole.X * (out.S >= out.threshold).to(whole.X.dtype))


def test_qap_settings_are_checked():
    with pytest.raises(ConfigError, match="solver"):
        tiny_settings_of(solver="lap")
    with pytest.raises(ConfigError, match="qap_edge_sigma"):
        tiny_settings_of(solver="rrwm", qap_edge_sigma=0.0)


def test_raw_appearance_term_changes_the_affinity(generated_pairs):
    batch = next(iter(pair_loader(generated_pairs[:2], 2)))
    model = tiny(seed=0).model.eval()
    with torch.no_grad():
        S_off = model(batch, inference=InferenceConfig()).S
        S_on = model(batch, inference=InferenceConfig(appearance_weight=5.0)).S
        assert not torch.allclose(S_off, S_on)
    # late fusion: a setting of inference only, so training (no InferenceConfig) sees the learned
    # affinity alone, and the network is the same
    assert tiny_settings_of(appearance_weight=5.0).model == tiny_settings_of().model


# ------------------------------------------------------------------ pseudo-labels
def _renamed(instances, seed):
    """The same instances with their keypoint names shuffled per instance."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for inst in instances:
        names = [inst.names[k] for k in torch.randperm(inst.num_nodes, generator=g).tolist()]
        out.append(dataclasses.replace(inst, names=names))
    return out


def test_pseudo_labels_are_precise_and_never_read_names():
    data = SyntheticKeypoints(tiny_synthetic_config(num_train=8, max_clutter=0))
    train = data["train"]
    labels = pseudo_label(train, group_size=8, progress=False)
    assert labels, "no pseudo-labelled pair"
    correct = total = 0
    for p in labels:
        for i, j in p.y.t().tolist():
            correct += train[p.source].names[i] == train[p.target].names[j]
            total += 1
    plain = pseudo_label(train, group_size=8, progress=False, min_agreement=1e-9)
    assert correct / total >= 0.9
    assert total <= sum(p.y.size(1) for p in plain)  # the cycle test only removes correspondences
    # names play no part: shuffled names give exactly the same pseudo-labels
    again = pseudo_label(_renamed(train, 1), group_size=8, progress=False)
    assert [(p.source, p.target, p.y.tolist()) for p in again] == [(p.source, p.target, p.y.tolist()) for p in labels]


def test_cycle_support_counts_every_consistent_third_instance():
    """The vectorised cycle test against its definition, one pair and one third instance at a time."""
    from pyg_ssgm.pseudo_labels import _cycle_support

    g = torch.Generator().manual_seed(0)
    group, sizes = [3, 7, 1, 4, 9], {3: 5, 7: 6, 1: 4, 4: 6, 9: 3}
    maps = {}
    for a in group:
        for b in group:
            if a != b:  # random partial maps, -1 where a node has no partner
                m = torch.randint(-1, sizes[b], (sizes[a],), generator=g)
                maps[a, b] = m
    support = _cycle_support(group, maps)
    for u, a in enumerate(group):
        for v, b in enumerate(group):
            if u == v:
                continue
            for p in range(sizes[a]):
                expected = 0
                for k in group:
                    if k not in (a, b) and maps[a, b][p] >= 0 and maps[a, k][p] >= 0:
                        expected += int(maps[k, b][maps[a, k][p]] == maps[a, b][p])
                assert support[u, v, p] == expected, (a, b, p)


def test_pseudo_labelled_pairs_follow_the_pseudo_labels_and_are_partial():
    data = SyntheticKeypoints(tiny_synthetic_config(num_train=6, max_clutter=0))
    train = data["train"]
    labels = pseudo_label(train, group_size=6, progress=False)
    ds = PseudoLabelledPairs(train, labels, seed=3, drop_rate=0.3)
    for k in range(len(ds)):
        pair = ds[k]
        a, b, _ = labels[k]
        assert pair.num_nodes_s <= labels[k].y.size(1) and pair.num_nodes_t <= labels[k].y.size(1)
        assert pair.comp_pos_s.size(0) == pair.num_nodes_t - pair.y.size(1)  # what s lacks, t has
    ds.set_epoch(1)
    assert any(not torch.equal(ds[k].pos_s, PseudoLabelledPairs(train, labels, seed=3, drop_rate=0.3)[k].pos_s)
               for k in range(len(ds)))
    with pytest.raises(InvalidInputError):
        PseudoLabelledPairs(train, [])
    with pytest.raises(ConfigError):
        pseudo_label(train, group_size=2)


def test_pseudo_pairs_per_epoch_take_turns():
    """``per_epoch``: an epoch serves that many pseudo pairs, the next ones of a seeded order each
    epoch, so that over enough epochs every pair is served, each as often as the others."""
    data = SyntheticKeypoints(tiny_synthetic_config(num_train=6, max_clutter=0))
    train = data["train"]
    labels = pseudo_label(train, group_size=6, progress=False)
    assert len(labels) >= 6
    ds = PseudoLabelledPairs(train, labels, seed=3, drop_rate=0.0, per_epoch=4)
    served = []
    for epoch in range(len(labels)):  # 4 * len(labels) items: every pair exactly 4 times
        ds.set_epoch(epoch)
        assert len(ds) == 4
        for k in range(len(ds)):
            pair = ds[k]
            served.append(_served(labels, train, pair))
    counts = torch.bincount(torch.tensor(served), minlength=len(labels))
    assert counts.tolist() == [4] * len(labels)
    assert len(PseudoLabelledPairs(train, labels, per_epoch=10_000)) == len(labels)  # more than there are: all
    with pytest.raises(ConfigError, match="per_epoch"):
        PseudoLabelledPairs(train, labels, per_epoch=0)
    with pytest.raises(ConfigError, match="pseudo_ratio"):
        TrainConfig(pseudo_ratio=0.0)


def test_pseudo_labels_once_per_split_and_options(monkeypatch):
    """Candidates of ``--preset auto`` label one split once: the same instances and options reuse
    the last labelling; other positions, features or options label again."""
    import pyg_ssgm.pseudo_labels as module

    data = SyntheticKeypoints(tiny_synthetic_config(num_train=6, max_clutter=0))
    train = data["train"]
    calls = []
    monkeypatch.setattr(module, "pseudo_label", lambda inst, **kw: calls.append(kw) or [len(calls)])
    monkeypatch.setattr(module, "_LAST", {})
    first = module.pseudo_label_once(train, seed=0, progress=True)
    assert module.pseudo_label_once(list(train), seed=0, progress=False) is first and len(calls) == 1
    moved = [dataclasses.replace(train[0], pos=train[0].pos + 1e-3), *train[1:]]
    described = [dataclasses.replace(train[0], x=train[0].x + 1.0), *train[1:]]
    for instances, options in ((moved, {"seed": 0}), (described, {"seed": 0}), (train, {"seed": 1}),
                               (train, {"seed": 0, "mirror_test": True})):
        module.pseudo_label_once(instances, **options)
    assert len(calls) == 5


def test_no_pseudo_pairs_means_generated_pairs_alone_with_a_note(capsys):
    """Two instances per category form no cycle: pseudo-labelling adds nothing, and says so."""
    from pyg_ssgm.data import GeneratedPairs
    from pyg_ssgm.experiment import training_pairs

    data = SyntheticKeypoints(tiny_synthetic_config(num_train=2, max_clutter=0))
    settings = tiny_settings_of(train={"pseudo_labels": True})
    pairs = training_pairs(settings, data["train"], progress=False)
    assert isinstance(pairs, GeneratedPairs) and len(pairs) == len(data["train"])
    assert "no cycle-consistent correspondence" in capsys.readouterr().err


def _served(labels, train, pair) -> int:
    """Which pseudo pair a served pair came from: the one whose two instances hold its positions
    (drop_rate 0: every labelled node is served, possibly with source and target exchanged)."""
    for k, p in enumerate(labels):
        for a, b, y in ((p.source, p.target, p.y), (p.target, p.source, p.y.flip(0))):
            if (pair.pos_s.size(0) == y.size(1) and torch.equal(pair.pos_s, train[a].pos[y[0]])
                    and torch.equal(pair.pos_t, train[b].pos[y[1]])):
                return k
    raise AssertionError("a served pair matches no pseudo pair")


def test_mirror_images_are_labelled_and_turned_to_face_the_same_way():
    """Half the instances mirrored left-right (birds facing the other way): the mirror-aware
    pseudo-labeller still finds their correspondences, and ``orient=True`` serves every pair
    facing one way (the target mirrored back where the labels' affine fit reverses orientation)."""
    data = SyntheticKeypoints(tiny_synthetic_config(num_train=8, max_clutter=0, feature_dim=1))
    train = [dataclasses.replace(inst, x=None, pos=inst.pos * torch.tensor([-1.0, 1.0]) if k % 2 else inst.pos)
             for k, inst in enumerate(data["train"])]

    def precision(labels):
        pairs = [(train[p.source].names[i] == train[p.target].names[j]) for p in labels for i, j in p.y.t().tolist()]
        return sum(pairs) / max(len(pairs), 1), len(pairs)

    plain, mirror = pseudo_label(train, group_size=8, progress=False), \
        pseudo_label(train, group_size=8, progress=False, mirror_test=True)
    # geometry alone, half the pairs mirrored: 0.42 precise without the mirror test, 0.82 with it
    assert precision(mirror)[0] >= 0.75 and precision(mirror)[0] > precision(plain)[0] + 0.2
    ds = PseudoLabelledPairs(train, mirror, seed=0, drop_rate=0.0, orient=True)
    flipped = 0
    for k in range(len(ds)):
        pair = ds[k]
        if pair.y.size(1) >= 3:
            assert not is_mirror_image(pair.pos_s[pair.y[0]], pair.pos_t[pair.y[1]])
        a, b, _ = mirror[k]
        flipped += (a % 2) != (b % 2)
    assert flipped > 0  # the check covered pairs of opposite orientation
    assert is_mirror_image(train[0].pos, train[0].pos * torch.tensor([-1.0, 1.0]))
    assert not is_mirror_image(train[0].pos, 2 * train[0].pos + 1)


# ------------------------------------------------------------------ views in the generator
def test_generator_cuts_the_two_sides_from_different_views():
    pos = torch.rand(6, 2) * 100
    views = [(pos + 1000.0 * (v + 1), torch.full((6, 3), float(v + 1))) for v in range(3)]
    inst = KeypointInstance(pos=pos, names=[f"k{i}" for i in range(6)], x=torch.zeros(6, 3), extra={"views": views})
    gen = PairGenerator(drop_rate=0.0, augmentation=GeometricAugmentation.identity(), feature_noise=0.0, shuffle=False)
    seen = set()
    for seed in range(12):
        pair = gen(inst, torch.Generator().manual_seed(seed))
        v_s, v_t = float(pair.x_s[0, 0]), float(pair.x_t[0, 0])
        assert v_s != v_t  # never the same view on both sides
        for v, side_pos in ((v_s, pair.pos_s), (v_t, pair.pos_t)):  # positions come with their view
            expected = pos if v == 0 else views[int(v) - 1][0]
            assert torch.allclose(side_pos, expected)
        seen |= {v_s, v_t}
    assert seen == {0.0, 1.0, 2.0, 3.0}


# ------------------------------------------------------------------ user splits
def test_trainer_takes_user_splits(tmp_path):
    data = SyntheticKeypoints(tiny_synthetic_config())
    splits = {"train": data["train"][:4], "val": data["val"], "test": data["test"]}
    settings = tiny_settings_of().replace(train=TrainConfig(epochs=1, batch_size=4, output_dir=str(tmp_path),
                                                            val_pairs_per_category=1, test_pairs_per_category=1))
    experiment = build(settings, splits=splits, progress=False)
    assert experiment.splits["train"] == splits["train"]
    with pytest.raises(ConfigError, match="KeypointInstance"):
        build(settings, splits={"train": ["a"], "test": []}, progress=False)


# ------------------------------------------------------------------ image features end to end
def test_feature_trained_checkpoint_evaluates_to_the_same_numbers(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch", reason="the 'images' extra is not installed")
    pytest.importorskip("PIL", reason="Pillow is not installed")
    root = make_willow(tmp_path / "willow", num_per_category=22)  # 20 train + 2 test images per class
    run = tmp_path / "run"
    settings = {"train": {"dataset": "willow", "root": str(root), "epochs": 1, "batch_size": 4,
                          "output_dir": str(run), "val_pairs_per_category": 2, "feature_noise": 0.0},
                "model": {"hidden_channels": 16, "heads": 2, "num_queries": 2, "decoder_layers": 1},
                "inference": {"appearance_weight": 2.0},
                "features": {"image_size": 64, "num_views": 1, "cache_dir": str(tmp_path / "cache")}}
    (tmp_path / "run.json").write_text(json.dumps(settings))
    runner = CliRunner()
    result = runner.invoke(train_command, ["--config", str(tmp_path / "run.json"), "--features", "efficientnet_lite0",
                                           "--no-progress"])
    assert result.exit_code == 0, result.output
    trained = json.loads((run / "test_results.json").read_text())
    result = runner.invoke(evaluate_command, ["--checkpoint", str(run / "checkpoint.pt"),
                                              "--output", str(tmp_path / "eval.json")])
    assert result.exit_code == 0, result.output
    trained.pop("inference_choice")  # how training chose its inference settings on validation
    assert json.loads((tmp_path / "eval.json").read_text()) == trained
    assert json.loads((run / "config.json").read_text())["features"]["backbone"] == "efficientnet_lite0"


@pytest.mark.skipif(not SHARED_WILLOW.is_dir(), reason=f"real Willow data not found at {SHARED_WILLOW}")
def test_smoke_on_real_willow_images(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch", reason="the 'images' extra is not installed")
    from pyg_ssgm.data import load_dataset
    from pyg_ssgm.features import with_image_features

    items = [i for i in load_dataset("willow", SHARED_WILLOW, "train") if i.category in ("Car", "Duck")]
    splits = {"train": items[:3] + items[20:23], "val": [], "test": items[3:5] + items[23:25]}
    features = FeatureConfig(num_views=1, image_size=128, cache_dir=str(tmp_path / "cache"))
    splits = with_image_features(splits, features, "willow", progress=False)
    assert splits["train"][0].x.shape == (10, features.out_channels)
    cfg = TrainConfig(epochs=1, batch_size=4, output_dir=str(tmp_path / "run"), pseudo_labels=True,
                      test_pairs_per_category=1, feature_noise=0.0)
    settings = tiny_settings_of(in_channels=None, solver="rrwm", appearance_weight=2.0)  # width from the data
    trainer = Trainer(build(settings.replace(train=cfg), splits=splits, progress=False), progress=False)
    results = trainer.fit()
    assert 0.0 <= results["intersection"].mean.recall <= 1.0
