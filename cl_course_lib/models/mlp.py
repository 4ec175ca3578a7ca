"""The multi-layer perceptron used throughout the course, with one or several heads."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..validation import check


class MLP(nn.Module):
    """``in_features → hidden[0] → … → hidden[-1]`` (ReLU) then ``heads`` linear heads of
    ``n_outputs`` units each.

    One head (domain- and class-incremental learning) ignores the task id. Several heads
    (task-incremental learning) need it: ``model(x, task)`` with ``task`` an int runs only
    that head, so the other heads get no gradient (and an optimiser such as Adam leaves
    them alone); a LongTensor of per-sample ids routes each sample to its own head.
    Inputs of any shape ``(B, ...)`` are flattened.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], n_outputs: int, *, heads: int = 1):
        super().__init__()
        check("in_features", in_features, integer=True, at_least=1, example=784)
        check("n_outputs", n_outputs, integer=True, at_least=1, example=10)
        check("heads", heads, integer=True, at_least=1, example=1)
        for i, width in enumerate(hidden):
            check(f"hidden[{i}]", width, integer=True, at_least=1,
                  fix="Pass hidden as a list of positive layer widths, e.g. hidden=[400, 400].")
        widths = [in_features, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.heads = nn.ModuleList(nn.Linear(widths[-1], n_outputs) for _ in range(heads))
        self.in_features, self.n_outputs, self.n_heads = in_features, n_outputs, heads

    def forward(self, x: torch.Tensor, task: int | torch.Tensor | None = None) -> torch.Tensor:
        """Logits of shape ``(B, n_outputs)``."""
        if x[0].numel() != self.in_features:
            raise ValueError(f"this MLP takes inputs of {self.in_features} features; got samples of "
                             f"shape {tuple(x.shape[1:])}. Build it with in_features={x[0].numel()}.")
        features = self.body(x)
        if len(self.heads) == 1:
            return self.heads[0](features)
        if task is None:
            raise ValueError(f"this MLP has {len(self.heads)} heads (task-incremental): pass the task id, "
                             "model(x, task).")
        if isinstance(task, int):
            return self.heads[task](features)
        out = features.new_empty(len(x), self.n_outputs)
        for t in task.unique().tolist():  # at most one pass per head present in the batch
            rows = task == t
            out[rows] = self.heads[t](features[rows])
        return out
