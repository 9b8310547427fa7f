"""How a model is trained and evaluated (:class:`TrainConfig`): data, training pairs,
optimisation and the run itself."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

from ..catalog import DATASETS, OUTLIER_REGIONS
from ..data import GeometricAugmentation, PairGenerator
from ..errors import ConfigError
from ..validation import check_at_least, check_choice, check_field_types, parse_device


@dataclass
class TrainConfig:
    """Everything about a training run but the model itself (:class:`~pyg_ssgm.config.ModelConfig`,
    its losses and its inference settings).

    Data: ``dataset`` (one of ``DATASETS``) and ``root`` for real benchmarks. Pairs: ``drop_rate``
    (the probability that a node is dropped from one copy; ``None``, the default: from the data, as
    partial as its real pairs, see :func:`~pyg_ssgm.data.partiality.drop_rate_for`),
    ``feature_noise`` and the geometric augmentation (``rotation`` in degrees, ``jitter``,
    ``deformation``: the smooth non-rigid warp of
    :class:`~pyg_ssgm.data.transforms.GeometricAugmentation`, 0 = none; ``out_of_plane``, the
    largest rotation out of the image plane in degrees, of the points lifted to a pseudo-3D surface
    of ``depth`` graph radii; ``perspective``, a mild projective warp) of the pair generator;
    ``mirror_rate``, its share of mirror pairs (left and right exchanged on one side, for a
    ``mirror_aware`` model; see :class:`~pyg_ssgm.data.PairGenerator`);
    ``intact_rate``, its share of pairs that drop nothing (every node common, as on two complete
    views); ``repeats`` generated pairs per training instance and epoch. Optimisation:
    ``epochs``, ``batch_size``, ``lr`` (decayed to 0 along a cosine over the epochs unless
    ``lr_schedule="constant"``), ``weight_decay``, ``grad_clip`` (the gradient norm, the keypoint
    filter's apart from the rest: :func:`~pyg_ssgm.trainer.clip_groups`). ``supervised`` trains on
    real pairs with their labels instead (the upper bound). ``pseudo_labels`` adds, to the generated
    pairs, the training split's own unlabelled real pairs with cycle-consistent pseudo-labels from
    a classical solver (:mod:`pyg_ssgm.pseudo_labels`; ``pseudo_min_agreement`` is the share of
    cycles that must agree; no keypoint name is read across instances; ``pseudo_ratio``: at most
    that many pseudo-labelled pairs per generated pair in an epoch, taking turns, ``None``: all of
    them every epoch). Evaluation: at most
    ``val_pairs_per_category`` / ``test_pairs_per_category`` real pairs per class (``None``: all).
    ``threads``: CPU threads of torch (0: the automatic policy of :mod:`pyg_ssgm.threads`; more than
    the usable cores are capped there, with a note, when the run starts).
    Harder real data (:mod:`pyg_ssgm.data.perturb`, every split, deterministic per image):
    ``outliers`` unnamed points per image (no partner) inside its keypoints' bounding box
    (``outlier_region="box"``) or anywhere in the image (``"image"``, the AFAT protocol's), and
    ``extra_drop``, the probability to remove each annotated keypoint on top of what is missing.
    ``redraw_unnamed``: training pairs give such unnamed points no partner (the pair generator's
    option of that name).

    A resumed run must keep every setting that shapes it; only those of
    :data:`~pyg_ssgm.config.RESUME_MAY_CHANGE` may differ from the checkpoint's.
    """

    dataset: str = "synthetic"
    root: Optional[str] = None
    supervised: bool = False
    pseudo_labels: bool = True
    pseudo_min_agreement: float = 0.5
    pseudo_ratio: Optional[float] = 1.0
    epochs: int = 100
    batch_size: int = 16
    lr: float = 2e-3
    lr_schedule: str = "cosine"
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    drop_rate: Optional[float] = None
    feature_noise: float = 1.2
    rotation: float = 20.0
    jitter: float = 0.05
    deformation: float = 0.0
    out_of_plane: float = 0.0
    depth: float = 0.5
    perspective: float = 0.0
    mirror_rate: float = 0.0
    repeats: int = 1
    seed: int = 0
    device: str = "cpu"
    output_dir: str = "runs/ssgm"
    val_pairs_per_category: Optional[int] = 60
    test_pairs_per_category: Optional[int] = None
    eval_every: int = 1
    num_workers: int = 0
    threads: int = 0
    outliers: int = 0
    outlier_region: str = "box"
    extra_drop: float = 0.0
    redraw_unnamed: bool = True
    intact_rate: float = 0.0

    def __post_init__(self) -> None:
        check_field_types(self)
        check_choice(self, "dataset", DATASETS)
        check_choice(self, "lr_schedule", ("cosine", "constant"))
        check_choice(self, "outlier_region", OUTLIER_REGIONS)
        check_at_least(self, 1, "epochs", "batch_size", "repeats", "eval_every")
        check_at_least(self, 0, "lr", strict=True)
        check_at_least(self, 0, "weight_decay", "grad_clip", note="0 switches it off")
        check_at_least(self, 0, "threads", note="0: automatic")
        check_at_least(self, 0, "num_workers")
        check_at_least(self, 0, "outliers", note="unnamed points added per image")
        if not 0 <= self.seed < 2 ** 32:  # torch seeds are 64-bit; derived seeds (seed * 7919 + epoch) need room
            raise ConfigError(f"seed must be in [0, 2**32), got {self.seed}.")
        if not self.output_dir.strip():  # '' would write the run into the current folder
            raise ConfigError("output_dir must name a folder, got an empty string (use '.' for the current one).")
        parse_device(self.device)
        if not 0 < self.pseudo_min_agreement <= 1:
            raise ConfigError(f"pseudo_min_agreement must be in (0, 1], got {self.pseudo_min_agreement}.")
        if self.pseudo_ratio is not None and not self.pseudo_ratio > 0:
            raise ConfigError(f"pseudo_ratio (pseudo-labelled pairs per generated pair) must be > 0 or null "
                              f"(all of them), got {self.pseudo_ratio}.")
        if self.drop_rate is not None and not 0.0 <= self.drop_rate < 1.0:
            raise ConfigError(f"drop_rate (probability that a training copy drops a node) must be in [0, 1) or null "
                              f"(from the data), got {self.drop_rate}.")
        if not 0.0 <= self.mirror_rate <= 1.0:
            raise ConfigError(f"mirror_rate (share of mirror pairs) must be in [0, 1], got {self.mirror_rate}.")
        if not 0.0 <= self.intact_rate <= 1.0:
            raise ConfigError(f"intact_rate (share of training pairs that drop nothing) must be in [0, 1], "
                              f"got {self.intact_rate}.")
        if not 0.0 <= self.extra_drop < 1.0:
            raise ConfigError(f"extra_drop (share of keypoints removed per image) must be in [0, 1), "
                              f"got {self.extra_drop}.")
        for name in ("val_pairs_per_category", "test_pairs_per_category"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 or null (all pairs), got {getattr(self, name)}.")

    def pair_generator(self) -> PairGenerator:
        if self.drop_rate is None:  # a programming error: build() resolves it before any pair is made
            raise ConfigError("drop_rate is null (from the data): resolve the settings on the training split first "
                              "(pyg_ssgm.experiment.resolve), or set drop_rate.")
        return PairGenerator(drop_rate=self.drop_rate, feature_noise=self.feature_noise, mirror_rate=self.mirror_rate,
                             redraw_unnamed=self.redraw_unnamed, intact_rate=self.intact_rate,
                             augmentation=GeometricAugmentation(rotation=self.rotation, jitter=self.jitter,
                                                                deformation=self.deformation,
                                                                out_of_plane=self.out_of_plane, depth=self.depth,
                                                                perspective=self.perspective))

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


__all__ = ["TrainConfig"]
