r"""Image backbones that turn an image and its keypoints into per-node appearance features.

:class:`VGG16Features` is the descriptor used by DGMC (PyG's ``PascalVOCKeypoints`` /
``WILLOWObjectClass``) and BB-GM: the VGG16 ``relu4_2`` and ``relu5_1`` feature maps of an
ImageNet-pretrained network, bilinearly sampled at the keypoints and concatenated
(512 + 512 = 1024 values per keypoint).

The network is written in plain torch (torchvision is not needed), with the *same module
indices* as ``torchvision.models.vgg16().features``, so torchvision's checkpoint
``vgg16-397923af.pth`` loads key for key. Nothing is ever downloaded: the weights file must be
on disk (see :data:`VGG16_URL`).

:class:`ImageBackbone` is the small public interface every backbone follows (the default one,
:class:`~pyg_ssgm.nn.efficientnet.EfficientNetLite0Features`, too): images in ``[0, 1]`` go in
(the backbone normalises them itself), feature maps come out *by stage name*, the chosen stages
are sampled at the keypoints, L2-normalised each and concatenated, and ``out_channels`` says
how wide the result is. A new backbone only implements :meth:`ImageBackbone.stage_maps`. Any
module with the signature ``backbone(images, pos, batch) -> Tensor [sum N, F]`` can also be given
to :func:`pyg_ssgm.features.attach_features` (``backbone=``), provided it computes what the
:class:`~pyg_ssgm.features.FeatureConfig` names: the feature cache is keyed by the config.

Coordinate convention (used by :func:`sample_at_keypoints` and every backbone here): ``pos`` is
``(x, y)`` in continuous pixel coordinates of the image tensor given to ``forward``, where pixel
``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)``; ``(0, 0)`` is the top-left image corner
and ``(W, H)`` the bottom-right one. A ``[h, w]`` feature map is taken to cover the whole image,
so its cell ``(i, j)`` is centred at ``((j + 0.5) W / w, (i + 0.5) H / h)``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import load_tensors
from ..errors import CheckpointError, ConfigError, InvalidInputError

#: Where torchvision's ImageNet VGG16 weights (``IMAGENET1K_V1``) are published.
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
#: The file name torchvision's cache uses for them.
VGG16_FILENAME = "vgg16-397923af.pth"

#: torchvision's VGG16 configuration "D": conv output channels, ``"M"`` = 2x2 max-pool.
VGG16_CFG: Tuple[Union[int, str], ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)
#: Index of ``relu4_2`` in ``torchvision.models.vgg16().features`` (conv4_2 is index 19).
RELU4_2 = 20
#: Index of ``relu5_1`` in ``torchvision.models.vgg16().features`` (conv5_1 is index 24).
RELU5_1 = 25

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_layers(num_layers: int = RELU5_1 + 1) -> nn.Sequential:
    r"""The first ``num_layers`` modules of torchvision's ``vgg16().features``, same indices.

    Written out, the layout is ``conv, relu`` pairs with max-pools at indices 4, 9, 16, 23, 30:
    block 4 is conv 17/19/21 + relu 18/20/22 (relu4_2 = 20), block 5 starts with conv 24 +
    relu 25 (relu5_1 = 25).
    """
    layers: List[nn.Module] = []
    in_ch = 3
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1))
            layers.append(nn.ReLU(inplace=True))
            in_ch = int(v)
    return nn.Sequential(*layers[:num_layers])


def default_vgg16_path() -> Path:
    r"""Where torchvision caches the VGG16 weights: ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``
    (``~/.cache/torch/hub/checkpoints/`` by default; :func:`torch.hub.get_dir` resolves it)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILENAME


def _missing_weights(path: Path) -> CheckpointError:
    return CheckpointError(
        f"VGG16 weights not found at '{path}'. pyg_ssgm never downloads them: fetch torchvision's "
        f"ImageNet VGG16 state_dict from {VGG16_URL} and either save it as '{default_vgg16_path()}' "
        f"(the torchvision cache, honours $TORCH_HOME) or pass its path as VGG16Features(weights=...). "
        f"Use weights='random' for an untrained network (tests/debugging only)."
    )


def sample_at_keypoints(fmap: Tensor, pos: Tensor, batch: Tensor, image_size: Tuple[int, int]) -> Tensor:
    r"""Bilinearly sample ``fmap [B, C, h, w]`` at keypoints; returns ``[N, C]`` in the row order of ``pos``.

    Args:
        fmap: feature maps covering the whole images.
        pos: ``[N, 2]`` keypoints ``(x, y)`` in continuous pixel coordinates of images of size
            ``image_size = (H, W)`` (see the module docstring).
        batch: ``[N]`` image index of each keypoint (need not be sorted).
        image_size: ``(H, W)`` of the images the coordinates refer to.

    Uses :func:`torch.nn.functional.grid_sample` with ``align_corners=False``, for which
    ``-1``/``+1`` are the image borders, so ``g = 2 p / size - 1``. Keypoints outside the image
    take the border value (``padding_mode="border"``).
    """
    H, W = image_size
    out = fmap.new_zeros(pos.size(0), fmap.size(1))
    if pos.numel() == 0:
        return out
    scale = pos.new_tensor([2.0 / W, 2.0 / H])
    grid = pos.to(fmap.dtype) * scale.to(fmap.dtype) - 1.0
    for b in torch.unique(batch).tolist():
        idx = (batch == b).nonzero(as_tuple=True)[0]
        g = grid[idx].view(1, -1, 1, 2)
        s = F.grid_sample(fmap[b:b + 1], g, mode="bilinear", padding_mode="border", align_corners=False)
        out[idx] = s[0, :, :, 0].t()
    return out


def _as_pos_batch(keypoints: Union[Tensor, Sequence[Tensor]], batch: Optional[Tensor], num_images: int,
                  device: torch.device) -> Tuple[Tensor, Tensor]:
    if isinstance(keypoints, Tensor):
        pos = keypoints
        if batch is None:
            if num_images != 1:
                raise InvalidInputError(
                    f"pos is one [N, 2] tensor for {num_images} images: pass batch (the image index of each "
                    "keypoint) or a list of per-image [N_b, 2] tensors."
                )
            batch = torch.zeros(pos.size(0), dtype=torch.long, device=pos.device)
    else:
        if batch is not None:
            raise InvalidInputError("batch must not be given when keypoints is a list of per-image tensors.")
        keypoints = list(keypoints)
        if len(keypoints) != num_images:
            raise InvalidInputError(f"got {num_images} images but {len(keypoints)} keypoint tensors.")
        kps = [torch.as_tensor(k, dtype=torch.get_default_dtype(), device=device).reshape(-1, 2) for k in keypoints]
        pos = torch.cat(kps, 0) if kps else torch.zeros(0, 2, device=device)
        batch = torch.cat([torch.full((k.size(0),), i, dtype=torch.long, device=device) for i, k in enumerate(kps)]) \
            if kps else torch.zeros(0, dtype=torch.long, device=device)
    if pos.dim() != 2 or pos.size(-1) != 2:
        raise InvalidInputError(f"keypoints must have shape [N, 2], got {tuple(pos.shape)}.")
    batch = batch.to(device=pos.device, dtype=torch.long)
    if batch.shape != (pos.size(0),):
        raise InvalidInputError(f"batch must have shape [N={pos.size(0)}], got {tuple(batch.shape)}.")
    if batch.numel() and (int(batch.min()) < 0 or int(batch.max()) >= num_images):
        raise InvalidInputError(f"batch holds image indices outside [0, {num_images}).")
    if not torch.isfinite(pos).all():
        raise InvalidInputError("keypoints contain NaN or infinite coordinates.")
    return pos.to(device), batch.to(device)


class ImageBackbone(nn.Module):
    r"""A frozen image network whose named stages are sampled at keypoints.

    Subclasses set ``STAGES`` (stage name -> channels, in network order), ``MEAN`` / ``STD`` (the
    input normalisation the weights were trained with) and ``MIN_SIZE``, and implement
    :meth:`stage_maps`. The descriptor of a keypoint is

    .. math::  d_i = \big[\, f^{(1)}(p_i) / \lVert f^{(1)}(p_i)\rVert \;|\; \dots \;|\;
               f^{(k)}(p_i) / \lVert f^{(k)}(p_i)\rVert \,\big]

    with :math:`f^{(s)}(p_i)` stage ``s``'s map bilinearly sampled at the keypoint
    (:func:`sample_at_keypoints`), so ``out_channels`` is the sum of the chosen stages' channels
    and every stage weighs the same whatever its scale. Given other image sizes
    (``forward(..., sizes=...)``), each stage's part is the normalised sum of its normalised
    parts at every size: the network sees a part differently at each scale, and the sum describes
    it better across instances than any one size (see :class:`~pyg_ssgm.features.FeatureConfig`).

    Args:
        stages: names of the stages to sample (a subset of ``STAGES``; default ``DEFAULT_STAGES``).
        normalize: L2-normalise each stage's sampled vector (see above).
    """

    STAGES: Dict[str, int] = {}
    DEFAULT_STAGES: Tuple[str, ...] = ()
    MEAN: Tuple[float, float, float] = IMAGENET_MEAN
    STD: Tuple[float, float, float] = IMAGENET_STD
    MIN_SIZE: int = 32
    name: str = "backbone"

    def __init__(self, stages: Optional[Sequence[str]] = None, normalize: bool = True):
        super().__init__()
        stages = tuple(self.DEFAULT_STAGES if stages is None else stages)
        unknown = [s for s in stages if s not in self.STAGES]
        if not stages or unknown:
            raise ConfigError(f"{type(self).__name__} stages must be a non-empty subset of {list(self.STAGES)}, "
                              f"got {list(stages)}.")
        self.stages = tuple(s for s in self.STAGES if s in stages)  # network order
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1), persistent=False)

    @property
    def out_channels(self) -> int:
        return sum(self.STAGES[s] for s in self.stages)

    def stage_maps(self, images: Tensor) -> Dict[str, Tensor]:
        r"""Feature maps ``[B, C_s, h_s, w_s]`` of the *normalised* images, for every name in
        ``self.stages`` (a subclass may stop the network after the last one)."""
        raise NotImplementedError

    def feature_maps(self, images: Tensor) -> Dict[str, Tensor]:
        r"""The chosen stages' maps of images ``[B, 3, H, W]`` in ``[0, 1]`` (normalised here)."""
        if images.dim() != 4 or images.size(1) != 3:
            raise InvalidInputError(f"images must have shape [B, 3, H, W], got {tuple(images.shape)}.")
        if min(images.shape[-2:]) < self.MIN_SIZE:
            raise InvalidInputError(f"images must be at least {self.MIN_SIZE}x{self.MIN_SIZE} pixels for "
                                    f"{type(self).__name__}, got {tuple(images.shape[-2:])}.")
        return self.stage_maps((images - self.mean) / self.std)

    def forward(self, images: Tensor, pos: Union[Tensor, Sequence[Tensor]], batch: Optional[Tensor] = None,
                sizes: Sequence[int] = ()) -> Tensor:
        r"""Descriptors of keypoints, PyG-style.

        Args:
            images: ``[B, 3, H, W]`` float RGB in ``[0, 1]`` (the backbone's own normalisation is
                done here). ``H`` and ``W`` should be multiples of the deepest stage's stride so
                the maps cover the image exactly.
            pos: ``[N, 2]`` keypoints ``(x, y)`` in pixels of ``images`` (all images concatenated),
                or a list of ``B`` per-image ``[N_b, 2]`` tensors (concatenated in order).
            batch: ``[N]`` image index of each row of ``pos`` (PyG's ``batch`` vector); needed
                when ``pos`` is one tensor and ``B > 1``; must be ``None`` with a list.
            sizes: square sides ``s`` the images are also resized to (bilinearly, antialiased
                when shrinking), the keypoints following as ``p * (s / W, s / H)``; each
                stage's part is then summed over the sizes (normalised parts, the sum normalised
                again with ``normalize``; averaged without).

        Returns:
            ``[N, out_channels]``: the chosen stages at each keypoint, row ``i`` for ``pos[i]``.
        """
        pos, batch = _as_pos_batch(pos, batch, images.size(0), images.device)
        H, W = images.size(-2), images.size(-1)
        parts = self._parts(images, pos, batch)
        for side in sizes:
            resized = F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False,
                                    antialias=side < max(H, W)).clamp_(0.0, 1.0)
            moved = pos * pos.new_tensor([side / W, side / H])
            parts = [a + b for a, b in zip(parts, self._parts(resized, moved, batch))]
        if sizes:  # one size: its parts are as sampled (and normalised once), bit for bit
            parts = [F.normalize(p, dim=-1) if self.normalize else p / (1 + len(sizes)) for p in parts]
        return torch.cat(parts, dim=-1)

    def _parts(self, images: Tensor, pos: Tensor, batch: Tensor) -> List[Tensor]:
        """Each chosen stage sampled at the keypoints (normalised with ``normalize``)."""
        maps = self.feature_maps(images)
        size = (images.size(-2), images.size(-1))
        parts = [sample_at_keypoints(maps[s], pos, batch, size) for s in self.stages]
        return [F.normalize(p, dim=-1) for p in parts] if self.normalize else parts

    def __repr__(self) -> str:  # the layers are a fixed, pretrained network: name what is chosen
        return f"{type(self).__name__}(stages={list(self.stages)}, out_channels={self.out_channels})"


class VGG16Features(ImageBackbone):
    r"""VGG16 ``relu4_2`` + ``relu5_1`` descriptors sampled at keypoints (DGMC / BB-GM).

    Args:
        weights: path to torchvision's VGG16 state_dict (``vgg16-397923af.pth``, keys
            ``features.N.weight/bias``; classifier keys are ignored), ``None`` to use the
            torchvision cache (:func:`default_vgg16_path`), or ``"random"`` for random
            initialisation (tests/debugging). Nothing is downloaded: a missing file raises
            :class:`~pyg_ssgm.errors.CheckpointError` saying where to put it and the URL.
        freeze: turn off gradients of the convolutions (a fixed feature extractor).
        normalize: L2-normalise the sampled vector of each map separately, so each 512-d half
            has unit norm (BB-GM normalises each map over channels; here it is done after
            sampling, so the halves are exactly unit length).
        stages: any of ``"relu4_2"``, ``"relu5_1"`` (default both, 1024 values).

    ``self.features`` has exactly torchvision's module indices ``0..25`` (``vgg16().features``
    truncated after ``relu5_1``), so ``features.N.*`` keys load as they are.
    """

    STAGES = {"relu4_2": 512, "relu5_1": 512}
    DEFAULT_STAGES = ("relu4_2", "relu5_1")
    MIN_SIZE = 16
    name = "vgg16"
    _INDEX = {"relu4_2": RELU4_2, "relu5_1": RELU5_1}

    def __init__(self, weights: Union[str, Path, None] = None, freeze: bool = True, normalize: bool = True,
                 stages: Optional[Sequence[str]] = None):
        super().__init__(stages, normalize)
        self.features = vgg16_layers(RELU5_1 + 1)
        if isinstance(weights, str) and weights == "random":
            self.weights_path: Optional[Path] = None
        else:
            path = default_vgg16_path() if weights is None else Path(os.path.expanduser(str(weights)))
            self.load_torchvision_weights(path)
            self.weights_path = path
        if freeze:
            for p in self.features.parameters():
                p.requires_grad_(False)

    def load_torchvision_weights(self, path: Union[str, Path]) -> None:
        r"""Copy the ``features.*`` tensors of a torchvision VGG16 state_dict file into ``self.features``.

        Raises :class:`~pyg_ssgm.errors.CheckpointError` when the file is missing or unreadable,
        or when a needed key is missing or has the wrong shape (the message names the key).
        Keys of layers after ``relu5_1`` and of the classifier are ignored. A features-only
        state_dict (keys ``N.weight``) is accepted too.
        """
        path = Path(path)
        if not path.is_file():
            raise _missing_weights(path)
        state = load_tensors(path, "cpu", what="VGG16 weights")  # no code runs, no unsafe advice
        if not isinstance(state, dict):
            raise CheckpointError(f"'{path}' does not hold a state_dict (got {type(state).__name__}).")
        prefix = "features." if any(str(k).startswith("features.") for k in state) else ""
        own = self.features.state_dict()
        loaded = {}
        for key, param in own.items():
            full = prefix + key
            if full not in state:
                raise CheckpointError(
                    f"VGG16 weights '{path}' lack key '{full}'; expected torchvision's vgg16 state_dict "
                    f"({VGG16_URL})."
                )
            value = state[full]
            if not isinstance(value, Tensor) or value.shape != param.shape:
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise CheckpointError(
                    f"VGG16 weights '{path}': key '{full}' has shape {shape}, expected {tuple(param.shape)} "
                    "(is this torchvision's vgg16, not vgg16_bn or another network?)."
                )
            loaded[key] = value.to(param.dtype)
        self.features.load_state_dict(loaded)

    def stage_maps(self, images: Tensor) -> Dict[str, Tensor]:
        wanted = {self._INDEX[s]: s for s in self.stages}
        out: Dict[str, Tensor] = {}
        h = images
        for i, layer in enumerate(self.features[: max(wanted) + 1]):
            h = layer(h)
            if i in wanted:
                out[wanted[i]] = h
        return out


__all__ = [
    "ImageBackbone", "VGG16Features", "sample_at_keypoints", "vgg16_layers", "default_vgg16_path",
    "VGG16_URL", "VGG16_FILENAME", "VGG16_CFG", "RELU4_2", "RELU5_1",
]
