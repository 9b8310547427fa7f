"""Which EfficientNet-Lite0 stages describe a keypoint best across instances? Measured on Willow's
*training* split only (the split the model trains on; validation and test are never read).

For each stage, the raw descriptors (bilinearly sampled at the keypoints, L2-normalised) of two
different training images of one category are matched by the Hungarian algorithm on their cosine
similarity; the table gives the share of keypoints matched to the keypoint of the same name (the
names are read here to score the stages, never by training).

    python benchmarks/willow_stages.py [../shared/data/WillowObject]
"""
import dataclasses
import sys

import torch

from pyg_ssgm import FeatureConfig, attach_features
from pyg_ssgm.baselines import ClassicalMatcher
from pyg_ssgm.data import load_splits
from pyg_ssgm.evaluate import evaluate_matching
from pyg_ssgm.nn.efficientnet import EfficientNetLite0Features

STAGES = list(EfficientNetLite0Features.STAGES)
CHOICES = [[s] for s in STAGES] + [["stage5", "stage6"], ["stage4", "stage5", "stage6"]]


def main(root: str = "../shared/data/WillowObject") -> None:
    train = load_splits("willow", root)["train"]
    cfg = FeatureConfig(stages=tuple(STAGES), num_views=0)
    instances = attach_features(train, cfg, "willow")
    columns, start = {}, 0
    for stage in STAGES:  # the concatenated descriptor holds the stages in network order
        width = EfficientNetLite0Features.STAGES[stage]
        columns[stage] = (start, start + width)
        start += width
    print(f"{len(train)} training images ({len(train) // 5} per category)\n")
    print("| stages | channels | Hungarian accuracy (training pairs) |\n|:--|--:|--:|")
    for choice in CHOICES:
        subset = [dataclasses.replace(inst, x=torch.cat([inst.x[:, slice(*columns[s])] for s in choice], dim=1))
                  for inst in instances]
        report = evaluate_matching(ClassicalMatcher("hungarian", node_affinity="features"), subset)
        width = sum(EfficientNetLite0Features.STAGES[s] for s in choice)
        print(f"| {' + '.join(choice)} | {width} | {report['intersection'].mean.recall:.3f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
