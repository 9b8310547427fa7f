"""What every subcommand shares: click settings and how an error ends a command."""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator

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


__all__ = ["CONTEXT", "DATASET_CHOICE", "fail", "reported"]
