r"""Loading a keypoint instance's image the way an image backbone sees it.

:func:`load_instance_image` does the image side of what PyG's ``PascalVOCKeypoints`` /
``WILLOWObjectClass`` pre-processing (DGMC) and BB-GM do: decode the image, optionally crop it
to the object box, resize it to a fixed square, and move the keypoints into that square's
pixels. :func:`pyg_ssgm.features.attach_features` runs the backbone on it, samples the feature
maps at the keypoints and caches the descriptors.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import DatasetNotFoundError, InvalidInputError, require
from .instance import KeypointInstance, describe_instance

#: How far a keypoint may lie outside its image, as a share of the image's width (for x) or
#: height (for y): annotators click a little past the border, and such a point takes the
#: feature at the border (``padding_mode="border"``). Farther out, the point cannot be where the
#: annotation says, and is refused rather than sampled at the border.
OUTSIDE_TOLERANCE = 0.1


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
    dropped). ``i`` only names the instance in error messages when it has no ``id``. A file that
    declares more pixels than Pillow's ``PIL.Image.MAX_IMAGE_PIXELS`` (a decompression bomb: a
    few bytes that would decode to gigabytes) is refused before it is decoded.
    """
    where = describe_instance(inst, i)
    img = inst.image
    if img is None:
        raise InvalidInputError(
            f"{where} has no image; image features need one (read the dataset with images, "
            "or keep the image paths the readers record)."
        )
    if isinstance(img, (str, bytes)) or hasattr(img, "__fspath__"):
        pil = require("PIL.Image", "images")
        try:
            with warnings.catch_warnings():  # Pillow only warns between the limit and twice the limit
                warnings.simplefilter("error", pil.DecompressionBombWarning)
                with pil.open(img) as opened:
                    arr = np.asarray(opened.convert("RGB"))
        except FileNotFoundError as e:
            raise DatasetNotFoundError(f"image file '{img}' of {where} does not exist.") from e
        except (pil.DecompressionBombError, pil.DecompressionBombWarning) as e:
            raise InvalidInputError(
                f"image '{img}' of {where} is too large to decode safely ({e}). Resize it, or, if you trust "
                "the file, raise PIL.Image.MAX_IMAGE_PIXELS before running.") from None
        except OSError as e:
            raise InvalidInputError(f"cannot decode image '{img}' of {where} ({e}).") from e
    elif hasattr(img, "convert") and hasattr(img, "size") and not isinstance(img, (np.ndarray, Tensor)):
        arr = np.asarray(img.convert("RGB"))  # a PIL image
    else:
        arr = img.detach().cpu().numpy() if isinstance(img, Tensor) else np.asarray(img)
    return _array_to_tensor(arr, where)


def check_inside(inst: KeypointInstance, width: int, height: int, i: int = 0) -> None:
    """Refuse a keypoint farther outside the ``width x height`` image than
    :data:`OUTSIDE_TOLERANCE` allows, naming the instance and the point."""
    size = inst.pos.new_tensor([width, height])
    outside = torch.maximum(-inst.pos, inst.pos - size).clamp(min=0) / size  # [N, 2] in image sides
    bad = (outside > OUTSIDE_TOLERANCE).any(dim=1).nonzero().flatten()
    if bad.numel():
        k = int(bad[0])
        x, y = inst.pos[k].tolist()
        raise InvalidInputError(
            f"keypoint {inst.names[k]!r} (#{k}) of {describe_instance(inst, i)} is at ({x:.6g}, {y:.6g}), outside its "
            f"{width}x{height} image by more than {OUTSIDE_TOLERANCE:.0%} of its size ({bad.numel()} such point(s)): "
            "its image feature would be the border's. Fix the annotation (x, y in the image's pixels) or drop the "
            "point.")


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
    instances without a box use the whole image. A keypoint far outside the image is refused
    (:func:`check_inside`).
    """
    image = decode_image(inst, i)
    pos = inst.pos.to(torch.float32)
    _, H, W = image.shape
    check_inside(inst, W, H, i)
    x0 = y0 = 0
    if crop_to_bbox and inst.extra.get("bbox") is not None:
        xmin, ymin, xmax, ymax = (float(v) for v in inst.extra["bbox"])
        x0, y0 = max(0, math.floor(xmin)), max(0, math.floor(ymin))
        x1, y1 = min(W, math.ceil(xmax)), min(H, math.ceil(ymax))
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise InvalidInputError(f"bbox {inst.extra['bbox']} of {describe_instance(inst, i)} is empty "
                                    f"inside the {W}x{H} image.")
        image = image[:, y0:y1, x0:x1]
        pos = pos - pos.new_tensor([x0, y0])
        _, H, W = image.shape
    S = image_size
    image = F.interpolate(image.unsqueeze(0), size=(S, S), mode="bilinear", align_corners=False,
                          antialias=(H > S or W > S))[0].clamp_(0.0, 1.0)
    scale = (S / W, S / H)
    return LoadedImage(image, pos * pos.new_tensor(scale), (float(x0), float(y0)), scale)


__all__ = ["LoadedImage", "decode_image", "describe_instance", "load_instance_image", "check_inside",
           "OUTSIDE_TOLERANCE"]
