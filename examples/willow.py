"""Self-supervised SSGM on Willow ObjectClass.

Willow ObjectClass (Cho et al., ICCV 2013): 5 categories (car, duck, face, motorbike, wine bottle),
10 keypoints annotated in every image, standard split of 20 training images per category (the
rest is the test set; the last 6 training images of each category are held out for validation).
Since every keypoint is annotated in every image, real Willow pairs are bijections: unfiltered
and intersection scores agree, unlike on the other datasets.

Get the data first (pyg_ssgm never downloads anything):
    download http://www.di.ens.fr/willow/research/graphlearning/WILLOW-ObjectClass_dataset.zip
    and unzip it so that <root>/WILLOW-ObjectClass/<Category>/*.mat (+ .png) exist.

    python examples/willow.py data/WillowObject                     # the full example
    python examples/willow.py data/WillowObject --geometry-only
    python examples/willow.py data/WillowObject --epochs 1 --tiny   # a smoke test

It trains on pairs *generated* from single training instances and on the training split's own
unlabelled real pairs with cycle-consistent pseudo-labels (no correspondence label is read),
evaluates on real cross-instance pairs of the test split, unfiltered (precision / recall / F1)
and in the literature's intersection setting (accuracy), and saves pictures of a few test pairs
and the training curves under <output-dir>/pictures. When the images are there (the .png files
beside the .mat files), EfficientNet-Lite0 descriptors are put on the keypoints (computed once,
cached under ~/.cache/pyg_ssgm/features) with the settings of the willow_images preset (pyg_ssgm/presets/);
otherwise, or with --geometry-only, those of willow_geometry. Change any setting with
--set KEY=VALUE (e.g. --set hidden_channels=32 --set features.num_views=8).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # finds examples/common.py however this file is run
from common import REAL_DATA_TINY, build_parser, run  # noqa: E402

from pyg_ssgm.presets import preset  # noqa: E402

DATASET = "willow"
NAME = "Willow ObjectClass"
ROOT = "data/WillowObject"  # default data folder
EPOCHS = 30
# --tiny with images: small images and one view, so the smoke test's feature pass takes seconds
TINY_IMAGES = {**REAL_DATA_TINY, "features": {"image_size": 64, "num_views": 1}}


def has_images(root: str) -> bool:
    return any(Path(root).glob("**/WILLOW-ObjectClass/*/*.png"))


def main(argv=None):
    parser = build_parser(__doc__, DATASET, epochs=EPOCHS, root=ROOT)
    parser.add_argument("--geometry-only", action="store_true", help="no image features, even with images")
    args = parser.parse_args(argv)
    images = has_images(args.root) and not args.geometry_only
    chosen = "willow_images" if images else "willow_geometry"
    why = ("images found beside the annotations: EfficientNet-Lite0 features" if images else
           "--geometry-only" if args.geometry_only else f"no .png images under {args.root}: geometry only")
    print(f"Preset {chosen} ({why}).")
    return run(args, DATASET, name=NAME, script=__file__, defaults=preset(chosen),
               tiny=TINY_IMAGES if images else REAL_DATA_TINY)


if __name__ == "__main__":
    sys.exit(main())
