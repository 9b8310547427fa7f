r"""Augmented *views* of an image together with its keypoints.

The two sides of a self-supervised training pair come from one image. If both sides saw the same
pixels, image features would make the matching trivial (the same descriptor at the same point),
and the model would learn nothing that transfers to two *different* instances. A view changes the
image the way another photograph of the object would: a projective warp (viewpoint) and
photometric changes (light, camera), with the keypoints moved by the same warp, so their
descriptors are sampled where their image content went.

Coordinates follow :mod:`pyg_ssgm.nn.backbone`: ``(x, y)`` continuous pixel coordinates,
``(0, 0)`` the top-left image corner, pixel ``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)``,
so its centre is ``(j + 0.5, i + 0.5)``.

The warp of a ``W x H`` image is the homography, in homogeneous pixel coordinates,

.. math::
    \mathbf{H} = N^{-1} G N, \qquad
    N = \begin{pmatrix} 1/L & 0 & -c_x/L \\ 0 & 1/L & -c_y/L \\ 0 & 0 & 1 \end{pmatrix}, \qquad
    G = \begin{pmatrix} A & t \\ v^\top & 1 \end{pmatrix},

with :math:`c = (W/2, H/2)` the image centre and :math:`L = \max(W, H)/2`, so :math:`N` maps the
image into :math:`[-1, 1]^2` (its longer side exactly). In those normalised units
:math:`A = R(\theta)\,\mathrm{Sh}(\gamma)\,\mathrm{diag}(s\sqrt{a}, s/\sqrt{a})` (rotation, shear,
(an)isotropic scale about the centre), :math:`t` a translation and :math:`v` the perspective
coefficients: a point :math:`q` goes to :math:`(A q + t) / (1 + v^\top q)`. Because
:math:`|q_x|, |q_y| \le 1` inside the image, :math:`|v^\top q| \le 2 \max|v_i|`, and keeping the
perspective below 0.5 keeps the whole input image in front of the horizon.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError, InvalidInputError

#: ``grid_sample`` padding modes a view may use outside the input image.
PADDING_MODES = ("zeros", "border", "reflection")
#: ITU-R 601 luma weights (torchvision's ``rgb_to_grayscale``).
_LUMA = (0.299, 0.587, 0.114)


def _check_image(image: Tensor) -> None:
    if not isinstance(image, Tensor) or image.dim() != 3 or image.size(0) != 3:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise InvalidInputError(f"image must be a float [3, H, W] tensor in [0, 1], got {shape}.")
    if not image.is_floating_point():
        raise InvalidInputError(f"image must be a float tensor in [0, 1], got dtype {image.dtype}; "
                                "divide uint8 images by 255.")


def _grey(image: Tensor) -> Tensor:
    r, g, b = image.unbind(0)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(0)


def gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    r"""Separable Gaussian blur of ``[C, H, W]`` with standard deviation ``sigma`` pixels.

    The kernel :math:`k_d \propto \exp(-d^2 / 2\sigma^2)`, :math:`|d| \le \lceil 3\sigma \rceil`,
    sums to one; borders are reflected so the image does not darken at its edges.
    """
    if sigma <= 0:
        return image
    radius = min(int(math.ceil(3.0 * sigma)), image.size(-1) - 1, image.size(-2) - 1)
    if radius < 1:
        return image
    d = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    k = torch.exp(-0.5 * (d / sigma) ** 2)
    k = k / k.sum()
    C = image.size(0)
    x = F.pad(image.unsqueeze(0), (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)  # along x
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)  # along y
    return x[0]


@dataclass
class View:
    r"""One sampled view: a warp and photometric changes, applied to an image and its keypoints.

    Args:
        H: ``[3, 3]`` homography (float64) from input pixel coordinates ``(x, y)`` to output
            pixel coordinates (see the module docstring): :math:`p' \sim \mathbf{H} (x, y, 1)^\top`.
        brightness: factor :math:`b` (1 = unchanged): :math:`I \leftarrow b I`.
        contrast: factor :math:`c`: :math:`I \leftarrow \mu + c (I - \mu)`, :math:`\mu` the mean grey value.
        saturation: factor :math:`s`: :math:`I \leftarrow g + s (I - g)`, :math:`g` the grey image.
        blur: Gaussian standard deviation in output pixels (0 = none).
        padding: what the warp shows outside the input image: ``"zeros"`` (black), ``"border"``
            (edge pixels repeated) or ``"reflection"``.

    The changes are applied in the order warp, blur (optics), brightness, contrast, saturation,
    each followed by clamping to ``[0, 1]`` (as torchvision's colour jitter does).
    """

    H: Tensor
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    blur: float = 0.0
    padding: str = "zeros"

    def __post_init__(self) -> None:
        self.H = torch.as_tensor(self.H, dtype=torch.float64)
        if self.H.shape != (3, 3) or not torch.isfinite(self.H).all():
            raise InvalidInputError(f"View.H must be a finite [3, 3] homography, got {tuple(self.H.shape)}.")
        if self.padding not in PADDING_MODES:
            raise ConfigError(f"View.padding must be one of {PADDING_MODES}, got {self.padding!r}.")

    @classmethod
    def identity(cls) -> "View":
        """The view that changes nothing."""
        return cls(torch.eye(3, dtype=torch.float64))

    @property
    def is_identity_warp(self) -> bool:
        return bool(torch.equal(self.H, torch.eye(3, dtype=torch.float64)))

    def apply_points(self, pos: Tensor) -> Tensor:
        r"""Keypoints ``[N, 2]`` of the input image to the output image:
        :math:`(x', y') = \big((\mathbf{H} \tilde p)_1, (\mathbf{H} \tilde p)_2\big) / (\mathbf{H} \tilde p)_3`,
        :math:`\tilde p = (x, y, 1)`. Returns the dtype of ``pos``."""
        if pos.dim() != 2 or pos.size(-1) != 2:
            raise InvalidInputError(f"pos must have shape [N, 2], got {tuple(pos.shape)}.")
        hom = torch.cat([pos.to(torch.float64), pos.new_ones(pos.size(0), 1, dtype=torch.float64)], -1)
        out = hom @ self.H.to(pos.device).T
        return (out[:, :2] / out[:, 2:]).to(pos.dtype)

    def warp_image(self, image: Tensor) -> Tensor:
        r"""Warp ``[C, H, W]`` (same output size) without the photometric changes.

        Output pixel ``(i, j)`` takes the input's bilinear value at
        :math:`\mathbf{H}^{-1} (j + \tfrac12, i + \tfrac12, 1)^\top` (after the division). For
        ``grid_sample`` with ``align_corners=False`` the image borders are :math:`\pm 1`, so a pixel
        coordinate :math:`p` becomes :math:`2 p / \text{size} - 1`.
        """
        if self.is_identity_warp:
            return image
        C, h, w = image.shape
        ys = torch.arange(h, dtype=torch.float64, device=image.device) + 0.5
        xs = torch.arange(w, dtype=torch.float64, device=image.device) + 0.5
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        centres = torch.stack([gx, gy, torch.ones_like(gx)], -1).view(-1, 3)
        src = centres @ torch.linalg.inv(self.H).to(image.device).T
        # Output pixels whose pre-image lies beyond the horizon (w <= 0) have no input pixel:
        # send them far outside the image so the padding decides their value.
        behind = src[:, 2] <= 1e-9
        xy = src[:, :2] / src[:, 2:].clamp(min=1e-9)
        grid = xy * xy.new_tensor([2.0 / w, 2.0 / h]) - 1.0
        grid[behind] = -4.0
        grid = grid.clamp(-4.0, 4.0)  # far-away points: outside all the same, and no overflow
        out = F.grid_sample(image.unsqueeze(0), grid.view(1, h, w, 2).to(image.dtype), mode="bilinear",
                            padding_mode=self.padding, align_corners=False)
        return out[0]

    def apply_image(self, image: Tensor) -> Tensor:
        r"""The view of ``image`` (float ``[3, H, W]`` in ``[0, 1]``): warp, then photometric changes,
        clamped to ``[0, 1]``. Deterministic: the randomness is all in :meth:`ViewAugmentation.sample`."""
        _check_image(image)
        out = gaussian_blur(self.warp_image(image), self.blur).clamp(0.0, 1.0)
        if self.brightness != 1.0:
            out = (out * self.brightness).clamp(0.0, 1.0)
        if self.contrast != 1.0:
            mean = _grey(out).mean()
            out = (mean + self.contrast * (out - mean)).clamp(0.0, 1.0)
        if self.saturation != 1.0:
            grey = _grey(out)
            out = (grey + self.saturation * (out - grey)).clamp(0.0, 1.0)
        return out


@dataclass
class ViewAugmentation:
    r"""How to draw random :class:`View`\ s of an image and its keypoints.

    Geometric (see the module docstring for :math:`G`; every part is uniform in its range and
    0, or ``(1, 1)`` for the scale, switches it off):

    Args:
        rotation: maximum rotation :math:`|\theta|` in degrees.
        scale: range ``(low, high)`` of the isotropic scale :math:`s`.
        anisotropy: maximum :math:`|\log a|`, the log-ratio of the two axis scales.
        shear: maximum shear factor :math:`|\gamma|`.
        perspective: maximum :math:`|v_i|`, relative to the half-size of the image (< 0.5, so
            the image stays in front of the horizon).
        translation: maximum shift, as a fraction of the image's width (x) and height (y).
        brightness: the brightness factor is uniform in ``[1 - brightness, 1 + brightness]``.
        contrast: same for the contrast factor.
        saturation: same for the saturation factor.
        blur: maximum Gaussian sigma in pixels (uniform in ``[0, blur]``).
        max_tries: warps drawn until every keypoint that was inside the image stays inside it;
            if none of ``max_tries`` does, the view keeps the image geometry (identity warp) and
            only changes its colours, so no keypoint is ever lost.
        padding: what a warp shows outside the input image (see :class:`View`).
    """

    rotation: float = 15.0
    scale: Tuple[float, float] = (0.8, 1.2)
    anisotropy: float = 0.15
    shear: float = 0.15
    perspective: float = 0.1
    translation: float = 0.1
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    blur: float = 1.5
    max_tries: int = 10
    padding: str = "zeros"

    def __post_init__(self) -> None:
        try:
            scale = tuple(float(v) for v in self.scale)
        except (TypeError, ValueError):
            scale = ()
        if len(scale) != 2 or not all(math.isfinite(v) for v in scale) or not 0 < scale[0] <= scale[1]:
            raise ConfigError(f"ViewAugmentation.scale must be a range (low, high) with 0 < low <= high, "
                              f"got {self.scale!r}.")
        self.scale = scale
        # name -> (upper bound, bound allowed): factors must stay > 0, the horizon outside the image.
        limits = {"rotation": (180.0, True), "anisotropy": (math.inf, True), "shear": (math.inf, True),
                  "translation": (math.inf, True), "perspective": (0.5, False), "brightness": (1.0, False),
                  "contrast": (1.0, False), "saturation": (1.0, False), "blur": (math.inf, True)}
        for name, (top, closed) in limits.items():
            value = getattr(self, name)
            ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) \
                and 0 <= value and (value <= top if closed else value < top)
            if not ok:
                bound = ">= 0" if math.isinf(top) else f"in [0, {top:g}{']' if closed else ')'}"
                raise ConfigError(f"ViewAugmentation.{name} must be a finite number {bound} (0 switches it off), "
                                  f"got {value!r}.")
            setattr(self, name, float(value))
        if isinstance(self.max_tries, bool) or not isinstance(self.max_tries, int) or self.max_tries < 1:
            raise ConfigError(f"ViewAugmentation.max_tries must be an integer >= 1, got {self.max_tries!r}.")
        if self.padding not in PADDING_MODES:
            raise ConfigError(f"ViewAugmentation.padding must be one of {PADDING_MODES}, got {self.padding!r}.")

    @classmethod
    def identity(cls) -> "ViewAugmentation":
        """The augmentation whose views change nothing."""
        return cls(rotation=0.0, scale=(1.0, 1.0), anisotropy=0.0, shear=0.0, perspective=0.0, translation=0.0,
                   brightness=0.0, contrast=0.0, saturation=0.0, blur=0.0)

    def to_dict(self) -> dict:
        """JSON-friendly settings (``from_dict`` / ``ViewAugmentation(**d)`` reads them back)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["scale"] = list(self.scale)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ViewAugmentation":
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown ViewAugmentation settings {unknown}; known: {[f.name for f in fields(cls)]}.")
        return cls(**d)

    @property
    def is_geometric(self) -> bool:
        return any((self.rotation, self.anisotropy, self.shear, self.perspective, self.translation,
                    self.scale != (1.0, 1.0)))

    def _draw_warp(self, height: int, width: int, generator: Optional[torch.Generator]) -> Tensor:
        r""":math:`\mathbf{H} = N^{-1} G N` from 8 uniform numbers (always 8, so a generator's
        stream does not depend on which parts are switched on)."""
        u = torch.rand(8, generator=generator, dtype=torch.float64) * 2 - 1  # uniform in [-1, 1]
        theta = math.radians(self.rotation * u[0].item())
        lo, hi = self.scale
        s = lo + (hi - lo) * (u[1].item() + 1) / 2
        a = math.exp(self.anisotropy * u[2].item())
        g = self.shear * u[3].item()
        rot = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]],
                           dtype=torch.float64)
        shear = torch.tensor([[1.0, g], [0.0, 1.0]], dtype=torch.float64)
        A = rot @ shear @ torch.diag(torch.tensor([s * math.sqrt(a), s / math.sqrt(a)], dtype=torch.float64))
        L = max(height, width) / 2
        t = self.translation * torch.tensor([width, height], dtype=torch.float64) * u[4:6] / L
        v = self.perspective * u[6:8]
        G = torch.eye(3, dtype=torch.float64)
        G[:2, :2], G[:2, 2], G[2, :2] = A, t, v
        N = torch.tensor([[1 / L, 0, -width / 2 / L], [0, 1 / L, -height / 2 / L], [0, 0, 1]], dtype=torch.float64)
        return torch.linalg.inv(N) @ G @ N

    def sample(self, height: int, width: int, pos: Optional[Tensor] = None,
               generator: Optional[torch.Generator] = None) -> View:
        r"""Draw one view of a ``width x height`` image whose keypoints are ``pos [N, 2]`` (pixels).

        Deterministic given ``generator``'s state. Warps are redrawn (up to ``max_tries``) until
        every keypoint inside :math:`[0, W] \times [0, H]` maps inside it again; points already
        outside the image are not constrained (no warp could be asked to bring them in).
        """
        if height < 1 or width < 1:
            raise InvalidInputError(f"image size must be positive, got {height}x{width}.")
        pos = torch.zeros(0, 2) if pos is None else pos
        if pos.dim() != 2 or pos.size(-1) != 2:
            raise InvalidInputError(f"pos must have shape [N, 2], got {tuple(pos.shape)}.")
        pos = pos.detach().cpu().to(torch.float64)
        size = torch.tensor([width, height], dtype=torch.float64)
        inside = ((pos >= 0) & (pos <= size)).all(-1)
        H = torch.eye(3, dtype=torch.float64)
        if self.is_geometric:
            for _ in range(self.max_tries):
                candidate = self._draw_warp(height, width, generator)
                moved = View(candidate).apply_points(pos[inside])
                if ((moved >= 0) & (moved <= size)).all():
                    H = candidate
                    break
        u = torch.rand(4, generator=generator, dtype=torch.float64)
        return View(
            H,
            brightness=1.0 + self.brightness * (2 * u[0].item() - 1),
            contrast=1.0 + self.contrast * (2 * u[1].item() - 1),
            saturation=1.0 + self.saturation * (2 * u[2].item() - 1),
            blur=self.blur * u[3].item(),
            padding=self.padding,
        )


__all__ = ["View", "ViewAugmentation", "gaussian_blur", "PADDING_MODES"]
