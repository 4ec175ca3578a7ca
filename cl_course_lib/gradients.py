"""Gradients as one flat vector, for the methods that project them (GEM, A-GEM).

One loop over the parameters, in ``model.parameters()`` order; a parameter with no
gradient (e.g. the head of a task not in the batch) counts as zeros.
"""

from __future__ import annotations

from typing import Sequence

import torch


def loss_gradient(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """∂loss/∂θ as a flat vector, leaving every ``p.grad`` untouched."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


def grad_vector(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The ``p.grad`` of every parameter, flattened and concatenated."""
    return torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1) for p in params])


def set_grad(params: Sequence[torch.Tensor], vector: torch.Tensor) -> None:
    """Write the flat ``vector`` back into ``p.grad`` (the inverse of ``grad_vector``)."""
    for p, chunk in zip(params, vector.split([p.numel() for p in params])):
        p.grad = chunk.view_as(p).clone()
