"""``python -m pyg_ssgm``: the command line (see :mod:`pyg_ssgm.cli`).

:func:`main` is also the body of ``python -m pyg_ssgm.train``, ``.evaluate`` and ``.benchmark``. It
imports the command line itself, so that a Ctrl-C while Python is still loading it ends the
program as one during the run does: exit status 130, no traceback.
"""
import sys
from typing import Optional, Sequence


def main(command: Optional[str] = None, argv: Optional[Sequence[str]] = None) -> None:
    """Run the command group, or subcommand ``command`` as its own program."""
    try:
        from .cli import main as group, run

        if command is None:
            group(args=argv, prog_name="python -m pyg_ssgm")
        else:
            run(command, argv)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
