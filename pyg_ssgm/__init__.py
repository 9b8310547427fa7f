"""pyg_ssgm: self-supervised, generative, partial graph matching of keypoint graphs.

>>> from pyg_ssgm import SSGM, SSGMConfig, metrics
>>> from pyg_ssgm.data import KeypointInstance, PairGenerator, make_pair
"""
from . import metrics
from .config import SSGMConfig
from .feature_cache import FeatureConfig, attach_features, build_backbone
from .model import SSGM, GeneratedNodes, SSGMOutput

__version__ = "0.1.0"
__all__ = ["SSGM", "SSGMConfig", "SSGMOutput", "GeneratedNodes", "FeatureConfig", "attach_features", "build_backbone",
           "metrics", "__version__"]
