"""``python -m pyg_ssgm.benchmark``: the same as ``python -m pyg_ssgm benchmark`` (see ``--help``)."""
from typing import Optional, Sequence

from .cli import run


def main(argv: Optional[Sequence[str]] = None) -> None:
    run("benchmark", argv)


if __name__ == "__main__":
    main()
