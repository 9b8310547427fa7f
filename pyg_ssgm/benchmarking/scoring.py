"""Scoring predictions on batches built once: the F1 of one batch (:func:`batch_f1`) and the
report of a method over fixed batches with the wall time of its predictions (:func:`score_batches`)."""
from __future__ import annotations

import time
from typing import Any, Callable, List, Sequence, Tuple

from torch import Tensor

from ..metrics import MatchingReport, aggregate, batch_counts

__all__ = ["batch_f1", "score_batches"]

PredictFn = Callable[[Any], List[Tensor]]


def batch_f1(preds: Sequence[Tensor], batch) -> float:
    """Macro F1 (mean over the pairs of a class, then over classes) of the matchings ``preds``
    predicted for the pairs of ``batch``."""
    return aggregate(batch_counts([p.cpu() for p in preds], batch)).mean.f1


def score_batches(predict: PredictFn, batches: Sequence, device_batches: Sequence,
                  sync: Callable[[], None] = lambda: None) -> Tuple[MatchingReport, float]:
    """Predict on every batch of ``device_batches`` (the same pairs as ``batches``, on the
    method's device); return the report against the truth of ``batches`` and the wall time of the
    predictions alone (``sync`` runs before each clock read, e.g. ``torch.cuda.synchronize``)."""
    records, elapsed = [], 0.0
    for batch, dev in zip(batches, device_batches):
        sync()
        start = time.perf_counter()
        preds = predict(dev)
        sync()
        elapsed += time.perf_counter() - start
        records += batch_counts([p.cpu() for p in preds], batch)
    return aggregate(records), elapsed
