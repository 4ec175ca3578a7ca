"""The strategy interface: a few hooks that the one training loop (``train.run``) calls.

Per task, the loop calls ``before_task``, then ``observe`` on every mini-batch of
``training_set``, then ``after_task``; then it evaluates on every task. ``observe``
minimises ``loss(logits, y) + penalty()``. A method overrides only the hooks it needs:
EWC adds ``penalty`` and ``after_task``, replay overrides ``observe``, and so on. Methods never move tensors between devices; the loop does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.benchmarks import Benchmark, Task, TaskData

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


class Strategy:
    """Plain training with cross-entropy plus ``penalty()``; subclasses add what they need.

    Args:
        model: the network; called as ``model(x, task)``.
        lr: learning rate (> 0).
        optimizer: ``"adam"`` (default, as in Hsu et al. 2018) or ``"sgd"``.
    """

    def __init__(self, model: nn.Module, *, lr: float = 1e-3, optimizer: str = "adam"):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
        if not isinstance(lr, (int, float)) or not lr > 0:
            raise ValueError(f"lr must be a positive number, e.g. 1e-3; got {lr!r}.")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={optimizer!r} is not one of {sorted(OPTIMIZERS)}.")
        self.model = model
        self.optimizer = OPTIMIZERS[optimizer](model.parameters(), lr=lr)

    def before_task(self, task: Task) -> None:
        """Called before training on ``task``."""

    def training_set(self, benchmark: Benchmark, t: int) -> TaskData | None:
        """The data to train on while task ``t`` is current (None: skip training)."""
        return benchmark.tasks[t].train

    def observe(self, x: torch.Tensor, y: torch.Tensor, task: int | torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step on a mini-batch; returns its numbers (detached)."""
        self.model.train()
        total = self.loss(self.model(x, task), y) + self.penalty()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return {"loss": total.detach()}

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The task loss of a mini-batch: cross-entropy."""
        return F.cross_entropy(logits, y)

    def penalty(self) -> torch.Tensor | float:
        """A regulariser added to the loss (0 here)."""
        return 0.0

    def after_task(self, task: Task) -> None:
        """Called after training on ``task``, before evaluation."""
