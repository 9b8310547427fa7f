r"""Pseudo-labels from unlabelled real pairs: the training split's own variation, no labels read.

The training instances of one category are unlabelled real pairs: two different objects, whose
shape and appearance differ the way test pairs do, which no augmentation of a single instance
reproduces. :func:`pseudo_label` matches them with a learning-free solver (RRWM by default, on the
instances' features, else on their shape context) and keeps only the correspondences that are
*cycle consistent*: :math:`i \to j` is kept when, for at least a share ``min_agreement`` of the
other instances :math:`k` of its group, going round through :math:`k` lands on the same node,

.. math::  m_{kj}(m_{ik}(p)) = m_{ij}(p),

as in multi-graph matching (GANN, Wang et al. 2023, uses such consistency as its self-supervision).
Keypoint names are replaced by ``None`` before matching, so no name is ever read across two
instances. :class:`PseudoLabelledPairs` turns the result into training pairs: the confidently
labelled nodes of both instances, each side then thinned by random drops (so the pairs are
partial, with completion targets estimated as :func:`~pyg_ssgm.data.generator.add_completion_targets`
does).
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .baselines import ClassicalMatcher
from .data import KeypointInstance, PairData, make_pair, pair_loader
from .data.datasets import item_generator
from .data.generator import add_completion_targets
from .errors import ConfigError, InvalidInputError


class PseudoPair(NamedTuple):
    source: int  # index of the source instance
    target: int  # index of the target instance
    y: Tensor  # long [2, K]: cycle-consistent correspondences (local node indices)


def _unnamed(inst: KeypointInstance) -> KeypointInstance:
    return dataclasses.replace(inst, names=[None] * inst.num_nodes, extra={})


def _groups(instances: Sequence[KeypointInstance], group_size: int, seed: int) -> List[List[int]]:
    """Instances of each category in random groups of at most ``group_size`` (at least 3 where the
    category has 3), so cycles exist in every group and the cost stays quadratic in the group."""
    by_cat: Dict[str, List[int]] = {}
    for i, inst in enumerate(instances):
        by_cat.setdefault(inst.category, []).append(i)
    rng = torch.Generator().manual_seed(seed)
    groups = []
    for cat in sorted(by_cat):
        members = [by_cat[cat][k] for k in torch.randperm(len(by_cat[cat]), generator=rng).tolist()]
        num = max(1, -(-len(members) // group_size))
        groups += [members[g::num] for g in range(num)]
    return groups


def pseudo_label(instances: Sequence[KeypointInstance], solver: str = "rrwm", min_agreement: float = 0.5,
                 group_size: int = 20, seed: int = 0, batch_size: int = 64,
                 progress: bool = True, mirror_test: bool = False) -> List[PseudoPair]:
    r"""Cycle-consistent correspondences between the instances of each category (see the module
    docstring). Returns one :class:`PseudoPair` per unordered pair of a group that keeps at least
    one correspondence. ``solver`` is any :class:`~pyg_ssgm.baselines.ClassicalMatcher` solver;
    ``mirror_test``: its mirror test (each pair also matched with the target mirrored)."""
    if not 0.0 < min_agreement <= 1.0:
        raise ConfigError(f"min_agreement must be in (0, 1], got {min_agreement}.")
    if group_size < 3:
        raise ConfigError(f"group_size must be >= 3 (cycles need three instances), got {group_size}.")
    instances = [_unnamed(inst) for inst in instances]
    matcher = ClassicalMatcher(solver, mirror_test=mirror_test)
    groups = [g for g in _groups(instances, group_size, seed) if len(g) >= 3]
    ordered = [(a, b) for g in groups for a, b in itertools.combinations(g, 2)]
    maps: Dict[Tuple[int, int], Tensor] = {}
    bar = tqdm(total=len(ordered), desc="pseudo-labels", disable=not progress, leave=False)
    for start in range(0, len(ordered), batch_size):
        chunk = ordered[start:start + batch_size]
        batch = next(iter(pair_loader([make_pair(instances[a], instances[b]) for a, b in chunk], len(chunk))))
        for (a, b), m in zip(chunk, matcher(batch)):
            forward = torch.full((instances[a].num_nodes,), -1, dtype=torch.long)
            backward = torch.full((instances[b].num_nodes,), -1, dtype=torch.long)
            forward[m[0]], backward[m[1]] = m[1].cpu(), m[0].cpu()
            maps[a, b], maps[b, a] = forward, backward
        bar.update(len(chunk))
    bar.close()

    out: List[PseudoPair] = []
    for g in groups:
        support = _cycle_support(g, maps)
        for (u, a), (v, b) in itertools.combinations(enumerate(g), 2):
            m = maps[a, b]
            keep = ((m >= 0) & (support[u, v, :m.numel()] >= min_agreement * (len(g) - 2))).nonzero().view(-1)
            if keep.numel():
                out.append(PseudoPair(a, b, torch.stack([keep, m[keep]])))
    return out


_LAST: Dict[str, List[PseudoPair]] = {}  # the last labelling: its fingerprint -> its pairs


def pseudo_label_once(instances: Sequence[KeypointInstance], **options) -> List[PseudoPair]:
    """:func:`pseudo_label`, reusing the last labelling when the instances (categories, positions,
    features) and ``options`` are the same: ``--preset auto`` trains several candidates on one
    split, and the labelling of a large split takes minutes on a CPU. Only the last labelling is
    kept, so a process that trains on many splits holds one at a time."""
    digest = hashlib.sha1(repr(sorted((k, v) for k, v in options.items() if k != "progress")).encode())
    for inst in instances:
        digest.update(inst.category.encode())
        for tensor in (inst.pos, inst.x):
            if tensor is not None:
                digest.update(str(tuple(tensor.shape)).encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    key = digest.hexdigest()
    if key not in _LAST:
        _LAST.clear()
        _LAST[key] = pseudo_label(instances, **options)
    return _LAST[key]


def _cycle_support(group: Sequence[int], maps: Dict[Tuple[int, int], Tensor]) -> Tensor:
    """``support[u, v, p]``: for how many third instances ``k`` of the group the path
    ``group[u] -> k -> group[v]`` takes node ``p`` where the direct matching does (all cycles of
    the group at once: a ``[g, g, g, n]`` comparison instead of a Python loop per pair and ``k``)."""
    g, n = len(group), max(maps[a, b].numel() for a in group for b in group if a != b)
    M = torch.full((g, g, n + 1), -1, dtype=torch.long)  # M[u, v, p]: partner in v of node p of u; column n: "none"
    for u, a in enumerate(group):
        for v, b in enumerate(group):
            if u != v:
                M[u, v, :maps[a, b].numel()] = maps[a, b]
    via = M[:, :, :n]  # [u, k, p]: node of k reached from node p of u
    # two_step[u, k, v, p] = M[k, v, via[u, k, p]] (a missing partner, -1, reads column n: -1 again)
    index = torch.where(via >= 0, via, torch.full_like(via, n))  # [u, k, p]
    two_step = torch.gather(M.unsqueeze(0).expand(g, g, g, n + 1), 3,
                            index.unsqueeze(2).expand(g, g, g, n))  # [u, k, v, p]
    direct = M[:, :, :n].unsqueeze(1)  # [u, 1, v, p]
    agree = (two_step == direct) & (via.unsqueeze(2) >= 0) & (direct >= 0)
    third = ~torch.eye(g, dtype=torch.bool)  # k differs from u and from v
    agree &= (third.unsqueeze(2) & third.unsqueeze(0)).unsqueeze(-1)  # [u, k, v]: k != u and k != v
    return agree.sum(1).float()  # [u, v, p]


class PseudoLabelledPairs(Dataset):
    r"""Training pairs from :func:`pseudo_label`: item ``i`` of epoch ``e`` (a pure function of
    ``(seed, e, i)``) is pseudo pair ``i`` restricted to its labelled nodes, in a random direction,
    each side thinned by drops with probability ``drop_rate`` (at least ``min_kept`` nodes kept);
    completion targets are estimated by an affine fit on the pseudo correspondences.

    ``per_epoch``: at most this many pseudo pairs an epoch (``None``: all of them), the next ones
    of a seeded order each epoch, so that every pair takes its turn: a category of ``g`` instances
    has about ``g^2 / 2`` real pairs against ``g`` generated ones, which would make an epoch of a
    large dataset mostly pseudo pairs and many times longer."""

    def __init__(self, instances: Sequence[KeypointInstance], pairs: Sequence[PseudoPair], seed: int = 0,
                 drop_rate: float = 0.25, min_kept: int = 3, orient: bool = False, per_epoch: Optional[int] = None):
        if not pairs:
            raise InvalidInputError("PseudoLabelledPairs needs at least one pseudo-labelled pair; "
                                    "pseudo_label found no cycle-consistent correspondence.")
        if per_epoch is not None and per_epoch < 1:
            raise ConfigError(f"per_epoch must be >= 1 or None (every pseudo pair each epoch), got {per_epoch}.")
        self.instances, self.pairs = list(instances), list(pairs)
        self.seed, self.drop_rate, self.min_kept, self.epoch = seed, drop_rate, min_kept, 0
        self.orient = orient
        self.per_epoch = None if per_epoch is None or per_epoch >= len(self.pairs) else per_epoch
        self._order = (torch.randperm(len(self.pairs), generator=torch.Generator().manual_seed(seed))
                       if self.per_epoch is not None else None)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs) if self.per_epoch is None else self.per_epoch

    def _thin(self, n: int, rng: torch.Generator) -> Tensor:
        keep = torch.rand(n, generator=rng) >= self.drop_rate
        if int(keep.sum()) < min(self.min_kept, n):
            keep[torch.randperm(n, generator=rng)[:min(self.min_kept, n)]] = True
        return keep

    def __getitem__(self, i: int) -> PairData:
        rng = item_generator(self.seed, self.epoch, i)
        if self._order is not None:  # epoch e takes the next per_epoch pairs of the seeded order
            i = int(self._order[(self.epoch * self.per_epoch + i) % len(self.pairs)])
        a, b, y = self.pairs[i]
        if bool(torch.rand((), generator=rng) < 0.5):
            a, b, y = b, a, y.flip(0)
        keep_s, keep_t = self._thin(y.size(1), rng), self._thin(y.size(1), rng)
        # Pseudo names: correspondence k is named "k" on both sides; only the kept ones appear.
        src = self.instances[a].subset(y[0][keep_s])
        tgt = self.instances[b].subset(y[1][keep_t])
        src = dataclasses.replace(src, names=[str(k) for k in keep_s.nonzero().view(-1).tolist()], extra={})
        tgt = dataclasses.replace(tgt, names=[str(k) for k in keep_t.nonzero().view(-1).tolist()], extra={})
        if self.orient and is_mirror_image(self.instances[a].pos[y[0]], self.instances[b].pos[y[1]]):
            tgt = dataclasses.replace(tgt, pos=tgt.pos * tgt.pos.new_tensor([-1.0, 1.0]))
        pair = add_completion_targets(make_pair(src, tgt))
        pair.num_hidden = int((~keep_s & ~keep_t).sum())
        return pair


def is_mirror_image(pos_s: Tensor, pos_t: Tensor) -> bool:
    """Whether the least-squares affine map from corresponding points ``pos_t`` to ``pos_s``
    (``[K, 2]`` each) reverses orientation (negative determinant): the two views face opposite ways.
    False below 3 correspondences, where the map is not determined."""
    if pos_s.size(0) < 3:
        return False
    design = torch.cat([pos_t.double(), pos_t.new_ones(pos_t.size(0), 1).double()], dim=1)
    A = torch.linalg.lstsq(design, pos_s.double()).solution  # [3, 2]: linear part A[:2], shift A[2]
    return bool(torch.linalg.det(A[:2]) < 0)


__all__ = ["PseudoPair", "pseudo_label", "pseudo_label_once", "PseudoLabelledPairs", "is_mirror_image"]
