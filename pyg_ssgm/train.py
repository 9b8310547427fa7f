"""``python -m pyg_ssgm.train`` (and the ``ssgm-train`` script): train SSGM (see ``--help``).

An entry shim above :mod:`pyg_ssgm.cli`, which nothing in the library imports; the loop lives
in :mod:`pyg_ssgm.trainer`.
"""
from __future__ import annotations

from typing import Optional, Sequence

from .cli import train_command


def main(argv: Optional[Sequence[str]] = None) -> None:
    train_command.main(args=argv, prog_name="python -m pyg_ssgm.train")


if __name__ == "__main__":
    main()
