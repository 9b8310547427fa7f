"""Data model, pair generation and dataset readers of pyg_ssgm."""
from .datasets import EpochSampler, GeneratedPairs, LabelledPairs, RealPairs, cross_instance_pairs, pair_loader
from .generator import PairGenerator, add_completion_targets, make_pair, subset_pair
from .graph import delaunay_edges, edge_attributes, graph_scale, knn_edges
from .instance import KeypointInstance
from .pair_data import PairData, mirrored
from .perturb import add_outliers, drop_parts, perturb_splits
from .readers import READERS, load_dataset
from .sides import mirror_identity, swap_sides
from ..catalog import DATASETS
from .sources import load_splits
from .synthetic import SyntheticConfig, SyntheticKeypoints, load_synthetic
from .transforms import GeometricAugmentation
from .views import View, ViewAugmentation

__all__ = [
    "KeypointInstance", "PairData", "mirrored", "PairGenerator", "make_pair", "subset_pair", "add_completion_targets",
    "GeometricAugmentation", "ViewAugmentation", "View",
    "SyntheticConfig", "SyntheticKeypoints", "load_synthetic",
    "READERS", "load_dataset", "DATASETS", "load_splits",
    "GeneratedPairs", "RealPairs", "LabelledPairs", "EpochSampler", "cross_instance_pairs", "pair_loader",
    "add_outliers", "drop_parts", "perturb_splits", "mirror_identity", "swap_sides",
    "delaunay_edges", "knn_edges", "edge_attributes", "graph_scale",
]
