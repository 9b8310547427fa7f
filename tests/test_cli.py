"""Tests of the command line ``python -m pyg_ssgm train|evaluate`` (and ``python -m
pyg_ssgm.train`` / ``.evaluate``), through click's CliRunner, in process; the real ``python -m``
entry points in slow tests."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import click
import pytest
import yaml
from click.testing import CliRunner

import pyg_ssgm.evaluate
import pyg_ssgm.train
from conftest import tiny_settings
from pyg_ssgm.checkpoint import load_checkpoint
from pyg_ssgm.cli import main as cli_main
from pyg_ssgm.cli.evaluate import evaluate_command
from pyg_ssgm.cli.train import train_command
from pyg_ssgm.metrics_log import read_metrics

TRAIN_OPTIONS = ("--config", "--set", "--dataset", "--root", "--epochs", "--batch-size", "--lr", "--seed",
                 "--device", "--output-dir", "--supervised", "--matching-loss", "--structure",
                 "--completion", "--resume", "--no-progress")
EVALUATE_OPTIONS = ("--checkpoint", "--solver", "--dataset", "--root", "--split", "--max-pairs-per-category",
                    "--batch-size", "--device", "--output", "--outliers", "--extra-drop", "--no-progress")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write_config(path, settings, fmt="json"):
    path.write_text(json.dumps(settings) if fmt == "json" else yaml.safe_dump(settings))
    return str(path)


def run_ok(runner, command, args):
    result = runner.invoke(command, args)
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result


def mean_f1_line(text: str) -> str:
    """The 'mean' row of the first (unfiltered) table of format_results."""
    return next(line for line in text.splitlines() if line.startswith("mean "))


# --------------------------------------------------------------------------- help


def test_train_help(runner):
    result = run_ok(runner, train_command, ["--help"])
    for option in TRAIN_OPTIONS:
        assert option in result.output, option
    assert "Usage:" in result.output and "torchrun" in result.output


def test_evaluate_help(runner):
    result = run_ok(runner, evaluate_command, ["--help"])
    for option in EVALUATE_OPTIONS:
        assert option in result.output, option
    for solver in ("hungarian", "rrwm"):
        assert solver in result.output


@pytest.mark.parametrize("module,option", [(pyg_ssgm.train, "--epochs"), (pyg_ssgm.evaluate, "--checkpoint")])
def test_module_main_help_exits_zero(module, option, capsys):
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"Usage: python -m {module.__name__}" in out and option in out


def test_one_command_group_lists_every_command(runner):
    result = run_ok(runner, cli_main, ["--help"])
    for name in ("train", "evaluate", "benchmark", "visualize"):
        assert name in result.output
    assert "--epochs" in run_ok(runner, cli_main, ["train", "--help"]).output


def test_help_imports_no_torch():
    """``--help`` answers without importing torch (it costs seconds on a small machine)."""
    code = ("import sys; from pyg_ssgm.cli import main\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("False")


def _option_help(command) -> dict:
    """Option name (its first spelling) -> its help text, as ``--help`` shows it."""
    return {param.opts[0]: param.help or "" for param in command.params if isinstance(param, click.Option)}


def test_train_help_names_every_config_section_and_every_default():
    from pyg_ssgm.cli.train import FLAG_SECTIONS
    from pyg_ssgm.config import Settings

    helps = _option_help(train_command)
    for section in ("train", "model", "loss", "inference", "features", "synthetic"):
        assert section in helps["--config"], section
    missing = [name for name, text in helps.items() if "Default" not in text]
    assert not missing, f"options without a default in --help: {missing}"
    # The defaults the help states are the settings' own (numbers compared as numbers).
    defaults = Settings().to_dict()
    for param in train_command.params:
        if param.name not in FLAG_SECTIONS or param.name in ("backbone", "weights", "dataset", "root"):
            continue
        stated = re.search(r"Default: ([^ ]+?)\.?(?: |$)", param.help).group(1)
        value = defaults[FLAG_SECTIONS[param.name]][param.name]
        if isinstance(value, bool):
            flag = param.opts[0] if value else param.secondary_opts[0]
            assert stated == flag, (param.name, stated, value)
        elif isinstance(value, (int, float)):
            assert float(stated) == value, (param.name, stated, value)
        else:
            assert stated == str(value), (param.name, stated, value)


def test_benchmark_output_defaults_outside_the_committed_results():
    from pyg_ssgm.cli.benchmark import benchmark_command

    default = next(p.default for p in benchmark_command.params if p.name == "output_dir")
    assert default == "runs/benchmark" and not default.startswith("benchmarks")


@pytest.mark.parametrize("entry", ["train", "evaluate", "benchmark", None])
def test_ctrl_c_while_the_command_line_loads_exits_130_quietly(entry, monkeypatch, capsys):
    """Ctrl-C while the command line is still being imported: status 130 and no traceback, as a
    Ctrl-C during the run (the command's own imports are inside reported())."""
    import pyg_ssgm.__main__
    import pyg_ssgm.cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pyg_ssgm.cli.importlib, "import_module", interrupted)  # the subcommand's module
    with pytest.raises(SystemExit) as exc:
        pyg_ssgm.__main__.main(entry, ["--help"] if entry else ["train", "--help"])
    assert exc.value.code == 130
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Aborted" not in captured.err


def test_ctrl_c_in_the_shim_import_exits_130(monkeypatch):
    """The shims import the command line inside the guard: interrupting that import is quiet too."""
    code = ("import builtins, sys\n"
            "real = builtins.__import__\n"
            "def imp(name, globals=None, locals=None, fromlist=(), level=0):\n"
            "    if level == 1 and name == 'cli':\n"
            "        raise KeyboardInterrupt\n"
            "    return real(name, globals, locals, fromlist, level)\n"
            "builtins.__import__ = imp\n"
            "from pyg_ssgm.train import main\n"
            "main(['--help'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130 and proc.stderr == "" and proc.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize("module,option", [("pyg_ssgm.train", "--epochs"), ("pyg_ssgm.evaluate", "--checkpoint"),
                                           ("pyg_ssgm", "visualize")])
def test_python_m_help(module, option):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert option in proc.stdout and "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- train


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_train_from_config_file_with_flag_overrides(runner, tmp_path, fmt):
    settings = tiny_settings(tmp_path / "from_file", epochs=3, lr=1e-3)
    config = write_config(tmp_path / f"tiny.{fmt}", settings, fmt)
    out_dir = tmp_path / "from_flags"
    result = run_ok(runner, train_command, [
        "--config", config, "--no-progress", "--epochs", "1", "--output-dir", str(out_dir),
        "--set", "hidden_channels=8", "--set", "synthetic.feature_noise=0.5", "--set", "loss.weight_pos=2"])
    assert "Unfiltered real pairs" in result.output
    assert not (tmp_path / "from_file").exists()  # --output-dir overrode the file's output_dir
    state = load_checkpoint(out_dir / "checkpoint.pt")
    assert state["train_config"]["epochs"] == 1  # flag beats file
    assert state["train_config"]["lr"] == 1e-3  # file value kept where no flag is given
    assert state["train_config"]["batch_size"] == 4
    assert state["model_config"]["hidden_channels"] == 8  # --set beats file
    assert state["loss_config"]["weight_pos"] == 2
    assert state["model_config"]["num_queries"] == 4  # from the file
    assert state["synthetic_config"]["num_categories"] == 2
    assert state["synthetic_config"]["feature_noise"] == 0.5
    assert len(read_metrics(out_dir)) == 1
    saved = json.loads((out_dir / "config.json").read_text())
    assert saved["train"]["epochs"] == 1 and saved["model"]["hidden_channels"] == 8


def test_train_flat_yaml_config_and_resume(runner, tmp_path):
    s = tiny_settings(tmp_path / "run")
    flat = {**s["train"], **s["model"], **s["synthetic"], "matching_loss": "hamming"}  # no sections
    config = write_config(tmp_path / "flat.yaml", flat, "yaml")
    run_ok(runner, train_command, ["--config", config, "--no-progress"])
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["loss_config"]["matching_loss"] == "hamming"
    assert state["synthetic_config"]["num_train"] == 6 and state["model_config"]["hidden_channels"] == 16
    run_ok(runner, train_command, ["--config", config, "--no-progress", "--epochs", "2", "--resume"])
    assert [r["epoch"] for r in read_metrics(tmp_path / "run")] == [1, 2]
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 2


# Bad values must end in "error: <what to fix>" on stderr and exit status 2, never a traceback.
BAD_TRAIN_ARGS = [
    pytest.param(["--set", "bogus_key=1"], "bogus_key", id="unknown-set-key"),
    pytest.param(["--set", "model.bogus_key=1"], "bogus_key", id="unknown-model-key"),
    pytest.param(["--epochs", "0"], "epochs", id="epochs-0-flag"),
    pytest.param(["--set", "epochs=0"], "epochs", id="epochs-0-set"),
    pytest.param(["--set", "noequals"], "KEY=VALUE", id="set-without-value"),
    pytest.param(["--drop-rate", "1.5"], "drop_rate", id="drop-rate"),
    pytest.param(["--lr", "-1"], "lr", id="negative-lr"),
    pytest.param(["--set", "structure=bogus"], "structure", id="bad-structure"),
    pytest.param(["--set", "synthetic.num_categories=0"], "num_categories", id="synthetic-value"),
    pytest.param(["--dataset", "willow"], "root", id="real-dataset-without-root"),
    pytest.param(["--dataset", "willow", "--root", "/nonexistent/willow"], "does not exist", id="missing-root"),
    pytest.param(["--set", "epochs=abc"], "epochs", id="epochs-not-a-number"),
    pytest.param(["--set", "lr=abc"], "lr", id="lr-not-a-number"),
    pytest.param(["--set", "hidden_channels=abc"], "hidden_channels", id="width-not-a-number"),
    pytest.param(["--set", "heads=0"], "heads", id="heads-0"),
    pytest.param(["--set", "num_workers=-1"], "num_workers", id="negative-num-workers"),
]


@pytest.mark.parametrize("args,mentions", BAD_TRAIN_ARGS)
def test_train_bad_values_print_error_and_exit_2(runner, tmp_path, args, mentions):
    config = write_config(tmp_path / "tiny.json", tiny_settings(tmp_path / "out"))
    result = runner.invoke(train_command, ["--config", config, "--no-progress", *args])
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.exception!r}\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "error" in result.stderr.lower() and mentions in result.stderr
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


@pytest.mark.parametrize("fmt,text", [
    pytest.param("json", '{"epochs": 1,', id="json"),
    pytest.param("yaml", "epochs: [1, 2\n", id="yaml"),
    pytest.param("yaml", "- epochs\n- 1\n", id="not-a-mapping"),
])
def test_train_malformed_config_file_prints_error_and_exits_2(runner, tmp_path, fmt, text):
    path = tmp_path / f"bad.{fmt}"
    path.write_text(text)
    result = runner.invoke(train_command, ["--config", str(path), "--no-progress"])
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.exception!r}"
    assert result.stderr.startswith("error: ") and str(path) in result.stderr


def test_train_click_usage_errors_exit_2(runner, tmp_path):
    for args in (["--structure", "bogus"], ["--epochs", "many"], ["--config", str(tmp_path / "missing.json")]):
        result = runner.invoke(train_command, args)
        assert result.exit_code == 2 and "Error" in result.output, args


# --------------------------------------------------------------------------- evaluate


@pytest.mark.parametrize("test_pairs", [None, 2], ids=["all-test-pairs", "subset"])
def test_evaluate_checkpoint_reproduces_training_test_results(runner, tmp_path, test_pairs):
    config = write_config(tmp_path / "tiny.json",
                          tiny_settings(tmp_path / "run", epochs=2, test_pairs_per_category=test_pairs))
    trained = run_ok(runner, train_command, ["--config", config, "--no-progress"])
    train_results = json.loads((tmp_path / "run" / "test_results.json").read_text())

    # no --max-pairs-per-category: evaluate takes the checkpoint's own test_pairs_per_category
    args = ["--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--output", str(tmp_path / "eval.json")]
    evaluated = run_ok(runner, evaluate_command, args)
    eval_results = json.loads((tmp_path / "eval.json").read_text())

    assert eval_results["unfiltered"]["mean"]["f1"] == train_results["unfiltered"]["mean"]["f1"]
    choice = train_results.pop("inference_choice")  # how training chose them: the rows behind the choice
    assert choice and choice[0]["group"] == "start"
    assert eval_results == train_results  # every number, completion quality and the inference settings included
    assert mean_f1_line(evaluated.output) == mean_f1_line(trained.output)  # the printed table too
    n_pairs = 3 * 2 if test_pairs is None else test_pairs * 2  # 3 test instances -> 3 pairs per class
    assert eval_results["unfiltered"]["mean"]["num_pairs"] == n_pairs

    # what the model says a graph lacks, from its queries instead: the matching is the same
    run_ok(runner, evaluate_command, args[:2] + ["--completion-source", "queries", "--output", str(tmp_path / "q.json")])
    queried = json.loads((tmp_path / "q.json").read_text())
    assert queried["unfiltered"] == eval_results["unfiltered"] and "count_accuracy" in queried["completion"]

    # the epipolar re-matching, switched on for a stored model: reported among its inference settings
    run_ok(runner, evaluate_command, args[:2] + ["--epipolar", "--output", str(tmp_path / "e.json")])
    assert json.loads((tmp_path / "e.json").read_text())["inference"]["epipolar"] is True
    assert eval_results["inference"]["epipolar"] is False
    run_ok(runner, evaluate_command, args[:2] + ["--epipolar", "--epipolar-pool", "--output",
                                                 str(tmp_path / "p.json")])
    assert json.loads((tmp_path / "p.json").read_text())["inference"]["epipolar_pool"] is True
    refused = runner.invoke(evaluate_command, args[:2] + ["--epipolar-pool"])  # a pool of nothing
    assert refused.exit_code != 0 and "(--epipolar)" in refused.output and "Traceback" not in refused.output
    run_ok(runner, evaluate_command, args[:2] + ["--no-epipolar", "--output", str(tmp_path / "n.json")])
    assert json.loads((tmp_path / "n.json").read_text())["inference"]["epipolar_pool"] is False
    # the embedded data names every point: no keypoint filter to read
    for flag in ("--keypoint-threshold", "--keypoint-prior"):
        refused = runner.invoke(evaluate_command, args[:2] + [flag, "0.5"])
        assert refused.exit_code != 0 and "has none" in refused.output and "Traceback" not in refused.output


def test_evaluate_solver_with_the_epipolar_re_matching(runner, tmp_path):
    """The flag reaches the classical solver: on the embedded data (no rigid views) it changes the matching."""
    scores = {}
    for flag in ("--no-epipolar", "--epipolar"):
        out = tmp_path / f"{flag}.json"
        run_ok(runner, evaluate_command, ["--solver", "rrwm", "--max-pairs-per-category", "2", flag,
                                          "--output", str(out), "--no-progress"])
        scores[flag] = json.loads(out.read_text())["unfiltered"]["mean"]["f1"]
    assert scores["--epipolar"] != scores["--no-epipolar"]
    out = tmp_path / "pool.json"
    run_ok(runner, evaluate_command, ["--solver", "rrwm", "--max-pairs-per-category", "2", "--epipolar",
                                      "--epipolar-pool", "--output", str(out), "--no-progress"])
    assert json.loads(out.read_text())["unfiltered"]["mean"]["f1"] != scores["--epipolar"]


def test_evaluate_solver_hungarian_runs(runner, tmp_path):
    # evaluate has no option for a synthetic config: --solver scores the default embedded dataset,
    # limited here to a few pairs per class.
    out = tmp_path / "hungarian.json"
    result = run_ok(runner, evaluate_command, ["--solver", "hungarian", "--max-pairs-per-category", "2",
                                               "--output", str(out), "--no-progress"])
    assert "Unfiltered real pairs" in result.output and "pair/s" not in result.output
    report = json.loads(out.read_text())
    assert 0.0 <= report["unfiltered"]["mean"]["f1"] <= 1.0
    assert report["unfiltered"]["mean"]["num_pairs"] == 2 * len(report["unfiltered"]["per_class"])
    assert "completion" not in report


def test_evaluate_solver_with_outliers_loses_precision(runner, tmp_path):
    from fixtures_native import make_willow

    root = str(make_willow(tmp_path / "willow", num_per_category=23, with_images=False))  # 3 test images per class
    reports = []
    for k in ("0", "3"):
        out = tmp_path / f"rrwm{k}.json"
        run_ok(runner, evaluate_command, ["--solver", "hungarian", "--dataset", "willow", "--root", root,
                                          "--outliers", k, "--output", str(out)])
        reports.append(json.loads(out.read_text())["unfiltered"]["mean"])
    # a full matching pairs every outlier with something: precision falls, the true pairs stay the same
    assert reports[1]["precision"] < reports[0]["precision"]
    assert reports[1]["num_pairs"] == reports[0]["num_pairs"]


def test_evaluate_solver_with_a_threshold_fitted_on_validation(runner, tmp_path):
    """--fit-threshold: the solver leaves pairs unmatched below a threshold fitted on the
    validation pairs, and says which; outliers anywhere in the image need the images."""
    from fixtures_native import make_willow

    root = str(make_willow(tmp_path / "willow", num_per_category=23, with_images=True))
    out = tmp_path / "fitted.json"
    result = run_ok(runner, evaluate_command, ["--solver", "hungarian", "--dataset", "willow", "--root", root,
                                               "--outliers", "3", "--outlier-region", "image", "--fit-threshold",
                                               "--output", str(out), "--no-progress"])
    assert "hungarian: unmatched threshold fitted on the validation pairs" in result.output
    assert json.loads(out.read_text())["unfiltered"]["mean"]["num_pairs"] > 0
    for flag in (["--fit-threshold"], ["--features", "efficientnet_lite0"]):
        bad = runner.invoke(evaluate_command, ["--checkpoint", "x.pt", *flag])
        assert bad.exit_code != 0 and f"{flag[0]} applies to a classical solver" in bad.output


@pytest.mark.parametrize("args,mentions", [
    ([], "exactly one"),
    (["--solver", "hungarian", "--checkpoint", "x.pt"], "exactly one"),
    (["--checkpoint", "missing.pt"], "does not exist"),
    (["--solver", "hungarian", "--dataset", "willow"], "root"),
    (["--solver", "hungarian", "--completion-source", "queries"], "--checkpoint"),
])
def test_evaluate_bad_values_print_error_and_exit_2(runner, tmp_path, monkeypatch, args, mentions):
    monkeypatch.chdir(tmp_path)  # relative paths such as missing.pt resolve in an empty folder
    result = runner.invoke(evaluate_command, args)
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.exception!r}\n{result.output}"
    assert result.stderr.startswith("error: ") and mentions in result.stderr
