r"""Image features of keypoint instances, computed once per image and view, cached on disk.

:func:`attach_features` gives each instance the backbone descriptors of its keypoints in the
original image (``x``) and in ``num_views`` augmented views of it (``extra["views"]``, see
:mod:`pyg_ssgm.data.views`), so the two sides of a self-supervised pair can see the object the
way two photographs would. A backbone pass is the expensive part of training on images, and the
views are fixed per image (view ``v`` is a pure function of the seed, the image and ``v``), so
every (image, view) is computed once and stored as one small file
(:mod:`pyg_ssgm.feature_cache`), keyed by:

* *backbone hash*: backbone name, stages, weights (the SHA-256 of the file), image size, crop,
  cache format;
* *image key*: dataset name, the image's content (the SHA-256 of its file, or of the pixels of an
  in-memory image), the keypoint coordinates and, when cropping, the box;
* *view key*: the view settings and the seed; the key the views are seeded from (the image file's
  path, size and mtime: :func:`~pyg_ssgm.feature_cache.view_seed_key`); ``v`` the view index.

Changing any of them computes new features; the un-augmented ``x`` does not depend on the view
settings or the seed, so changing those recomputes the views only. Files are written atomically
(:func:`pyg_ssgm.files.atomic_write`: a temporary file, then :func:`os.replace`) and read with
``torch.load(weights_only=True)``; a file that cannot be read, does not hold what it should or
does not match its digest is recomputed, with a warning.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Type, Union

import numpy as np
import torch
from torch import Tensor, nn

from .errors import ConfigError, InvalidInputError
from .feature_cache import CACHE_FORMAT, FeatureStore, Plan, digest, file_digest, image_identity, view_seed
from .nn.backbone import ImageBackbone, VGG16Features, default_vgg16_path
from .nn.efficientnet import EfficientNetLite0Features, default_efficientnet_lite0_path
from .data.image_features import load_instance_image
from .data.instance import KeypointInstance, describe_instance
from .data.views import ViewAugmentation
from .progress import progress_bar



class BackboneSpec(NamedTuple):
    """A backbone :class:`FeatureConfig` can name: its class and where its weights are by default."""

    cls: Type[ImageBackbone]
    default_weights: Callable[[], Path]


#: Backbones by name (read-only).
BACKBONES: Mapping[str, BackboneSpec] = MappingProxyType({
    "efficientnet_lite0": BackboneSpec(EfficientNetLite0Features, default_efficientnet_lite0_path),
    "vgg16": BackboneSpec(VGG16Features, default_vgg16_path),
})


@dataclass
class FeatureConfig:
    r"""Which image features to compute, and where to cache them.

    Args:
        backbone: ``"efficientnet_lite0"`` (default, 192 values) or ``"vgg16"`` (1024); see
            :data:`BACKBONES`. Geometry-only training simply uses no ``FeatureConfig``.
        weights: path of the weights file; ``None`` takes the backbone's default (the installed
            package for EfficientNet-Lite0, the torch hub cache for VGG16, see
            :func:`~pyg_ssgm.nn.backbone.default_vgg16_path`); ``"random"`` for an untrained
            network, seeded with ``seed`` (tests only).
        stages: backbone stages to sample (``None``: the backbone's ``DEFAULT_STAGES``).
        image_size: side ``S`` of the square every image (or box) is resized to, a multiple of
            16; or several sides, the first being the one the image is loaded at and its views
            drawn on: the backbone also sees the image resized to the others, and each stage's
            descriptor is the normalised sum over the sizes (see
            :class:`~pyg_ssgm.nn.backbone.ImageBackbone`). The default ``(384, 256)`` was chosen
            on Willow's training split (``python benchmarks/willow_stages.py``: Hungarian
            accuracy of the raw descriptors 0.865, against 0.817 at 256 alone and 0.844 at 384
            alone).
        num_views: augmented views per image (0: the original only).
        view: how views are drawn (:class:`~pyg_ssgm.data.views.ViewAugmentation`).
        crop_to_bbox: crop each image to ``extra["bbox"] = (xmin, ymin, xmax, ymax)`` (the
            readers of Pascal VOC, SPair and CUB record it) before resizing, as PyG's Pascal VOC
            does (:func:`~pyg_ssgm.data.image_features.load_instance_image`); instances without
            a box use the whole image.
        seed: seed of the views (and of ``"random"`` weights).
        cache_dir: cache folder; ``None``: ``$PYG_SSGM_CACHE``, else ``~/.cache/pyg_ssgm/features``.
        batch_size: images per backbone call.
        device: where the backbone runs; features are returned on the CPU.

    ``cache_dir``, ``batch_size`` and ``device`` say where and how fast, not what: they are not
    part of the features' identity (:meth:`identity`), nor is ``num_views`` (view ``v`` is the
    same whatever the number of views).
    """

    backbone: str = "efficientnet_lite0"
    weights: Optional[str] = None
    stages: Optional[Tuple[str, ...]] = None
    image_size: Union[int, Tuple[int, ...]] = (384, 256)
    num_views: int = 4
    view: ViewAugmentation = field(default_factory=ViewAugmentation)
    crop_to_bbox: bool = False
    seed: int = 0
    cache_dir: Optional[str] = None
    batch_size: int = 16
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {self.backbone!r}; known: {sorted(BACKBONES)} "
                              "(for geometry-only features use no FeatureConfig).")
        if self.weights is not None:
            if not isinstance(self.weights, (str, os.PathLike)):
                raise ConfigError(f"FeatureConfig.weights must be a path, 'random' or None, got {self.weights!r}.")
            self.weights = os.fspath(self.weights)
        cls = self.backbone_class
        if self.stages is not None:
            stages = (self.stages,) if isinstance(self.stages, str) else tuple(self.stages)
            unknown = [s for s in stages if s not in cls.STAGES]
            if not stages or unknown:
                raise ConfigError(f"stages of {self.backbone} must be a non-empty subset of {list(cls.STAGES)}, "
                                  f"got {list(stages)}.")
            self.stages = stages
        sizes = tuple(self.image_size) if isinstance(self.image_size, (list, tuple)) else (self.image_size,)
        low = max(16, cls.MIN_SIZE)
        if not sizes or any(not _is_int(v) or v % 16 or v < low for v in sizes) or len(set(sizes)) < len(sizes):
            raise ConfigError(f"image_size must be a multiple of 16 and at least {low} for {self.backbone}, or a "
                              f"list of such sizes without repeats, got {self.image_size!r}.")
        sizes = tuple(int(v) for v in sizes)
        # one size stays a plain integer, as runs saved before several sizes existed store it
        self.image_size = sizes[0] if len(sizes) == 1 else sizes
        for name, low in (("num_views", 0), ("batch_size", 1), ("seed", 0)):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ConfigError(f"FeatureConfig.{name} must be an integer >= {low}, got {value!r}.")
        if isinstance(self.view, dict):
            self.view = ViewAugmentation.from_dict(self.view)
        if not isinstance(self.view, ViewAugmentation):
            raise ConfigError(f"FeatureConfig.view must be a ViewAugmentation (or its dict), got {self.view!r}.")
        if not isinstance(self.crop_to_bbox, bool):
            raise ConfigError(f"FeatureConfig.crop_to_bbox must be True or False, got {self.crop_to_bbox!r}.")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as e:
            raise ConfigError(f"FeatureConfig.device {self.device!r} is not a torch device ({e}).") from e

    # -- what the features are -----------------------------------------------------------
    @property
    def backbone_class(self) -> Type[ImageBackbone]:
        return BACKBONES[self.backbone].cls

    @property
    def resolved_stages(self) -> Tuple[str, ...]:
        """The stages sampled, in network order (``None`` resolved to the default)."""
        chosen = self.backbone_class.DEFAULT_STAGES if self.stages is None else self.stages
        return tuple(s for s in self.backbone_class.STAGES if s in chosen)

    @property
    def sizes(self) -> Tuple[int, ...]:
        """The image sizes, the one the image is loaded at first."""
        return self.image_size if isinstance(self.image_size, tuple) else (self.image_size,)

    @property
    def _image_size_json(self) -> Any:
        """``image_size`` as JSON holds it: one size an integer, several a list."""
        return self.image_size if isinstance(self.image_size, int) else list(self.image_size)

    @property
    def out_channels(self) -> int:
        """Width ``F`` of the descriptors (the chosen stages' channels summed)."""
        return sum(self.backbone_class.STAGES[s] for s in self.resolved_stages)

    def weights_path(self) -> Optional[Path]:
        """The weights file used (``None`` for random weights)."""
        if self.weights == "random":
            return None
        if self.weights is None:
            return BACKBONES[self.backbone].default_weights()
        return Path(os.path.expanduser(self.weights))

    def identity(self) -> Dict[str, Any]:
        r"""What the features of an image depend on, beyond the image, its keypoints and the
        view: the backbone and its weights (the SHA-256 of the file's bytes), stages, image size,
        crop. Raises the backbone's :class:`~pyg_ssgm.errors.CheckpointError` if the weights are
        missing."""
        path = self.weights_path()
        if path is None:
            weights: Any = ["random", self.seed]
        else:
            if not path.is_file():
                build_backbone(self)  # raises the backbone's own error, which says where to get the file
            weights = ["sha256", file_digest(path)]
        return {"format": CACHE_FORMAT, "backbone": self.backbone, "weights": weights,
                "stages": list(self.resolved_stages), "image_size": self._image_size_json,
                "crop_to_bbox": self.crop_to_bbox}

    def view_key(self) -> str:
        """Hash of what the views depend on beyond the image: the view settings and the seed."""
        return digest({"view": self.view.to_dict(), "seed": self.seed})[:16]

    def cache_path(self) -> Path:
        """The cache folder (``cache_dir``, ``$PYG_SSGM_CACHE``, or ``~/.cache/pyg_ssgm/features``)."""
        root = self.cache_dir or os.environ.get("PYG_SSGM_CACHE") or "~/.cache/pyg_ssgm/features"
        return Path(os.path.expanduser(root))

    # -- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly settings, for checkpoints (:meth:`from_dict` reads them back)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["stages"] = None if self.stages is None else list(self.stages)
        d["image_size"] = self._image_size_json
        d["view"] = self.view.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FeatureConfig":
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"unknown FeatureConfig settings {unknown}; known: {known}.")
        d = dict(d)
        if d.get("stages") is not None:
            d["stages"] = tuple(d["stages"])
        if isinstance(d.get("view"), Mapping):
            d["view"] = ViewAugmentation.from_dict(dict(d["view"]))
        return cls(**d)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def build_backbone(cfg: FeatureConfig) -> ImageBackbone:
    r"""The frozen backbone ``cfg`` names, on ``cfg.device``, in eval mode.

    Raises :class:`~pyg_ssgm.errors.ConfigError` for an unknown name (listing the known ones),
    :class:`~pyg_ssgm.errors.CheckpointError` when the weights file is missing (saying where to
    get it) and :class:`~pyg_ssgm.errors.MissingExtraError` when EfficientNet's package is not
    installed. ``weights="random"`` initialises the network from ``cfg.seed``, so the features
    it gives can be cached like any other.
    """
    if cfg.backbone not in BACKBONES:
        raise ConfigError(f"unknown backbone {cfg.backbone!r}; known: {sorted(BACKBONES)}.")
    cls = BACKBONES[cfg.backbone].cls
    if cfg.weights == "random":
        with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's RNG
            torch.manual_seed(cfg.seed)
            net = cls(weights="random", stages=cfg.resolved_stages)
    else:
        net = cls(weights=cfg.weights, stages=cfg.resolved_stages)
    return net.to(torch.device(cfg.device)).eval()


class _Job(NamedTuple):
    plan: int               # index of the plan (one per list of instances)
    inst: int               # index of the instance in its plan
    name: str               # cache file name
    image: Tensor           # [3, S, S] the (warped) image
    pos: Tensor             # [N, 2] keypoints in pixels of ``image``
    pos_out: Optional[Tensor]  # [N, 2] the same in the original image's pixels (views only)


def _compute(plans: Sequence[Plan], cfg: FeatureConfig, store: FeatureStore, backbone: Optional[nn.Module],
             progress: bool) -> None:
    """Compute and store every missing entry of ``plans`` with one backbone, under one progress bar
    ("image features", in images) shown only if something is missing. A backbone batch holds the
    images of one plan only, as if each plan were computed alone."""
    todo = [(k, i) for k, plan in enumerate(plans) for i in plan.todo]
    if not todo:
        return
    net = backbone
    S, *others = cfg.sizes
    extra = {"sizes": others} if others else {}  # a user's own backbone need not know the keyword
    pending: List[_Job] = []

    def flush() -> None:
        nonlocal net
        if not pending:
            return
        if net is None:
            net = build_backbone(cfg)
        images = torch.stack([job.image for job in pending])
        pos = torch.cat([job.pos for job in pending])
        batch = torch.cat([torch.full((job.pos.size(0),), k, dtype=torch.long) for k, job in enumerate(pending)])
        device = next((p.device for p in net.parameters()), torch.device(cfg.device))
        feats = net(images.to(device), pos.to(device), batch.to(device), **extra).detach().to("cpu", torch.float32)
        if feats.shape != (pos.size(0), cfg.out_channels):
            raise InvalidInputError(
                f"the backbone returned shape {tuple(feats.shape)} for {pos.size(0)} keypoints, but "
                f"{cfg.backbone} with stages {list(cfg.resolved_stages)} gives [N, {cfg.out_channels}]; "
                "pass build_backbone(cfg) as backbone, or none."
            )
        for job, x in zip(pending, feats.split([job.pos.size(0) for job in pending])):
            entry = {"x": x} if job.pos_out is None else {"pos": job.pos_out, "x": x}
            store.save(job.name, entry)
            plans[job.plan].found[job.inst][job.name] = entry
        pending.clear()

    was_training = None if backbone is None else backbone.training
    if backbone is not None:
        backbone.eval()
    try:
        with torch.no_grad(), progress_bar(len(todo), "image features", "img", progress) as bar:
            for k, i in todo:
                if pending and pending[-1].plan != k:
                    flush()  # batches never mix two lists: each is computed as if on its own
                plan = plans[k]
                loaded = load_instance_image(plan.instances[i], S, cfg.crop_to_bbox, i)
                for j, name in enumerate(plan.names[i]):
                    if name in plan.found[i]:
                        continue
                    if j == 0:
                        pending.append(_Job(k, i, name, loaded.image, loaded.pos, None))
                    else:
                        gen = torch.Generator().manual_seed(view_seed(plan.seed_keys[i], cfg.seed, j - 1))
                        view = cfg.view.sample(S, S, loaded.pos, gen)
                        moved = view.apply_points(loaded.pos)
                        pending.append(_Job(k, i, name, view.apply_image(loaded.image), moved,
                                            loaded.to_original(moved)))
                    if len(pending) >= cfg.batch_size:
                        flush()
                bar.update(1)
            flush()
    finally:
        if backbone is not None and was_training:
            backbone.train()


def _attach(groups: Sequence[Tuple[Sequence[KeypointInstance], int]], cfg: FeatureConfig, dataset: str,
            progress: bool, backbone: Optional[nn.Module] = None) -> List[List[KeypointInstance]]:
    """:func:`attach_features` of several ``(instances, num_views)`` lists at once: one cache
    lookup, one backbone, one progress bar."""
    if not isinstance(cfg, FeatureConfig):
        raise InvalidInputError(f"cfg must be a FeatureConfig, got {type(cfg).__name__}.")
    if not isinstance(dataset, str) or not dataset:
        raise InvalidInputError(f"dataset must be a non-empty name, got {dataset!r}.")
    groups = [(list(instances), num_views) for instances, num_views in groups]
    for instances, num_views in groups:
        if not _is_int(num_views) or num_views < 0:
            raise InvalidInputError(f"num_views must be an integer >= 0, got {num_views!r}.")
        for i, inst in enumerate(instances):  # fail before any heavy work
            if inst.image is None:
                raise InvalidInputError(f"{describe_instance(inst, i)} has no image; image features need one.")
    store = FeatureStore(cfg.cache_path(), cfg.identity(), cfg.out_channels)
    plans = [store.plan(instances, dataset, num_views, cfg.view_key(), cfg.crop_to_bbox)
             for instances, num_views in groups]
    store.warn_damaged()
    _compute(plans, cfg, store, backbone, progress)
    return [plan.assemble() for plan in plans]


# -- the public functions -------------------------------------------------------------------
def attach_features(instances: Sequence[KeypointInstance], cfg: FeatureConfig, dataset: str,
                    num_views: Optional[int] = None, progress: bool = True,
                    backbone: Optional[nn.Module] = None) -> List[KeypointInstance]:
    r"""New instances with image descriptors: ``x`` in the original image, and ``num_views`` views.

    Args:
        instances: keypoint instances with an ``image`` (path, PIL image or array).
        cfg: the features to compute (see :class:`FeatureConfig`).
        dataset: the dataset's name (part of the cache key, so two datasets with equal file
            paths never share features).
        num_views: views per instance (``None``: ``cfg.num_views``). Asking for more views later
            reuses the cached first ones.
        progress: show a tqdm bar ("image features", in images) over the images that need
            computing; nothing is shown when everything is cached.
        backbone: an already built :func:`build_backbone` ``(cfg)``, to reuse one network across
            calls; by default it is built only if something is missing from the cache. It must
            compute what ``cfg`` says: the cache is keyed by ``cfg``, not by the module.

    Returns:
        :func:`dataclasses.replace` copies of ``instances``: ``x`` ``[N, F]`` is the descriptor at
        ``pos`` in the un-augmented image (it replaces any previous ``x``); when ``num_views > 0``,
        ``extra["views"]`` is a list of ``num_views`` tuples ``(pos_v [N, 2], x_v [N, F])``:
        the keypoints moved by view ``v``'s warp, in the *original* image's pixels (comparable
        with ``pos``), and the descriptors sampled there in the warped image. With
        ``num_views = 0`` any previous ``extra["views"]`` is dropped, so no stale views remain.

    The views are drawn on the ``S x S`` resized (and cropped) image the backbone sees, so a
    point moves by :math:`p_v = s^{-1} \odot \mathbf{H}_v\big((p - o) \odot s\big) + o` in original
    pixels (:class:`~pyg_ssgm.data.image_features.LoadedImage`: ``o`` the crop corner,
    ``s = (S / W, S / H)``).

    Raises :class:`~pyg_ssgm.errors.InvalidInputError` for an image that cannot be decoded or is
    a decompression bomb, and for a keypoint far outside its image
    (:func:`~pyg_ssgm.data.image_features.check_inside`). A cached entry that fails its checks
    is recomputed, with a ``RuntimeWarning`` (see :mod:`pyg_ssgm.feature_cache`).
    """
    num_views = cfg.num_views if num_views is None and isinstance(cfg, FeatureConfig) else num_views
    return _attach([(instances, num_views)], cfg, dataset, progress, backbone)[0]


def with_image_features(splits: Dict[str, List[KeypointInstance]], cfg: FeatureConfig, dataset: str,
                        progress: bool = True) -> Dict[str, List[KeypointInstance]]:
    """``splits`` with backbone descriptors as ``x`` (cached on disk): the training split also gets
    ``cfg.num_views`` augmented views per image, which the pair generator cuts its two sides
    from; the other splits are seen as they are. One progress bar covers every split."""
    names = [name for name, items in splits.items() if items]
    groups = [(splits[name], cfg.num_views if name == "train" else 0) for name in names]
    done = dict(zip(names, _attach(groups, cfg, dataset, progress))) if names else {}
    return {name: done.get(name, items) for name, items in splits.items()}


__all__ = ["FeatureConfig", "attach_features", "with_image_features", "build_backbone", "image_identity", "BACKBONES",
           "BackboneSpec", "CACHE_FORMAT"]
