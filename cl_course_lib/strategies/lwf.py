"""Learning without forgetting (Li & Hoiem 2016)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..data.benchmarks import Benchmark, Task
from ..distillation import distillation_loss
from ..validation import check
from .base import Strategy


class LwF(Strategy):
    """Loss = CE(f_θ(x), y) + α · Σ_old KD(f_θ*(x), f_θ(x)) on the *current* task's inputs
    (Li & Hoiem 2016, §3: λ_o L_old + L_new, L_old their eq. 2 with T = 2), θ* a frozen copy
    of the model taken before each task after the first; KD is ``distillation_loss``
    (T² · KL, as in van de Ven et al.'s code behind Hsu et al. 2018's LwF row; Li & Hoiem's
    soft cross-entropy has the same gradient up to that factor T²).

    What is distilled: with several heads (task-IL, ``multi_head``, set from the benchmark
    by ``setup``), every previous task's head, one KD term each; with one head, the output units that were labels of previous tasks (all units
    in domain-IL, the old classes' units in class-IL), as one softmax over those units.
    No memory of past data: the old tasks are represented by the teacher's answers on new data.

    Args:
        alpha: α ≥ 0, the weight of the distillation term (Li & Hoiem's λ_o = 1).
        temperature: T > 0 of the softened softmax (2, as in the paper).
        options: the step's settings (``Strategy``: lr, optimizer, precision, ...).
    """

    key = "lwf"
    state_attributes = ("multi_head", "old_tasks", "old_units")  # and the teacher (state_dict)

    def __init__(self, model: nn.Module, *, alpha: float = 1.0, temperature: float = 2.0, **options):
        super().__init__(model, **options)
        self.alpha = check("alpha", alpha, number=True, at_least=0, example=1.0)
        self.temperature = check("temperature", temperature, number=True, above=0, example=2.0)
        self.teacher: nn.Module | None = None
        self.multi_head = False
        self.old_tasks: list[int] = []
        self.old_units = torch.empty(0, dtype=torch.long)  # labels of previous tasks (one head)

    def setup(self, benchmark: Benchmark) -> None:
        self.multi_head = benchmark.n_heads > 1

    def before_task(self, task: Task) -> None:
        if self.old_tasks:
            self.teacher = copy.deepcopy(self.model).eval().requires_grad_(False)

    def loss_terms(self, x, y, task, logits):
        terms = super().loss_terms(x, y, task, logits)
        if self.teacher is not None:
            terms["distillation"] = self.alpha * self.distillation(x, task, logits)
        return terms

    def distillation(self, x: torch.Tensor, task, logits: torch.Tensor) -> torch.Tensor:
        """The KD term on inputs ``x`` (``logits``: the student's on the current task's head)."""
        if self.multi_head:  # task-IL: every old head, on the new inputs
            with torch.no_grad():
                targets = [self.teacher(x, t) for t in self.old_tasks]
            return sum(distillation_loss(self.model(x, t), target, self.temperature)
                       for t, target in zip(self.old_tasks, targets))
        units = self.old_units.to(logits.device)
        with torch.no_grad():
            target = self.teacher(x, task)[:, units]
        return distillation_loss(logits[:, units], target, self.temperature)

    def after_task(self, task: Task) -> None:
        self.old_tasks.append(task.id)
        labels = torch.cat([self.old_units, task.train.y.unique().cpu()])
        self.old_units = labels.unique()

    def state_dict(self) -> dict:
        teacher = None if self.teacher is None else self.teacher.state_dict()
        return {**super().state_dict(), "teacher": teacher}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.old_units = self.old_units.cpu()
        self.teacher = None
        if state["teacher"] is not None:  # θ*: a frozen copy of the model, with the saved weights
            self.teacher = copy.deepcopy(self.model).eval().requires_grad_(False)
            self.teacher.load_state_dict(state["teacher"])
