"""Models: the MLP (single- and multi-head), progressive networks, pretrained Transformers
behind this library's ``model(x, task)`` (``TextClassifier``, ``PerTaskLoRA``), and the
per-batch input transforms that put pretrained networks behind that interface."""

from .adapters import PerTaskLoRA
from .heads import Heads
from .mlp import MLP
from .preprocessing import ImageInput, Preprocessed, TrimPadding
from .progressive import ProgressiveNet
from .text import TextClassifier, TextEncoder, load_text_encoder, parameter_counts

__all__ = ["MLP", "Heads", "ImageInput", "PerTaskLoRA", "Preprocessed", "ProgressiveNet", "TextClassifier",
           "TextEncoder", "TrimPadding", "load_text_encoder", "parameter_counts"]
