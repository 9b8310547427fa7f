"""Self-supervised SSGM on the embedded synthetic keypoint data: runs out of the box, nothing to download.

    python examples/synthetic.py              # the full example (about 3 minutes on 2 CPU cores)
    python examples/synthetic.py --tiny       # a smoke test: tiny data and model, seconds

What it does:

1. trains on pairs *generated* from single instances (nodes dropped at random on each side), so no
   correspondence label is ever read;
2. evaluates on real cross-instance pairs of the test split, unfiltered (some keypoints have no
   partner: precision / recall / F1) and, for comparison with the literature, in the intersection
   setting (accuracy);
3. saves pictures of a few test pairs and the training curves under <output-dir>/pictures.

Any setting (train, model, loss, inference or synthetic section) can be changed with --set KEY=VALUE
(e.g. --set hidden_channels=32 --set synthetic.max_clutter=3).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # finds examples/common.py however this file is run
from common import build_parser, run  # noqa: E402

DATASET = "synthetic"
EPOCHS = 30
# --tiny: a few instances per category, a narrow model, few evaluation pairs
TINY = {"train": {"batch_size": 8, "val_pairs_per_category": 3, "test_pairs_per_category": 6},
        "model": {"hidden_channels": 32, "num_queries": 6},
        "synthetic": {"num_categories": 2, "num_train": 4, "num_val": 2, "num_test": 3}}


def main(argv=None):
    args = build_parser(__doc__, DATASET, epochs=EPOCHS, tiny_help="tiny data and model: a smoke test").parse_args(argv)
    return run(args, DATASET, tiny=TINY)


if __name__ == "__main__":
    sys.exit(main())
