"""Continual-learning strategies, one file each, all subclasses of :class:`Strategy`."""

from .base import Strategy
from .cumulative import Cumulative
from .ewc import EWC
from .joint import Joint
from .l2 import L2
from .mas import MAS
from .naive import Naive
from .online_ewc import OnlineEWC
from .si import SI

__all__ = ["EWC", "L2", "MAS", "SI", "Cumulative", "Joint", "Naive", "OnlineEWC", "Strategy"]
