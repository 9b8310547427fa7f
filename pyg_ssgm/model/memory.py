"""The keypoint filter's memory of the training points, fitted once training is over."""
from __future__ import annotations

from typing import Sequence

import torch

from ..data import KeypointInstance
from .network import SSGM


@torch.no_grad()
def remember_training_points(model: SSGM, instances: Sequence[KeypointInstance]) -> None:
    """Fit the memory of ``model``'s keypoint filter (where it has one,
    :class:`~pyg_ssgm.nn.keypoint_filter.KeypointMemory`) on the points of the training
    ``instances``: their descriptors and places, and which of them have a name. The filter reads
    its running statistics (eval mode) for it; its training flag is restored."""
    filt = model.keypoint_filter
    if filt is None or filt.memory is None:
        return
    items = [inst for inst in instances if inst.num_nodes]
    if not items:
        return
    device = next(filt.parameters()).device
    x = torch.cat([inst.x if inst.x is not None else inst.pos.new_zeros(inst.num_nodes, 0) for inst in items])
    pos = torch.cat([inst.pos for inst in items])
    batch = torch.cat([torch.full((inst.num_nodes,), b, dtype=torch.long) for b, inst in enumerate(items)])
    named = torch.tensor([name is not None for inst in items for name in inst.names], dtype=torch.bool)
    was_training = filt.training
    filt.eval()
    try:
        filt.remember(x.to(device), pos.to(device), batch.to(device), len(items), named.to(device))
    finally:
        filt.train(was_training)


__all__ = ["remember_training_points"]
