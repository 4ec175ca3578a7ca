"""Averaged GEM (Chaudhry, Ranzato, Rohrbach & Elhoseiny 2019, "Efficient Lifelong Learning with A-GEM")."""

from __future__ import annotations

import torch
from torch import nn

from ..data.benchmarks import Task
from ..gradients import grad_vector, loss_gradient, set_grad
from ..memory import EpisodicMemory
from ..validation import check
from .base import Strategy


def project_agem(g: torch.Tensor, g_ref: torch.Tensor) -> torch.Tensor:
    """A-GEM's update (Chaudhry et al. 2019, eq. 11): if gᵀg_ref < 0,

        g̃ = g − (gᵀ g_ref / g_refᵀ g_ref) g_ref,

    the closest point to g on the half-space {g̃ : g̃ᵀ g_ref ≥ 0}; otherwise g itself."""
    dot = g @ g_ref
    if dot >= 0:
        return g
    return g - (dot / (g_ref @ g_ref)) * g_ref


class AGEM(Strategy):
    """GEM with one constraint: the average loss over the episodic memory must not increase,
    to first order (Chaudhry et al. 2019, eq. 10). g_ref is the gradient on a random batch of
    ``ref_batch_size`` samples of the memory of all past tasks (each through its own head in
    task-IL). The memory is the same as GEM's (``memory.EpisodicMemory``: ``mem_size`` in all,
    split equally over the tasks seen, refilled after each task). ``self.projections``
    counts the projected steps. Defaults: the optimiser and lr of Hsu et al.'s protocol (Adam,
    1e-3), ``ref_batch_size`` 256 as in the paper.

    Args:
        mem_size: total episodic memory (≥ number of tasks).
        ref_batch_size: samples of the memory used for g_ref (≥ 1).
        options: the step's settings (``Strategy``: lr, optimizer, precision, ...).
    """

    key = "agem"
    state_attributes = ("memory", "projections")

    def __init__(self, model: nn.Module, *, mem_size: int = 1000, ref_batch_size: int = 256, **options):
        super().__init__(model, **options)
        check("mem_size", mem_size, integer=True, at_least=1, example=1000)
        self.ref_batch_size = check("ref_batch_size", ref_batch_size, integer=True, at_least=1, example=256)
        self.memory = EpisodicMemory(mem_size)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.projections = 0

    def adjust_gradients(self) -> None:
        """g → g̃ (``project_agem``) against g_ref, the gradient on a random memory batch."""
        if not len(self.memory):
            return
        x_ref, y_ref, task_ref = self.memory.sample(self.ref_batch_size)
        with self.autocast():
            loss = self.loss(self.model(x_ref, task_ref), y_ref)
        g_ref = loss_gradient(loss, self.params)
        g = grad_vector(self.params)
        g_tilde = project_agem(g, g_ref)
        if g_tilde is not g:
            set_grad(self.params, g_tilde)
            self.projections += 1

    def after_task(self, task: Task) -> None:
        self.memory.add_task(task.train)
