"""Configuration of the model and its losses, as a dataclass with defaults that work."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Optional

import torch

from .errors import ConfigError

MATCHING_LOSSES = ("sinkhorn", "hamming")
SOLVERS = ("hungarian", "rrwm")
COMPLETION_SOURCES = ("queries", "matching")

# Accepted Python types for the annotation strings used by the config dataclasses.
_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def is_finite(value: Any) -> bool:
    """``math.isfinite`` that says False (instead of raising) for an int too large for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_field_types(config: Any) -> None:
    """Raise :class:`ConfigError` when a field of a config dataclass has the wrong type (a value
    from a config file or ``--set`` that is a string where a number belongs, say) or is a NaN or
    infinite float: a range check such as ``x < 0`` is False for NaN, so NaN would slip through
    every later check and switch features off silently (``grad_clip=NaN`` disables clipping)."""
    for f in fields(config):
        annotation = str(f.type).replace("typing.", "")
        optional = annotation.startswith("Optional[")
        name = annotation[len("Optional["):-1] if optional else annotation
        if name not in _TYPES:
            continue
        value = getattr(config, f.name)
        if value is None and optional:
            continue
        ok = isinstance(value, _TYPES[name]) and not (name in ("int", "float") and isinstance(value, bool))
        if not ok:
            raise ConfigError(f"{type(config).__name__}.{f.name} must be {'an' if name == 'int' else 'a'} {name}"
                              f"{' or null' if optional else ''}, got {value!r}.")
        if name == "float" and not is_finite(value):
            raise ConfigError(f"{type(config).__name__}.{f.name} must be a finite number, got {value!r}.")


def parse_device(name: str) -> torch.device:
    """``name`` as a :class:`torch.device` (``"auto"``: CUDA when available, else CPU), or a
    :class:`ConfigError` that lists the accepted forms. Availability is not checked here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device must be cpu, cuda, cuda:N (N a GPU index) or auto, got {name!r}.") from None


def resolve_device(name: str) -> torch.device:
    """:func:`parse_device`, and a :class:`ConfigError` when it names a CUDA device that is absent."""
    device = parse_device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but no CUDA GPU is available; use --device cpu.")
    return device


@dataclass
class SSGMConfig:
    """Every knob of :class:`~pyg_ssgm.SSGM`. The defaults train on the embedded data in minutes.

    Architecture:
        in_channels: appearance features per node in the data (0: geometry only).
        hidden_channels, heads: model width and attention heads (width divisible by heads).
        encoder_layers: depth of the graph encoder (kept shallow against over-smoothing).
        use_appearance, use_geometry: which node features to use.
        shape_context: add the soft log-polar shape context of the point set to the geometric
            node features (see :class:`~pyg_ssgm.nn.features.NodeFeatures`).
        completion: generate missing nodes with the query decoder (off: the ablation
            "SSGM without completion", matching the observed nodes only).
        num_queries, decoder_layers: the query decoder's learned queries per graph and depth.
        query_fraction: where a graph of the batch has more than ``num_queries / query_fraction``
            nodes, ``query_fraction`` of its size is the number of queries instead (the learned
            ones reused cyclically): the nodes a graph lacks grow with its size.
        structure: edges of the completed graph: "delaunay", "knn" or "learned" (attention).
        knn_k: neighbours for the "knn" structure.
        exist_threshold: a query whose existence probability exceeds this becomes a node.
        generate_at_inference: False keeps the generated nodes out of the matching at inference
            (``eval()`` mode) while they are still trained: a setting of inference, chosen on
            validation (on CUB the generated nodes absorb real nodes that have a partner).
        completion_source: which nodes the model reports as generated
            (:meth:`SSGM.generated_nodes <pyg_ssgm.SSGM.generated_nodes>`): "queries" (the
            decoder's queries whose existence passes ``exist_threshold``) or "matching" (decided
            with the matching: one node per real node of the other graph that the matching leaves
            without a real partner, placed where the affine map fitted to the matched pairs takes
            it). Training is the same either way; the matching itself does not change. Chosen on
            validation generated pairs (count exact on pairs, "matching" vs "queries"): embedded
            74 % vs 58 %, Willow geometry 43 % vs 23 %, CUB 18 % vs 9 %; position error lower too.

    Matching:
        temperature: initial temperature of the cosine affinity (learned).
        match_threshold: initial cosine similarity under which a pair stays unmatched (learned).
        geometric_weight: initial weight of the squared distance between aligned nodes in the
            affinity (learned; 0 switches the geometric term off).
        appearance_weight: weight of the raw appearance cosine ``cos(x_i, x_j)`` added to the
            affinity at inference (late fusion; fixed, chosen on validation; 0 switches it off).
            Unlike the learned embeddings, the raw descriptors cannot overfit a small training set.
        shape_context_weight: the same for the raw shape context of the point set (geometry).
        consensus_iterations: rounds of (soft matching, affine fit) that align the two graphs, in
            training. ``inference_consensus_iterations``: the same at inference (``None``: as in
            training). One round's soft matching is diffuse on dense graphs and under large
            rotations, and its fit shrinks towards the identity; each further round re-weighs the
            matching by the alignment and re-fits. Chosen on validation data
            (``benchmarks/results/inference_alignment.md``): embedded validation F1 0.902 / 0.906 /
            0.909 with 2 / 8 / 12 rounds, 200-node scale-validation pairs 0.943 / 0.999 / 0.999,
            500 nodes 0.613 / 0.890 / 0.920. Training with more rounds makes the generated pairs'
            alignment too easy and the embeddings learn less: with 8 rounds in training as well,
            validation F1 0.902 (embedded, vs 0.906) and Willow geometry 0.909 (vs 0.929).
        coherence_rounds: rounds of non-rigid refinement after the affine alignment (0: off): each
            node is expected where the displacement of its neighbourhood takes it (a Gaussian
            kernel of ``coherence_bandwidth`` node spacings, see
            :func:`~pyg_ssgm.nn.alignment.coherent_positions`), and the squared distance to that
            place, in node spacings, enters the affinity with ``coherence_weight`` times the
            geometric weight. It keeps the geometric term decisive as graphs grow dense.
        matching_loss: "sinkhorn" (cross-entropy on the soft matching) or "hamming" (on the
            Hungarian matching, through blackbox differentiation with constant ``bb_lambda``).
        sinkhorn_iter: Sinkhorn iterations.
        solver: how the discrete matching is solved at inference: "hungarian" (linear assignment
            of the affinity) or "rrwm" (the affinity as the unary term of a quadratic assignment
            with edge-to-edge geometric agreement over the completed graphs, solved by RRWM; see
            :mod:`pyg_ssgm.matching.quadratic`). Training losses are first-order either way.
        mirror_test: at inference, match each pair a second time with the target mirrored
            left-right and keep the matching of the higher objective (affinity minus threshold,
            summed over the matched pairs): for objects seen from either side (birds, animals),
            whose mirrored views no planar alignment or shape descriptor relates.
        mirror_aware: tell the encoder which pairs face each other's mirror image (``mirror`` of
            the pair, set by the mirror test and by ``PairGenerator.mirror_rate``): a learned
            function of each target node's features is added to them there. Of a bird and the
            flipped image of one facing the other way, the eyes, wings and legs that overlap are
            each other's left/right counterparts, which the annotation does not match; a model
            told so can leave them unmatched. Mirror pairs in training (``TrainConfig.mirror_rate``
            > 0) turn it on. With ``mirror_test``, the orientation is chosen by the flipped pass
            *not* told (told, the unmatched parts lower the objective where the flip is right),
            the matching then taken from the pass that is.
        qap_node_weight, qap_edge_sigma: weight of the unary term and Gaussian width of the edge
            term of that quadratic problem (edges in units of the graph's RMS radius).
        qap_max_nodes: pairs with a completed graph larger than this fall back to "hungarian"
            (the quadratic problem's matrix has (n1 n2)^2 entries).

    Losses (weights of the total loss) and the completion matcher's costs:
        weight_match, weight_exist, weight_pos, weight_feat, weight_contrastive, eos_weight
        (weight of "no object" queries in the existence loss, DETR's eos_coef; 1 here, not DETR's
        0.1, because each query is seeded from one candidate node, so existence is a balanced
        per-candidate decision and down-weighting "no object" biases every query towards
        existing); cost_exist, cost_pos, cost_feat.
        weight_match_real: weight of a second matching loss over the real nodes alone (0: off).
            In training, every real node whose partner the other graph lacks is matched to the
            generated node forced in for it, so the main loss never asks for a real node to stay
            unmatched; a model used with ``generate_at_inference=False`` must decide exactly that.
            This term scores the matching among the real nodes, where such a node's row is empty,
            so the unmatched threshold learns the decision it makes at inference. (Without
            completion there is no generated node, and it repeats the main loss.)
    """

    in_channels: int = 0
    hidden_channels: int = 64
    heads: int = 4
    encoder_layers: int = 2
    dropout: float = 0.0
    use_appearance: bool = True
    use_geometry: bool = True
    shape_context: bool = True
    completion: bool = True
    num_queries: int = 8
    query_fraction: float = 0.0
    decoder_layers: int = 2
    structure: str = "delaunay"
    knn_k: int = 6
    exist_threshold: float = 0.5
    generate_at_inference: bool = True
    completion_source: str = "matching"
    temperature: float = 0.1
    match_threshold: float = 0.5
    geometric_weight: float = 10.0
    appearance_weight: float = 0.0
    shape_context_weight: float = 0.0
    consensus_iterations: int = 2
    inference_consensus_iterations: Optional[int] = 12
    coherence_rounds: int = 8
    coherence_bandwidth: float = 1.0
    coherence_weight: float = 0.3
    matching_loss: str = "sinkhorn"
    bb_lambda: float = 10.0
    sinkhorn_iter: int = 20
    solver: str = "hungarian"
    mirror_test: bool = False
    mirror_aware: bool = False
    qap_node_weight: float = 1.0
    qap_edge_sigma: float = 0.5
    qap_max_nodes: int = 64
    weight_match: float = 1.0
    weight_exist: float = 1.0
    weight_pos: float = 1.0
    weight_feat: float = 1.0
    weight_contrastive: float = 0.0
    weight_match_real: float = 0.0
    eos_weight: float = 1.0
    cost_exist: float = 1.0
    cost_pos: float = 1.0
    cost_feat: float = 1.0

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.heads < 1:
            raise ConfigError(f"heads must be >= 1, got {self.heads}.")
        if self.hidden_channels <= 0 or self.hidden_channels % self.heads != 0:
            raise ConfigError(
                f"hidden_channels ({self.hidden_channels}) must be positive and divisible by heads ({self.heads})."
            )
        if self.matching_loss not in MATCHING_LOSSES:
            raise ConfigError(f"matching_loss must be one of {MATCHING_LOSSES}, got {self.matching_loss!r}.")
        if self.completion_source not in COMPLETION_SOURCES:
            raise ConfigError(f"completion_source must be one of {COMPLETION_SOURCES}, got {self.completion_source!r}.")
        if self.solver not in SOLVERS:
            raise ConfigError(f"solver must be one of {SOLVERS}, got {self.solver!r}.")
        if not self.qap_edge_sigma > 0 or not self.qap_node_weight >= 0 or self.qap_max_nodes < 1:
            raise ConfigError("qap_edge_sigma must be > 0, qap_node_weight >= 0 and qap_max_nodes >= 1.")
        if not 0 < self.exist_threshold < 1:
            raise ConfigError(f"exist_threshold must be in (0, 1), got {self.exist_threshold}.")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}.")
        if self.coherence_rounds < 0 or not self.coherence_bandwidth > 0 or self.coherence_weight < 0:
            raise ConfigError("coherence_rounds must be >= 0, coherence_bandwidth > 0 and coherence_weight >= 0.")
        inference = self.inference_consensus_iterations
        if self.consensus_iterations < 1 or (inference is not None and inference < 1):
            raise ConfigError(f"consensus_iterations ({self.consensus_iterations}) and inference_consensus_iterations "
                              f"({inference}) must be >= 1 (the latter may be None: as in training).")
        if self.in_channels < 0 or self.encoder_layers < 0:
            raise ConfigError("in_channels and encoder_layers must be >= 0.")
        if not 0 <= self.query_fraction <= 1:
            raise ConfigError(f"query_fraction must be in [0, 1], got {self.query_fraction}.")
        if self.completion and (self.num_queries < 1 or self.decoder_layers < 1):
            raise ConfigError("with completion on, num_queries and decoder_layers must be >= 1 "
                              "(use completion=False for the model without completion).")
        for name in ("sinkhorn_iter", "knn_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("bb_lambda",):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}.")
        for name in ("dropout",):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}.")
        for name in ("geometric_weight", "appearance_weight", "shape_context_weight", "weight_match", "weight_exist",
                     "weight_pos", "weight_feat", "weight_contrastive", "weight_match_real", "eos_weight", "cost_exist",
                     "cost_pos", "cost_feat"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if not (self.use_appearance and self.in_channels > 0) and not self.use_geometry:
            raise ConfigError("the model needs node features: enable use_geometry or give appearance features.")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "SSGMConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown model config keys {unknown}; known keys: {sorted(known)}.")
        return cls(**values)
