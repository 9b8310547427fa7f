"""What the model is (:class:`ModelConfig`), how it learns (:class:`LossConfig`) and how it is
used once trained (:class:`InferenceConfig`): three groups, because a setting of one group never
changes what another computes. Defaults train on the embedded data in minutes."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

from ..catalog import COMPLETION_SOURCES, MATCHING_LOSSES, SOLVERS, STRUCTURES
from ..errors import ConfigError
from ..validation import check_at_least, check_choice, check_field_types


@dataclass
class ModelConfig:
    """The network: its parts, their sizes, and the initial values of its learned scalars.

    Parts:
        in_channels: appearance features per node in the data (0: geometry only). ``None`` (the
            default): taken from the data when the model is built by :func:`pyg_ssgm.build`; a
            value that disagrees with the data is refused there, never rewritten.
        hidden_channels, heads: model width and attention heads (width divisible by heads).
        encoder_layers: depth of the graph encoder (kept shallow against over-smoothing).
        dropout: dropout of the encoder and the decoder.
        use_appearance, use_geometry: which node features to use.
        shape_context: add the soft log-polar shape context of the point set to the geometric
            node features (:class:`~pyg_ssgm.nn.features.NodeFeatures`).
        completion: generate missing nodes with the query decoder (off: the ablation "SSGM
            without completion", matching the observed nodes only).
        num_queries, decoder_layers: the query decoder's learned queries per graph and depth.
        query_fraction: where a graph of the batch has more than ``num_queries / query_fraction``
            nodes, ``query_fraction`` of its size is the number of queries instead (the learned
            ones reused cyclically): the nodes a graph lacks grow with its size.
        structure: edges of the completed graph: "delaunay", "knn" or "learned" (attention).
        knn_k: neighbours for the "knn" structure.
        exist_threshold: a query whose existence probability exceeds this becomes a node.
        mirror_aware: tell the encoder which pairs face each other's mirror image (``mirror`` of
            the pair, set by the mirror test and by ``PairGenerator.mirror_rate``): a learned
            function of each target node's features is added to them there. Of a bird and the
            flipped image of one facing the other way, the eyes, wings and legs that overlap are
            each other's left/right counterparts, which the annotation does not match; a model
            told so can leave them unmatched. ``None`` (the default): on exactly when the training
            pairs include mirror pairs (``TrainConfig.mirror_rate > 0``); a model built directly
            takes it as off.
        keypoint_filter: learn whether each point is a keypoint at all or belongs to nothing
            (an outlier, clutter), from its appearance descriptor and the training points' names
            (:class:`~pyg_ssgm.nn.keypoint_filter.KeypointFilter`), so that inference can remove
            the points it rejects before matching (``InferenceConfig.keypoint_threshold``).
            ``None`` (the default): on exactly when some of the training instances' points have no
            name; a model built directly takes it as off.
        keypoint_filter_geometry: the filter also reads where each point lies in its own point
            set (:func:`~pyg_ssgm.nn.keypoint_filter.point_geometry`: its distance from the set's
            median, its nearest neighbours, its shape context), which geometry-only models have
            to go on. ``None`` (the default): on wherever the filter is; a model built directly
            takes it as off where it has descriptors (the filter of runs saved before it read
            descriptors alone).
        keypoint_filter_memory: after training, the filter keeps its training points and corrects
            its score at inference by each point's nearest named and unnamed training points
            (:class:`~pyg_ssgm.nn.keypoint_filter.KeypointMemory`). ``None`` (the default): on
            wherever the filter reads descriptors (on the geometry alone validation turned it
            down); a model built directly takes it as off.

    Affinity (learned scalars start at these values):
        temperature: of the cosine affinity (learned, in log space).
        match_threshold: cosine similarity under which a pair stays unmatched (learned).
        geometric_weight: weight of the squared distance between aligned nodes in the affinity
            (learned; 0 switches the geometric term off).
        consensus_iterations: rounds of (soft matching, affine fit) that align the two graphs in
            training (:class:`InferenceConfig` has its own number for inference).
        coherence_rounds: rounds of non-rigid refinement after the affine alignment (0: off):
            each node is expected where the displacement of its neighbourhood takes it (a
            Gaussian kernel of ``coherence_bandwidth`` node spacings, see
            :class:`~pyg_ssgm.nn.affinity.CoherenceRefinement`), and the squared distance to that
            place, in node spacings, enters the affinity with ``coherence_weight`` times the
            geometric weight. It keeps the geometric term decisive as graphs grow dense.
        neighbour_consensus_steps: steps of DGMC's neighbourhood consensus over the completed
            graphs' rebuilt edges, last of all (0: off; see
            :class:`~pyg_ssgm.nn.neighbour_consensus.NeighbourConsensus`): a pair's affinity is
            corrected by how its neighbours are matched, a second-order agreement trained end to
            end. ``neighbour_consensus_channels``: the random colours per node it compares.
    """

    in_channels: Optional[int] = None
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
    mirror_aware: Optional[bool] = None
    keypoint_filter: Optional[bool] = None
    keypoint_filter_geometry: Optional[bool] = None
    keypoint_filter_memory: Optional[bool] = None
    temperature: float = 0.1
    match_threshold: float = 0.5
    geometric_weight: float = 10.0
    consensus_iterations: int = 2
    coherence_rounds: int = 8
    coherence_bandwidth: float = 1.0
    coherence_weight: float = 0.3
    neighbour_consensus_steps: int = 0
    neighbour_consensus_channels: int = 32

    def __post_init__(self) -> None:
        check_field_types(self)
        check_at_least(self, 1, "heads", "knn_k", "consensus_iterations", "neighbour_consensus_channels")
        check_at_least(self, 0, "neighbour_consensus_steps")
        if self.hidden_channels <= 0 or self.hidden_channels % self.heads != 0:
            raise ConfigError(
                f"hidden_channels ({self.hidden_channels}) must be positive and divisible by heads ({self.heads})."
            )
        check_choice(self, "structure", STRUCTURES)
        if not 0 < self.exist_threshold < 1:
            raise ConfigError(f"exist_threshold must be in (0, 1), got {self.exist_threshold}.")
        check_at_least(self, 0, "temperature", strict=True)
        if self.coherence_rounds < 0 or not self.coherence_bandwidth > 0 or self.coherence_weight < 0:
            raise ConfigError("coherence_rounds must be >= 0, coherence_bandwidth > 0 and coherence_weight >= 0.")
        if (self.in_channels is not None and self.in_channels < 0) or self.encoder_layers < 0:
            raise ConfigError("in_channels and encoder_layers must be >= 0.")
        if not 0 <= self.query_fraction <= 1:
            raise ConfigError(f"query_fraction must be in [0, 1], got {self.query_fraction}.")
        if self.completion and (self.num_queries < 1 or self.decoder_layers < 1):
            raise ConfigError("with completion on, num_queries and decoder_layers must be >= 1 "
                              "(use completion=False for the model without completion).")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}.")
        check_at_least(self, 0, "geometric_weight")
        if self.in_channels is not None and not (self.use_appearance and self.in_channels > 0) \
                and not self.use_geometry:
            raise ConfigError("the model needs node features: enable use_geometry or give appearance features.")
        if self.keypoint_filter and self.in_channels == 0 and self.keypoint_filter_geometry is False:
            raise ConfigError("keypoint_filter=True with keypoint_filter_geometry=False reads the points' appearance "
                              "descriptors alone, and this data has none (in_channels=0): give the points "
                              "descriptors (--features), or leave keypoint_filter_geometry unset.")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class LossConfig:
    """The training losses and the completion matcher of the queries.

    matching_loss: "sinkhorn" (cross-entropy on the soft matching) or "hamming" (on the
        Hungarian matching, through blackbox differentiation with constant ``bb_lambda``).
    sinkhorn_iter: Sinkhorn iterations.
    weight_match, weight_exist, weight_pos, weight_feat, weight_contrastive: weights of the total
        loss; eos_weight: weight of "no object" queries in the existence loss (DETR's eos_coef;
        1 here, not DETR's 0.1, because each query is seeded from one candidate node, so
        existence is a balanced per-candidate decision and down-weighting "no object" biases
        every query towards existing).
    weight_match_real: weight of a second matching loss over the real nodes alone (0: off). In
        training, every real node whose partner the other graph lacks is matched to the
        generated node forced in for it, so the main loss never asks for a real node to stay
        unmatched; a model used with ``InferenceConfig.generate_at_inference=False`` must decide
        exactly that. This term scores the matching among the real nodes, where such a node's row
        is empty, so the unmatched threshold learns the decision it makes at inference.
    weight_keypoint: weight of the keypoint filter's loss (where the model has one,
        ``ModelConfig.keypoint_filter``): the binary cross-entropy of each point's logit against
        whether it has a name.
    cost_exist, cost_pos, cost_feat: costs of the DETR matcher that assigns the queries to the
        nodes a graph lacks (:class:`~pyg_ssgm.matching.SetMatcher`).
    """

    matching_loss: str = "sinkhorn"
    bb_lambda: float = 10.0
    sinkhorn_iter: int = 20
    weight_match: float = 1.0
    weight_match_real: float = 0.0
    weight_exist: float = 1.0
    weight_pos: float = 1.0
    weight_feat: float = 1.0
    weight_contrastive: float = 0.0
    weight_keypoint: float = 1.0
    eos_weight: float = 1.0
    cost_exist: float = 1.0
    cost_pos: float = 1.0
    cost_feat: float = 1.0

    def __post_init__(self) -> None:
        check_field_types(self)
        check_choice(self, "matching_loss", MATCHING_LOSSES)
        check_at_least(self, 1, "sinkhorn_iter")
        check_at_least(self, 0, "bb_lambda", strict=True)
        check_at_least(self, 0, "weight_match", "weight_exist", "weight_pos", "weight_feat", "weight_contrastive",
                  "weight_match_real", "weight_keypoint", "eos_weight", "cost_exist", "cost_pos", "cost_feat")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class InferenceConfig:
    r"""How a trained model matches: settings chosen on validation data, never learned.

    solver: how the discrete matching is solved: "hungarian" (linear assignment of the affinity)
        or "rrwm" (the affinity as the unary term of a quadratic assignment with edge-to-edge
        geometric agreement over the completed graphs, solved by RRWM; see
        :mod:`pyg_ssgm.matching.quadratic`), or "ipfp" (the same problem solved by IPFP).
    qap_node_weight, qap_edge_sigma: weight of the unary term and Gaussian width of the edge term
        of that quadratic problem (edges in units of the graph's RMS radius); a weight of 0 leaves
        the edges alone to decide which nodes correspond (the learned affinity still decides which
        nodes have a partner).
    qap_align: compare the edges once the target is aligned on the source by the affine consensus
        (True), or as they are (False): an out-of-plane turn that the affine map cannot follow can
        bend the edges of an aligned graph more than those of the raw one.
    qap_max_nodes: pairs with a completed graph larger than this fall back to "hungarian" (the
        quadratic problem's matrix has (n1 n2)^2 entries).
    qap_partial: keep only the quadratic matching's pairs whose learned affinity beats the unmatched
        threshold (True), or its whole matching (False: every node of the smaller graph matched,
        as a classical solver matches complete pairs; where the learned affinity fails, e.g.
        under a large change of viewpoint, it no longer cuts the pairs the edges got right).
    epipolar: re-match under the epipolar geometry that the matching implies, for two views of
        one rigid object (a turning object, a building, a scene): the fundamental matrix is
        estimated from the matched pairs (RANSAC) and each point re-matched among the candidates
        near its epipolar line, the first matching and the soft affinity deciding between them
        (:mod:`pyg_ssgm.matching.epipolar`); the pairs are then cut as the matching cuts them.
        Out-of-plane turns change every shape descriptor and edge but not that constraint. Two
        different objects (two cars, two birds) share no epipolar geometry: leave it off there.
    epipolar_threshold: the Sampson distance under which a pair satisfies the constraint, in each
        view's normalised frame (the points' mean distance to their centroid the square root of 2).
    keypoint_threshold: remove, before matching, the points whose keypoint probability (the
        model's :class:`~pyg_ssgm.nn.keypoint_filter.KeypointFilter`, where it has one) is under
        this (0: keep every point). A removed point stays unmatched; each graph keeps its three
        most probable points at least. Points that belong to nothing otherwise take the partners
        of keypoints and bend their edges. The default, 0.5, removes what the filter finds more
        likely clutter than keypoint; a model without a filter ignores it.
    keypoint_prior: how much a point the keypoint filter doubts must win to be matched: each
        point kept pays :math:`\gamma \cdot (-\log p)` (``keypoint_prior`` :math:`\gamma`, in
        the threshold's cosine units; :math:`p` its keypoint probability) on top of its half of
        the unmatched threshold, so a pair of doubtful points is matched only where its affinity
        beats the threshold by their doubt. It spends the filter's probability where the matching
        decides, instead of only cutting at ``keypoint_threshold`` (0: the filter only removes;
        a model without a filter ignores it). ``None`` (the default): 0.2 where the filter reads
        appearance descriptors, 0 where it reads where the points lie alone
        (:meth:`resolved_keypoint_prior`; training writes the value into the run's settings). On
        validation 0.2 gained 1.2 to 2.7 points over 0 in each of three models with descriptors,
        and lost up to 2.2 on the geometry alone.
    epipolar_pool: with ``epipolar``, re-match also from the model's other first matchings (the
        linear assignment of the learned affinity, cut by the threshold; the whole quadratic
        assignment over the rebuilt edges with the learned unary term and without, the latter by
        RRWM and by IPFP: :data:`~pyg_ssgm.model.predictor.EPIPOLAR_POOL`) and keep the
        re-matching whose geometry verifies the most pairs: whichever first matching got more of
        a pair right seeds its geometry (the linear one at small turns, the edges' at large
        ones). Costs one re-matching per seed.
    mirror_test: match each pair a second time with the target mirrored left-right and keep the
        matching of the higher objective (affinity minus threshold, summed over the matched
        pairs): for objects seen from either side (birds, animals), whose mirrored views no
        planar alignment or shape descriptor relates. With a ``mirror_aware`` model the
        orientation is chosen by the flipped pass *not* told (told, the unmatched parts lower the
        objective where the flip is right), the matching then taken from the pass that is.
    threshold_shift: added to the learned unmatched threshold at inference, in its cosine units
        (0: as learned). Training pairs teach the threshold how partial pairs are when made by
        dropping nodes; real pairs with many points that belong to nothing (outliers, clutter) need
        a stricter one, as a classical solver's threshold is fitted on validation.
    dustbin_weight: how much the decoder decides who stays unmatched (0: off): each node's score
        for staying unmatched is half the learned threshold plus this weight times the existence
        logit of the query of the other graph seeded from it (its belief that the node's partner
        is missing; :meth:`Predictor.unmatched_scores <pyg_ssgm.Predictor.unmatched_scores>`).
    generate_at_inference: False keeps the generated nodes out of the matching (they are still
        trained).
    count_per_pair: under ``completion_source="queries"``, the decoder's queries that exist are
        decided as one count per pair (:func:`~pyg_ssgm.model.completion.paired_existence`: a
        graph lacks as many of the other's nodes as the other has nodes not in common, so the
        two sides' counts are one number, chosen from both sides' existence estimates) rather
        than each query alone against ``ModelConfig.exist_threshold`` (False). On the embedded
        data's real validation pairs it made the queries' count exact on 69 % of pairs instead of
        55 %. The generated nodes in the matching stay those that pass the threshold, as in
        training (the paired count there lowered validation F1 by 0.7 points). Where points
        belong to nothing (outliers) its premise fails: such a point is lacked by no graph.
    completion_source: which nodes the model reports as generated
        (:meth:`Predictor.generated_nodes <pyg_ssgm.Predictor.generated_nodes>`): "queries" (the
        decoder's queries whose existence passes ``exist_threshold``) or "matching" (decided with
        the matching: one node per real node of the other graph that the matching leaves without
        a real partner, placed where the affine map fitted to the matched pairs takes it) or
        "seeded" (the nodes of "matching", each placed where the decoder's query seeded from its
        partner puts it). The matching itself does not change.
    appearance_weight, shape_context_weight: weights of the raw appearance cosine
        ``cos(x_i, x_j)`` and of the raw shape-context cosine added to the affinity (late fusion;
        0 switches a term off). Unlike the learned embeddings, the raw descriptors cannot overfit
        a small training set.
    inference_consensus_iterations: alignment rounds (``ModelConfig.consensus_iterations``) at
        inference; ``None``: as in training. One round's soft matching is diffuse on dense graphs
        and under large rotations, and its fit shrinks towards the identity; each further round
        re-weighs the matching by the alignment and re-fits.
    choose_on_validation: after training, choose the keypoint filter's threshold, the generated
        nodes, the matching (Hungarian, or the quadratic problem with the learned or with no unary
        term, partial or whole), the epipolar re-matching (and its pool), the late-fusion weights,
        the alignment rounds, the threshold shift, the dustbin and the mirror test on the
        validation split, one after the other, each kept only where it raises the validation F1
        (:mod:`pyg_ssgm.tuning`); the values above are where the search starts. The choice and
        the validation figures behind it are printed and stored with the checkpoint.
        False keeps these settings exactly as given (the presets do: their settings were chosen on
        validation by the studies behind them).
    """

    solver: str = "hungarian"
    qap_node_weight: float = 1.0
    qap_edge_sigma: float = 0.5
    qap_max_nodes: int = 64
    qap_align: bool = True
    qap_partial: bool = True
    epipolar: bool = False
    epipolar_threshold: float = 3e-3
    epipolar_pool: bool = False
    keypoint_threshold: float = 0.5
    keypoint_prior: Optional[float] = None
    mirror_test: bool = False
    threshold_shift: float = 0.0
    dustbin_weight: float = 0.0
    generate_at_inference: bool = True
    count_per_pair: bool = True
    completion_source: str = "matching"
    appearance_weight: float = 0.0
    shape_context_weight: float = 0.0
    inference_consensus_iterations: Optional[int] = 12
    choose_on_validation: bool = True

    def __post_init__(self) -> None:
        check_field_types(self)
        check_choice(self, "solver", SOLVERS)
        if not self.qap_edge_sigma > 0 or not self.qap_node_weight >= 0 or self.qap_max_nodes < 1:
            raise ConfigError("qap_edge_sigma must be > 0, qap_node_weight >= 0 and qap_max_nodes >= 1.")
        check_choice(self, "completion_source", COMPLETION_SOURCES)
        check_at_least(self, 0, "epipolar_threshold", strict=True)
        if self.epipolar_pool and not self.epipolar:
            raise ConfigError("epipolar_pool seeds the epipolar re-matching, which is off: set epipolar=True with it "
                              "(--epipolar), or leave the pool off.")
        if not 0 <= self.keypoint_threshold < 1:
            raise ConfigError(f"keypoint_threshold must be in [0, 1) (0: keep every point), got "
                              f"{self.keypoint_threshold}.")
        check_at_least(self, 0, "appearance_weight", "shape_context_weight", "dustbin_weight")
        if self.keypoint_prior is not None:
            check_at_least(self, 0, "keypoint_prior", note="0: the keypoint filter only removes points")
        rounds = self.inference_consensus_iterations
        if rounds is not None and rounds < 1:
            raise ConfigError(f"inference_consensus_iterations must be >= 1 or None (as in training), got {rounds}.")

    def resolved_keypoint_prior(self, reads_descriptors: bool) -> float:
        """``keypoint_prior`` as set, or where unset (``None``) its default for a keypoint filter
        that reads appearance descriptors (``reads_descriptors``) or only where points lie."""
        if self.keypoint_prior is not None:
            return self.keypoint_prior
        return 0.2 if reads_descriptors else 0.0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


__all__ = ["ModelConfig", "LossConfig", "InferenceConfig"]
