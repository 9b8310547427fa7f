"""Datasets of pairs: generated (training, self-supervised) and real cross-instance (evaluation)."""
from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import ConcatDataset, Dataset, Sampler
from torch_geometric.loader import DataLoader

from ..errors import ConfigError, InvalidInputError
from .generator import PairGenerator, add_completion_targets, make_pair
from .instance import KeypointInstance
from .pair_data import PairData


def _check_positive(name: str, value: object, alternative: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be an integer >= 1{alternative}, got {value!r}.")


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The random generator of item ``index`` of epoch ``epoch``: a pure function of the three, so
    an item is the same whichever process, worker or resumed run draws it."""
    key = ((seed * 1_000_003 + epoch) * 10_000_019 + index) % (2 ** 63)
    return torch.Generator().manual_seed(key)


class GeneratedPairs(Dataset):
    """One generated pair per instance and epoch; item ``i`` of epoch ``e`` is a pure function of
    ``(seed, e, i)``, so runs are reproducible and resumable whatever the worker layout."""

    def __init__(self, instances: Sequence[KeypointInstance], generator: Optional[PairGenerator] = None,
                 seed: int = 0, repeats: int = 1):
        if len(instances) == 0:
            raise InvalidInputError("GeneratedPairs needs at least one instance.")
        self.instances = list(instances)
        self.generator = generator or PairGenerator()
        self.seed, self.repeats, self.epoch = seed, repeats, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.instances) * self.repeats

    def __getitem__(self, i: int) -> PairData:
        return self.generator(self.instances[i % len(self.instances)], item_generator(self.seed, self.epoch, i))


def cross_instance_pairs(instances: Sequence[KeypointInstance], max_pairs_per_category: Optional[int] = None,
                         seed: int = 0) -> List[Tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of distinct instances of one category; a fixed random
    subset of at most ``max_pairs_per_category`` per category when given."""
    if max_pairs_per_category is not None:  # 0 or -2 would score no pair, or all but two
        _check_positive("max_pairs_per_category", max_pairs_per_category, " (or None for all pairs)")
    by_cat: Dict[str, List[int]] = defaultdict(list)
    for i, inst in enumerate(instances):
        by_cat[inst.category].append(i)
    rng = torch.Generator().manual_seed(seed)
    pairs: List[Tuple[int, int]] = []
    for cat in sorted(by_cat):
        cat_pairs = list(itertools.combinations(by_cat[cat], 2))
        if max_pairs_per_category is not None and len(cat_pairs) > max_pairs_per_category:
            pick = torch.randperm(len(cat_pairs), generator=rng)[:max_pairs_per_category].sort().values
            cat_pairs = [cat_pairs[k] for k in pick.tolist()]
        pairs.extend(cat_pairs)
    return pairs


def has_pairs(instances: Sequence[KeypointInstance]) -> bool:
    """Whether ``instances`` hold a real pair: two instances of one category."""
    return any(n >= 2 for n in Counter(inst.category for inst in instances).values())


class RealPairs(Dataset):
    """Real pairs of two different instances of one category, ground truth from the keypoint
    names, no filtering unless ``intersection=True`` (see :func:`make_pair`). A pair may have an
    empty side (in the intersection setting: no keypoint named in both); :meth:`scorable` lists
    the others."""

    def __init__(self, instances: Sequence[KeypointInstance], max_pairs_per_category: Optional[int] = None,
                 seed: int = 0, intersection: bool = False):
        self.instances = list(instances)
        self.index = cross_instance_pairs(self.instances, max_pairs_per_category, seed)
        if not self.index:
            raise InvalidInputError("RealPairs needs at least two instances of one category.")
        self.intersection = intersection

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> PairData:
        i, j = self.index[k]
        return make_pair(self.instances[i], self.instances[j], intersection=self.intersection)

    def scorable(self) -> List[int]:
        """The pairs (positions in :attr:`index`) with at least one node on each side: in the
        intersection setting, those whose instances name at least one keypoint in common. A pair
        without is no matching problem (nothing to match, nothing to find) and cannot be scored."""
        if not self.intersection:
            return [k for k, (i, j) in enumerate(self.index)
                    if self.instances[i].num_nodes and self.instances[j].num_nodes]
        named = [{n for n in inst.names if n is not None} for inst in self.instances]
        return [k for k, (i, j) in enumerate(self.index) if named[i] & named[j]]


class LabelledPairs(Dataset):
    """Supervised training pairs: instance ``i`` with a random other instance of its category,
    drawn afresh each epoch from ``(seed, epoch, i)``; completion targets derived from ``y``."""

    def __init__(self, instances: List[KeypointInstance], seed: int = 0, repeats: int = 1):
        self.instances, self.seed, self.repeats, self.epoch = list(instances), seed, repeats, 0
        by_cat: Dict[str, List[int]] = {}
        for k, inst in enumerate(self.instances):
            by_cat.setdefault(inst.category, []).append(k)
        self.partners = {k: [j for j in by_cat[inst.category] if j != k] for k, inst in enumerate(self.instances)}
        if not any(self.partners.values()):
            raise ConfigError("supervised training needs two instances of at least one category.")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.instances) * self.repeats

    def __getitem__(self, i: int) -> PairData:
        k = i % len(self.instances)
        partners = self.partners[k] or [k]
        rng = item_generator(self.seed, self.epoch, i)
        j = partners[int(torch.randint(len(partners), (1,), generator=rng))]
        return add_completion_targets(make_pair(self.instances[k], self.instances[j]))


class EpochConcat(ConcatDataset):
    """Several pair datasets as one, each told the epoch (their items are functions of it)."""

    def set_epoch(self, epoch: int) -> None:
        for dataset in self.datasets:
            dataset.set_epoch(epoch)


class EpochSampler(Sampler):
    """Shuffles with a generator seeded by ``(seed, epoch)``; under distributed training each of the
    ``world_size`` processes takes every ``world_size``-th index (padded to equal length)."""

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.size, self.seed, self.rank, self.world_size, self.epoch = size, seed, rank, world_size, 0
        self.per_rank = -(-size // world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 7919 + self.epoch))
        order = torch.cat([order, order[: self.per_rank * self.world_size - self.size]])
        return iter(order[self.rank::self.world_size].tolist())

    def __len__(self) -> int:
        return self.per_rank


def pair_loader(dataset: Dataset, batch_size: int = 16, shuffle: bool = False, seed: int = 0,
                **kwargs) -> DataLoader:
    """A PyG ``DataLoader`` over pairs that tracks both sides' batch vectors (``x_s_batch``,
    ``x_t_batch``, ``comp_pos_*_batch``); shuffling is seeded, never global."""
    # Always the loader's own generator, even without shuffling: otherwise each pass draws its
    # worker base seed from the global RNG, and evaluating between two training epochs would
    # change the training's dropout masks (and an exact --resume after a Ctrl-C in validation).
    generator = torch.Generator().manual_seed(seed)
    _check_positive("batch_size", batch_size)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      follow_batch=PairData.FOLLOW_BATCH, **kwargs)
