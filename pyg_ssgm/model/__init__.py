"""The model, split by job as in DETR: the network (:class:`SSGM`), its training losses
(:class:`Criterion`) and the matching it predicts (:class:`Predictor`)."""
from .criterion import Criterion
from .network import SSGM
from .output import Assignment, CompletionTargets, EncodedGraph, GeneratedNodes, SSGMOutput
from .predictor import Prediction, Predictor

__all__ = ["SSGM", "Criterion", "Predictor", "Prediction", "SSGMOutput", "EncodedGraph", "GeneratedNodes",
           "CompletionTargets", "Assignment"]
