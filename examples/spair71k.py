"""Self-supervised SSGM on SPair-71k.

SPair-71k (Min et al., 2019): 18 categories, large viewpoint and scale changes, up to 30 keypoints
per category of which only the visible ones are annotated, so real pairs are partial. Its own
train / val / test splits (Layout/large). A GPU helps: add --device auto.

Get the data first (pyg_ssgm never downloads anything):
    download http://cvlab.postech.ac.kr/research/SPair-71k/data/SPair-71k.tar.gz
    and unpack it so that <root>/SPair-71k/{ImageAnnotation,JPEGImages,Layout} exist
    (<root> may also be the SPair-71k folder itself).

    python examples/spair71k.py data/SPair-71k                    # the full example
    python examples/spair71k.py data/SPair-71k --epochs 1 --tiny  # a smoke test

It trains on pairs *generated* from single training instances (no correspondence label is read),
evaluates on real cross-instance pairs of the test split, unfiltered (precision / recall / F1) and
in the literature's intersection setting (accuracy), and saves pictures of a few test pairs and
the training curves under <output-dir>/pictures. Change any setting (train, model, loss or
inference section) with --set KEY=VALUE (e.g. --set hidden_channels=32 --set drop_rate=0.3).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # finds examples/common.py however this file is run
from common import build_parser, run  # noqa: E402

DATASET = "spair71k"
NAME = "SPair-71k"
ROOT = "data/SPair-71k"  # default data folder
EPOCHS = 10
# the test split has many pairs per category: score a fixed random subset of them
DEFAULTS = {"train": {"test_pairs_per_category": 200}}


def main(argv=None):
    args = build_parser(__doc__, DATASET, epochs=EPOCHS, root=ROOT).parse_args(argv)
    return run(args, DATASET, defaults=DEFAULTS, name=NAME, script=__file__)


if __name__ == "__main__":
    sys.exit(main())
