"""Pictures (pyg_ssgm.viz) and their command line (python -m pyg_ssgm visualize).

Each picture is rendered to a PNG and checked to exist, to have a sane size and not to be blank.
The model is a small untrained one: only forward passes run, nothing is trained.
"""
from __future__ import annotations

import csv
import sys
from dataclasses import asdict

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")
from click.testing import CliRunner  # noqa: E402

from pyg_ssgm import Predictor, Settings, viz  # noqa: E402
from pyg_ssgm.checkpoint import save_checkpoint  # noqa: E402
from pyg_ssgm.cli.visualize import visualize_group as cli  # noqa: E402
from pyg_ssgm.data.synthetic import SyntheticConfig  # noqa: E402
from pyg_ssgm.errors import InvalidInputError, MissingExtraError  # noqa: E402
from pyg_ssgm.experiment import build_model  # noqa: E402
from pyg_ssgm.viz.completion import _generated_positions  # noqa: E402
from pyg_ssgm.viz.matrices import _attention_matrix  # noqa: E402

FEATURES = 8  # the feature size of conftest's tiny synthetic data
MODEL = dict(in_channels=FEATURES, hidden_channels=16, heads=2, encoder_layers=1, num_queries=4, decoder_layers=1)
ROWS = [
    {"epoch": 1.0, "train_loss": 5.0, "train_match": 3.0, "train_exist": 0.8, "train_pos": 1.0,
     "train_oversmoothing": 0.6, "val_f1": 0.2, "val_precision": 0.25, "val_recall": 0.2,
     "val_intersection_acc": 0.3, "val_count_acc": 0.1, "val_position_error": 1.2},
    {"epoch": 2.0, "train_loss": 4.0, "train_match": 2.2, "train_exist": 0.6, "train_pos": 0.8,
     "train_oversmoothing": 0.4, "val_f1": 0.4, "val_precision": 0.45, "val_recall": 0.4,
     "val_intersection_acc": 0.5, "val_count_acc": 0.3, "val_position_error": 0.9},
    {"epoch": 3.0, "train_loss": 3.5, "train_match": 1.9, "train_exist": 0.5, "train_pos": 0.7,
     "train_oversmoothing": 0.35, "val_f1": 0.5, "val_precision": 0.5, "val_recall": 0.5,
     "val_intersection_acc": 0.6, "val_count_acc": 0.4, "val_position_error": 0.7},
]


def check_png(path, min_bytes: int = 3000) -> np.ndarray:
    """The picture exists, is not tiny, and is not one flat colour."""
    import matplotlib.image as mpimg

    assert path.is_file(), path
    assert min_bytes < path.stat().st_size < 2_000_000
    img = mpimg.imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].var() > 1e-3, "the picture is blank"
    return img


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    torch.manual_seed(0)
    _, _, predictor = build_model(Settings.from_dict({"model": MODEL}))
    predictor.model.eval()
    return predictor


@pytest.fixture(scope="module")
def model(predictor):
    return predictor.model


@pytest.fixture(scope="module")
def real_run(predictor, real_pairs):
    batch, prediction = viz.run_model(predictor, real_pairs[:2])
    return batch, prediction


@pytest.fixture(scope="module")
def generated_run(predictor, generated_pairs):
    batch, prediction = viz.run_model(predictor, generated_pairs[:2])
    return batch, prediction


# ------------------------------------------------------------------------------------ plot_pair
def test_plot_pair_prediction_and_ground_truth(tmp_path, real_pairs, real_run):
    batch, out = real_run
    fig = viz.plot_pair(real_pairs[1], out.pairs[1])
    check_png(viz.save(fig, tmp_path / "pred.png"))
    title = fig.axes[0].get_title()
    assert "F1" in title and "precision" in title
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("correct match") for label in labels)
    assert any(label.startswith("wrong match") for label in labels)
    assert any("correctly left unmatched" in label for label in labels)
    # ground truth only, and the pair picked out of a batch
    check_png(viz.save(viz.plot_pair(batch, None, b=1), tmp_path / "gt.png"))


def test_plot_pair_perfect_prediction_has_no_wrong_line(real_pairs):
    pair = real_pairs[0]
    fig = viz.plot_pair(pair, pair.y)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "wrong match (0)" in labels and f"correct match ({pair.y.size(1)})" in labels
    assert "F1 1.00" in fig.axes[0].get_title()


def test_plot_pair_on_images_and_given_axes(tmp_path, real_pairs):
    import matplotlib.image as mpimg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(0)
    img_t = tmp_path / "target.png"
    mpimg.imsave(str(img_t), rng.random((300, 280, 3)))
    images = ((rng.random((256, 256, 3)) * 255).astype(np.uint8), str(img_t))
    fig = Figure()
    ax = fig.add_subplot()
    assert viz.plot_pair(real_pairs[0], real_pairs[0].y[:, :2], ax=ax, images=images) is fig
    assert len(ax.images) == 2
    check_png(viz.save(fig, tmp_path / "images.png"))


def test_plot_pair_bad_input(real_pairs):
    pair = real_pairs[0]
    with pytest.raises(InvalidInputError, match="outside"):
        viz.plot_pair(pair, torch.tensor([[0], [pair.pos_t.size(0)]]))
    with pytest.raises(InvalidInputError, match=r"\[2, K\]"):
        viz.plot_pair(pair, torch.zeros(3, dtype=torch.long))
    with pytest.raises(InvalidInputError, match="does not exist"):
        viz.plot_pair(pair, None, images=("no/such/image.png", None))
    with pytest.raises(InvalidInputError, match="PairData"):
        viz.plot_pair(torch.zeros(3, 2), None)


# ------------------------------------------------------------------------------- plot_completion
def test_plot_completion(tmp_path, generated_pairs, generated_run, model):
    batch, prediction = generated_run
    out = prediction.output
    fig = viz.plot_completion(batch, out, b=1)
    check_png(viz.save(fig, tmp_path / "completion.png"))
    titles = [ax.get_title() for ax in fig.axes]
    lacks_s = generated_pairs[1].comp_pos_s.size(0)
    assert titles[0].startswith(f"source: lacks {lacks_s}, generated {int(out.num_generated_s[1])}")
    # the generated nodes drawn are the model's, mapped back to the pixel frame
    gen = _generated_positions(out, "s", 1, model.config.exist_threshold)
    assert gen.shape == (int(out.num_generated_s[1]), 2)
    enc = out.encoded_s
    q = out.queries_s
    keep = (torch.sigmoid(q.exist_logit) > model.config.exist_threshold) & (q.batch == 1)
    expected = (q.pos[keep] * enc.scale[1] + enc.center[1]).numpy()
    assert np.allclose(np.sort(gen, 0), np.sort(expected, 0), atol=1e-4)


def test_plot_completion_draws_the_completion_it_is_given(generated_pairs, generated_run, predictor):
    """``generated=predictor.generated_nodes(prediction)``: the figure shows the model's completion as
    its ``completion_source`` decides it, not the nodes that entered the matching."""
    batch, prediction = generated_run
    out = prediction.output
    completion = predictor.generated_nodes(prediction)
    fig = viz.plot_completion(batch, out, b=1, generated=completion)
    made = int((completion[0].batch == 1).sum())
    lacks = generated_pairs[1].comp_pos_s.size(0)
    assert fig.axes[0].get_title().startswith(f"source: lacks {lacks}, generated {made}")
    gen = _generated_positions(out, "s", 1, 0.5, completion)
    expected = (completion[0].pos[completion[0].batch == 1] * out.encoded_s.scale[1] + out.encoded_s.center[1]).numpy()
    assert np.allclose(gen, expected, atol=1e-5)


def test_plot_completion_needs_a_generated_pair(real_pairs, real_run):
    batch, prediction = real_run
    with pytest.raises(InvalidInputError, match="generated pair"):
        viz.plot_completion(batch, prediction.output, 0)


# --------------------------------------------------------------------------------- plot_matrices
def test_plot_matrices_with_attention(tmp_path, real_run):
    batch, prediction = real_run
    assert prediction.output.queries_s.attention is not None  # run_model always fetches the decoder's attention
    single = batch.get_example(1)
    fig = viz.plot_matrices(prediction, 1, gt=single.y)
    check_png(viz.save(fig, tmp_path / "matrices.png"))
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("affinity S") for t in titles)
    assert any(t.startswith("predicted X") for t in titles)
    assert "ground truth" in titles
    assert any("queries ->" in t for t in titles)


def test_run_model_asks_for_attention_without_changing_the_output(model, predictor, real_pairs, real_run):
    batch, prediction = real_run
    assert len(model.decoder._forward_pre_hooks) == 0  # run_model leaves no hook behind
    plain = predictor.match(batch)
    assert plain.output.queries_s.attention is None
    assert torch.equal(plain.output.S, prediction.output.S)
    assert all(torch.equal(a, b) for a, b in zip(plain.pairs, prediction.pairs))


def test_attention_matrix_is_a_distribution(real_run, model):
    out = real_run[1].output
    Q = model.config.num_queries
    for b in range(2):
        mat = _attention_matrix(out.queries_s.attention["own"], b, Q)
        assert mat.shape == (Q, int(out.num_real_s[b]))
        assert np.allclose(mat.sum(1), 1.0, atol=1e-4)  # softmax over the own graph's nodes


def test_plot_matrices_without_gt_or_attention(tmp_path, real_run):
    _, out = real_run  # a Prediction
    fig = viz.plot_matrices(out, 0, gt=None, attention={})
    assert len(fig.axes) == 3  # S with its colour bar, and X
    check_png(viz.save(fig, tmp_path / "matrices.png"))
    with pytest.raises(InvalidInputError, match="out of range"):
        viz.plot_matrices(out, 5)
    with pytest.raises(InvalidInputError, match="attention"):
        viz.plot_matrices(out, 0, attention=[1, 2])


# -------------------------------------------------------------------------- plot_training_curves
def test_plot_training_curves_from_rows_and_csv(tmp_path):
    check_png(viz.save(viz.plot_training_curves(ROWS), tmp_path / "rows.png"))
    with open(tmp_path / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    fig = viz.plot_training_curves(tmp_path)  # the run folder
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["training losses", "validation, real pairs", "over-smoothing of node embeddings",
                      "completion position error (val)"]
    check_png(viz.save(fig, tmp_path / "curves.png"))
    # one epoch, few columns: still a picture
    check_png(viz.save(viz.plot_training_curves([{"epoch": 1, "train_loss": 2.0}]), tmp_path / "one.png"))


def test_plot_training_curves_bad_input(tmp_path):
    with pytest.raises(InvalidInputError, match="metrics.csv"):
        viz.plot_training_curves(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match="empty"):
        viz.plot_training_curves([])


# ------------------------------------------------------------------------------ optional extra
def test_missing_matplotlib_names_the_extra(monkeypatch, real_pairs, real_run):
    _, prediction = real_run
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "import matplotlib" now raises ImportError
    for call in (lambda: viz.plot_pair(real_pairs[0], None),
                 lambda: viz.plot_completion(real_pairs[0], prediction.output),
                 lambda: viz.plot_matrices(prediction, 0), lambda: viz.plot_training_curves(ROWS)):
        with pytest.raises(MissingExtraError, match=r"pyg_ssgm\[viz\]"):
            call()


# --------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, model):
    """A checkpoint in the trainer's format (untrained weights) on conftest's tiny synthetic data."""
    from conftest import TINY_SYNTHETIC
    from pyg_ssgm.config import TrainConfig

    run = tmp_path_factory.mktemp("run")
    state = {"model": model.state_dict(), "model_config": model.config.to_dict(),
             # as training writes it: the drop resolved on the data
             "train_config": asdict(TrainConfig(output_dir=str(run), drop_rate=0.25)),
             "synthetic_config": asdict(SyntheticConfig(**TINY_SYNTHETIC)), "epoch": 1, "step": 0}
    path = save_checkpoint(state, run / "checkpoint.pt")
    with open(run / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    return path


def test_cli_pairs(tmp_path, checkpoint):
    result = CliRunner().invoke(cli, ["pairs", "--checkpoint", str(checkpoint), "--num-pairs", "1",
                                      "--output-dir", str(tmp_path / "pics")])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "pics").iterdir())
    assert names == ["generated_0_completion.png", "generated_0_matches.png", "real_0_matches.png",
                     "real_0_matrices.png"]
    for name in names:
        check_png(tmp_path / "pics" / name)


def test_cli_pairs_default_folder_and_kind(checkpoint):
    result = CliRunner().invoke(cli, ["pairs", "--checkpoint", str(checkpoint), "--num-pairs", "1",
                                      "--kind", "generated", "--split", "val"])
    assert result.exit_code == 0, result.output
    folder = checkpoint.parent / "pictures"
    assert sorted(p.name for p in folder.iterdir()) == ["generated_0_completion.png", "generated_0_matches.png"]


def test_cli_curves(tmp_path, checkpoint):
    result = CliRunner().invoke(cli, ["curves", str(checkpoint.parent), "--output", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    check_png(tmp_path / "c.png")
    result = CliRunner().invoke(cli, ["curves", str(checkpoint.parent / "metrics.csv")])
    assert result.exit_code == 0, result.output
    check_png(checkpoint.parent / "training_curves.png")


@pytest.mark.parametrize("args, message", [
    (["pairs", "--checkpoint", "no/such/checkpoint.pt"], "does not exist"),
    (["curves", "no/such/run"], "no metrics.csv"),
])
def test_cli_errors(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "error:" in result.output and message in result.output


def test_cli_errors_on_data(checkpoint, tmp_path):
    result = CliRunner().invoke(cli, ["pairs", "--checkpoint", str(checkpoint), "--dataset", "willow",
                                      "--root", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "WILLOW-ObjectClass_dataset.zip" in result.output  # where to get the data


def test_cli_help():
    for args in (["--help"], ["pairs", "--help"], ["curves", "--help"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0 and "Usage" in result.output


def test_plot_sweep(tmp_path):
    fig = viz.plot_sweep([0.0, 0.1, 0.3], {"a": [0.9, 0.8, 0.6], "b": [0.7, float("nan"), 0.5]}, "extra drop")
    assert len(fig.axes[0].lines) == 2
    assert viz.save(fig, tmp_path / "sweep.png").stat().st_size > 0
    with pytest.raises(InvalidInputError, match="one score per swept value"):
        viz.plot_sweep([0.0, 0.1], {"a": [0.9]}, "x")
    with pytest.raises(InvalidInputError, match="at least one series"):
        viz.plot_sweep([0.0], {}, "x")
