"""Models: the MLP (single- and multi-head), progressive networks, pretrained Transformers
and CNNs behind this library's ``model(x, task)`` (``TextClassifier``, ``PerTaskLoRA``,
``ImageClassifier``), the per-batch input transforms that put pretrained networks behind
that interface, and frozen BatchNorm statistics."""

from .adapters import PerTaskLoRA
from .batchnorm import freeze_batchnorm, running_statistics, statistics_drift
from .heads import Heads
from .mlp import MLP
from .preprocessing import ImageInput, Preprocessed, TrimPadding
from .progressive import ProgressiveNet
from .text import TextClassifier, TextEncoder, load_text_encoder, parameter_counts
from .vision import Backbone, ImageClassifier, load_backbone

__all__ = ["MLP", "Backbone", "Heads", "ImageClassifier", "ImageInput", "PerTaskLoRA", "Preprocessed",
           "ProgressiveNet", "TextClassifier", "TextEncoder", "TrimPadding", "freeze_batchnorm", "load_backbone",
           "load_text_encoder", "parameter_counts", "running_statistics", "statistics_drift"]
