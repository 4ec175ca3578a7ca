"""Continual-learning strategies, one file each, all subclasses of :class:`Strategy`."""

from .agem import AGEM
from .base import Strategy
from .cumulative import Cumulative
from .ewc import EWC
from .gem import GEM
from .joint import Joint
from .l2 import L2
from .lwf import LwF
from .mas import MAS
from .naive import Naive
from .online_ewc import OnlineEWC
from .pnn import PNN
from .replay import Replay
from .si import SI

__all__ = ["AGEM", "EWC", "GEM", "L2", "MAS", "SI", "Cumulative", "Joint", "LwF", "Naive", "OnlineEWC",
           "PNN", "Replay", "Strategy"]
