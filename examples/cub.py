"""Self-supervised SSGM on CUB-200-2011.

CUB-200-2011 (Wah et al., 2011): 200 bird species, 15 named parts (beak, left eye, ...) of which
only the visible ones are annotated, so real pairs are partial. Official train / test split.
A GPU helps: add --device auto.

Get the data first (pyg_ssgm never downloads anything):
    download CUB_200_2011.tgz from https://www.vision.caltech.edu/datasets/cub_200_2011/
    and unpack it so that <root>/CUB_200_2011/images.txt, parts/ and images/ exist
    (<root> may also be the CUB_200_2011 folder itself).

    python examples/cub.py data/CUB_200_2011                    # the full example
    python examples/cub.py data/CUB_200_2011 --epochs 1 --tiny  # a smoke test

It trains with the settings chosen on CUB's validation split (the ``cub`` preset,
``pyg_ssgm/presets/cub.yaml``) on pairs *generated* from single training instances (no
correspondence label is read), evaluates on real cross-instance pairs of the test split,
unfiltered (precision / recall / F1) and in the literature's intersection setting (accuracy), and
saves pictures of a few test pairs and the training curves under <output-dir>/pictures. Change
any setting (train, model, loss or inference section) with --set KEY=VALUE (e.g. --set
hidden_channels=32 --set drop_rate=0.3).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # finds examples/common.py however this file is run
from common import build_parser, run  # noqa: E402

from pyg_ssgm.presets import preset  # noqa: E402

DATASET = "cub"
NAME = "CUB-200-2011"
ROOT = "data/CUB_200_2011"  # default data folder
# The settings chosen on CUB's validation split (the cub preset); its epochs are the
# --epochs default, so that the option still decides.
PRESET = preset("cub")
EPOCHS = PRESET["train"].pop("epochs")
# the test split has many pairs per category: score a fixed random subset of them
DEFAULTS = {**PRESET, "train": {**PRESET["train"], "test_pairs_per_category": 20}}


def main(argv=None):
    args = build_parser(__doc__, DATASET, epochs=EPOCHS, root=ROOT).parse_args(argv)
    return run(args, DATASET, defaults=DEFAULTS, name=NAME, script=__file__)


if __name__ == "__main__":
    sys.exit(main())
