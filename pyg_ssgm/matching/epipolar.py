r"""Epipolar verification: two views of one rigid object agree on a fundamental matrix, and a
matching that knows it can re-match the points its first guess got wrong.

Whatever the camera motion, corresponding points :math:`p_i \leftrightarrow q_a` (homogeneous,
in pixels) of two views of a rigid object satisfy :math:`q_a^\top F p_i = 0` for one rank-2
:math:`3 \times 3` matrix :math:`F`. Under a large out-of-plane turn the object's outline, and
with it every local shape descriptor and edge, changes; the epipolar constraint does not. How far
a pair is from satisfying it is measured by the Sampson distance

.. math::
    d_{ia} = \frac{(q_a^\top F p_i)^2}{(F p_i)_1^2 + (F p_i)_2^2 + (F^\top q_a)_1^2 + (F^\top q_a)_2^2},

in each view's Hartley-normalised frame (centroid at the origin, mean distance :math:`\sqrt 2`).

:func:`epipolar_rematch` estimates :math:`F` from a matching that is partly right and re-matches:

1. **hypotheses**: random 4-subsets of the matched pairs each give the *affine* fundamental matrix
   (a camera far from the object; 4 pairs fix its 4 degrees of freedom, where the projective one
   needs 7 or 8, so a clean subset is found even when most of the matching is wrong); the one
   with the most matched pairs within ``threshold``, plus the most points with some point of
   the other view within it (averaged over the two views), wins (RANSAC, Fischler and Bolles
   1981; :func:`ransac_affine`);
2. **re-matching**, ``rounds`` times: the linear assignment of
   :math:`\text{score}_{ia} = w\,X_{ia} + A_{ia} - \min(d_{ia} / \tau, c)`, with :math:`X` the
   first matching, :math:`A \in [0, 1]` a soft affinity and :math:`\tau` the threshold; then the
   projective :math:`F` (eight-point algorithm, rank 2 enforced) is re-fitted to the re-matched
   pairs within :math:`\tau` (at least 8 of them).

Given other first matchings of the pair as well (``alternatives``: other solvers', a pool of
seeds), each is re-matched so, and the re-matching whose geometry verifies the most of its pairs
is kept.

The epipolar constraint is one-dimensional (a point's partner lies on a line), so it does not
match on its own: it removes the candidates off the line, and the first matching and the affinity
decide among the rest. Two views of *different* objects (two cars, two birds) satisfy no common
:math:`F`, which is why :class:`~pyg_ssgm.config.InferenceConfig` leaves it to the validation split.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..errors import ConfigError
from .solvers import hungarian

#: The pairs a rematch needs at least: 4 fix an affine hypothesis, one more to test it.
MIN_PAIRS = 5


def hartley_normalise(points: Tensor) -> Tensor:
    r"""``[..., N, 3]`` homogeneous points of ``points [..., N, 2]``, centred on their centroid and
    scaled so that their mean distance to it is :math:`\sqrt 2` (Hartley, 1997): the linear
    fits below are well conditioned there, and the Sampson distance is unit-free."""
    centred = points - points.mean(-2, keepdim=True)
    mean_dist = centred.norm(dim=-1).mean(-1, keepdim=True).clamp(min=1e-12)
    scaled = centred * (2 ** 0.5 / mean_dist).unsqueeze(-1)
    return torch.cat([scaled, torch.ones_like(scaled[..., :1])], -1)


def affine_fundamental(p: Tensor, q: Tensor) -> Tensor:
    r"""``[R, 3, 3]`` affine fundamental matrices (only :math:`F_{13}, F_{23}, F_{31}, F_{32},
    F_{33}` non-zero) fitted by least squares to the pairs ``p [R, k, 3]`` :math:`\leftrightarrow`
    ``q [R, k, 3]`` (``k >= 4``): the null vector of :math:`[q_1, q_2, p_1, p_2, 1]`."""
    rows = torch.cat([q[..., :2], p[..., :2], torch.ones_like(p[..., :1])], -1)
    v = torch.linalg.eigh(rows.transpose(-1, -2) @ rows).eigenvectors[..., 0]  # of the smallest eigenvalue, [R, 5]
    F = v.new_zeros(v.size(0), 3, 3)
    F[:, 0, 2], F[:, 1, 2], F[:, 2, 0], F[:, 2, 1], F[:, 2, 2] = v.unbind(-1)
    return F


def fundamental(p: Tensor, q: Tensor) -> Tensor:
    r"""The rank-2 fundamental matrix ``[3, 3]`` fitted to ``p [k, 3]`` :math:`\leftrightarrow`
    ``q [k, 3]`` (``k >= 8``) by the eight-point algorithm: the null vector of the rows
    :math:`q \otimes p`, its smallest singular value then set to zero."""
    rows = (q.unsqueeze(-1) * p.unsqueeze(-2)).reshape(-1, 9)
    F = torch.linalg.eigh(rows.t() @ rows).eigenvectors[:, 0].reshape(3, 3)
    U, sigma, Vh = torch.linalg.svd(F)
    return U @ torch.diag(torch.cat([sigma[:2], sigma.new_zeros(1)])) @ Vh


def sampson_distance(F: Tensor, p: Tensor, q: Tensor) -> Tensor:
    r"""Sampson distance (module docstring) of the pairs ``p [K, 3]`` :math:`\leftrightarrow`
    ``q [K, 3]`` under ``F``: ``[K]`` for one ``F [3, 3]``, ``[R, K]`` for ``F [R, 3, 3]``
    (:func:`sampson_matrix` scores every pair of two point sets)."""
    Fp = torch.einsum("...ij,kj->...ki", F, p)
    Ftq = torch.einsum("...ji,kj->...ki", F, q)
    residual = (Fp * q).sum(-1)
    scale = Fp[..., 0] ** 2 + Fp[..., 1] ** 2 + Ftq[..., 0] ** 2 + Ftq[..., 1] ** 2
    return residual ** 2 / scale.clamp(min=1e-12)


def sampson_matrix(F: Tensor, p: Tensor, q: Tensor) -> Tensor:
    """``[R, N1, N2]``: the Sampson distance of every pair of ``p [N1, 3]`` and ``q [N2, 3]`` under
    each of ``F [R, 3, 3]``."""
    Fp = torch.einsum("rij,nj->rni", F, p)
    Ftq = torch.einsum("rji,mj->rmi", F, q)
    residual = torch.einsum("rni,mi->rnm", Fp, q)
    scale = (Fp[..., 0] ** 2 + Fp[..., 1] ** 2).unsqueeze(2) + (Ftq[..., 0] ** 2 + Ftq[..., 1] ** 2).unsqueeze(1)
    return residual ** 2 / scale.clamp(min=1e-12)


def ransac_affine(p: Tensor, q: Tensor, points_s: Tensor, points_t: Tensor, threshold: float, hypotheses: int,
                  generator: torch.Generator, chunk: int = 2 ** 21) -> Tensor:
    r"""The affine fundamental matrix ``[3, 3]`` of the best of ``hypotheses`` random 4-subsets of
    the matched pairs ``p [K, 3]`` :math:`\leftrightarrow` ``q [K, 3]``, re-fitted to its pairs
    within ``threshold``. A hypothesis scores its matched pairs within ``threshold`` plus its
    *coverage*: the points with some point of the other view within ``threshold``, averaged over
    the two views (``points_s [N1, 3]``, ``points_t [N2, 3]``). Where few matched pairs are right,
    a wrong hypothesis gathers about as many of them by chance as the right one; but under the
    right one nearly every point finds its partner on its epipolar line, under a wrong one many
    find none. (On the viewpoint data's validation frames, re-matching RRWM: 3.8 points of F1 at
    30-45 degrees over the pairs alone; counting each view's coverage in full, 0.8 more there, but
    it chose a wrong hypothesis on exact views of a matching half wrong.) ``chunk`` bounds the
    entries of one ``[R, N1, N2]`` block of distances."""
    K = p.size(0)
    subsets = torch.rand(hypotheses, K, generator=generator, dtype=p.dtype).argsort(1)[:, :4].to(p.device)
    F = affine_fundamental(p[subsets], q[subsets])
    score = (sampson_distance(F, p, q) < threshold).sum(1).float()  # [R]
    step = max(1, chunk // max(points_s.size(0) * points_t.size(0), 1))
    # single precision: a count under a threshold, five times faster than double on [R, N1, N2]
    points_s, points_t = points_s.float(), points_t.float()
    for start in range(0, hypotheses, step):
        d = sampson_matrix(F[start:start + step].float(), points_s, points_t)
        score[start:start + step] += ((d.amin(2) < threshold).sum(1) + (d.amin(1) < threshold).sum(1)) / 2
    best = sampson_distance(F[score.argmax()], p, q) < threshold
    return affine_fundamental(p[best].unsqueeze(0), q[best].unsqueeze(0))[0] if best.sum() >= 4 else F[score.argmax()]


def epipolar_rematch(X: Tensor, affinity: Tensor, pos_s: Tensor, pos_t: Tensor, threshold: float = 3e-3,
                     prior_weight: float = 2.0, cap: float = 10.0, rounds: int = 3, hypotheses: int = 2000,
                     seed: int = 0, alternatives: Sequence[Tensor] = ()) -> Optional[Tensor]:
    r"""The re-matching of one pair under the epipolar geometry its matching implies (module
    docstring), or ``None`` where ``X`` (and every alternative) holds fewer than :data:`MIN_PAIRS`
    pairs.

    Args:
        X: the first matching ``[n1, n2]`` (0 / 1) of the two views' points.
        affinity: a soft affinity ``[n1, n2]`` in :math:`[0, 1]` (ties among the candidates on an
            epipolar line are broken by it).
        pos_s, pos_t: the points ``[n1, 2]`` / ``[n2, 2]``, each in any frame of its own view (a
            similarity or affine map of the pixels keeps the epipolar geometry).
        threshold: :math:`\tau`, the Sampson distance (normalised frames) under which a pair
            satisfies the epipolar constraint.
        prior_weight: :math:`w`, how much the first matching counts against the constraint.
        cap: :math:`c`, where the distance stops counting (a pair far off the line is as bad as one
            farther).
        rounds: re-matchings, each followed by a re-fit of :math:`F`.
        hypotheses: RANSAC's random subsets; drawn from a generator seeded by ``seed``, so a pair's
            rematch does not depend on the pairs batched with it.
        alternatives: other first matchings ``[n1, n2]`` of the same pair (a pool of seeds, e.g.
            other solvers'). Each is re-matched as ``X`` is, from its own pairs and with itself as
            the prior, and the re-matching whose last :math:`F` verifies the most of its pairs
            (within :math:`\tau`) is returned, ``X``'s on a tie. The right geometry lets nearly
            every point find its partner on its line; the geometry of a seed mostly wrong does not.

    Returns:
        The linear assignment ``[n1, n2]`` (float, 0 / 1) of the last round's score: every point of
        the smaller view matched, as the first matching is cut afterwards by whoever calls this.
    """
    if rounds < 1 or hypotheses < 1 or not threshold > 0:
        raise ConfigError(f"epipolar_rematch needs rounds >= 1, hypotheses >= 1 and threshold > 0; got {rounds}, "
                          f"{hypotheses} and {threshold}.")
    p, q = hartley_normalise(pos_s.double()), hartley_normalise(pos_t.double())
    best, best_verified, seen = None, -1, []
    for first in (X, *alternatives):
        # a seed equal to one already re-matched gives the same re-matching (same random draws)
        if any(torch.equal(first, other) for other in seen):
            continue
        seen.append(first)
        rematch = _rematch(first, affinity, p, q, threshold, prior_weight, cap, rounds, hypotheses, seed)
        if rematch is not None and rematch[1] > best_verified:
            best, best_verified = rematch
    return None if best is None else best.to(X.dtype)


def _rematch(X: Tensor, affinity: Tensor, p: Tensor, q: Tensor, threshold: float, prior_weight: float, cap: float,
             rounds: int, hypotheses: int, seed: int) -> Optional[Tuple[Tensor, int]]:
    """:func:`epipolar_rematch` from one first matching, over the normalised points ``p`` / ``q``:
    the re-matching and how many of its pairs the last :math:`F` verifies."""
    i, a = X.nonzero(as_tuple=True)
    if i.numel() < MIN_PAIRS:
        return None
    generator = torch.Generator().manual_seed(seed)
    F = ransac_affine(p[i], q[a], p, q, threshold, hypotheses, generator)
    score_base = prior_weight * X.double() + affinity.double()
    for _ in range(rounds):
        d = sampson_matrix(F.unsqueeze(0), p, q)[0]
        out = hungarian((score_base - (d / threshold).clamp(max=cap)).unsqueeze(0))[0]
        rows, cols = out.nonzero(as_tuple=True)
        verified = d[rows, cols] < threshold
        if verified.sum() >= 8:
            F = fundamental(p[rows[verified]], q[cols[verified]])
    return out, int((sampson_distance(F, p[rows], q[cols]) < threshold).sum())


def epipolar_rematch_blocks(X: Tensor, affinity: Tensor, pos_s: Tensor, pos_t: Tensor, rows: Sequence[Tensor],
                            cols: Sequence[Tensor], threshold: float = 3e-3,
                            alternatives: Sequence[Tensor] = ()) -> Tensor:
    """``X [B, N1, N2]`` with, in each pair ``b``, the block ``rows[b] x cols[b]`` (long indices)
    replaced by its :func:`epipolar_rematch` over ``affinity`` and the points ``pos_s [B, N1, 2]`` /
    ``pos_t [B, N2, 2]``, the same block of each of ``alternatives`` (``[B, N1, N2]`` each) seeding
    it too; a block with too few matched pairs is kept as it is."""
    X = X.clone()
    for b, (r, c) in enumerate(zip(rows, cols)):
        block = (r.unsqueeze(1), c.unsqueeze(0))
        rematch = epipolar_rematch(X[b][block], affinity[b][block], pos_s[b, r], pos_t[b, c], threshold=threshold,
                                   alternatives=[other[b][block] for other in alternatives])
        if rematch is not None:
            X[b][block] = rematch
    return X


__all__ = ["epipolar_rematch", "epipolar_rematch_blocks", "sampson_distance", "sampson_matrix", "fundamental",
           "affine_fundamental", "ransac_affine", "hartley_normalise", "MIN_PAIRS"]
