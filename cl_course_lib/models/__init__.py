"""Models: the MLP (single- and multi-head) and progressive networks; later chapters add CNNs."""

from .mlp import MLP
from .progressive import ProgressiveNet

__all__ = ["MLP", "ProgressiveNet"]
