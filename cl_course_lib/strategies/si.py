"""Synaptic intelligence (Zenke, Poole & Ganguli 2017): importance from the path integral."""

from __future__ import annotations

import torch
from torch import nn

from ..data.benchmarks import Task
from ..importance import snapshot, weighted_squared_distance
from ..validation import check
from .base import Strategy


class SI(Strategy):
    """Loss + ``c Σ_i Ω_i (θ_i − θ*_i)²`` (Zenke et al. 2017, eq. 4), θ* the weights after
    the previous task, and the importance accumulated over tasks μ (eq. 5):

        ω_i  = −Σ_t g_{t,i} Δθ_{t,i}                (path integral over the task's steps)
        Ω_i += ω_i / ((θ_i(end) − θ_i(start))² + ξ)

    g_t is the gradient of the *task* loss alone (not of the penalty), as in the authors'
    code; Δθ_t the change the optimiser made at step t. Ω starts at 0, not 1.

    SI watches the optimiser's steps (``register_step_pre_hook`` / ``post_hook``), so it
    works with any ``observe``. At every step it adds −G_t Δθ_t to ``path`` with the gradient
    the optimiser used, G_t = g_t + 2 c Ω (θ_t − θ*), and Δθ_t² to ``drift``; the penalty's
    share is removed once, at the end of the task, in closed form: with u_t = θ_t − θ*
    and u_0 = 0 (a task starts at θ*), the sum telescopes,

        Σ_t 2 c Ω u_t Δθ_t = c Ω Σ_t (u_{t+1}² − u_t² − Δθ_t²) = c Ω (u_T² − Σ_t Δθ_t²).

    This costs one pass over the weights per step where removing 2 c Ω u_t from G_t at
    every step would cost two.

    Args:
        c: c ≥ 0, the penalty strength.
        xi: ξ > 0, damping for weights that barely moved.
        options: the step's settings (``Strategy``: lr, optimizer, precision, ...).
    """

    key = "si"
    state_attributes = ("tasks_done", "anchor", "importance", "path", "drift")

    def __init__(self, model: nn.Module, *, c: float = 100.0, xi: float = 0.1, **options):
        super().__init__(model, **options)
        self.c = check("c", c, number=True, at_least=0, example=100.0)
        self.xi = check("xi", xi, number=True, above=0, example=0.1)
        self.tasks_done = 0
        self._start()
        self.optimizer.register_step_pre_hook(self._before_step)
        self.optimizer.register_step_post_hook(self._after_step)

    def _start(self) -> None:
        """θ* (and the start of the first task), Ω = 0 and the sums, on the model's device."""
        self.anchor = snapshot(self.model)
        self.importance = {name: torch.zeros_like(p) for name, p in self.anchor.items()}  # Ω
        self.path = {name: torch.zeros_like(p) for name, p in self.anchor.items()}  # −Σ_t G_t Δθ_t
        self.drift = {name: torch.zeros_like(p) for name, p in self.anchor.items()}  # Σ_t Δθ_t²
        self.before = {name: torch.empty_like(p) for name, p in self.anchor.items()}  # θ before a step
        self.stepping: list[tuple[str, nn.Parameter]] = []  # the weights the step under way moves

    def before_task(self, task: Task) -> None:
        if not self.tasks_done:  # the loop may have moved the model to its device since __init__
            self._start()

    def penalty(self):
        if not self.tasks_done:  # Ω is still all zeros: skip the work
            return 0.0
        return weighted_squared_distance(self.model, self.importance, self.anchor, scale=self.c)

    @torch.no_grad()
    def _before_step(self, optimizer, args, kwargs) -> None:
        """Keep θ of the weights with a gradient (a step leaves the others alone), into
        buffers kept across steps: no allocation."""
        self.stepping = [(name, p) for name, p in self.model.named_parameters()
                         if name in self.before and p.grad is not None]
        for name, p in self.stepping:
            self.before[name].copy_(p)

    @torch.no_grad()
    def _after_step(self, optimizer, args, kwargs) -> None:
        """path += −G Δθ and drift += Δθ², with −Δθ = before − θ computed in place."""
        for name, p in self.stepping:
            back = self.before[name].sub_(p)  # −Δθ
            self.path[name].addcmul_(back, p.grad)  # torch's optimisers read p.grad, never write it
            if self.tasks_done:  # no penalty on the first task: nothing to remove
                self.drift[name].addcmul_(back, back)

    def after_task(self, task: Task) -> None:
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if name in self.anchor:
                    moved = p.detach() - self.anchor[name]  # u_T = θ(end) − θ(start)
                    # ω = path + c Ω (u_T² − Σ Δθ²): the path integral of the task loss alone
                    omega = self.path[name].addcmul_(self.importance[name], moved.square() - self.drift[name],
                                                     value=self.c)
                    self.importance[name] += omega / (moved.square() + self.xi)
                    omega.zero_()
                    self.drift[name].zero_()
        self.anchor = snapshot(self.model)
        self.tasks_done += 1

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.before = {name: torch.empty_like(p) for name, p in self.anchor.items()}  # on the loaded device
