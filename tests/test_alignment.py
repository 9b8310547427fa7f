"""The geometric consensus of pyg_ssgm.nn.alignment: affine fit, node spacing, coherent positions."""
import math

import pytest
import torch
import torch.nn.functional as F

from pyg_ssgm.matching import hungarian
from pyg_ssgm.nn.alignment import (apply_affine, coherence_kernel, coherent_positions, dual_softmax, fit_affine,
                                   node_spacing, squared_distances)


def _grid(n: int, step: float) -> torch.Tensor:
    side = int(math.isqrt(n))
    ij = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij"), -1).view(-1, 2)
    return ij.double() * step


def test_node_spacing_is_the_mean_nearest_neighbour_distance_and_ignores_padding():
    pos = torch.zeros(2, 9, 2, dtype=torch.double)
    pos[0] = _grid(9, 0.5)
    pos[1, :4] = _grid(4, 2.0)
    pos[1, 4:] = 100.0  # padding, far away: must not count
    mask = torch.tensor([[True] * 9, [True] * 4 + [False] * 5])
    assert torch.allclose(node_spacing(pos, mask), torch.tensor([0.5, 2.0], dtype=torch.double))
    lone = torch.tensor([[True] + [False] * 8])
    assert node_spacing(pos[:1], lone).item() == 1.0  # one node: no spacing, a neutral unit


def test_coherent_positions_follow_a_translation_and_ignore_a_nodes_own_wrong_partner():
    pos_s = _grid(25, 1.0).unsqueeze(0)
    shift = torch.tensor([0.3, -0.2], dtype=torch.double)
    pos_t = pos_s + shift
    P = torch.eye(25, dtype=torch.double).unsqueeze(0)
    P[0, 12] = 0.0
    P[0, 12, 0] = 1.0  # node 12's soft partner is wrong, far away
    mask = torch.ones(1, 25, dtype=torch.bool)
    kernel = coherence_kernel(pos_s, mask, torch.tensor([1.0], dtype=torch.double))
    expected = coherent_positions(P, pos_s, pos_t, kernel)
    # node 12 is expected at its true partner (the estimate is its neighbours'); the wrong partner
    # pulls its neighbours a little and the nodes three spacings away not at all
    assert torch.allclose(expected[0, 12], pos_t[0, 12], atol=1e-6)
    far = (pos_s[0] - pos_s[0, 12]).norm(dim=-1) >= 3
    assert torch.allclose(expected[0, far], pos_t[0, far], atol=0.02)
    assert (expected[0] - pos_t[0]).norm(dim=-1).max() < 0.5


def _aligned_pair(a, b):
    """Normalised positions of two instances in keypoint-name order, unit descriptors, and the
    target affinely aligned on the source by the soft matching of the descriptors."""
    order = [b.names.index(name) for name in a.names]

    def normalised(p):
        p = torch.as_tensor(p, dtype=torch.double)
        p = p - p.mean(0)
        return (p / p.pow(2).sum(1).mean().sqrt()).unsqueeze(0)

    pos_s, pos_t = normalised(a.pos), normalised(b.pos[order])
    x_s = F.normalize(torch.as_tensor(a.x, dtype=torch.double), dim=-1)
    x_t = F.normalize(torch.as_tensor(b.x, dtype=torch.double)[order], dim=-1)
    return pos_s, pos_t, (x_s @ x_t.T).unsqueeze(0)


@pytest.mark.parametrize("num_nodes", [20, 150])
def test_coherence_keeps_the_geometric_term_decisive_as_graphs_grow(num_nodes):
    # The synthetic generator's smooth deformations, noisy descriptors and a geometric weight
    # fixed in graph radii (as one learned on small graphs is): at 150 nodes the affine residual
    # exceeds the spacing of the nodes and the affine term loses many nodes; the coherent
    # residual, in node spacings, keeps nearly all. At 20 nodes both are right.
    from pyg_ssgm.benchmarking.speed import speed_instances

    temperature, weight = 0.07, 10.0
    right = {"affine": [], "coherent": []}
    instances = speed_instances(num_nodes, 0.0, 3, 32, seed=1000)
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        pos_s, pos_t, cos = _aligned_pair(instances[a], instances[b])
        mask = torch.ones(1, num_nodes, dtype=torch.bool)
        pair_mask = mask.unsqueeze(2) & mask.unsqueeze(1)
        n = torch.tensor([num_nodes])
        truth = torch.arange(num_nodes)
        S_nodes = cos / temperature
        aligned = apply_affine(fit_affine(dual_softmax(S_nodes, pair_mask), pos_s, pos_t), pos_t)
        aligned = apply_affine(fit_affine(dual_softmax(S_nodes - weight * squared_distances(pos_s, aligned),
                                                       pair_mask), pos_s, pos_t), pos_t)
        S = S_nodes - weight * squared_distances(pos_s, aligned)
        right["affine"].append((hungarian(S, n, n)[0].argmax(1) == truth).double().mean())
        spacing = node_spacing(pos_s, mask)
        kernel = coherence_kernel(pos_s, mask, spacing)
        for _ in range(8):
            expected = coherent_positions(dual_softmax(S, pair_mask), pos_s, aligned, kernel)
            S = S_nodes - 0.3 * weight * squared_distances(expected, aligned) / spacing.pow(2)
        right["coherent"].append((hungarian(S, n, n)[0].argmax(1) == truth).double().mean())
    affine, coherent = (float(torch.stack(v).mean()) for v in right.values())
    assert coherent >= 0.97
    if num_nodes >= 100:
        assert affine < coherent - 0.05
