"""L2: stay close to the weights learned on the previous task (the simplest regulariser)."""

from __future__ import annotations

from torch import nn

from ..data.benchmarks import Task
from ..importance import snapshot, weighted_squared_distance
from ..validation import check
from .base import Strategy


class L2(Strategy):
    """Loss + ``λ/2 Σ_i (θ_i − θ*_i)²`` with θ* the weights after the previous task: EWC with
    every importance equal to 1 (the baseline of Kirkpatrick et al. 2017, Fig. 2A).

    Args:
        lam: λ ≥ 0, the penalty strength.
        options: the step's settings (``Strategy``: lr, optimizer, precision, ...).
    """

    key = "l2"
    state_attributes = ("anchor",)

    def __init__(self, model: nn.Module, *, lam: float = 0.1, **options):
        super().__init__(model, **options)
        self.lam = check("lam", lam, number=True, at_least=0, example=0.1)
        self.anchor: dict | None = None

    def penalty(self):
        if self.anchor is None:
            return 0.0
        return weighted_squared_distance(self.model, None, self.anchor, scale=self.lam / 2)

    def after_task(self, task: Task) -> None:
        self.anchor = snapshot(self.model)
