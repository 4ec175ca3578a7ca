"""Models: the MLP (single- and multi-head), progressive networks, and the per-batch input
transforms that put pretrained networks behind this library's ``model(x, task)``."""

from .mlp import MLP
from .preprocessing import ImageInput, Preprocessed, TrimPadding
from .progressive import ProgressiveNet

__all__ = ["MLP", "ImageInput", "Preprocessed", "ProgressiveNet", "TrimPadding"]
