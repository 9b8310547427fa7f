r"""The affinity between the nodes of two completed graphs: learned embeddings, raw descriptors
fused late, and geometry (affine alignment, then non-rigid coherence rounds)."""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from .alignment import coherence_kernel, coherent_positions, dual_softmax, node_spacing, squared_distances


def late_fusion(terms: Sequence[Tuple[float, Tensor, Tensor]], batch_s: Tensor, batch_t: Tensor, num_graphs: int,
                n1: int, n2: int) -> Union[Tensor, float]:
    r""":math:`\sum_k w_k \cos(d^s_{k,i}, d^t_{k,j})` over the ``terms`` ``(w_k, d_s [N_s, D_k],
    d_t [N_t, D_k])`` of raw descriptors (appearance, shape context), ``[B, n1, n2]`` with the real
    nodes first (generated nodes and padding get 0); ``0.0`` when every term is off (weight 0 or
    no descriptor).

    *Late fusion*: the terms enter the affinity at inference only, with fixed weights chosen on
    validation. Trained together with them, the learned embeddings lean on the raw terms and come
    out weaker, and a learned weight sinks (the embeddings fit the training pairs better than raw
    descriptors do), while the raw descriptors are what carries over to new instances.
    """
    out: Union[Tensor, float] = 0.0
    for weight, d_s, d_t in terms:
        if weight <= 0 or d_s.size(-1) == 0:
            continue
        D_s, _ = to_dense_batch(F.normalize(d_s, dim=-1), batch_s, batch_size=num_graphs, max_num_nodes=n1)
        D_t, _ = to_dense_batch(F.normalize(d_t, dim=-1), batch_t, batch_size=num_graphs, max_num_nodes=n2)
        out = out + weight * (D_s @ D_t.transpose(1, 2))
    return out


def geometric_affinity(S_nodes: Tensor, pos_s: Tensor, pos_t: Tensor, mask_s: Tensor, mask_t: Tensor,
                       geometric_weight: Tensor, coherence_rounds: int = 0, bandwidth: float = 1.0,
                       coherence_weight: float = 0.3) -> Tensor:
    r"""The node affinity ``S_nodes [B, N1, N2]`` minus the geometric disagreement of each pair.

    .. math::
        S_{ij} = S^{nodes}_{ij} - w \lVert p^s_i - p^t_j \rVert^2

    with the target positions ``pos_t`` already aligned on the source frame. Then, for each of
    ``coherence_rounds`` rounds (non-rigid refinement), the affine residual is replaced by the
    residual left after following the neighbourhood's displacement under the soft matching of the
    current :math:`S` (:func:`~pyg_ssgm.nn.alignment.coherent_positions`, a Gaussian kernel of
    ``bandwidth`` node spacings :math:`\delta`):

    .. math::
        S_{ij} = S^{nodes}_{ij} - w\,\lambda\,\lVert \hat p_i - p^t_j \rVert^2 / \delta^2

    (:math:`\lambda` = ``coherence_weight``). The affine residual is of the size of the
    deformation, which exceeds the spacing of a dense graph's nodes; the coherent one does not.
    Measured in node spacings, the term means the same for 10 nodes as for 500.
    """
    S = S_nodes - geometric_weight * squared_distances(pos_s, pos_t)
    if coherence_rounds > 0:
        within_s = squared_distances(pos_s, pos_s)  # one N x N matrix for both the unit and the kernel
        spacing = node_spacing(pos_s, mask_s, distances=within_s)
        kernel = coherence_kernel(pos_s, mask_s, bandwidth * spacing, distances=within_s)
        pair_mask = mask_s.unsqueeze(2) & mask_t.unsqueeze(1)
        for _ in range(coherence_rounds):
            expected = coherent_positions(dual_softmax(S, pair_mask), pos_s, pos_t, kernel)
            residual = squared_distances(expected, pos_t) / spacing.pow(2).view(-1, 1, 1)
            S = S_nodes - geometric_weight * coherence_weight * residual
    return S


__all__ = ["late_fusion", "geometric_affinity"]
