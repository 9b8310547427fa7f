"""``python -m pyg_ssgm``: the command line (see :mod:`pyg_ssgm.cli`)."""
from .cli import main

if __name__ == "__main__":
    main(prog_name="python -m pyg_ssgm")
