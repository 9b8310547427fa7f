"""Soft log-polar shape context: a keypoint's view of the rest of its point set."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch


def shape_context(pos: Tensor, mask: Tensor, radial_bins: int = 5, angular_bins: int = 8,
                  r_min: float = 0.125, r_max: float = 2.0, kappa: float = 4.0) -> Tensor:
    r"""Soft log-polar shape context of every keypoint of a padded batch of point sets.

    Args:
        pos: ``[B, N, 2]`` positions (padded), ``mask``: ``[B, N]`` true for real nodes.

    Each graph is centred and divided by its RMS radius (translation and scale invariance). For node
    ``i``, every other node ``j`` at distance :math:`r` and angle :math:`\theta` votes into radial bin
    :math:`a` (centres :math:`\rho_a` log-spaced in ``[r_min, r_max]``, width :math:`\delta`, the log
    spacing) and angular bin :math:`b` (centres :math:`\phi_b`) with the weight
    :math:`\exp(-(\log r - \log\rho_a)^2 / 2\delta^2)\,\exp(\kappa(\cos(\theta - \phi_b) - 1))`.
    Soft votes make the descriptor continuous, so distinct nodes get distinct descriptors (hard
    histograms tie easily on small graphs). Not rotation invariant, like the keypoint benchmarks'
    upright objects. Returns ``[B, N, radial_bins * angular_bins]``, L2-normalised rows (0 if padded
    or alone).
    """
    m = mask.to(pos.dtype).unsqueeze(-1)
    count = m.sum(1, keepdim=True).clamp(min=1)
    centred = (pos - (pos * m).sum(1, keepdim=True) / count) * m
    scale = (centred.pow(2).sum(-1, keepdim=True) * m).sum(1, keepdim=True).div(count).sqrt()
    p = centred / torch.where(scale > 1e-8, scale, torch.ones_like(scale))

    diff = p.unsqueeze(1) - p.unsqueeze(2)  # [B, i, j, 2]: p_j - p_i
    log_r = diff.norm(dim=-1).clamp(min=1e-6).log()
    theta = torch.atan2(diff[..., 1], diff[..., 0])
    centres_r = torch.linspace(math.log(r_min), math.log(r_max), radial_bins, dtype=pos.dtype, device=pos.device)
    width = (centres_r[1] - centres_r[0]) if radial_bins > 1 else pos.new_tensor(1.0)
    centres_a = torch.arange(angular_bins, dtype=pos.dtype, device=pos.device) * (2 * math.pi / angular_bins)
    w_r = torch.exp(-(log_r.unsqueeze(-1) - centres_r).pow(2) / (2 * width ** 2))  # [B, i, j, R]
    w_a = torch.exp(kappa * (torch.cos(theta.unsqueeze(-1) - centres_a) - 1))  # [B, i, j, A]
    eye = torch.eye(pos.size(1), dtype=torch.bool, device=pos.device)
    pair_mask = (mask.unsqueeze(1) & mask.unsqueeze(2) & ~eye).to(pos.dtype)  # other real nodes only
    # Two operands, so einsum contracts j by a batched matmul; with the mask as a third operand it
    # would first build the [B, N, N, R, A] outer product (gigabytes at 1,000 nodes).
    hist = torch.einsum("bijr,bija->bira", w_r * pair_mask.unsqueeze(-1), w_a).flatten(2)
    return torch.nn.functional.normalize(hist, dim=-1) * mask.unsqueeze(-1)


def sparse_shape_context(pos: Tensor, batch: Tensor, num_graphs: int, **kwargs) -> Tensor:
    """:func:`shape_context` of the nodes of a PyG batch (``pos [N, 2]``, ``batch [N]``): ``[N, R * A]``."""
    dense, mask = to_dense_batch(pos, batch, batch_size=num_graphs)
    return shape_context(dense, mask, **kwargs)[mask]


__all__ = ["shape_context", "sparse_shape_context"]
