"""The multi-layer perceptron used throughout the course, with one or several heads."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..validation import check
from .heads import Heads


class MLP(nn.Module):
    """``in_features → hidden[0] → … → hidden[-1]`` (ReLU) then ``heads`` linear heads of
    ``n_outputs`` units each (``Heads``: the task id picks the head when there are several).
    Inputs of any shape ``(B, ...)`` are flattened.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], n_outputs: int, *, heads: int = 1):
        super().__init__()
        check("in_features", in_features, integer=True, at_least=1, example=784)
        for i, width in enumerate(hidden):
            check(f"hidden[{i}]", width, integer=True, at_least=1,
                  fix="Pass hidden as a list of positive layer widths, e.g. hidden=[400, 400].")
        widths = [in_features, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.heads = Heads(widths[-1], n_outputs, heads)
        self.in_features, self.n_outputs, self.n_heads = in_features, n_outputs, heads

    def forward(self, x: torch.Tensor, task: int | torch.Tensor | None = None) -> torch.Tensor:
        """Logits of shape ``(B, n_outputs)``."""
        if x[0].numel() != self.in_features:
            raise ValueError(f"this MLP takes inputs of {self.in_features} features; got samples of "
                             f"shape {tuple(x.shape[1:])}. Build it with in_features={x[0].numel()}.")
        return self.heads(self.body(x), task)
