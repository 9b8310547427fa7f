r"""Keypoint filter: is a point a keypoint at all, or does it belong to nothing?"""
from __future__ import annotations

from torch import Tensor, nn


class KeypointFilter(nn.Module):
    r"""The logit that a point is a keypoint (a part some keypoint name stands for) rather than a
    point that belongs to nothing (an outlier, clutter, a detector's false positive), from its
    appearance descriptor alone:

    .. math::
        \ell_i = w^\top \frac{x_i - \mu}{\sigma} + b,

    with :math:`\mu, \sigma` the descriptors' per-channel mean and deviation (batch statistics in
    training, running ones at inference). Trained on the training pairs' points against their
    names (a point without a name is clutter; no correspondence is read), it lets inference remove
    the points it rejects before any graph is built (:class:`~pyg_ssgm.Predictor`,
    ``InferenceConfig.keypoint_threshold``): an outlier removed can neither take a keypoint's
    partner nor bend its neighbours' edges, which a threshold on the pairs after matching cannot
    undo. Linear on purpose: a few hundred training images teach a linear score as much as they
    can teach.

    Args:
        in_channels: the descriptors' width (at least 1).
    """

    def __init__(self, in_channels: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_channels, affine=False)
        self.score = nn.Linear(in_channels, 1)

    def reset_parameters(self) -> None:
        self.norm.reset_running_stats()
        self.score.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        """``[N]`` logits of the points ``x [N, in_channels]``."""
        return self.score(self.norm(x)).squeeze(-1)


__all__ = ["KeypointFilter"]
