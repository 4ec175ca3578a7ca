"""Gradients as one flat vector, for the methods that project them (GEM, A-GEM), and
averaged across processes for data-parallel training.

One loop over the parameters, in ``model.parameters()`` order; a parameter with no
gradient (e.g. the head of a task not in the batch) counts as zeros.
"""

from __future__ import annotations

from typing import Iterable, Sequence

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


def average_across_processes(params: Iterable[torch.Tensor]) -> None:
    """Under ``torchrun`` (an initialised ``torch.distributed`` group of several processes),
    replace every ``p.grad`` by its mean over the processes, as data-parallel training does
    (each process trains on its own shard of every batch); nothing in one process. The
    strategies' one step calls it after the backward pass and before any hook reads the
    gradients, so GEM's projection and the clipping see the averaged gradient."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    world = torch.distributed.get_world_size()
    if world == 1:
        return
    for p in params:
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
            p.grad.div_(world)
