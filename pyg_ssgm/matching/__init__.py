"""Matching: pygmtools solvers (Hungarian, Sinkhorn, partial), blackbox differentiation,
matching losses, the DETR-style set matcher for completion, dense/sparse conversions."""
from .blackbox import BlackboxHungarian, blackbox_hungarian
from .dense import batch_sizes, dense_to_pairs, pairs_list_to_dense, pairs_to_dense, size_mask
from .quadratic import (QUADRATIC_SOLVERS, dense_connectivity, edge_vectors, quadratic_affinity, quadratic_refine,
                        solve_quadratic)
from .losses import hamming_loss, info_nce, matching_cross_entropy
from .set_matcher import SetMatcher, set_prediction_loss
from .solvers import check_inputs, hungarian, partial_hungarian, sinkhorn, threshold_to_unmatch

__all__ = [
    "hungarian", "sinkhorn", "partial_hungarian", "threshold_to_unmatch", "check_inputs",
    "BlackboxHungarian", "blackbox_hungarian",
    "hamming_loss", "matching_cross_entropy", "info_nce",
    "SetMatcher", "set_prediction_loss", "quadratic_refine", "quadratic_affinity", "solve_quadratic",
    "QUADRATIC_SOLVERS", "dense_connectivity", "edge_vectors",
    "pairs_to_dense", "pairs_list_to_dense", "dense_to_pairs", "size_mask", "batch_sizes",
]
