"""Parameter importance from per-sample gradients (torch.func): the diagonal Fisher of EWC
and the output sensitivity of MAS.

Per-sample gradients are what make these right: the diagonal Fisher is the mean of the
*squared per-sample* gradients, which the square of a batch-mean gradient is not (that
one shrinks like 1/batch size). ``torch.func`` computes all of a batch's per-sample
gradients in one vectorised pass: ``vmap(grad(f))`` over ``functional_call(model, ...)``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from .data.benchmarks import TaskData

FISHER_KINDS = ("true", "empirical")
Importance = dict[str, torch.Tensor]  # parameter name -> tensor of the parameter's shape


def trainable_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters an importance is computed for (those that require grad), detached."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def _per_sample_reduce(model: nn.Module, data: TaskData, sample_fn: Callable, transform: Callable,
                       batch_size: int, max_samples: int | None) -> Importance:
    """Mean over samples of ``transform(∂ sample_fn / ∂θ)``, per parameter.

    ``sample_fn(logits, y)`` maps one sample's logits (n_outputs,) and label to a scalar.
    The model runs in eval mode (no dropout noise, BatchNorm with running statistics).
    """
    if not isinstance(data.task, int):
        raise ValueError("importance is computed one task at a time: pass a task's TaskData "
                         "(its .task is an int), not a merged set.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    was_training = model.training
    model.eval()
    params, buffers = trainable_parameters(model), dict(model.named_buffers())

    def one_sample(p, x, y):
        logits = functional_call(model, (p, buffers), (x.unsqueeze(0), data.task))[0]
        return sample_fn(logits, y)

    per_sample_grads = vmap(grad(one_sample), in_dims=(None, 0, 0))
    n = len(data) if max_samples is None else min(max_samples, len(data))
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    for start in range(0, n, batch_size):
        x, y = data.x[start:start + batch_size], data.y[start:start + batch_size]
        x, y = x[: n - start], y[: n - start]
        for name, g in per_sample_grads(params, x, y).items():  # g: (batch, *param.shape), a temporary
            if g.stride(0) == 0:  # one gradient broadcast to every sample (zeros for an unused head)
                total[name] += transform(g[0].clone()) * len(g)
            else:
                total[name] += transform(g).sum(dim=0)  # transform in place: no second copy of g
    model.train(was_training)
    return {name: t / n for name, t in total.items()}


def fisher_diagonal(model: nn.Module, data: TaskData, *, kind: str = "true", batch_size: int = 256,
                    max_samples: int | None = None, generator: torch.Generator | None = None) -> Importance:
    """Diagonal of the Fisher information at the current parameters θ, one value per weight:

        F_i = 1/N Σ_n (∂ log p_θ(ŷ_n | x_n) / ∂θ_i)²

    - ``kind="true"``: ŷ_n is *sampled from the model*, ŷ_n ~ p_θ(· | x_n) (a one-sample
      Monte-Carlo estimate of the expectation over the model's own predictive
      distribution, which is the Fisher of Kirkpatrick et al. 2017, and what makes it
      equal to the Hessian of the negative log-likelihood at a minimum; Martens 2020).
    - ``kind="empirical"``: ŷ_n = y_n, the data label ("empirical Fisher"; Kunstner et al.
      2019 show how it can differ from the Fisher).

    Uses the first ``max_samples`` samples of ``data`` (all when None), in batches of
    ``batch_size`` per-sample gradients. ``generator`` seeds the sampled labels.
    """
    if kind not in FISHER_KINDS:
        raise ValueError(f"kind={kind!r} is not one of {FISHER_KINDS}: 'true' samples labels from the "
                         "model, 'empirical' uses the data labels.")
    if kind == "true":
        with torch.no_grad():
            model_was_training = model.training
            n = len(data) if max_samples is None else min(max_samples, len(data))
            logits = model.eval()(data.x[:n], data.task)
            model.train(model_was_training)
            sampled = torch.multinomial(F.softmax(logits, dim=1), 1, generator=generator)[:, 0]
        data = TaskData(data.x[:n], sampled, data.task)

    def log_likelihood(logits, y):  # log p_θ(y | x) of one sample (indexing by y breaks vmap)
        return -F.cross_entropy(logits.unsqueeze(0), y.unsqueeze(0))

    return _per_sample_reduce(model, data, log_likelihood, torch.square_, batch_size, max_samples)


def output_sensitivity(model: nn.Module, data: TaskData, *, batch_size: int = 256,
                       max_samples: int | None = None) -> Importance:
    """MAS importance (Aljundi et al. 2018, "Memory Aware Synapses"): Ω_i = 1/N Σ_n |∂ ‖f(x_n)‖²₂ / ∂θ_i|,
    how much the squared norm of the output moves when θ_i moves. Needs no labels."""

    def squared_output_norm(logits, _y):
        return logits.square().sum()

    return _per_sample_reduce(model, data, squared_output_norm, torch.abs_, batch_size, max_samples)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A *copy* of the trainable parameters. Copies, not views: ``p.detach()`` alone shares
    memory with the live parameter and would follow it as training goes on."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def weighted_squared_distance(model: nn.Module, importance: Importance | None,
                              anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ_i Ω_i (θ_i − θ*_i)², the quadratic penalty shared by L2 (Ω = 1), EWC (Ω = Fisher),
    SI and MAS; differentiable in the model's parameters θ."""
    total = 0.0
    for name, p in model.named_parameters():
        if name in anchor:
            d = (p - anchor[name]).flatten()
            total = total + torch.dot(d, d if importance is None else importance[name].flatten() * d)
    return total
