"""BatchNorm in continual learning: running statistics that drift, and how to freeze them.

A BatchNorm layer (Ioffe & Szegedy 2015) normalises with the batch's mean and variance while
training, ``y = γ (x − μ_B) / √(σ²_B + ε) + β``, and keeps exponential running averages
``μ ← (1 − m) μ + m μ_B`` (and the same for ``σ²``, momentum ``m`` = 0.1) that it uses in
eval mode. Every forward pass in train mode moves those averages towards the *current*
task's data, even when no weight is trained (``requires_grad=False`` does not stop it).
Old tasks are then evaluated with statistics of the new one: forgetting without a single
gradient step (Pham et al. 2022, "Continual Normalization"; Lyu et al. 2023).

``freeze_batchnorm`` swaps every ``BatchNorm2d`` for torchvision's ``FrozenBatchNorm2d``
with the same statistics and affine parameters (as torchvision's detection models do when
they fine-tune an ImageNet backbone): the layer computes what the BatchNorm computed in eval
mode, in train mode too, and nothing in it changes any more.
"""

from __future__ import annotations

import torch
from torch import nn


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` inside ``module`` (in place; also returned) by a
    ``torchvision.ops.FrozenBatchNorm2d`` holding its running mean and variance, ``γ``,
    ``β`` and ``ε`` as buffers: ``y = γ (x − μ) / √(σ² + ε) + β`` with fixed ``μ``, ``σ²``,
    in train and eval mode alike. ``γ`` and ``β`` stop training too."""
    from torchvision.ops import FrozenBatchNorm2d

    if isinstance(module, nn.BatchNorm2d):
        return _frozen_copy(module, FrozenBatchNorm2d)
    for name, child in module.named_children():
        setattr(module, name, freeze_batchnorm(child))
    return module


def _frozen_copy(bn: nn.BatchNorm2d, frozen_class) -> nn.Module:
    if bn.running_mean is None:
        raise ValueError("this BatchNorm2d keeps no running statistics (track_running_stats=False): there is "
                         "nothing to freeze; it always normalises with the batch's own statistics.")
    frozen = frozen_class(bn.num_features, eps=bn.eps).to(device=bn.running_mean.device, dtype=bn.running_mean.dtype)
    with torch.no_grad():
        frozen.running_mean.copy_(bn.running_mean)
        frozen.running_var.copy_(bn.running_var)
        frozen.weight.copy_(bn.weight if bn.affine else torch.ones_like(bn.running_mean))
        frozen.bias.copy_(bn.bias if bn.affine else torch.zeros_like(bn.running_mean))
    return frozen


def running_statistics(module: nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Copies of every BatchNorm layer's ``(running_mean, running_var)``, by layer name
    (frozen ones included)."""
    from torchvision.ops import FrozenBatchNorm2d

    return {name: (m.running_mean.detach().clone(), m.running_var.detach().clone())
            for name, m in module.named_modules()
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm2d)) and m.running_mean is not None}


def statistics_drift(before: dict, after: dict) -> float:
    """How far the running means moved: ``‖μ_after − μ_before‖ / ‖μ_before‖`` over all
    BatchNorm layers together (0: unchanged)."""
    if before.keys() != after.keys() or not before:
        raise ValueError("compare running_statistics() of the same model (the same BatchNorm layers), taken "
                         "before and after; got different or no layers.")
    moved = sum(float((after[k][0] - before[k][0]).square().sum()) for k in before)
    size = sum(float(before[k][0].square().sum()) for k in before)
    return (moved / max(size, 1e-12)) ** 0.5
