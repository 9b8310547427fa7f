"""Names the command lines offer, kept free of heavy imports so that ``--help`` is instant.

Everything that needs torch (readers, models, solvers) imports these lists; nothing here imports
anything of the package.
"""

#: Datasets by name: the embedded synthetic data, the real benchmarks read from a local root, and
#: "coco": your own COCO keypoint file(s) (``root``: the file, or a folder of train/val/test.json).
DATASETS = ("synthetic", "willow", "pascal_voc", "spair71k", "cub", "coco")

#: Classical pygmtools solvers the package compares against (``pyg_ssgm.baselines``).
CLASSICAL_SOLVERS = ("hungarian", "sm", "rrwm", "ipfp")

#: Image backbones that put descriptors on the keypoints (``FeatureConfig.backbone``).
BACKBONE_NAMES = ("efficientnet_lite0", "vgg16")

#: Edge structures of the completed graph (``ModelConfig.structure``).
STRUCTURES = ("delaunay", "knn", "learned")

#: Matching losses (``LossConfig.matching_loss``).
MATCHING_LOSSES = ("sinkhorn", "hamming")

#: The pygmtools solvers of the second-order matching (:mod:`pyg_ssgm.matching.quadratic`).
QUADRATIC_SOLVER_NAMES = ("rrwm", "ipfp")

#: How the discrete matching is solved at inference (``InferenceConfig.solver``).
SOLVERS = ("hungarian",) + QUADRATIC_SOLVER_NAMES

#: Which nodes the model reports as generated (``InferenceConfig.completion_source``).
COMPLETION_SOURCES = ("queries", "matching", "seeded")

#: Where ``pyg_ssgm.data.add_outliers`` draws its points: the keypoints' bounding box, or the whole
#: image (ThinkMatch's ``RAND_OUTLIER``, the AFAT protocol's).
OUTLIER_REGIONS = ("box", "image")

__all__ = ["DATASETS", "CLASSICAL_SOLVERS", "BACKBONE_NAMES", "STRUCTURES", "MATCHING_LOSSES", "SOLVERS",
           "QUADRATIC_SOLVER_NAMES", "COMPLETION_SOURCES", "OUTLIER_REGIONS"]
