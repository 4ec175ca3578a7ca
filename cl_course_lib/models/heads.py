"""Output heads: one shared head, or one head per task routed by the task id."""

from __future__ import annotations

import torch
from torch import nn

from ..validation import check


class Heads(nn.ModuleList):
    """``heads`` linear heads of ``n_outputs`` units on ``in_features`` features.

    One head (domain- and class-incremental learning) ignores the task id. Several heads
    (task-incremental learning) need it: ``heads(features, task)`` with ``task`` an int runs
    only that head, so the other heads get no gradient (and an optimiser such as Adam leaves
    them alone); a LongTensor of per-sample ids routes each sample to its own head.
    """

    def __init__(self, in_features: int, n_outputs: int, heads: int = 1):
        check("n_outputs", n_outputs, integer=True, at_least=1, example=10)
        check("heads", heads, integer=True, at_least=1, example=1)
        super().__init__(nn.Linear(in_features, n_outputs) for _ in range(heads))
        self.n_outputs = n_outputs

    def forward(self, features: torch.Tensor, task: int | torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, n_outputs)`` of features ``(B, in_features)``."""
        if len(self) == 1:
            return self[0](features)
        if task is None:
            raise ValueError(f"this model has {len(self)} heads (task-incremental): pass the task id, "
                             "model(x, task).")
        if isinstance(task, int):
            return self[task](features)
        out = features.new_empty(len(features), self.n_outputs)
        for t in task.unique().tolist():  # at most one pass per head present in the batch
            rows = task == t
            out[rows] = self[t](features[rows]).to(out.dtype)
        return out
