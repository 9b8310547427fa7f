"""``python -m pyg_ssgm.train``: the same as ``python -m pyg_ssgm train`` (see ``--help``)."""
from typing import Optional, Sequence

from .cli import run


def main(argv: Optional[Sequence[str]] = None) -> None:
    run("train", argv)


if __name__ == "__main__":
    main()
