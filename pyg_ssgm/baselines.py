r"""Classical graph matching solvers (pygmtools) as baselines, run on the same ``PairData`` batches.

:class:`ClassicalMatcher` turns a batch of pairs into padded dense tensors, calls *one* pygmtools
solver for the whole batch and returns one matching (long ``[2, K]``, local node indices) per pair,
the format :mod:`pyg_ssgm.metrics` and the model use.

Affinities
----------
Node descriptors :math:`d_i` are the L2-normalised node features ``x`` or, for feature-less graphs
(or ``node_affinity="geometry"``), a soft log-polar *shape context* of the keypoints (see
:func:`shape_context`). The node affinity is the cosine similarity mapped to :math:`[0, 1]`:

.. math::  s_{ij} = \tfrac{1}{2}\,(1 + \langle d_i, d_j \rangle).

Being affine in the cosine, it leaves the linear assignment unchanged, and being non-negative it
suits the spectral solvers (whose power iterations assume a non-negative affinity matrix). The edge
affinity of source edge :math:`e` and target edge :math:`f` is a Gaussian of their attributes (the
scale-normalised relative positions ``edge_attr_*`` of the Delaunay edges),
:math:`\exp(-\lVert a_e - a_f\rVert^2 / \sigma)` (``pygmtools.utils.gaussian_aff_fn``).

Solvers
-------
* ``"hungarian"``: linear assignment, :math:`\max_X \sum_{ij} s_{ij} X_{ij}`;
* ``"sm"`` (spectral matching), ``"rrwm"`` (reweighted random walks), ``"ipfp"`` (integer projected
  fixed point): the quadratic assignment :math:`\max_x x^\top K x` with ``K`` from
  ``pygmtools.utils.build_aff_mat`` (node affinities on the diagonal, times ``node_weight``), the
  relaxed solution discretised by ``pygmtools.hungarian``.

All of them return *full* matchings (``min(n_s, n_t)`` pairs). That is the **default** and the
plain classical baseline. Set ``threshold`` (or fit it with :meth:`ClassicalMatcher.calibrate_threshold`
on a validation set) to drop the pairs whose node affinity is below it: the partial-matching variant,
for a fair comparison with a method that may leave nodes unmatched.

With ``epipolar=True`` the solver's matching is re-matched under the epipolar geometry it implies
(:func:`pyg_ssgm.matching.epipolar.epipolar_rematch`, the node affinity breaking ties), as
:class:`pyg_ssgm.config.InferenceConfig` offers the model: two views of one rigid object. With
``epipolar_pool`` naming other solvers, their matchings seed the re-matching too and the geometry
that verifies the most pairs wins, as ``InferenceConfig.epipolar_pool`` does for the model's own
matchings.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pygmtools as pygm
import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from .catalog import CLASSICAL_SOLVERS
from .errors import ConfigError, InvalidInputError
from .data import RealPairs, pair_loader
from .data.pair_data import mirrored
from .matching import dense_connectivity
from .matching.epipolar import epipolar_rematch_blocks
from .nn.shape_context import shape_context
from .metrics import MatchingReport, aggregate, as_pair_batch, batch_counts, batch_targets

SOLVERS = CLASSICAL_SOLVERS
#: The solvers whose matchings seed a pooled epipolar re-matching (``epipolar_pool``) by default in
#: the command line and the benchmarks: the Hungarian seeds the geometry best at small turns of a
#: rigid object, RRWM at medium and IPFP at the largest ones (SM adds nothing beside RRWM).
EPIPOLAR_POOL_SOLVERS = ("hungarian", "rrwm", "ipfp")
NODE_AFFINITIES = ("auto", "features", "geometry")

__all__ = ["ClassicalMatcher", "calibrated_solver", "shape_context", "SOLVERS", "EPIPOLAR_POOL_SOLVERS"]


def _node_affinity(d1: Tensor, d2: Tensor) -> Tensor:
    # (1 + cosine) / 2 of normalised descriptors: in [0, 1], same argmax as the cosine.
    return (1 + torch.bmm(d1, d2.transpose(1, 2))) / 2


class ClassicalMatcher:
    r"""A classical pygmtools solver as a matcher of ``PairData`` batches.

    Args:
        solver: ``"hungarian"``, ``"sm"``, ``"rrwm"`` or ``"ipfp"`` (see the module docstring).
        node_affinity: ``"features"`` (cosine of ``x``), ``"geometry"`` (cosine of
            :func:`shape_context`) or ``"auto"``: features when the pairs have some, else geometry.
        edge_sigma: :math:`\sigma` of the Gaussian edge affinity (edge attributes are relative
            positions in units of the graph's RMS radius, so ~0.5 separates them well).
        node_weight: factor of the node affinities on the diagonal of ``K`` (QAP solvers only; a
            Delaunay node has ~6 edges, so edge terms otherwise dominate).
        threshold: ``None`` (default): the plain solver, full matchings. A float: drop the predicted
            pairs whose node affinity :math:`s_{ij} \in [0, 1]` is below it (partial matching).
        max_iter: iterations of the QAP solvers.
        dtype: computation dtype; float64 by default so ties are broken by data, not by rounding.
        epipolar: re-match each pair under the epipolar geometry of its matching (see the module
            docstring); ``epipolar_threshold`` is the Sampson distance a pair must keep under.
        epipolar_pool: other solvers (names as ``solver``) whose matchings seed the re-matching as
            well (:func:`~pyg_ssgm.matching.epipolar.epipolar_rematch`'s ``alternatives``).
        **solver_kwargs: passed to the pygmtools solver (e.g. ``alpha``, ``beta`` of RRWM).

    Calling it on a batch (anything :func:`~pyg_ssgm.metrics.as_pair_batch` accepts, e.g. what
    :func:`~pyg_ssgm.data.pair_loader` yields) returns a list with one long ``[2, K]`` matching per
    pair, in local node indices, sorted by source node.
    """

    def __init__(self, solver: str = "rrwm", node_affinity: str = "auto", edge_sigma: float = 0.5,
                 node_weight: float = 1.0, threshold: Optional[float] = None, max_iter: int = 50,
                 dtype: torch.dtype = torch.float64, mirror_test: bool = False, epipolar: bool = False,
                 epipolar_threshold: float = 3e-3, epipolar_pool: Sequence[str] = (), **solver_kwargs: Any):
        if solver not in SOLVERS:
            raise ConfigError(f"solver={solver!r} is invalid: must be one of {list(SOLVERS)}.")
        if node_affinity not in NODE_AFFINITIES:
            raise ConfigError(f"node_affinity={node_affinity!r} is invalid: must be one of {list(NODE_AFFINITIES)}.")
        if not edge_sigma > 0:
            raise ConfigError(f"edge_sigma must be > 0, got {edge_sigma}.")
        if not node_weight >= 0:
            raise ConfigError(f"node_weight must be >= 0, got {node_weight}.")
        if max_iter < 1:
            raise ConfigError(f"max_iter must be >= 1, got {max_iter}.")
        if not epipolar_threshold > 0:
            raise ConfigError(f"epipolar_threshold must be > 0, got {epipolar_threshold}.")
        if isinstance(epipolar_pool, str) or any(s not in SOLVERS for s in epipolar_pool):
            raise ConfigError(f"epipolar_pool={epipolar_pool!r} is invalid: must be a sequence of solvers out of "
                              f"{list(SOLVERS)}.")
        if epipolar_pool and not epipolar:
            raise ConfigError("epipolar_pool seeds the epipolar re-matching: set epipolar=True with it.")
        self.solver, self.node_affinity = solver, node_affinity
        self.edge_sigma, self.node_weight = float(edge_sigma), float(node_weight)
        self.threshold = threshold
        self.max_iter, self.dtype, self.solver_kwargs = max_iter, dtype, solver_kwargs
        self.mirror_test = bool(mirror_test)
        self.epipolar, self.epipolar_threshold = bool(epipolar), float(epipolar_threshold)
        self.epipolar_pool = tuple(s for s in dict.fromkeys(epipolar_pool) if s != solver)

    def __repr__(self) -> str:
        return (f"ClassicalMatcher(solver={self.solver!r}, node_affinity={self.node_affinity!r}, "
                f"edge_sigma={self.edge_sigma}, node_weight={self.node_weight}, threshold={self.threshold}"
                + (", mirror_test=True" if self.mirror_test else "") + (", epipolar=True" if self.epipolar else "")
                + (f", epipolar_pool={self.epipolar_pool}" if self.epipolar_pool else "") + ")")

    # ----------------------------------------------------------------------------------------------
    def __call__(self, batch: Any) -> List[Tensor]:
        matchings, affinities = self.predict(batch)
        if self.threshold is None:
            return matchings
        return [m[:, a >= self.threshold] for m, a in zip(matchings, affinities)]

    @torch.no_grad()
    def predict(self, batch: Any) -> Tuple[List[Tensor], List[Tensor]]:
        """The solver's full matchings (``threshold`` ignored) and the node affinity of each
        predicted pair (a float ``[K]`` per pair, aligned with the matching's columns). With
        ``mirror_test``, the target is also matched mirrored left-right and each pair keeps the
        matching of the higher objective (:math:`x^\top K x`, or the summed node affinity for
        ``"hungarian"``), as :meth:`pyg_ssgm.SSGM.predict` does."""
        batch = as_pair_batch(batch)
        out, affs, value = self._predict_once(batch)
        if not self.mirror_test:
            return out, affs
        out_m, affs_m, value_m = self._predict_once(mirrored(batch, "t"))
        keep = (value >= value_m).tolist()
        return ([a if k else b for a, b, k in zip(out, out_m, keep)],
                [a if k else b for a, b, k in zip(affs, affs_m, keep)])

    def _predict_once(self, batch: Any) -> Tuple[List[Tensor], List[Tensor], Tensor]:
        """:meth:`predict` without the mirror test, and each pair's objective value ``[B]``."""
        dense = self._dense(batch)
        n1, n2 = dense["n1"], dense["n2"]
        num_pairs = n1.numel()
        device = batch.x_s.device
        out = [torch.empty(2, 0, dtype=torch.long, device=device)] * num_pairs
        affs = [torch.empty(0, dtype=self.dtype, device=device)] * num_pairs
        value = torch.zeros(num_pairs, dtype=self.dtype, device=device)
        # Pairs with an empty side have nothing to match; keeping them out of the padded solver call
        # avoids 0/0 in the solvers' normalisations.
        idx = ((n1 > 0) & (n2 > 0)).nonzero().view(-1)
        if idx.numel() == 0:
            return list(out), list(affs), value
        sub = {k: v[idx] for k, v in dense.items()}
        S = _node_affinity(sub["d1"], sub["d2"]) * (sub["mask1"].unsqueeze(2) & sub["mask2"].unsqueeze(1))
        perm, K = self._solve(S, sub)
        if self.epipolar:
            pool, shared = [], K  # one affinity matrix for every quadratic solver of the pool
            for solver in self.epipolar_pool:
                X, K_pool = self._solve(S, sub, solver, shared)
                pool.append(X)
                shared = shared if shared is not None else K_pool
            perm = epipolar_rematch_blocks(perm, S, sub["pos1"], sub["pos2"],
                                           [torch.arange(int(n)) for n in sub["n1"]],
                                           [torch.arange(int(n)) for n in sub["n2"]], self.epipolar_threshold,
                                           alternatives=pool)
        if K is None:
            value[idx] = (S * perm).sum((1, 2))
        else:  # x in pygmtools' column-major vectorisation, as K
            x = perm.transpose(1, 2).reshape(perm.size(0), -1, 1).to(K.dtype)
            value[idx] = (x.transpose(1, 2) @ K @ x).view(-1)
        for k, b in enumerate(idx.tolist()):  # unpadding bookkeeping only
            m = perm[k, : n1[b], : n2[b]].nonzero().t().contiguous()
            out[b], affs[b] = m, S[k, m[0], m[1]]
        return list(out), list(affs), value

    # ----------------------------------------------------------------------------------------------
    def _dense(self, batch: Any) -> dict:
        """Padded per-pair tensors: descriptors, masks, node and edge counts, connectivity, edge attrs."""
        num_pairs = batch.num_graphs
        use_features = self.node_affinity == "features" or (
            self.node_affinity == "auto" and batch.x_s.dim() == 2 and batch.x_s.size(1) > 0)
        if use_features and (batch.x_s.dim() != 2 or batch.x_s.size(1) == 0):
            raise InvalidInputError("node_affinity='features' but the pairs have no node features (x_s is empty).")
        out = {}
        for side, i in (("s", "1"), ("t", "2")):
            node_batch = getattr(batch, f"x_{side}_batch")
            pos, _ = to_dense_batch(getattr(batch, f"pos_{side}").to(self.dtype), node_batch, batch_size=num_pairs)
            if use_features:
                x = torch.nn.functional.normalize(getattr(batch, f"x_{side}").to(self.dtype), dim=-1)
                desc, mask = to_dense_batch(x, node_batch, batch_size=num_pairs)
            else:
                _, mask = to_dense_batch(pos.new_zeros(node_batch.numel(), 1), node_batch, batch_size=num_pairs)
                desc = shape_context(pos, mask)
            # The Delaunay edges in local indices, padded per pair: pygmtools' sparse connectivity.
            edge_index = getattr(batch, f"edge_index_{side}")
            conn, num_edges = dense_connectivity(edge_index, node_batch, getattr(batch, f"x_{side}_ptr"), num_pairs)
            attr, _ = to_dense_batch(getattr(batch, f"edge_attr_{side}").to(self.dtype), node_batch[edge_index[0]],
                                     batch_size=num_pairs)
            out.update({f"d{i}": desc, f"pos{i}": pos, f"mask{i}": mask, f"n{i}": mask.sum(1), f"ne{i}": num_edges,
                        f"conn{i}": conn, f"edge{i}": attr})
        return out

    def _solve(self, S: Tensor, d: dict, solver: Optional[str] = None,
               K: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor]]:
        """One pygmtools call of ``solver`` (default: the matcher's) for the whole padded batch: 0/1
        matrices ``[B, n1max, n2max]``, and the quadratic affinity matrix ``K`` (``None`` for
        ``"hungarian"``; built here unless given)."""
        n1, n2 = d["n1"], d["n2"]
        solver = solver or self.solver
        if solver == "hungarian":
            return pygm.hungarian(S, n1, n2, backend="pytorch"), None
        K = K if K is not None else self._affinity_matrix(d)
        solve = {"sm": pygm.sm, "rrwm": pygm.rrwm, "ipfp": pygm.ipfp}[solver]
        kwargs = self.solver_kwargs if solver == self.solver else {}  # e.g. RRWM's alpha is not IPFP's
        X = solve(K, n1, n2, max_iter=self.max_iter, backend="pytorch", **kwargs)
        return pygm.hungarian(X, n1, n2, backend="pytorch"), K

    def _affinity_matrix(self, d: dict) -> Tensor:
        """``K`` ``[B, n1max*n2max, n1max*n2max]`` (pygmtools' column-major vectorisation)."""
        n1, n2 = d["n1"], d["n2"]
        n1max, n2max = d["d1"].size(1), d["d2"].size(1)

        def node_aff(f1: Tensor, f2: Tensor) -> Tensor:
            return self.node_weight * _node_affinity(f1, f2)

        def edge_aff(e1: Tensor, e2: Tensor) -> Tensor:
            return pygm.utils.gaussian_aff_fn(e1, e2, sigma=self.edge_sigma, backend="pytorch")

        has_edges = d["conn1"].size(1) > 0 and d["conn2"].size(1) > 0
        K = pygm.utils.build_aff_mat(
            d["d1"], d["edge1"] if has_edges else None, d["conn1"] if has_edges else None,
            d["d2"], d["edge2"] if has_edges else None, d["conn2"] if has_edges else None,
            n1, d["ne1"], n2, d["ne2"], node_aff_fn=node_aff, edge_aff_fn=edge_aff, backend="pytorch",
        )
        # build_aff_mat fills the diagonal for padded nodes too, and SM / IPFP do not mask them:
        # zero every row and column of an assignment (i, j) with a padded i or j. Index = j*n1max + i.
        valid = (d["mask2"].unsqueeze(2) & d["mask1"].unsqueeze(1)).reshape(-1, n1max * n2max).to(K.dtype)
        return K * valid.unsqueeze(2) * valid.unsqueeze(1)

    # ----------------------------------------------------------------------------------------------
    def calibrate_threshold(self, batches: Iterable[Any], candidates: Optional[Sequence[float]] = None,
                            average: str = "macro", max_candidates: int = 256) -> Optional[float]:
        r"""Choose ``threshold`` maximising F1 on validation pairs, set it and return it.

        Runs the solver once per batch, then scores every candidate threshold from the cached
        affinities. ``candidates`` defaults to up to ``max_candidates`` quantiles of the predicted
        pairs' affinities plus "no threshold" (``-inf``; include it yourself in explicit ``candidates``
        to allow it); ``average`` is ``"macro"`` (mean over classes of the
        per-class mean F1, the reported number) or ``"micro"``. Ties go to the lowest threshold (the
        closest to the plain solver); when not thresholding is best, ``threshold`` becomes ``None``.
        """
        if average not in ("macro", "micro"):
            raise ConfigError(f"average={average!r} is invalid: must be 'macro' or 'micro'.")
        pairs: List[Tuple[np.ndarray, np.ndarray, int, Optional[str]]] = []  # affinities, correct, |G|, class
        for batch in batches:
            batch = as_pair_batch(batch)
            matchings, affinities = self.predict(batch)
            cats = batch.category if hasattr(batch, "category") else None
            cats = [cats] * batch.num_graphs if cats is None or isinstance(cats, str) else list(cats)
            for m, a, g, c in zip(matchings, affinities, batch_targets(batch), cats):
                base = int(max(m[1].max() if m.numel() else 0, g[1].max() if g.numel() else 0)) + 1
                correct = torch.isin(m[0].cpu() * base + m[1].cpu(), g[0] * base + g[1])
                pairs.append((a.cpu().double().numpy(), correct.numpy(), g.size(1), c))
        if not pairs:
            raise InvalidInputError("calibrate_threshold needs at least one validation pair.")
        if candidates is None:
            all_aff = np.concatenate([p[0] for p in pairs])
            grid = np.unique(np.quantile(all_aff, np.linspace(0, 1, max_candidates))) if all_aff.size else []
            candidates = [-math.inf] + list(grid)
        cand = np.asarray(sorted(set(float(c) for c in candidates)), dtype=np.float64)

        kept = np.stack([(p[0][None, :] >= cand[:, None]).sum(1) for p in pairs], 1)  # [C, pairs]
        tp = np.stack([((p[0][None, :] >= cand[:, None]) & p[1][None, :]).sum(1) for p in pairs], 1)
        num_gt = np.array([p[2] for p in pairs])[None, :]
        if average == "micro":
            den = kept.sum(1) + num_gt.sum()
            score = np.where(den > 0, 2 * tp.sum(1) / np.maximum(den, 1), 1.0)
        else:
            den = kept + num_gt
            f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1), 1.0)  # per pair, the metrics' convention
            labels = np.array(["all" if p[3] is None else str(p[3]) for p in pairs])
            score = np.mean([f1[:, labels == c].mean(1) for c in np.unique(labels)], axis=0)
        best = float(cand[int(np.argmax(score))])  # argmax takes the first, i.e. lowest, maximiser
        self.threshold = None if math.isinf(best) else best
        return self.threshold

    def evaluate(self, batches: Iterable[Any]) -> MatchingReport:
        """Run on every batch and :func:`~pyg_ssgm.metrics.aggregate` precision / recall / F1."""
        records = []
        for batch in batches:
            batch = as_pair_batch(batch)
            records.extend(batch_counts(self(batch), batch))
        return aggregate(records)


def calibrated_solver(solver: str, val_instances: Optional[Sequence] = None,
                      max_pairs_per_category: Optional[int] = None, mirror_test: bool = False,
                      **options: Any):
    """A :class:`ClassicalMatcher` whose unmatched threshold is calibrated on the real pairs of
    ``val_instances`` (seed 0, batches of 32); a full matching (threshold ``None``) where there is
    no such pair or no threshold beats it."""
    matcher = ClassicalMatcher(solver, mirror_test=mirror_test, **options)
    if val_instances:
        try:
            pairs = RealPairs(val_instances, max_pairs_per_category, seed=0)
        except InvalidInputError:  # no two instances of one class (tiny data): stays full
            return matcher
        matcher.calibrate_threshold(list(pair_loader(pairs, 32)))
    return matcher
