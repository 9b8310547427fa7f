"""``python -m pyg_ssgm.evaluate`` (and the ``ssgm-evaluate`` script): the evaluation command line.

A shim above :mod:`pyg_ssgm.cli`, kept out of the library module :mod:`pyg_ssgm.evaluate` so that
nothing in the library imports the command lines.
"""
from __future__ import annotations

from typing import Optional, Sequence

from ..cli import evaluate_command


def main(argv: Optional[Sequence[str]] = None) -> None:
    evaluate_command.main(args=argv, prog_name="python -m pyg_ssgm.evaluate")


if __name__ == "__main__":
    main()
