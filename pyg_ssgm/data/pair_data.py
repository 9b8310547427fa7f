"""`PairData`: a source and a target keypoint graph, their correspondences and completion targets."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch_geometric.data import Batch, Data

from ..errors import InvalidInputError

# Index fields and the side whose node count offsets them when pairs are batched.
# ``y`` (row 0 source nodes, row 1 target nodes) is handled separately: it needs both.
_INDEX_SIDE = {
    "edge_index_s": "s",
    "edge_index_t": "t",
    "comp_index_s": "t",  # node of the *target* that a node missing from the source stands for
    "comp_index_t": "s",  # node of the *source* that a node missing from the target stands for
}


class PairData(Data):
    r"""A pair of keypoint graphs, batched the PyG way.

    Fields (``*`` is ``s`` for the source graph and ``t`` for the target graph):

    * ``x_*`` float ``[N_*, F]`` node features (``F`` may be 0), ``pos_*`` float ``[N_*, 2]``;
    * ``edge_index_*`` long ``[2, E_*]`` and ``edge_attr_*`` float ``[E_*, 2]`` (relative positions
      divided by the graph's scale, see :func:`~pyg_ssgm.data.graph.edge_attributes`);
    * ``y`` long ``[2, M]``: the true correspondences, row 0 indexes source nodes, row 1 target
      nodes. A node in no column of ``y`` has no partner;
    * generated pairs only: ``comp_pos_*`` float ``[C_*, 2]``, positions (in the frame of side
      ``*``) of the nodes that side lacks, ``comp_index_*`` long ``[C_*]``, the node of the *other*
      side that each one stands for, and optionally ``comp_x_*`` their clean features;
    * optionally ``mirror`` long ``[1]``: 1 where the target stands for the mirror image of what
      the source shows (left and right exchanged, see :mod:`pyg_ssgm.data.sides`); absent means 0;
    * ``names_*`` (lists of keypoint names) and ``category`` (str) for bookkeeping.

    ``Batch.from_data_list(pairs, follow_batch=["x_s", "x_t"])`` (or PyG's ``DataLoader`` with the
    same ``follow_batch``) offsets every index field by the right side's node count and adds
    ``x_s_batch`` / ``x_t_batch``; add ``"comp_pos_s"``, ``"comp_pos_t"`` for completion targets.
    """

    FOLLOW_BATCH = ["x_s", "x_t", "comp_pos_s", "comp_pos_t"]

    def _num_side_nodes(self, side: str) -> int:
        pos = getattr(self, f"pos_{side}", None)
        if pos is not None:
            return pos.size(0)
        x = getattr(self, f"x_{side}", None)
        return 0 if x is None else x.size(0)

    @property
    def num_nodes_s(self) -> int:
        return self._num_side_nodes("s")

    @property
    def num_nodes_t(self) -> int:
        return self._num_side_nodes("t")

    @property
    def num_nodes(self) -> int:  # both graphs; PyG uses it for sanity checks only
        return self.num_nodes_s + self.num_nodes_t

    @num_nodes.setter
    def num_nodes(self, value: int) -> None:  # pragma: no cover - derived, kept for PyG's API
        pass

    def __inc__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key in _INDEX_SIDE:
            return self._num_side_nodes(_INDEX_SIDE[key])
        if key == "y":
            return torch.tensor([[self.num_nodes_s], [self.num_nodes_t]])
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key == "y":
            return -1
        return super().__cat_dim__(key, value, *args, **kwargs)


def mirrored(data: Any, side: str = "t", tell: bool = True) -> Any:
    """A shallow copy of a pair or batch of pairs with graph ``side`` ("s" or "t") mirrored
    left-right: its x coordinates (``pos``, ``edge_attr`` and completion targets) negated.
    Everything else is shared with ``data``, which is left unchanged. Names, edges and appearance
    descriptors stay as they are; a keypoint keeps its identity in the mirror image. With ``tell``
    (the default), ``mirror`` (one per pair, absent = 0) is toggled: the two graphs now face each
    other's mirror image; without it the flag stays as ``data`` has it, as if the flipped pair
    had come that way."""
    if side not in ("s", "t"):
        raise InvalidInputError(f"side must be 's' or 't', got {side!r}.")
    out = copy.copy(data)
    mirror = getattr(data, "mirror", None)
    if tell:
        out.mirror = (1 - mirror if mirror is not None
                      else torch.ones(getattr(data, "num_graphs", 1), dtype=torch.long, device=data.pos_s.device))
    for key in (f"pos_{side}", f"edge_attr_{side}", f"comp_pos_{side}"):
        value = getattr(data, key, None)
        if value is not None:
            flipped = value.clone()
            flipped[:, 0] = -flipped[:, 0]
            setattr(out, key, flipped)
    return out


def pair_field(data: Any, key: str, b: int) -> Any:
    """Field ``key`` of pair ``b`` of a batch (or of a single pair): a batch holds a list per pair
    for a field that is not a tensor (names, category)."""
    value = getattr(data, key, None)
    if isinstance(data, Batch) and isinstance(value, (list, tuple)):
        return value[b]
    return value
