"""Which EfficientNet-Lite0 stages, and which image sizes, describe a keypoint best across
instances? Measured on Willow's *training* split only (the split the model trains on; validation
and test are never read).

For each stage, the raw descriptors (bilinearly sampled at the keypoints, L2-normalised) of two
different training images of one category are matched by the Hungarian algorithm on their cosine
similarity; the table gives the share of keypoints matched to the keypoint of the same name (the
names are read here to score the stages, never by training). The stages are compared at one image
size (256); the second table compares sizes for the chosen stage, one size or several (the image
loaded at the first and resized to the others, the descriptors summed: ``FeatureConfig.image_size``).

    python benchmarks/willow_stages.py [--root data/WillowObject]
"""
import argparse
import dataclasses

import torch

from pyg_ssgm import FeatureConfig, attach_features
from pyg_ssgm.baselines import ClassicalMatcher
from pyg_ssgm.benchmarking import format_table
from pyg_ssgm.benchmarking.experiments import DEFAULT_ROOTS, score
from pyg_ssgm.cli.common import reported
from pyg_ssgm.data import load_splits
from pyg_ssgm.nn.efficientnet import EfficientNetLite0Features

STAGES = list(EfficientNetLite0Features.STAGES)
CHOICES = [[s] for s in STAGES] + [["stage5", "stage6"], ["stage4", "stage5", "stage6"]]
SIZES = [256, 320, 384, 448, 512, (256, 384), (384, 256), (512, 384, 256)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=DEFAULT_ROOTS["willow"], help="Willow ObjectClass (default: %(default)s)")
    args = parser.parse_args()
    train = load_splits("willow", args.root)["train"]
    instances = attach_features(train, FeatureConfig(stages=tuple(STAGES), image_size=256, num_views=0), "willow")
    columns, start = {}, 0
    for stage in STAGES:  # the concatenated descriptor holds the stages in network order
        width = EfficientNetLite0Features.STAGES[stage]
        columns[stage] = (start, start + width)
        start += width
    print(f"{len(train)} training images ({len(train) // 5} per category)\n")
    rows = []
    for choice in CHOICES:
        subset = [dataclasses.replace(inst, x=torch.cat([inst.x[:, slice(*columns[s])] for s in choice], dim=1))
                  for inst in instances]
        rows.append([" + ".join(choice), sum(EfficientNetLite0Features.STAGES[s] for s in choice),
                     f"{_accuracy(subset):.3f}"])
        print(f"{rows[-1][0]}: {rows[-1][2]}", flush=True)
    sizes = []
    for size in SIZES:
        subset = attach_features(train, FeatureConfig(stages=("stage6",), image_size=size, num_views=0), "willow")
        sizes.append([" + ".join(str(s) for s in (size if isinstance(size, tuple) else (size,))),
                      f"{_accuracy(subset):.3f}"])
        print(f"stage6 at {sizes[-1][0]}: {sizes[-1][1]}", flush=True)
    print("\n" + format_table(["stages (image size 256)", "channels", "Hungarian accuracy (training pairs)"], rows))
    print("\n" + format_table(["image size (stage6; the first is the one loaded)", "Hungarian accuracy (training pairs)"],
                              sizes))


def _accuracy(instances) -> float:
    return score(ClassicalMatcher("hungarian", node_affinity="features"), instances)["intersection_accuracy"]


if __name__ == "__main__":
    with reported():
        main()
