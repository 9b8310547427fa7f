"""The composition root: everything a run needs, built in one place from its :class:`Settings`
(as DETR's ``main.py`` builds model, criterion and post-processing from one set of arguments).

:func:`build` reads and prepares the data, derives what the data decides (the number of
appearance features, whether the model must be told about mirror pairs, how much the training
pairs drop), and builds the network,
its criterion, its predictor, the optimiser, the training pairs, their loader and the
data-parallel wrapper. :class:`~pyg_ssgm.trainer.Trainer` only loops over what it gets.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset
from torch_geometric.loader import DataLoader

from .checkpoint import EVALUATION_ENTRIES, absent_introduced, load_checkpoint, restoring, stored_settings
from .config import INTRODUCED, InferenceConfig, Settings, TrainConfig, split_sections
from .data import GeneratedPairs, KeypointInstance, PairData
from .data.instance import check_name_types
from .data.datasets import EpochConcat, EpochSampler, LabelledPairs
from .data.partiality import drop_rate_for, partner_share
from .data.perturb import perturb_splits
from .data.sources import load_splits
from .errors import ConfigError, InvalidInputError
from .features import with_image_features
from .matching import SetMatcher
from .model import SSGM, Criterion, Predictor
from .threads import apply_thread_policy
from .validation import resolve_device

Splits = Dict[str, List[KeypointInstance]]


@dataclass
class Experiment:
    """What :func:`build` makes: the resolved ``settings`` (what the data decides filled in), the
    prepared ``splits``, the network and its ``criterion`` and ``predictor``, and the training
    parts. ``net`` is the model, or its ``DistributedDataParallel`` wrapper under ``torchrun``."""

    settings: Settings
    splits: Splits
    model: SSGM
    criterion: Criterion
    predictor: Predictor
    optimizer: torch.optim.Optimizer
    pairs: Dataset
    sampler: EpochSampler
    loader: DataLoader
    net: nn.Module
    device: torch.device
    rank: int = 0
    world_size: int = 1
    threads: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# --------------------------------------------------------------------------------------- settings
def mirror_pairs(settings: Settings) -> bool:
    """Whether the training pairs include mirror pairs (``train.mirror_rate > 0``, self-supervised:
    supervised training generates no pair), checked against the settings that go with them."""
    train, model = settings.train, settings.model
    mirror = train.mirror_rate > 0 and not train.supervised
    if mirror and train.pseudo_labels:
        raise ConfigError("mirror_rate > 0 cannot be combined with pseudo_labels=True (on by default): the "
                          "pseudo-labelled real pairs carry no mirror flag. Set pseudo_labels=false (as the cub "
                          "preset does) or mirror_rate=0.")
    if model.mirror_aware and not mirror:
        raise ConfigError("mirror_aware=True learns from generated mirror pairs: set mirror_rate > 0 (for "
                          "example 0.5) in self-supervised training, or mirror_aware=False.")
    if mirror and model.mirror_aware is False:
        raise ConfigError("mirror_rate > 0 trains on mirror pairs, which the model must be told about: leave "
                          "mirror_aware unset (null) or set it true, or set mirror_rate to 0.")
    return mirror


def resolve(settings: Settings, splits: Splits) -> Settings:
    """``settings`` with what the data decides filled in, or a :class:`ConfigError` where a given
    value disagrees with it (nothing the user set is rewritten):

    * ``model.in_channels``: the width of the training instances' ``x`` (0: geometry only);
    * ``model.mirror_aware``: on exactly when the training pairs include mirror pairs
      (:func:`mirror_pairs`): a mirror-aware model needs them, and mirror pairs need a model
      told which pairs they are;
    * ``model.keypoint_filter``: on exactly when some of the training instances' points have no
      name (outliers, clutter): the filter learns from nothing else; and then
      ``model.keypoint_filter_geometry`` on too (for a geometry-only model it is all the filter
      reads), and ``model.keypoint_filter_memory`` where the points carry descriptors;
    * ``inference.keypoint_prior``: its default for the filter the model has
      (:meth:`~pyg_ssgm.config.InferenceConfig.resolved_keypoint_prior`);
    * ``train.drop_rate``: where unset, as partial as the training split's real pairs
      (:func:`~pyg_ssgm.data.partiality.drop_rate_for`), printed with the share behind it.
    """
    model = settings.model
    width = next((i.x.size(1) for i in splits["train"] if i.x is not None), 0)
    if model.in_channels is not None and model.in_channels != width:
        raise ConfigError(f"model.in_channels is {model.in_channels} but the training instances carry {width} "
                          f"appearance features per node; set it to {width}, or leave it unset (null) to take it "
                          "from the data.")
    keypoint_filter, geometry = model.keypoint_filter, model.keypoint_filter_geometry
    if keypoint_filter is None:
        readable = width > 0 or geometry is not False  # the filter has something to read
        keypoint_filter = readable and any(None in i.names for i in splits["train"])
    if geometry is None:
        geometry = bool(keypoint_filter)
    memory = model.keypoint_filter_memory
    if memory is None:  # on descriptors, validation took it; on the geometry alone it did not
        memory = bool(keypoint_filter) and width > 0
    inference = settings.inference
    return settings.replace(train=with_drop_rate(settings.train, splits["train"]), model=replace(model, in_channels=width, mirror_aware=mirror_pairs(settings),
                                          keypoint_filter=keypoint_filter, keypoint_filter_geometry=geometry,
                                          keypoint_filter_memory=memory),
                            inference=replace(inference, keypoint_prior=inference.resolved_keypoint_prior(
                                bool(keypoint_filter) and width > 0)))


def stored_sections(state: Mapping) -> Dict[str, Dict[str, Any]]:
    """The settings a training checkpoint stores, one dict per section (the layouts of earlier
    versions sorted into today's sections; absent sections empty), as saved: no default added."""
    return split_sections({k: v for k, v in stored_settings(state).items() if v is not None})


def settings_from_checkpoint(state: Mapping) -> Settings:
    """The (resolved) settings a training checkpoint was written with; a setting added since it
    was saved takes the value that does what the run did (:data:`~pyg_ssgm.config.INTRODUCED`),
    not today's default."""
    stored = stored_sections(state)
    for section, keys in absent_introduced(stored, INTRODUCED).items():
        stored[section].update(keys)
    return Settings.from_dict(stored)


# --------------------------------------------------------------------------------------- parts
def build_model(settings: Settings) -> Tuple[SSGM, Criterion, Predictor]:
    """The network (``settings.model``, with its completion matcher from ``settings.loss``), its
    :class:`Criterion` and its :class:`Predictor`. ``model.in_channels`` must be resolved."""
    model_cfg, loss = settings.model, settings.loss
    model = SSGM(model_cfg, SetMatcher(loss.cost_exist, loss.cost_pos, loss.cost_feat))
    return model, Criterion(loss, contrastive_temperature=model_cfg.temperature), Predictor(model, settings.inference)


def with_drop_rate(train: TrainConfig, instances: List[KeypointInstance]) -> TrainConfig:
    """``train`` with its ``drop_rate``, where unset, read from the training ``instances``
    (:func:`~pyg_ssgm.data.partiality.drop_rate_for`) and printed with the share behind it."""
    if train.drop_rate is not None:
        return train
    share = partner_share(instances)
    train = replace(train, drop_rate=drop_rate_for(share))
    why = (f"{share:.0%} of the named keypoints have a partner on the training split's real pairs" if share is not None
           else "no category has two training instances with keypoint names")
    print(f"note: drop_rate {train.drop_rate:g} from the data ({why}; --set drop_rate=... sets it).", file=sys.stderr)
    return train


def check_splits(splits: Mapping[str, List[KeypointInstance]]) -> Splits:
    """The user's own splits: ``{"train": [...], "val": [...], "test": [...]}`` lists of
    :class:`~pyg_ssgm.data.KeypointInstance` (``val`` and ``test`` may be empty or absent: a run
    without them is not validated, or not tested). The keypoint names of the instances of one
    category must be of one type (:func:`~pyg_ssgm.data.instance.check_name_types`)."""
    if not isinstance(splits, Mapping) or "train" not in splits:
        raise ConfigError("splits must be a dict with a 'train' list of KeypointInstance (and optionally 'val' "
                          "and 'test' lists).")
    unknown = sorted(set(splits) - {"train", "val", "test"})
    if unknown:
        raise ConfigError(f"unknown splits {unknown}: give 'train', 'val' and 'test' lists.")
    out = {name: list(splits.get(name) or []) for name in ("train", "val", "test")}
    for name, items in out.items():
        bad = [type(i).__name__ for i in items if not isinstance(i, KeypointInstance)]
        if bad:
            raise ConfigError(f"splits[{name!r}] must hold KeypointInstance objects, got {bad[0]}.")
    if not out["train"]:
        raise ConfigError("splits['train'] is empty: training needs at least one instance.")
    first: Dict[str, Tuple[str, KeypointInstance]] = {}  # per category: the first instance with named keypoints
    for name, items in out.items():
        for i, inst in enumerate(items):
            where = f"splits[{name!r}][{i}]"
            if any(n is not None for n in inst.names):
                seen = first.setdefault(inst.category, (where, inst))
                check_name_types(seen[1], inst, seen[0], where)
    return out


def check_node_features(splits: Splits) -> None:
    """Refuse splits whose instances do not all carry ``x`` of one width (or all none): the model
    has one input width, and a batch cannot stack features of several."""
    widths = {}  # width (None: no x) -> where it was first seen
    for name, items in splits.items():
        for i, inst in enumerate(items):
            width = None if inst.x is None else inst.x.size(1)
            widths.setdefault(width, (f"splits[{name!r}][{i}]" + (f" ({inst.id!r})" if inst.id is not None else "")))
    if len(widths) > 1:
        seen = "; ".join(f"{where} has {'no x' if width is None else f'x of width {width}'}"
                         for width, where in widths.items())
        raise InvalidInputError(
            f"the instances carry appearance features (x) of different widths, or only some of them do: {seen}. "
            "Give every instance x of one width [N, F], or none (geometry only); image features "
            "(settings.features) replace x on every instance.")


def prepare_splits(settings: Settings, splits: Optional[Mapping[str, List[KeypointInstance]]] = None,
                   progress: bool = True) -> Splits:
    """The data of a run: ``splits`` (your own) or ``settings.train.dataset`` read from its root,
    perturbed as ``outliers`` / ``extra_drop`` say, with image features when ``settings.features``
    asks for them. Checked before any work (:func:`check_splits`, :func:`check_node_features`)."""
    train = settings.train
    splits = check_splits(splits) if splits is not None else load_splits(train.dataset, train.root,
                                                                         settings.synthetic, seed=train.seed)
    if settings.features is None:  # image features replace every x: then what x was does not matter
        check_node_features(splits)
    splits = perturb_splits(splits, train.outliers, train.extra_drop, outlier_region=train.outlier_region)
    if settings.features is not None:
        splits = with_image_features(splits, settings.features, train.dataset, progress=progress)
    return splits


def training_pairs(settings: Settings, instances: List[KeypointInstance], progress: bool = True) -> Dataset:
    """What one epoch trains on: pairs generated from single instances; real pairs with their labels
    (``supervised``); or the generated pairs plus the training split's own unlabelled real pairs
    with cycle-consistent pseudo-labels (``pseudo_labels``)."""
    cfg = settings.train
    if cfg.supervised:
        return LabelledPairs(instances, cfg.seed, cfg.repeats)
    cfg = with_drop_rate(cfg, instances)  # build() has resolved it; a direct call may not have
    generated = GeneratedPairs(instances, cfg.pair_generator(), seed=cfg.seed, repeats=cfg.repeats)
    if not cfg.pseudo_labels:
        return generated
    from .pseudo_labels import PseudoLabelledPairs, pseudo_label_once

    # A model that matches mirror images too learns from pseudo-labels found the same way, on
    # pairs turned to face the same way (it meets the other orientation by its mirror test).
    mirror = settings.inference.mirror_test
    labels = pseudo_label_once(instances, min_agreement=cfg.pseudo_min_agreement, seed=cfg.seed, progress=progress,
                               mirror_test=mirror)
    if not labels:  # too few instances per category for a cycle, or none that agree: nothing to add
        print("note: pseudo_labels found no cycle-consistent correspondence between the training instances "
              "(a category needs 3 instances or more); training on generated pairs alone.", file=sys.stderr)
        return generated
    per_epoch = None if cfg.pseudo_ratio is None else max(1, round(cfg.pseudo_ratio * len(generated)))
    real = PseudoLabelledPairs(instances, labels, seed=cfg.seed, drop_rate=cfg.drop_rate, orient=mirror,
                               per_epoch=per_epoch)
    return EpochConcat([generated, real])


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _device_and_ranks(name: str) -> Tuple[torch.device, int, int]:
    device = resolve_device(name)
    if device.type == "cuda":
        if _distributed():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not _distributed():
        return device, 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device, dist.get_rank(), dist.get_world_size()


def build(settings: Optional[Settings] = None, splits: Optional[Mapping[str, List[KeypointInstance]]] = None,
          progress: bool = True) -> Experiment:
    """Everything a training run needs (see the module docstring). ``splits`` trains on your own
    data instead of ``settings.train.dataset``: ``"train"``, ``"val"`` and ``"test"`` lists of
    :class:`~pyg_ssgm.data.KeypointInstance`."""
    settings = settings or Settings()
    train = settings.train
    mirror_pairs(settings)  # the checks that need no data, before any work
    threads = apply_thread_policy(train.threads)
    device, rank, world_size = _device_and_ranks(train.device)
    progress = progress and rank == 0
    splits = prepare_splits(settings, splits, progress)
    settings = resolve(settings, splits)
    torch.manual_seed(train.seed)  # model initialisation (and dropout) follow the run's seed
    model, criterion, predictor = build_model(settings)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    pairs = training_pairs(settings, splits["train"], progress)
    sampler = EpochSampler(len(pairs), train.seed, rank, world_size)
    # The loader's own generator: starting an epoch must not draw from the global RNG, whose state
    # a checkpoint restores (dropout masks would differ after a resume otherwise).
    loader = DataLoader(pairs, batch_size=train.batch_size, sampler=sampler, follow_batch=PairData.FOLLOW_BATCH,
                        num_workers=train.num_workers, generator=torch.Generator().manual_seed(train.seed))
    net: nn.Module = model
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                  find_unused_parameters=True)
    return Experiment(settings, splits, model, criterion, predictor, optimizer, pairs, sampler, loader, net, device,
                      rank, world_size, threads)


def load_model(path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu") -> Tuple[Predictor, Settings]:
    """The trained model of a checkpoint written by training, as a :class:`Predictor` (its network
    in eval mode is ``predictor.model``) with the inference settings its run tested with (those
    chosen on validation, where they were), and the run's settings. Damaged or foreign files raise
    :class:`~pyg_ssgm.errors.CheckpointError`."""
    device = resolve_device(str(device))  # "foo" or an absent GPU: a ConfigError, not a torch error
    state = load_checkpoint(path, map_location=device, entries=EVALUATION_ENTRIES)
    with restoring(path):  # unknown config keys, tensors of other sizes: a CheckpointError
        settings = settings_from_checkpoint(state)
        model, _, predictor = build_model(settings)
        model.to(device).load_state_dict(state["model"])
        if state.get("chosen_inference") is not None:
            # a choice stored before a setting existed: that setting as the run had it
            chosen = {**INTRODUCED["inference"], **state["chosen_inference"]}
            # a choice made before the config refused a pool without the re-matching (it did nothing)
            chosen["epipolar_pool"] = chosen.get("epipolar_pool", False) and chosen.get("epipolar", False)
            predictor.config = InferenceConfig(**chosen)
    model.eval()
    return predictor, settings


__all__ = ["Experiment", "build", "build_model", "resolve", "mirror_pairs", "prepare_splits", "check_splits",
           "check_node_features", "training_pairs", "with_drop_rate", "load_model", "settings_from_checkpoint",
           "stored_sections"]
