"""Learning without forgetting (Li & Hoiem 2016)."""

from __future__ import annotations

import copy

import torch
from sklearn.utils import check_scalar
from torch import nn

from ..data.benchmarks import Task
from ..distillation import distillation_loss
from .base import Strategy


class LwF(Strategy):
    """Loss = CE(f_θ(x), y) + α · Σ_old KD(f_θ*(x), f_θ(x)) on the *current* task's inputs
    (Li & Hoiem 2016, §3: λ_o L_old + L_new, L_old their eq. 2 with T = 2), θ* a frozen copy
    of the model taken before each task after the first; KD is ``distillation_loss``
    (T² · KL, as in van de Ven et al.'s code behind Hsu et al. 2018's LwF row; Li & Hoiem's
    soft cross-entropy has the same gradient up to that factor T²).

    What is distilled: with several heads (task-IL), every previous task's head, one KD term
    each; with one head, the output units that were labels of previous tasks (all units
    in domain-IL, the old classes' units in class-IL), as one softmax over those units.
    No memory of past data: the old tasks are represented by the teacher's answers on new data.

    Args:
        alpha: α ≥ 0, the weight of the distillation term (Li & Hoiem's λ_o = 1).
        temperature: T > 0 of the softened softmax (2, as in the paper).
    """

    def __init__(self, model: nn.Module, *, alpha: float = 1.0, temperature: float = 2.0,
                 lr: float = 1e-3, optimizer: str = "adam"):
        super().__init__(model, lr=lr, optimizer=optimizer)
        self.alpha = check_scalar(alpha, "alpha", (int, float), min_val=0.0)
        self.temperature = check_scalar(temperature, "temperature", (int, float), min_val=0.0,
                                        include_boundaries="neither")
        self.teacher: nn.Module | None = None
        self.old_tasks: list[int] = []
        self.old_units = torch.empty(0, dtype=torch.long)  # labels of previous tasks (one head)

    def before_task(self, task: Task) -> None:
        if self.old_tasks:
            self.teacher = copy.deepcopy(self.model).eval().requires_grad_(False)

    def observe(self, x, y, task):
        self.model.train()
        logits = self.model(x, task)
        distill = self.distillation(x, task, logits) if self.teacher is not None else torch.zeros(())
        total = self.loss(logits, y) + self.alpha * distill
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return {"loss": total.detach(), "distillation": distill.detach()}

    def distillation(self, x: torch.Tensor, task, logits: torch.Tensor) -> torch.Tensor:
        """The KD term on inputs ``x`` (``logits``: the student's on the current task's head)."""
        if getattr(self.model, "n_heads", 1) > 1:  # task-IL: every old head, on the new inputs
            with torch.no_grad():
                targets = [self.teacher(x, t) for t in self.old_tasks]
            return sum(distillation_loss(self.model(x, t), target, self.temperature)
                       for t, target in zip(self.old_tasks, targets))
        units = self.old_units.to(x.device)
        with torch.no_grad():
            target = self.teacher(x, task)[:, units]
        return distillation_loss(logits[:, units], target, self.temperature)

    def after_task(self, task: Task) -> None:
        self.old_tasks.append(task.id)
        labels = torch.cat([self.old_units, task.train.y.unique().cpu()])
        self.old_units = labels.unique()
