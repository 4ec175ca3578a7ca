"""Parameter importance from per-sample gradients: the diagonal Fisher of EWC and the
output sensitivity of MAS.

Per-sample gradients are what make these right: the diagonal Fisher is the mean of the
*squared per-sample* gradients, which the square of a batch-mean gradient is not (that
one shrinks like 1/batch size). Two exact ways to get them without a Python loop:

- ``torch.func``, for any model: ``vmap(grad(f))`` over ``functional_call(model, ...)``
  gives every per-sample gradient of a batch in one vectorised pass. It materialises them
  all (batch × number of parameters floats), which costs memory traffic.
- A closed form for ``nn.Linear`` layers, used when every trainable parameter belongs to
  one: the per-sample gradient of a weight is an outer product, g_n = δ_n a_nᵀ (a_n the
  layer's input, δ_n = ∂f_n/∂(its output)), so Σ_n g_n^p = (δ^p)ᵀ (a^p) elementwise,
  one matrix product per layer (p = 2: squares; p = 1 with absolute values). The δ_n of
  every sample come from one ordinary backward pass of Σ_n f_n, because in eval mode the
  samples do not interact. The same idea is behind BackPACK (Dangel et al. 2020).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from .config import device_of
from .data import inputs
from .data.benchmarks import TaskData
from .data.loading import batches
from .validation import check

FISHER_KINDS = ("true", "empirical")
METHODS = ("auto", "linear", "vmap", "loop")
Importance = dict[str, torch.Tensor]  # parameter name -> tensor of the parameter's shape
PerSampleFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits (B, C), y (B,)) -> (B,)


def trainable_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters an importance is computed for (those that require grad), detached."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def per_sample_gradient_moment(model: nn.Module, data: TaskData, f: PerSampleFunction, power: int, *,
                               batch_size: int = 256, max_samples: int | None = None,
                               method: str = "auto") -> Importance:
    """``1/N Σ_n |∂f_n/∂θ|^power`` per parameter, with ``f_n = f(logits_n, y_n)`` one sample's scalar.

    ``method``: ``"linear"`` (the closed form for ``nn.Linear`` layers), ``"vmap"``
    (``torch.func``, any model whose forward does not branch on the data), ``"loop"`` (one
    backward pass per sample: for models ``vmap`` cannot batch, such as Hugging Face
    Transformers, whose attention-mask code asks ``mask.all()``) or ``"auto"`` (the closed
    form when the model allows it, else ``vmap``, else the loop when ``vmap`` refuses).
    The model runs in eval mode (no dropout noise, BatchNorm with running statistics), on
    batches of ``data`` moved to its device (``data.loading.batches``): inputs of any nesting.
    """
    if not isinstance(data.task, int):
        raise ValueError("importance is computed one task at a time: pass a task's TaskData "
                         "(its .task is an int), not a merged set.")
    check("batch_size", batch_size, integer=True, at_least=1, example=256)
    check("power", power, one_of=(1, 2), fix="Use 1 (absolute values) or 2 (squares).")
    check("method", method, one_of=METHODS)
    owners = _linear_owners(model)
    if method == "linear" and owners is None:
        raise ValueError("method='linear' needs every trainable parameter to be the weight or bias of an "
                         "nn.Linear layer; use method='vmap' (or 'auto') for this model.")
    was_training = model.training
    model.eval()
    n = len(data) if max_samples is None else min(max_samples, len(data))
    total = {name: torch.zeros_like(p) for name, p in trainable_parameters(model).items()}
    batch_moment = {"vmap": _vmap_moment, "loop": _loop_moment}.get(method, _linear_moment)
    if method == "auto" and owners is None:
        batch_moment = _vmap_or_loop_moment
    try:
        for x, y, task in batches(data.subset(slice(0, n)), batch_size, device=device_of(model), shuffle=False):
            for name, value in batch_moment(model, x, y, task, f, power, owners).items():
                total[name] += value
    finally:
        model.train(was_training)
    return {name: t / n for name, t in total.items()}


def _linear_owners(model: nn.Module) -> dict[nn.Linear, tuple[str, str | None]] | None:
    """``{layer: (weight name, bias name)}`` when every trainable parameter belongs to an
    ``nn.Linear`` layer (and none is shared between layers); otherwise None."""
    owners, claimed = {}, []
    for prefix, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.weight.requires_grad:
            bias = module.bias is not None and module.bias.requires_grad
            owners[module] = (f"{prefix}.weight".lstrip("."), f"{prefix}.bias".lstrip(".") if bias else None)
            claimed += [module.weight] + ([module.bias] if bias else [])
    trainable = [p for p in model.parameters() if p.requires_grad]
    claimed_ids = {id(p) for p in claimed}
    if len(claimed_ids) != len(claimed) or any(id(p) not in claimed_ids for p in trainable):
        return None
    return owners


def _linear_moment(model, x, y, task, f, power, owners) -> Importance:
    """The closed form: Σ_n |δ_n|^p (|a_n|^p)ᵀ per Linear weight, Σ_n |δ_n|^p per bias."""
    calls = []  # (layer, input a (B, in), output z (B, out)) for each Linear call in the forward

    def record(layer, inputs, output):
        calls.append((layer, inputs[0], output))
    handles = [layer.register_forward_hook(record) for layer in owners]
    try:
        values = f(model(x, task), y)
    finally:
        for handle in handles:
            handle.remove()
    layers = [layer for layer, _, _ in calls]
    if len(set(layers)) != len(layers) or any(a.dim() != 2 for _, a, _ in calls):
        # a layer used twice, or on sequences: per-sample gradients are then sums of outer products
        return _vmap_moment(model, x, y, task, f, power, owners)
    deltas = torch.autograd.grad(values.sum(), [z for _, _, z in calls])
    moment = (lambda t: t.square()) if power == 2 else (lambda t: t.abs())
    out = {}
    for (layer, a, _), delta in zip(calls, deltas):
        weight_name, bias_name = owners[layer]
        d = moment(delta)  # (B, out)
        out[weight_name] = d.T @ moment(a.detach())  # (out, in)
        if bias_name is not None:
            out[bias_name] = d.sum(dim=0)
    return out


def _vmap_moment(model, x, y, task, f, power, _owners) -> Importance:
    """``torch.func``: every per-sample gradient of the batch at once, then |g|^p summed."""
    params, buffers = trainable_parameters(model), dict(model.named_buffers())

    def one_sample(p, x1, y1):
        return f(functional_call(model, (p, buffers), (inputs.apply(lambda t: t.unsqueeze(0), x1), task)),
                 y1.unsqueeze(0))[0]

    transform = torch.square_ if power == 2 else torch.abs_
    out = {}
    for name, g in vmap(grad(one_sample), in_dims=(None, 0, 0))(params, x, y).items():  # g: (B, *shape)
        if g.stride(0) == 0:  # one gradient broadcast to every sample (zeros for an unused head)
            out[name] = transform(g[0].clone()) * len(g)
        else:
            out[name] = transform(g).sum(dim=0)  # in place: no second copy of g
    return out


def _loop_moment(model, x, y, task, f, power, _owners) -> Importance:
    """One backward pass per sample: exact for any model, and slow (B passes)."""
    params = [p for p in model.parameters() if p.requires_grad]
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    out = {name: torch.zeros_like(p) for name, p in zip(names, params)}
    for i in range(len(y)):
        one = inputs.select(x, slice(i, i + 1))
        value = f(model(one, task if isinstance(task, int) else task[i:i + 1]), y[i:i + 1])[0]
        for name, g in zip(names, torch.autograd.grad(value, params, allow_unused=True)):
            if g is not None:
                out[name] += g.square() if power == 2 else g.abs()
    return out


def _vmap_or_loop_moment(model, x, y, task, f, power, owners) -> Importance:
    """``vmap`` where it can batch the model, else the per-sample loop."""
    try:
        return _vmap_moment(model, x, y, task, f, power, owners)
    except RuntimeError as err:
        if "vmap" not in str(err):  # a real error, not vmap refusing data-dependent control flow
            raise
        return _loop_moment(model, x, y, task, f, power, owners)


def fisher_diagonal(model: nn.Module, data: TaskData, *, kind: str = "true", batch_size: int = 256,
                    max_samples: int | None = None, generator: torch.Generator | None = None,
                    method: str = "auto") -> Importance:
    """Diagonal of the Fisher information at the current parameters θ, one value per weight:

        F_i = 1/N Σ_n (∂ log p_θ(ŷ_n | x_n) / ∂θ_i)²

    - ``kind="true"``: ŷ_n is *sampled from the model*, ŷ_n ~ p_θ(· | x_n) (a one-sample
      Monte-Carlo estimate of the expectation over the model's own predictive
      distribution, which is the Fisher of Kirkpatrick et al. 2017, and what makes it
      equal to the Hessian of the negative log-likelihood at a minimum; Martens 2020).
    - ``kind="empirical"``: ŷ_n = y_n, the data label ("empirical Fisher"; Kunstner et al.
      2019 show how it can differ from the Fisher).

    Uses the first ``max_samples`` samples of ``data`` (all when None), in batches of
    ``batch_size`` samples. ``generator`` seeds the sampled labels. ``method``: how the
    per-sample gradients are reduced (see ``per_sample_gradient_moment``); every method
    gives the same numbers.
    """
    check("kind", kind, one_of=FISHER_KINDS, fix="Use 'true' (labels sampled from the model) or 'empirical' "
          "(the data labels).")
    if kind == "true":
        n = len(data) if max_samples is None else min(max_samples, len(data))
        data = data.subset(slice(0, n))
        with torch.no_grad():
            model_was_training = model.training
            logits = torch.cat([model.eval()(x, task) for x, _, task in
                                batches(data, batch_size, device=device_of(model), shuffle=False)])
            model.train(model_was_training)
            sampled = torch.multinomial(F.softmax(logits, dim=1), 1, generator=generator)[:, 0]
        data = TaskData(data.x, sampled.to(data.y.device), data.task)
    return per_sample_gradient_moment(model, data, log_likelihood, 2, batch_size=batch_size,
                                      max_samples=max_samples, method=method)


def log_likelihood(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p_θ(y_n | x_n) of each sample, (B,)."""
    return -F.cross_entropy(logits, y, reduction="none")


def squared_output_norm(logits: torch.Tensor, _y: torch.Tensor) -> torch.Tensor:
    """‖f(x_n)‖²₂ of each sample, (B,)."""
    return logits.square().sum(dim=1)


def output_sensitivity(model: nn.Module, data: TaskData, *, batch_size: int = 256,
                       max_samples: int | None = None, method: str = "auto") -> Importance:
    """MAS importance (Aljundi et al. 2018, "Memory Aware Synapses", eq. 4):
    Ω_i = 1/N Σ_n |∂ ‖f(x_n)‖²₂ / ∂θ_i|, how much the squared norm of the output moves
    when θ_i moves. Needs no labels. ``method``: see ``per_sample_gradient_moment``."""
    return per_sample_gradient_moment(model, data, squared_output_norm, 1, batch_size=batch_size,
                                      max_samples=max_samples, method=method)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A *copy* of the trainable parameters. Copies, not views: ``p.detach()`` alone shares
    memory with the live parameter and would follow it as training goes on."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def weighted_squared_distance(model: nn.Module, importance: Importance | None,
                              anchor: dict[str, torch.Tensor], *, scale: float = 1.0) -> torch.Tensor:
    """s Σ_i Ω_i (θ_i − θ*_i)², the quadratic penalty shared by L2 (Ω = 1), EWC (Ω = Fisher),
    SI and MAS, with s = ``scale`` their strength; differentiable in the model's parameters
    θ (gradient 2 s Ω (θ − θ*)). Pass the strength as ``scale`` rather than multiplying
    the result: the gradient is then ready at the forward pass, and the backward pass
    of a loss ``ce + penalty`` makes no extra pass over the weights."""
    names = [name for name, p in model.named_parameters() if name in anchor]
    params = dict(model.named_parameters())
    weights = [None if importance is None else importance[name] for name in names]
    return _WeightedSquaredDistance.apply([anchor[n] for n in names], weights, scale, *(params[n] for n in names))


class _WeightedSquaredDistance(torch.autograd.Function):
    """The penalty with its gradient written out: it runs at every training step, and this
    makes 3 passes over the weights (θ − θ*, 2 s Ω (θ − θ*), their dot product) where
    autograd's generic graph makes about 9.

    A weight still at its anchor (θ = θ*, e.g. the head of a task not trained since) gets no
    gradient (None) rather than a tensor of zeros: an optimiser then leaves it alone, as it
    does in plain training. A zero gradient would not: Adam would keep moving it with the
    momentum of its last task, and would start a future head with warmed-up statistics."""

    @staticmethod
    def forward(ctx, anchors, weights, scale, *params):
        total, gradients = params[0].new_zeros(()), []
        zero = params[0].new_zeros(())
        for p, a, w in zip(params, anchors, weights):
            if torch.equal(p, a):  # stops at the first difference: cheaper than (θ − θ*).any()
                gradients.append(None)
                continue
            d = p.detach() - a
            # 2 s Ω (θ − θ*) in one pass (addcmul onto a broadcast 0 scales as it multiplies)
            g = d * (2 * scale) if w is None else torch.addcmul(zero, d, w, value=2 * scale)
            total += torch.dot(d.flatten(), g.flatten())
            gradients.append(g)
        ctx.gradients = gradients
        return total / 2

    @staticmethod
    def backward(ctx, grad_output):
        if grad_output.item() != 1:  # the penalty was scaled after all: one more pass
            return (None, None, None, *(None if g is None else g * grad_output for g in ctx.gradients))
        return (None, None, None, *ctx.gradients)
