"""Neural network parts of SSGM: features, encoder, query decoder, graph rebuilding, neighbourhood
consensus, diagnostics."""
from .alignment import apply_affine, dual_softmax, fit_affine
from .attention import GraphAttention
from .backbone import VGG16Features, sample_at_keypoints
from .diagnostics import mean_pairwise_cosine
from .encoder import GraphEncoder
from .features import NodeFeatures, geometric_encoding, normalize_positions
from .bipartite import full_bipartite
from .neighbour_consensus import NeighbourConsensus
from .query_decoder import QueryDecoder, QueryDecoderLayer, QueryOutput
from .rebuild import CompletedGraph, GraphRebuilder, complete_graph, rebuild_edges

__all__ = [
    "GraphAttention", "GraphEncoder", "VGG16Features", "sample_at_keypoints",
    "dual_softmax", "fit_affine", "apply_affine", "NodeFeatures", "geometric_encoding", "normalize_positions",
    "QueryDecoder", "QueryDecoderLayer", "QueryOutput", "full_bipartite",
    "CompletedGraph", "GraphRebuilder", "complete_graph", "rebuild_edges", "mean_pairwise_cosine", "NeighbourConsensus",
]
