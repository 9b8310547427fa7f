"""Data model, pair generation and dataset readers of pyg_ssgm."""
from .datasets import GeneratedPairs, RealPairs, cross_instance_pairs, pair_loader
from .generator import PairGenerator, make_pair
from .graph import delaunay_edges, edge_attributes, graph_scale, knn_edges
from .instance import KeypointInstance
from .pair_data import PairData
from .transforms import GeometricAugmentation

__all__ = [
    "KeypointInstance", "PairData", "PairGenerator", "make_pair", "GeometricAugmentation",
    "GeneratedPairs", "RealPairs", "cross_instance_pairs", "pair_loader",
    "delaunay_edges", "knn_edges", "edge_attributes", "graph_scale",
]
