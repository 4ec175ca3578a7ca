"""Continual-learning strategies, one file each, all subclasses of :class:`Strategy`."""

from .base import Strategy
from .cumulative import Cumulative
from .joint import Joint
from .naive import Naive

__all__ = ["Cumulative", "Joint", "Naive", "Strategy"]
