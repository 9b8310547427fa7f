"""What the example scripts share: their command line and their run (train, print the test
results, draw pictures). Each example only states its dataset, its defaults and its --tiny preset.

Exit codes of an example: 0 done, 1 the dataset was not found (with how to get it), 2 a bad setting.
"""
import argparse
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from pyg_ssgm import Settings
from pyg_ssgm.config import apply_overrides, merge, split_sections
from pyg_ssgm.errors import DatasetNotFoundError, MissingExtraError, SSGMError
from pyg_ssgm.evaluation import format_results
from pyg_ssgm.trainer import train

Presets = Dict[str, Dict[str, Any]]  # settings by section: train, model, loss, inference, features, synthetic


def build_parser(doc: str, dataset: str, *, epochs: int, root: Optional[str] = None,
                 tiny_help: str = "narrow model, few evaluation pairs: a smoke test") -> argparse.ArgumentParser:
    """The example's command line; ``root`` (the default data folder) adds the positional ``root``
    argument of a real dataset."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if root is not None:
        parser.add_argument("root", nargs="?", default=root, help="local copy of the dataset (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=epochs, help="training epochs (default: %(default)s)")
    parser.add_argument("--tiny", action="store_true", help=tiny_help)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other setting, repeatable (e.g. --set hidden_channels=32)")
    parser.add_argument("--output-dir", default=f"runs/example_{dataset}",
                        help="where the checkpoint, metrics and pictures go (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace the run found in --output-dir")
    parser.add_argument("--num-pictures", type=int, default=2, help="pairs of each kind to draw (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
    if root is None:
        parser.set_defaults(root=None)
    return parser


# --tiny for the real datasets: a narrow model and few evaluation pairs (a smoke test in seconds)
REAL_DATA_TINY: Presets = {"train": {"batch_size": 4, "val_pairs_per_category": 2, "test_pairs_per_category": 4},
                           "model": {"hidden_channels": 16, "num_queries": 4}}


def settings(args: argparse.Namespace, dataset: str, defaults: Presets, tiny: Presets) -> Settings:
    """The example's own options, then its defaults, then its --tiny preset if asked, then the
    --set KEY=VALUE options (which may override any of them)."""
    own = {"train": {"dataset": dataset, "root": args.root, "epochs": args.epochs, "output_dir": args.output_dir,
                     "device": args.device}}
    values = merge(own, split_sections(defaults))
    if args.tiny:
        values = merge(values, split_sections(tiny))
    values = apply_overrides(values, args.set)
    if dataset != "synthetic":
        values["synthetic"] = {}
    return Settings.from_dict(values)


def run(args: argparse.Namespace, dataset: str, *, tiny: Presets = REAL_DATA_TINY,
        defaults: Optional[Presets] = None, name: Optional[str] = None, script: str = "") -> int:
    """Train self-supervised, evaluate on the test split (unfiltered and intersection settings),
    print the results and save pictures under <output-dir>/pictures. ``name`` and ``script`` (the
    example's file) make the message shown when a real dataset is not found under ``args.root``."""
    try:
        run_settings = settings(args, dataset, defaults or {}, tiny)
        # Self-supervised training, then the test split: unfiltered and intersection settings.
        trainer, results = train(run_settings, overwrite=args.overwrite)
    except DatasetNotFoundError as e:
        print(f"{name} was not found under {args.root!r}.\n\n{e}\n\n"
              f"Then run: python examples/{Path(script).name} <root>", file=sys.stderr)
        return 1
    except SSGMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_results(results))
    unfiltered, intersection = results["unfiltered"].mean, results["intersection"].mean
    print(f"\nTest pairs: unfiltered F1 {unfiltered.f1:.3f} (precision {unfiltered.precision:.3f}, "
          f"recall {unfiltered.recall:.3f}); intersection accuracy {intersection.recall:.3f}")
    print(f"Checkpoint: {trainer.checkpoint_path} (with metrics.csv, config.json and test_results.json)")

    pictures = Path(args.output_dir) / "pictures"
    try:
        from pyg_ssgm import viz

        paths = viz.write_pictures(trainer.predictor, trainer.splits["test"], pictures, num_pairs=args.num_pictures,
                                   generator=trainer.cfg.pair_generator(), device=trainer.device)
        paths.append(viz.save(viz.plot_training_curves(trainer.out_dir), pictures / "training_curves.png"))
        print(f"{len(paths)} pictures in {pictures}")
    except MissingExtraError as e:
        print(f"no pictures: {e}")
    return 0
