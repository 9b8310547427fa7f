"""Self-supervised SSGM on Pascal VOC Keypoints.

Pascal VOC Keypoints (Bourdev et al., ICCV 2009, on VOC2011 images): 20 categories, 6 to 23
keypoints each; occluded keypoints are not annotated, so real pairs are partial. Standard split
of PCA-GM / BB-GM / ThinkMatch (voc2011_pairs.npz), difficult, occluded and truncated objects dropped.
The test split has thousands of pairs per category: the example scores a fixed random subset.

Get the data first (pyg_ssgm never downloads anything):
    the Berkeley keypoint annotations
      https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/shape/poselets/voc2011_keypoints_Feb2012.tgz
      unpacked as <root>/annotations/<category>/*.xml,
    the VOC2011 train/val images http://host.robots.ox.ac.uk/pascal/VOC/voc2011/VOCtrainval_25-May-2011.tar
      unpacked as <root>/TrainVal/VOCdevkit/VOC2011/{JPEGImages,Annotations},
    and the standard split https://github.com/Thinklab-SJTU/PCA-GM/raw/master/data/PascalVOC/voc2011_pairs.npz
      saved as <root>/voc2011_pairs.npz.

    python examples/pascal_voc.py data/PascalVOC                    # the full example
    python examples/pascal_voc.py data/PascalVOC --epochs 1 --tiny  # a smoke test

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

DATASET = "pascal_voc"
NAME = "Pascal VOC Keypoints"
ROOT = "data/PascalVOC"  # default data folder
EPOCHS = 20
# the test split has many pairs per category: score a fixed random subset of them
DEFAULTS = {"train": {"test_pairs_per_category": 200}}


def main(argv=None):
    args = build_parser(__doc__, DATASET, epochs=EPOCHS, root=ROOT).parse_args(argv)
    return run(args, DATASET, defaults=DEFAULTS, name=NAME, script=__file__)


if __name__ == "__main__":
    sys.exit(main())
