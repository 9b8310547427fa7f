"""``python -m pyg_ssgm.evaluate``: the same as ``python -m pyg_ssgm evaluate`` (see ``--help``)."""
from typing import Optional, Sequence

from .cli import run


def main(argv: Optional[Sequence[str]] = None) -> None:
    run("evaluate", argv)


if __name__ == "__main__":
    main()
