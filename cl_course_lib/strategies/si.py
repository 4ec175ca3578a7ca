"""Synaptic intelligence (Zenke, Poole & Ganguli 2017): importance from the path integral."""

from __future__ import annotations

import torch
from sklearn.utils import check_scalar
from torch import nn

from ..data.benchmarks import Task
from ..importance import snapshot, weighted_squared_distance
from .base import Strategy


class SI(Strategy):
    """Loss + ``c Σ_i Ω_i (θ_i − θ*_i)²`` (Zenke et al. 2017, eq. 4), θ* the weights after
    the previous task, and the importance accumulated over tasks μ (eq. 5):

        ω_i  = −Σ_t g_{t,i} Δθ_{t,i}                (path integral over the task's steps)
        Ω_i += ω_i / ((θ_i(end) − θ_i(start))² + ξ)

    g_t is the gradient of the *task* loss alone (not of the penalty), as in the authors'
    code; Δθ_t the change the optimiser made at step t. Ω starts at 0, not 1.

    Args:
        c: c ≥ 0, the penalty strength.
        xi: ξ > 0, damping for weights that barely moved.
    """

    def __init__(self, model: nn.Module, *, c: float = 100.0, xi: float = 0.1, lr: float = 1e-3,
                 optimizer: str = "adam"):
        super().__init__(model, lr=lr, optimizer=optimizer)
        self.c = check_scalar(c, "c", (int, float), min_val=0.0)
        self.xi = check_scalar(xi, "xi", (int, float), min_val=0.0, include_boundaries="neither")
        self.tasks_done = 0
        self._start()

    def _start(self) -> None:
        """θ* (and the start of the first task), Ω = 0, ω = 0, on the model's device."""
        self.anchor = snapshot(self.model)
        self.importance = {name: torch.zeros_like(p) for name, p in self.anchor.items()}  # Ω
        self.path = {name: torch.zeros_like(p) for name, p in self.anchor.items()}  # ω
        self.before = {name: torch.empty_like(p) for name, p in self.anchor.items()}  # θ before a step

    def before_task(self, task: Task) -> None:
        if not self.tasks_done:  # the loop may have moved the model to its device since __init__
            self._start()

    def penalty(self):
        if not self.tasks_done:  # Ω is still all zeros: skip the work
            return 0.0
        return self.c * weighted_squared_distance(self.model, self.importance, self.anchor)

    def observe(self, x, y, task):
        before = self.before
        with torch.no_grad():  # copy into buffers kept across steps: no allocation at every step
            for name, p in self.model.named_parameters():
                if name in before:
                    before[name].copy_(p)
        numbers = super().observe(x, y, task)
        with torch.no_grad():  # in-place arithmetic where possible: this runs at every step
            for name, p in self.model.named_parameters():
                if name in before and p.grad is not None:  # None: a head this batch did not use
                    g = p.grad
                    if self.tasks_done:
                        # p.grad holds ∂(loss + penalty)/∂θ at `before`; remove the penalty's part,
                        # 2 c Ω (θ − θ*), to keep the task loss's gradient g only.
                        g = g.addcmul(self.importance[name], before[name] - self.anchor[name], value=-2 * self.c)
                    self.path[name].addcmul_(before[name].sub_(p), g)  # −g Δθ, with Δθ = θ − before
        return numbers

    def after_task(self, task: Task) -> None:
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if name in self.anchor:
                    moved = p.detach() - self.anchor[name]
                    self.importance[name] += self.path[name] / (moved.square() + self.xi)
                    self.path[name].zero_()
        self.anchor = snapshot(self.model)
        self.tasks_done += 1
