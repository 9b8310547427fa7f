"""``python -m pyg_ssgm.train``: train SSGM (see ``--help``). The loop lives in :mod:`pyg_ssgm.trainer`."""
from __future__ import annotations

from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> None:
    from .cli import train_command

    train_command.main(args=argv, prog_name="python -m pyg_ssgm.train")


if __name__ == "__main__":
    main()
