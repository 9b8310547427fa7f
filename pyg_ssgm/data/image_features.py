r"""Attach image-backbone descriptors to keypoint instances (``KeypointInstance.x``).

:class:`ImageFeatureExtractor` does what PyG's ``PascalVOCKeypoints`` / ``WILLOWObjectClass``
pre-processing (DGMC) and BB-GM do: load the image, optionally crop it to the object box,
resize it to a fixed square, run a frozen backbone (by default
:class:`pyg_ssgm.nn.backbone.VGG16Features`: VGG16 ``relu4_2 | relu5_1``, 1024 values) and sample
the feature maps at the keypoints, rescaled to the resized image.
"""
from __future__ import annotations

import dataclasses
import math
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, DatasetNotFoundError, InvalidInputError, require
from .instance import KeypointInstance


def _where(inst: KeypointInstance, i: int) -> str:
    return f"instance {inst.id!r}" if inst.id is not None else f"instance #{i} (no id)"


def _array_to_tensor(arr: np.ndarray, where: str) -> Tensor:
    r"""An ``H x W [x C]`` array to a float ``[3, H, W]`` tensor in ``[0, 1]``."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
        raise InvalidInputError(f"image of {where} must be H x W x C with C in (1, 3, 4), got shape {arr.shape}.")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.integer):
        top = 65535.0 if arr.dtype == np.uint16 else 255.0
        if arr.size and (arr.min() < 0 or arr.max() > top):
            raise InvalidInputError(f"integer image of {where} has values outside [0, {int(top)}].")
        arr = arr.astype(np.float32) / top
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InvalidInputError(f"image of {where} contains NaN or infinite values.")
        if arr.size and (arr.min() < -1e-3 or arr.max() > 1.0 + 1e-3):
            raise InvalidInputError(
                f"float image of {where} must be in [0, 1] (got [{arr.min():.3g}, {arr.max():.3g}]); "
                "divide 0-255 images by 255 or pass them as uint8."
            )
        arr = np.clip(arr, 0.0, 1.0).astype(np.float32)
    else:
        raise InvalidInputError(f"image of {where} has unsupported dtype {arr.dtype}.")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]  # drop alpha
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)


def decode_image(inst: KeypointInstance, i: int = 0) -> Tensor:
    r"""The instance's image as a float ``[3, H, W]`` tensor in ``[0, 1]``, at its own resolution.

    ``inst.image`` may be a path (decoded with Pillow, the ``images`` extra), a PIL image, or an
    ``H x W [x C]`` array / tensor (uint8 0-255, or float in ``[0, 1]``; grey is repeated, alpha
    dropped). ``i`` only names the instance in error messages when it has no ``id``.
    """
    where = _where(inst, i)
    img = inst.image
    if img is None:
        raise InvalidInputError(
            f"{where} has no image; image features need one (read the dataset with images, "
            "or keep the image paths the readers record)."
        )
    if isinstance(img, (str, bytes)) or hasattr(img, "__fspath__"):
        pil = require("PIL.Image", "images")
        try:
            with pil.open(img) as opened:
                arr = np.asarray(opened.convert("RGB"))
        except FileNotFoundError as e:
            raise DatasetNotFoundError(f"image file '{img}' of {where} does not exist.") from e
        except OSError as e:
            raise InvalidInputError(f"cannot decode image '{img}' of {where} ({e}).") from e
    elif hasattr(img, "convert") and hasattr(img, "size") and not isinstance(img, (np.ndarray, Tensor)):
        arr = np.asarray(img.convert("RGB"))  # a PIL image
    else:
        arr = img.detach().cpu().numpy() if isinstance(img, Tensor) else np.asarray(img)
    return _array_to_tensor(arr, where)


class LoadedImage(NamedTuple):
    r"""An instance's image resized to ``S x S`` and its keypoints in pixels of that image.

    With ``origin = (x_0, y_0)`` the crop corner in the original image (``(0, 0)`` without a
    crop) and ``scale = (S / W, S / H)`` for the ``W x H`` (cropped) image,

    .. math::  p_\text{resized} = (p - o) \odot s, \qquad p = p_\text{resized} \oslash s + o.
    """

    image: Tensor
    pos: Tensor
    origin: Tuple[float, float]
    scale: Tuple[float, float]

    def to_original(self, pos: Tensor) -> Tensor:
        r"""Pixel coordinates of the resized image back to the original image's pixels."""
        return pos / pos.new_tensor(self.scale) + pos.new_tensor(self.origin)


def load_instance_image(inst: KeypointInstance, image_size: int, crop_to_bbox: bool = False,
                        i: int = 0) -> LoadedImage:
    r"""Decode ``inst.image``, optionally crop it to ``extra["bbox"]``, resize it to ``S x S``.

    Resizing is bilinear (antialiased when shrinking), as DGMC does; the keypoints follow as
    ``x * S / W, y * S / H`` after subtracting the crop corner. With ``crop_to_bbox``, the box
    ``(xmin, ymin, xmax, ymax)`` is rounded outwards to whole pixels and clipped to the image;
    instances without a box use the whole image.
    """
    image = decode_image(inst, i)
    pos = inst.pos.to(torch.float32)
    _, H, W = image.shape
    x0 = y0 = 0
    if crop_to_bbox and inst.extra.get("bbox") is not None:
        xmin, ymin, xmax, ymax = (float(v) for v in inst.extra["bbox"])
        x0, y0 = max(0, math.floor(xmin)), max(0, math.floor(ymin))
        x1, y1 = min(W, math.ceil(xmax)), min(H, math.ceil(ymax))
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise InvalidInputError(f"bbox {inst.extra['bbox']} of {_where(inst, i)} is empty inside the "
                                    f"{W}x{H} image.")
        image = image[:, y0:y1, x0:x1]
        pos = pos - pos.new_tensor([x0, y0])
        _, H, W = image.shape
    S = image_size
    image = F.interpolate(image.unsqueeze(0), size=(S, S), mode="bilinear", align_corners=False,
                          antialias=(H > S or W > S))[0].clamp_(0.0, 1.0)
    scale = (S / W, S / H)
    return LoadedImage(image, pos * pos.new_tensor(scale), (float(x0), float(y0)), scale)


class ImageFeatureExtractor:
    r"""Replace (or extend) each instance's ``x`` by backbone descriptors sampled at its keypoints.

    Args:
        backbone: a module ``backbone(images [B, 3, S, S] in [0, 1], pos [N, 2], batch [N]) -> [N, F]``
            with pixel coordinates of the resized images, e.g.
            :class:`pyg_ssgm.nn.backbone.VGG16Features` (``F = 1024``). It is moved to ``device``
            (in place) and run in ``eval()`` mode under ``torch.no_grad()``.
        image_size: side ``S`` of the square every image is resized to (bilinear, antialiased);
            a positive multiple of 16 (VGG16 divides by 16). 256 as in DGMC.
        batch_size: images per backbone call.
        device: where the backbone runs; features are returned on the CPU.
        concat_x: ``False`` (default): the new ``x`` is the descriptor alone, whatever the
            instance had (a stale or different-width ``x`` must not silently mix with it).
            ``True``: the new ``x`` is ``[old x | descriptor]``; every instance must then have an
            ``x`` (else :class:`~pyg_ssgm.errors.InvalidInputError`), so all widths agree.
        crop_to_bbox: crop each image to ``extra["bbox"] = (xmin, ymin, xmax, ymax)`` (the readers
            of Pascal VOC, SPair and CUB record it) before resizing, as PyG's Pascal VOC does;
            instances without a box use the whole image.
        progress: show a tqdm bar; ``None`` shows it for more than 64 instances.

    Keypoints are in pixels of the original image (``(0, 0)`` its top-left corner, see
    :mod:`pyg_ssgm.nn.backbone`); they are mapped to the resized image as
    ``x * S / W, y * S / H`` (after subtracting the box corner when cropping). The returned
    instances are new objects: same ``pos``, ``names``, ``image``..., new ``x``.

    Images: a path (decoded with Pillow, the ``images`` extra), a PIL image, or an
    ``H x W [x C]`` array (uint8 0-255, or float in ``[0, 1]``; grey is repeated, alpha dropped).
    """

    def __init__(self, backbone: nn.Module, image_size: int = 256, batch_size: int = 8,
                 device: Union[str, torch.device] = "cpu", concat_x: bool = False,
                 crop_to_bbox: bool = False, progress: Optional[bool] = None):
        if not isinstance(image_size, int) or image_size < 16 or image_size % 16:
            raise ConfigError(f"image_size must be a positive multiple of 16, got {image_size!r}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
        self.device = torch.device(device)
        self.backbone = backbone.to(self.device)
        self.image_size = image_size
        self.batch_size = batch_size
        self.concat_x = concat_x
        self.crop_to_bbox = crop_to_bbox
        self.progress = progress

    # -- loading ---------------------------------------------------------------------------
    def load_image(self, inst: KeypointInstance, i: int = 0) -> Tuple[Tensor, Tensor]:
        r"""``(image [3, S, S] in [0, 1], pos [N, 2] in pixels of that image)`` for one instance."""
        loaded = load_instance_image(inst, self.image_size, self.crop_to_bbox, i)
        return loaded.image, loaded.pos

    # -- extraction ------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, instances: Sequence[KeypointInstance]) -> List[KeypointInstance]:
        r"""New instances whose ``x`` holds the descriptors (``[N, F]``, float, CPU)."""
        from tqdm.auto import tqdm

        instances = list(instances)
        for i, inst in enumerate(instances):  # fail before any heavy work
            if inst.image is None:
                raise InvalidInputError(f"{_where(inst, i)} has no image; image features need one.")
            if self.concat_x and inst.x is None:
                raise InvalidInputError(f"concat_x=True but {_where(inst, i)} has no x to extend.")
        show = len(instances) > 64 if self.progress is None else bool(self.progress)
        was_training = self.backbone.training
        self.backbone.eval()
        out: List[KeypointInstance] = []
        try:
            with tqdm(total=len(instances), desc="image features", unit="img", disable=not show,
                      leave=False) as bar:
                for start in range(0, len(instances), self.batch_size):
                    chunk = instances[start:start + self.batch_size]
                    loaded = [self.load_image(inst, start + k) for k, inst in enumerate(chunk)]
                    images = torch.stack([im for im, _ in loaded]).to(self.device)
                    pos = torch.cat([p for _, p in loaded]).to(self.device)
                    batch = torch.cat([torch.full((p.size(0),), k, dtype=torch.long) for k, (_, p) in
                                       enumerate(loaded)]).to(self.device)
                    feats = self.backbone(images, pos, batch).detach().to("cpu", torch.get_default_dtype())
                    if feats.dim() != 2 or feats.size(0) != pos.size(0):
                        raise InvalidInputError(
                            f"the backbone returned shape {tuple(feats.shape)} for {pos.size(0)} keypoints; "
                            "it must return [N, F], one row per keypoint."
                        )
                    for inst, x in zip(chunk, feats.split([p.size(0) for _, p in loaded])):
                        if self.concat_x:
                            x = torch.cat([inst.x.to(x.dtype), x], dim=-1)
                        out.append(dataclasses.replace(inst, x=x, extra=dict(inst.extra)))
                    bar.update(len(chunk))
        finally:
            self.backbone.train(was_training)
        return out


__all__ = ["ImageFeatureExtractor", "LoadedImage", "decode_image", "load_instance_image"]
