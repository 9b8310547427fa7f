"""``python -m pyg_ssgm.benchmark``: the same as ``python -m pyg_ssgm benchmark`` (see ``--help``)."""
from typing import Optional, Sequence

from .__main__ import main as _main


def main(argv: Optional[Sequence[str]] = None) -> None:
    _main("benchmark", argv)


if __name__ == "__main__":
    main()
