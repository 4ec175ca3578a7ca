"""Models: the MLP (single- and multi-head); later chapters add CNNs and progressive nets."""

from .mlp import MLP

__all__ = ["MLP"]
