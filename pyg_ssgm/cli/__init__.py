"""The command line: ``python -m pyg_ssgm train|evaluate|benchmark|visualize`` (click).

Each subcommand lives in its own module and imports the library (and torch) only when it runs,
so that ``--help`` answers at once. ``python -m pyg_ssgm.train``, ``.evaluate`` and
``.benchmark`` are the same commands under their own names.
"""
from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

import click

from .common import CONTEXT

#: Subcommand -> "module:attribute" of its click command.
COMMANDS = {"train": "train:train_command", "evaluate": "evaluate:evaluate_command",
            "benchmark": "benchmark:benchmark_command", "visualize": "visualize:visualize_group"}


def command(name: str) -> click.Command:
    """The click command of subcommand ``name``."""
    module, attribute = COMMANDS[name].split(":")
    return getattr(importlib.import_module(f".{module}", __name__), attribute)


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        try:
            return command(name)
        except KeyboardInterrupt:  # Ctrl-C while the subcommand loads: status 130, as during its run
            sys.exit(130)


@click.group(cls=_LazyGroup, context_settings=CONTEXT)
@click.version_option(package_name="pyg_ssgm", message="pyg_ssgm %(version)s")
def main() -> None:
    """pyg_ssgm: self-supervised, generative, partial graph matching of keypoint graphs.

    \b
    Examples:
      python -m pyg_ssgm train                       # the main job: the embedded data, defaults
      python -m pyg_ssgm train --dataset willow --root data/WillowObject --preset willow_geometry
      python -m pyg_ssgm train --data data/my_annotations.json --output-dir runs/mine   # your COCO file
      python -m pyg_ssgm evaluate --checkpoint runs/ssgm/checkpoint.pt
      python -m pyg_ssgm benchmark --quick
      python -m pyg_ssgm visualize pairs --checkpoint runs/ssgm/checkpoint.pt
    """


def run(name: str, argv: Optional[Sequence[str]] = None) -> None:
    """Run subcommand ``name`` as its own program, ``python -m pyg_ssgm.<name>``."""
    command(name).main(args=argv, prog_name=f"python -m pyg_ssgm.{name}")


__all__ = ["main", "run", "command", "COMMANDS"]
