"""The strategy interface and the one optimisation step of the course.

Per task, ``train.run`` calls ``before_task``, ``plan_steps``, then ``observe`` on every
mini-batch of ``training_set``, then ``after_task``; then it evaluates on every task.
``observe`` is the only optimisation step in the library. A method changes it through
hooks, never by copying it:

- ``prepare_batch(x, y, task)``: what the step trains on (replay appends a memory batch);
- ``loss_terms(x, y, task, logits)``: the terms of the loss (LwF adds distillation), and
  ``penalty()``, a regulariser of the weights (EWC, SI, MAS, L2);
- ``adjust_gradients()``: change the gradients before the update (GEM and A-GEM project).

The step owns, in one place: mixed precision (``precision``: autocast to bf16, or fp16
with a gradient scaler, the gradients unscaled before any hook reads them), averaging the
gradients across processes (``gradients.average_across_processes``, a no-op in one
process), clipping, the optimiser (fused where PyTorch has the kernel) and a learning-rate
schedule. ``state_dict`` / ``load_state_dict`` save and restore all of it with the
method's own state (``state_attributes``). Methods never move tensors between devices
themselves; ``run`` puts the model and the data on the device.
"""

from __future__ import annotations

import contextlib
import functools
import operator

import torch
import torch.nn.functional as F
from torch import nn

from ..data.benchmarks import Benchmark, Task, TaskData
from ..gradients import average_across_processes
from ..validation import check

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
SCHEDULES = ("constant", "linear")


def make_optimizer(name: str, params, *, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD over ``params``, with PyTorch's fused kernel (one kernel for the
    whole update, on the CPU as on GPUs) where the installed version has one for these
    parameters, else its default (foreach) implementation: the same update, fewer passes."""
    params = list(params)
    try:
        return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device, dtype or version
        return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay)


class Strategy:
    """Plain training with cross-entropy plus ``penalty()``; subclasses add what they need.

    Args:
        model: the network; called as ``model(x, task)``.
        lr: learning rate (> 0).
        optimizer: ``"adam"`` (default, as in Hsu et al. 2018), ``"adamw"`` (decoupled weight
            decay, Loshchilov & Hutter 2019: the optimiser of Transformer fine-tuning) or ``"sgd"``.
        weight_decay: ≥ 0 (L2 for adam and sgd, decoupled for adamw).
        precision: ``"fp32"``, ``"bf16"`` (autocast, CPU and CUDA) or ``"fp16"`` (autocast with
            a gradient scaler, Micikevicius et al. 2018).
        clip_grad_norm: clip the gradients' global L2 norm to this (None: no clipping).
        schedule: ``"constant"``, or ``"linear"``: per task, warm up linearly from 0 over the
            first ``warmup`` fraction of its steps, then decay linearly to 0 at its last step
            (as ``transformers.get_linear_schedule_with_warmup``; Devlin et al. 2019).
        warmup: the fraction of a task's steps spent warming up, in [0, 1).

    ``key`` (a class attribute) names a method in ``strategies.STRATEGIES``; ``arguments``
    keeps the keyword arguments a strategy was built with (checkpoints compare them).
    """

    key = "base"
    state_attributes: tuple[str, ...] = ()  # a method's own state, saved by state_dict

    def __new__(cls, *args, **kwargs):
        strategy = super().__new__(cls)
        strategy.arguments = dict(kwargs)
        return strategy

    def __init__(self, model: nn.Module, *, lr: float = 1e-3, optimizer: str = "adam", weight_decay: float = 0.0,
                 precision: str = "fp32", clip_grad_norm: float | None = None, schedule: str = "constant",
                 warmup: float = 0.0):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}. Build one, e.g. "
                            "cl.models.MLP(784, [400, 400], bench.n_outputs, heads=bench.n_heads).")
        self.settings = {"lr": check("lr", lr, number=True, above=0, example=1e-3),
                         "weight_decay": check("weight_decay", weight_decay, number=True, at_least=0, example=0.01)}
        self.optimizer_name = check("optimizer", optimizer, one_of=OPTIMIZERS)
        self.precision = check("precision", precision, one_of=PRECISIONS)
        self.clip_grad_norm = check("clip_grad_norm", clip_grad_norm, number=True, above=0, optional=True, example=1.0)
        self.schedule = check("schedule", schedule, one_of=SCHEDULES)
        self.warmup = check("warmup", warmup, number=True, at_least=0, below=1, example=0.1)
        self.model = model
        self.optimizer = self.make_optimizer(model.parameters())
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.planned_steps = 0  # of the current task (plan_steps)
        self.scaler: torch.amp.GradScaler | None = None  # fp16 only, made at the first step (its device)

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        """A new optimiser of this strategy's kind and settings over ``params``."""
        return make_optimizer(self.optimizer_name, params, **self.settings)

    # ---- hooks of the training loop ----
    def setup(self, benchmark: Benchmark) -> None:
        """Called once by ``run`` before the first task (and again on resuming)."""

    def before_task(self, task: Task) -> None:
        """Called before training on ``task``."""

    def training_set(self, benchmark: Benchmark, t: int) -> TaskData | None:
        """The data to train on while task ``t`` is current (None: skip training)."""
        return benchmark.tasks[t].train

    def plan_steps(self, steps: int) -> None:
        """Called by ``run`` before a task's first step with the number of steps it takes:
        starts the learning-rate schedule over them."""
        self.planned_steps = steps
        if self.schedule == "constant":
            self.scheduler = None
            return
        warm = int(self.warmup * steps)

        def factor(step: int) -> float:
            return step / warm if step < warm else max(0.0, (steps - step) / max(1, steps - warm))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    def after_task(self, task: Task) -> None:
        """Called after training on ``task``, before evaluation."""

    # ---- the one step ----
    def observe(self, x, y: torch.Tensor, task: int | torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step on a mini-batch; returns ``loss`` (the total) and each
        term, detached."""
        self.model.train()
        x, y, task = self.prepare_batch(x, y, task)
        with self.autocast():
            terms = self.loss_terms(x, y, task, self.model(x, task))
        penalty = self.penalty()
        total = functools.reduce(operator.add, terms.values())
        if isinstance(penalty, torch.Tensor) or penalty != 0:
            total = total + penalty
        self.optimizer.zero_grad(set_to_none=True)
        scaler = self._grad_scaler()
        (total if scaler is None else scaler.scale(total)).backward()
        if scaler is not None:
            scaler.unscale_(self.optimizer)  # the hooks and the clipping see true gradients
        average_across_processes(self.model.parameters())
        self.adjust_gradients()
        if self.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        if scaler is None:
            self.optimizer.step()
        else:
            scaler.step(self.optimizer)  # skipped when a gradient overflowed
            scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        out = {name: value.detach() for name, value in terms.items()}
        if isinstance(penalty, torch.Tensor):
            out["penalty"] = penalty.detach()
        return {"loss": total.detach(), **out}

    def prepare_batch(self, x, y: torch.Tensor, task):
        """The batch the step trains on (the current one here)."""
        return x, y, task

    def loss_terms(self, x, y: torch.Tensor, task, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The terms of the loss, summed by the step: the task loss here."""
        return {"cross_entropy": self.loss(logits, y)}

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The task loss of a mini-batch: cross-entropy."""
        return F.cross_entropy(logits, y)

    def penalty(self) -> torch.Tensor | float:
        """A regulariser added to the loss (0 here)."""
        return 0.0

    def adjust_gradients(self) -> None:
        """Change ``p.grad`` before the update (nothing here)."""

    def autocast(self):
        """The mixed-precision context of this strategy's forward passes (none in fp32)."""
        if PRECISIONS[self.precision] is None:
            return contextlib.nullcontext()
        return torch.autocast(self._device().type, dtype=PRECISIONS[self.precision])

    def _grad_scaler(self) -> torch.amp.GradScaler | None:
        if self.precision == "fp16" and self.scaler is None:
            self.scaler = torch.amp.GradScaler(self._device().type)
        return self.scaler

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---- saved state ----
    def state_dict(self) -> dict:
        """Everything a resumed run needs: the model, the optimiser, the gradient scaler and
        the method's own state (its ``state_attributes``: memories, importances, teachers)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": None if self.scaler is None else self.scaler.state_dict(),
                "schedule": None if self.scheduler is None else (self.planned_steps, self.scheduler.state_dict()),
                "method": {name: _saved(getattr(self, name)) for name in self.state_attributes}}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``'s state, its tensors moved to the model's device."""
        self.model.load_state_dict(state["model"])
        if state["schedule"] is not None:  # mid-task: the same schedule, at the same step
            self.plan_steps(state["schedule"][0])
            self.scheduler.load_state_dict(state["schedule"][1])
        self.optimizer.load_state_dict(state["optimizer"])  # after the schedule, which sets the lr
        if state["scaler"] is not None:
            self._grad_scaler().load_state_dict(state["scaler"])
        device = self._device()
        for name, value in state["method"].items():
            current = getattr(self, name)
            if hasattr(current, "load_state_dict"):
                current.load_state_dict(_moved(value, device))
            else:
                setattr(self, name, _moved(value, device))


def _saved(value):
    return value.state_dict() if hasattr(value, "state_dict") else value


def _moved(value, device: torch.device):
    """A copy of ``value`` with every tensor inside (dicts, lists, tuples) on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, copy=True)
    if isinstance(value, dict):
        return {key: _moved(v, device) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_moved(v, device) for v in value)
    return value
