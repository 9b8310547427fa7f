"""What every subcommand shares: click settings, how an error ends a command, and the options
that name your own data (COCO keypoint files)."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional

import click

from ..catalog import DATASETS

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

DATASET_CHOICE = click.Choice(list(DATASETS))


def fail(error: Exception) -> None:
    """Print ``error: ...`` and exit with status 2 (a usage or data error, no traceback)."""
    click.echo(f"error: {error}", err=True)
    sys.exit(2)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Turn the package's named errors into ``error: ...`` and exit status 2, and Ctrl-C into
    status 130, without a traceback."""
    from ..errors import SSGMError

    try:
        yield
    except SSGMError as e:
        fail(e)
    except KeyboardInterrupt:
        sys.exit(130)


# ------------------------------------------------------------------------------ your own data
class DataFiles(NamedTuple):
    """The COCO keypoint files of ``--data``, ``--val-data``, ``--test-data`` and ``--images``."""

    data: Optional[str] = None
    val_data: Optional[str] = None
    test_data: Optional[str] = None
    images: Optional[str] = None

    def given(self) -> List[str]:
        """The options given, as typed."""
        return [f"--{name.replace('_', '-')}" for name, value in self._asdict().items() if value is not None]


_DATA_OPTIONS = (
    click.option("--data", type=click.Path(), help="Your own COCO keypoint file (the JSON an annotation tool exports), "
                 "or a folder of train.json [val.json, test.json]: the same as --dataset coco --root FILE. Splits "
                 "without a file of their own are cut from it by image (seeded; see docs/data.md). Default: none."),
    click.option("--val-data", type=click.Path(dir_okay=False), help="COCO file of the validation split. "
                 "Default: 10 % of the --data images."),
    click.option("--test-data", type=click.Path(dir_okay=False), help="COCO file of the test split. "
                 "Default: 20 % of the --data images."),
    click.option("--images", type=click.Path(file_okay=False), help="Folder the COCO files' file_name are "
                 "relative to. Default: each file's own folder."),
)


def data_options(command: Callable) -> Callable:
    """Add ``--data``, ``--val-data``, ``--test-data`` and ``--images`` to a click command (its
    parameters ``data``, ``val_data``, ``test_data``, ``images``: a :class:`DataFiles`)."""
    for option in reversed(_DATA_OPTIONS):
        command = option(command)
    return command


def dataset_of(dataset: Optional[str], root: Optional[str], files: DataFiles) -> Dict[str, Optional[str]]:
    """``dataset`` and ``root`` with ``--data`` folded in (``--data F`` is ``--dataset coco --root F``),
    or a :class:`~pyg_ssgm.errors.ConfigError` where they contradict each other."""
    from ..errors import ConfigError

    if files.data is not None:
        if dataset not in (None, "coco"):
            raise ConfigError(f"--data reads a COCO keypoint file; it cannot go with --dataset {dataset}.")
        if root is not None:
            raise ConfigError("--data is the COCO file (the root of --dataset coco): give --data or --root, not both.")
        return {"dataset": "coco", "root": files.data}
    return {"dataset": dataset, "root": root}


def check_data_files(dataset: str, files: DataFiles) -> None:
    """Refuse ``--val-data`` / ``--test-data`` / ``--images`` for data other than COCO files."""
    from ..errors import ConfigError

    if dataset != "coco" and files.given():
        raise ConfigError(f"{', '.join(files.given())} name COCO keypoint files; the data here is {dataset!r} "
                          "(give --data FILE for your own data).")


def read_splits(dataset: str, root: Optional[str], files: DataFiles, seed: int, synthetic=None,
                run: Optional[Path] = None):
    """The splits of ``dataset`` from ``root``; for COCO files, as the options name them (a run's own
    files, ``run`` its folder: as its ``splits.json`` records them)."""
    from ..data.readers import run_splits
    from ..data.sources import load_splits

    check_data_files(dataset, files)
    if dataset != "coco":
        return load_splits(dataset, root, synthetic if dataset == "synthetic" else None)
    return run_splits(root, files.val_data, files.test_data, files.images, seed,
                      run=run if files.data is None else None)


def checkpoint_splits(checkpoint: str, settings, dataset: Optional[str], root: Optional[str], files: DataFiles):
    """``(dataset, splits)`` to score or draw a checkpoint on: its own data (for COCO files, the split
    its ``splits.json`` records) unless ``dataset``, ``root`` or ``files`` name other data."""
    given = dataset_of(dataset, root, files)
    train_cfg = settings.train
    dataset = given["dataset"] or train_cfg.dataset
    own = dataset == train_cfg.dataset and given["root"] is None
    splits = read_splits(dataset, train_cfg.root if own else given["root"], files, train_cfg.seed, settings.synthetic,
                         run=Path(checkpoint).parent if own else None)
    return dataset, splits


__all__ = ["CONTEXT", "DATASET_CHOICE", "fail", "reported", "DataFiles", "data_options", "dataset_of",
           "check_data_files", "read_splits", "checkpoint_splits"]
