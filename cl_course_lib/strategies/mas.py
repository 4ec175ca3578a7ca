"""Memory aware synapses (Aljundi et al. 2018): importance from the output's sensitivity."""

from __future__ import annotations

from torch import nn

from ..data.benchmarks import Task
from ..importance import output_sensitivity, snapshot, weighted_squared_distance
from ..validation import check
from .base import Strategy


class MAS(Strategy):
    """Loss + ``λ Σ_i Ω_i (θ_i − θ*_i)²`` with Ω_i = mean over samples of
    |∂‖f(x)‖²₂/∂θ_i| (see ``importance.output_sensitivity``), summed over past tasks, and
    θ* the weights after the previous task. Needs no labels: the importance measures how
    much the function the network computes depends on each weight.

    Args:
        lam: λ ≥ 0, the penalty strength.
        samples: training samples of a task used for its importance (None: all).
        options: the step's settings (``Strategy``: lr, optimizer, precision, ...).
    """

    key = "mas"
    state_attributes = ("importance", "anchor")

    def __init__(self, model: nn.Module, *, lam: float = 10.0, samples: int | None = 1000, **options):
        super().__init__(model, **options)
        self.lam = check("lam", lam, number=True, at_least=0, example=10.0)
        self.samples = check("samples", samples, integer=True, at_least=1, optional=True, example=1000)
        self.importance: dict | None = None
        self.anchor: dict | None = None

    def penalty(self):
        if self.anchor is None:
            return 0.0
        return weighted_squared_distance(self.model, self.importance, self.anchor, scale=self.lam)

    def after_task(self, task: Task) -> None:
        new = output_sensitivity(self.model, task.train, max_samples=self.samples)
        if self.importance is not None:
            new = {name: self.importance[name] + value for name, value in new.items()}
        self.importance, self.anchor = new, snapshot(self.model)
