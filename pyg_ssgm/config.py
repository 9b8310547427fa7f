"""Configuration of the model and its losses, as a dataclass with defaults that work."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict

from .errors import ConfigError

MATCHING_LOSSES = ("sinkhorn", "hamming")


@dataclass
class SSGMConfig:
    """Every knob of :class:`~pyg_ssgm.SSGM`. The defaults train on the embedded data in minutes.

    Architecture:
        in_channels: appearance features per node in the data (0: geometry only).
        hidden_channels, heads: model width and attention heads (width divisible by heads).
        encoder_layers: depth of the graph encoder (kept shallow against over-smoothing).
        use_appearance, use_geometry: which node features to use.
        completion: generate missing nodes with the query decoder (off: the ablation
            "SSGM without completion", matching the observed nodes only).
        num_queries, decoder_layers: the query decoder's learned queries per graph and depth.
        structure: edges of the completed graph: "delaunay", "knn" or "learned" (attention).
        knn_k: neighbours for the "knn" structure.
        exist_threshold: a query whose existence probability exceeds this becomes a node.

    Matching:
        temperature: initial temperature of the cosine affinity (learned).
        match_threshold: initial cosine similarity under which a pair stays unmatched (learned).
        geometric_weight: initial weight of the squared distance between aligned nodes in the
            affinity (learned; 0 switches the geometric term off).
        matching_loss: "sinkhorn" (cross-entropy on the soft matching) or "hamming" (on the
            Hungarian matching, through blackbox differentiation with constant ``bb_lambda``).
        sinkhorn_iter: Sinkhorn iterations.

    Losses (weights of the total loss) and the completion matcher's costs:
        weight_match, weight_exist, weight_pos, weight_feat, weight_contrastive, eos_weight
        (down-weight of "no object" queries, as DETR's eos_coef); cost_exist, cost_pos, cost_feat.
    """

    in_channels: int = 0
    hidden_channels: int = 64
    heads: int = 4
    encoder_layers: int = 2
    dropout: float = 0.0
    use_appearance: bool = True
    use_geometry: bool = True
    completion: bool = True
    num_queries: int = 8
    decoder_layers: int = 2
    structure: str = "delaunay"
    knn_k: int = 6
    exist_threshold: float = 0.5
    temperature: float = 0.1
    match_threshold: float = 0.5
    geometric_weight: float = 10.0
    matching_loss: str = "sinkhorn"
    bb_lambda: float = 10.0
    sinkhorn_iter: int = 20
    weight_match: float = 1.0
    weight_exist: float = 1.0
    weight_pos: float = 1.0
    weight_feat: float = 1.0
    weight_contrastive: float = 0.0
    eos_weight: float = 0.1
    cost_exist: float = 1.0
    cost_pos: float = 1.0
    cost_feat: float = 1.0

    def __post_init__(self) -> None:
        if self.hidden_channels <= 0 or self.hidden_channels % self.heads != 0:
            raise ConfigError(
                f"hidden_channels ({self.hidden_channels}) must be positive and divisible by heads ({self.heads})."
            )
        if self.matching_loss not in MATCHING_LOSSES:
            raise ConfigError(f"matching_loss must be one of {MATCHING_LOSSES}, got {self.matching_loss!r}.")
        if not 0 < self.exist_threshold < 1:
            raise ConfigError(f"exist_threshold must be in (0, 1), got {self.exist_threshold}.")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}.")
        if self.in_channels < 0 or self.num_queries < 0 or self.encoder_layers < 0:
            raise ConfigError("in_channels, num_queries and encoder_layers must be >= 0.")
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
