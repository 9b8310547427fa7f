"""pyg_ssgm: self-supervised, generative, partial graph matching of keypoint graphs.

>>> from pyg_ssgm import SSGM, ModelConfig, Predictor, metrics
>>> from pyg_ssgm.data import KeypointInstance, PairGenerator, make_pair

Names are imported on first use, so that ``import pyg_ssgm`` (and every command line's
``--help``) does not pay for torch until something needs it.
"""
import importlib

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "SSGM": "model", "Criterion": "model", "Predictor": "model", "Prediction": "model", "SSGMOutput": "model",
    "GeneratedNodes": "model",
    "Settings": "config", "ModelConfig": "config", "LossConfig": "config", "InferenceConfig": "config",
    "TrainConfig": "config",
    "FeatureConfig": "features", "attach_features": "features", "build_backbone": "features",
    "Experiment": "experiment", "build": "experiment", "load_model": "experiment",
    "metrics": None,
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pyg_ssgm' has no attribute {name!r}")
    module = _EXPORTS[name]
    value = importlib.import_module(f".{module or name}", __name__)
    return value if module is None else getattr(value, name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
