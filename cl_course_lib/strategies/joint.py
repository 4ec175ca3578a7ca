"""Joint training: all tasks at once, the usual upper bound ("offline" in Hsu et al. 2018)."""

from __future__ import annotations

from ..data.benchmarks import Benchmark, TaskData
from .base import Strategy


class Joint(Strategy):
    """Train once on the union of every task's training set, while the first task is
    current; later tasks add no training. Every row of the accuracy matrix after the
    first is then the same jointly trained model, so BWT is 0 and ACC is the joint
    accuracy. Not a continual learner: it sees the whole stream up front."""

    key = "joint"

    def training_set(self, benchmark: Benchmark, t: int) -> TaskData | None:
        return TaskData.concat([task.train for task in benchmark.tasks]) if t == 0 else None
