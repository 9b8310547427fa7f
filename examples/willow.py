"""Self-supervised SSGM on Willow ObjectClass.

Willow ObjectClass (Cho et al., ICCV 2013): 5 categories (car, duck, face, motorbike, wine bottle),
10 keypoints annotated in every image, standard split of 20 training images per category (the
rest is the test set). Since every keypoint is annotated in every image, real Willow pairs are
bijections: unfiltered and intersection scores agree, unlike on the other datasets.

Get the data first (pyg_ssgm never downloads anything):
    download http://www.di.ens.fr/willow/research/graphlearning/WILLOW-ObjectClass_dataset.zip
    and unzip it so that <root>/WILLOW-ObjectClass/<Category>/*.mat (+ .png) exist.

    python examples/willow.py data/WillowObject                    # the full example
    python examples/willow.py data/WillowObject --epochs 1 --tiny  # a smoke test

It trains on pairs *generated* from single training instances (no correspondence label is read),
evaluates on real cross-instance pairs of the test split, unfiltered (precision / recall / F1) and
in the literature's intersection setting (accuracy), and saves pictures of a few test pairs and
the training curves under <output-dir>/pictures. Change any TrainConfig or SSGMConfig setting
with --set KEY=VALUE (e.g. --set hidden_channels=32 --set drop_rate=0.3).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # finds examples/common.py however this file is run
from common import build_parser, run  # noqa: E402

DATASET = "willow"
NAME = "Willow ObjectClass"
ROOT = "data/WillowObject"  # default data folder
EPOCHS = 30


def main(argv=None):
    args = build_parser(__doc__, DATASET, epochs=EPOCHS, root=ROOT).parse_args(argv)
    return run(args, DATASET, name=NAME, script=__file__)


if __name__ == "__main__":
    sys.exit(main())
