"""Continual-learning strategies, one file each, all subclasses of :class:`Strategy`.

``STRATEGIES`` is the one list of them, built from the classes (each names itself with its
``key``): the command line, ``reproduce`` and the tests read it.
"""

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
from .slow_learner import SlowLearner


def _methods(cls: type) -> list[type]:
    """The library's subclasses of ``cls`` that declare their own ``key`` (a chapter's
    experimental subclass inherits its parent's and is not listed)."""
    found = []
    for sub in cls.__subclasses__():
        if sub.__module__.startswith(__name__) and "key" in vars(sub):
            found.append(sub)
        found += _methods(sub)
    return found


STRATEGIES: dict[str, type[Strategy]] = {cls.key: cls for cls in _methods(Strategy)}

__all__ = ["AGEM", "EWC", "GEM", "L2", "MAS", "SI", "STRATEGIES", "Cumulative", "Joint", "LwF", "Naive", "OnlineEWC",
           "PNN", "Replay", "SlowLearner", "Strategy"]
