"""Settings by what they govern: the model, its losses, its inference, training, image features.

>>> from pyg_ssgm.config import Settings, ModelConfig
>>> settings = Settings.from_dict({"epochs": 5, "model": {"hidden_channels": 32}})
"""
from ..features import FeatureConfig
from .model import InferenceConfig, LossConfig, ModelConfig
from .settings import (INTRODUCED, RESUME_MAY_CHANGE, SECTIONS, Settings, apply_overrides, merge, read_settings_file,
                       split_sections)
from .train import TrainConfig

__all__ = ["ModelConfig", "LossConfig", "InferenceConfig", "TrainConfig", "FeatureConfig", "Settings", "SECTIONS",
           "RESUME_MAY_CHANGE", "INTRODUCED", "split_sections", "merge", "read_settings_file", "apply_overrides"]
