"""Neural network parts of SSGM: features, encoder, query decoder, graph rebuilding, diagnostics."""
from .attention import GraphAttention
from .diagnostics import mean_pairwise_cosine
from .encoder import GraphEncoder
from .features import NodeFeatures, geometric_encoding, normalize_positions
from .query_decoder import QueryDecoder, QueryDecoderLayer, QueryOutput, full_bipartite
from .rebuild import CompletedGraph, GraphRebuilder, complete_graph, rebuild_edges

__all__ = [
    "GraphAttention", "GraphEncoder", "NodeFeatures", "geometric_encoding", "normalize_positions",
    "QueryDecoder", "QueryDecoderLayer", "QueryOutput", "full_bipartite",
    "CompletedGraph", "GraphRebuilder", "complete_graph", "rebuild_edges", "mean_pairwise_cosine",
]
