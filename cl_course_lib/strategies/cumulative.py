"""Cumulative training: retrain on every task seen so far (Lomonaco & Maltoni 2017)."""

from __future__ import annotations

from ..data.benchmarks import Benchmark, TaskData
from .base import Strategy


class Cumulative(Strategy):
    """While task t is current, train on the union of tasks 0..t (continuing from the
    current weights). An upper bound that keeps the sequential order, at a cost that
    grows with every task."""

    key = "cumulative"

    def training_set(self, benchmark: Benchmark, t: int) -> TaskData:
        return TaskData.concat([task.train for task in benchmark.tasks[: t + 1]])
