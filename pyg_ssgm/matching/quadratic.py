r"""Second-order refinement: the learned node affinity as the unary term of a quadratic
assignment problem whose pairwise term is the edge-to-edge geometric agreement (the signal RRWM
uses), solved by pygmtools' RRWM or IPFP.

Given unary affinities :math:`U_{ia} \ge 0` between source node :math:`i` and target node
:math:`a`, and edges :math:`(i, j)` / :math:`(a, b)` of the two graphs with edge vectors
:math:`e_{ij} = p_j - p_i` and :math:`f_{ab} = q_b - q_a`, the affinity matrix is

.. math::
    K_{ia, ia} = w\,U_{ia}, \qquad
    K_{ia, jb} = \exp\!\big(-\lVert e_{ij} - f_{ab} \rVert^2 / \sigma\big)
    \quad\text{for edges } (i, j), (a, b),

and RRWM maximises :math:`x^\top K x` over (relaxed) assignments :math:`x = \mathrm{vec}(X)`
(Cho et al., ECCV 2010); IPFP (Leordeanu et al., NIPS 2009) climbs the same objective through
discrete assignments, and lands elsewhere where the objective has several peaks. The first-order
affinity decides which nodes look alike; the edges make the neighbours of a matched pair agree,
which is what separates the left and right wheels of a car or the two sides of a duck when their
appearance alone cannot.
"""
from __future__ import annotations

from typing import Tuple

import pygmtools as pygm
import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from ..catalog import QUADRATIC_SOLVER_NAMES
from ..errors import ConfigError
from .dense import size_mask


def dense_connectivity(edge_index: Tensor, batch: Tensor, ptr: Tensor, num_graphs: int) -> Tuple[Tensor, Tensor]:
    r"""Edges of a PyG batch as pygmtools' padded connectivity: ``conn [B, E_max, 2]`` (local node
    indices; padding rows are 0) and ``ne [B]`` (edges per graph)."""
    edge_batch = batch[edge_index[0]]
    conn, _ = to_dense_batch((edge_index - ptr[edge_batch]).t(), edge_batch, batch_size=num_graphs)
    return conn, torch.bincount(edge_batch, minlength=num_graphs)


def edge_vectors(pos: Tensor, conn: Tensor) -> Tensor:
    """``[B, E_max, 2]``: end minus start of each padded edge of ``conn`` over ``pos [B, N, 2]``."""
    start = torch.gather(pos, 1, conn[..., :1].expand(-1, -1, 2))
    end = torch.gather(pos, 1, conn[..., 1:].expand(-1, -1, 2))
    return end - start


#: The pygmtools solvers of the quadratic problem, by name (``InferenceConfig.solver``; the names
#: are the catalog's, so the config accepts exactly these).
QUADRATIC_SOLVERS = {name: getattr(pygm, name) for name in QUADRATIC_SOLVER_NAMES}


def _solver(name: str):
    """The pygmtools solver called ``name``; a :class:`ConfigError` naming those there are."""
    if name not in QUADRATIC_SOLVERS:
        raise ConfigError(f"solver={name!r} does not solve a quadratic assignment: use one of "
                          f"{sorted(QUADRATIC_SOLVERS)}.")
    return QUADRATIC_SOLVERS[name]


@torch.no_grad()
def quadratic_affinity(U: Tensor, n1: Tensor, n2: Tensor, pos_s: Tensor, pos_t: Tensor,
                       conn_s: Tensor, ne_s: Tensor, conn_t: Tensor, ne_t: Tensor,
                       node_weight: float = 1.0, edge_sigma: float = 0.5) -> Tensor:
    r"""The affinity matrix :math:`K` ``[B, N1 N2, N1 N2]`` of the module docstring (double,
    column-major as pygmtools indexes it: entry :math:`j N_1 + i`), padding masked out.

    Args:
        U: non-negative unary affinities ``[B, N1, N2]`` (padding ignored).
        n1, n2: true node counts ``[B]``.
        pos_s, pos_t: ``[B, N1, 2]`` / ``[B, N2, 2]`` positions in one common frame (align the
            target on the source first, so edge vectors compare).
        conn_s, ne_s, conn_t, ne_t: padded connectivity and edge counts (:func:`dense_connectivity`).
        node_weight: :math:`w`, the weight of the unary term (a node has ~6 Delaunay edges).
        edge_sigma: :math:`\sigma`, in the units of the positions.
    """
    valid = size_mask(n1, n2, U.size(1), U.size(2))
    U = U.double() * valid
    n2max = U.size(2)
    has_edges = conn_s.size(1) > 0 and conn_t.size(1) > 0
    # pygmtools builds K from "node features" through node_aff_fn: hand it the unary matrix itself.
    K = pygm.utils.build_aff_mat(
        U, edge_vectors(pos_s.double(), conn_s) if has_edges else None, conn_s if has_edges else None,
        U.new_zeros(U.size(0), n2max, 1), edge_vectors(pos_t.double(), conn_t) if has_edges else None,
        conn_t if has_edges else None, n1, ne_s, n2, ne_t,
        node_aff_fn=lambda u, _: node_weight * u,
        edge_aff_fn=lambda e1, e2: pygm.utils.gaussian_aff_fn(e1, e2, sigma=edge_sigma, backend="pytorch"),
        backend="pytorch")
    # Entries of padded assignments must not take part (the solvers do not mask them). Index j*n1max + i.
    # (In place: K is dense, (N1 N2)^2 per pair, and a copy costs more than building it.)
    flat = valid.transpose(1, 2).reshape(U.size(0), -1).to(K.dtype)
    K.mul_(flat.unsqueeze(2)).mul_(flat.unsqueeze(1))
    # A pair with no agreeing edge and no unary term (node_weight 0) would leave K all zero, which
    # RRWM's normalisation turns into NaN: a vanishing diagonal keeps it a uniform, valid walk.
    K.diagonal(dim1=1, dim2=2).add_(flat * 1e-9)
    return K


@torch.no_grad()
def solve_quadratic(K: Tensor, n1: Tensor, n2: Tensor, n1max: int, n2max: int, solver: str = "rrwm",
                    max_iter: int = 50) -> Tensor:
    """Assignment ``[B, N1, N2]`` (double, zero on padding) of ``solver`` (:data:`QUADRATIC_SOLVERS`:
    RRWM's is soft, IPFP's discrete) on the affinity matrix ``K`` of :func:`quadratic_affinity`.
    One ``K`` may be solved by several solvers."""
    X = _solver(solver)(K, n1, n2, n1max=n1max, n2max=n2max, max_iter=max_iter, backend="pytorch")
    return X * size_mask(n1, n2, n1max, n2max)


def quadratic_refine(U: Tensor, n1: Tensor, n2: Tensor, pos_s: Tensor, pos_t: Tensor,
                     conn_s: Tensor, ne_s: Tensor, conn_t: Tensor, ne_t: Tensor,
                     node_weight: float = 1.0, edge_sigma: float = 0.5, max_iter: int = 50,
                     solver: str = "rrwm") -> Tensor:
    """:func:`solve_quadratic` of :func:`quadratic_affinity` (the arguments of both, one call)."""
    _solver(solver)  # an unknown name is refused before the matrix is built
    K = quadratic_affinity(U, n1, n2, pos_s, pos_t, conn_s, ne_s, conn_t, ne_t, node_weight, edge_sigma)
    return solve_quadratic(K, n1, n2, U.size(1), U.size(2), solver, max_iter)


__all__ = ["quadratic_affinity", "solve_quadratic", "quadratic_refine", "QUADRATIC_SOLVERS", "dense_connectivity",
           "edge_vectors"]
