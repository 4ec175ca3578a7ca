"""Frozen backbones embed each example once: a benchmark of features.

A method that never changes the backbone (a linear probe, a head per task, class-mean
prototypes, random projection + ridge) needs each example's features only once. Embedding
the whole benchmark first, in eval mode and without gradients, turns every such method into
cheap work on ``(N, d)`` tensors; the original inputs are not needed again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from tqdm.auto import tqdm

from .config import device_of
from .data.benchmarks import Benchmark, TaskData
from .data.loading import batches
from .validation import check


@torch.no_grad()
def embed(features: Callable, module: torch.nn.Module, data: TaskData, *, batch_size: int = 256) -> TaskData:
    """``data`` with its inputs replaced by ``features(x)`` ``(N, d)``, computed in batches on
    ``module``'s device with ``module`` in eval mode (dropout off: features of a frozen
    encoder must not be random), returned on the CPU."""
    check("batch_size", batch_size, integer=True, at_least=1, example=256)
    was_training = module.training
    module.eval()
    try:
        parts = [features(x).float().cpu() for x, _, _ in batches(data, batch_size, device=device_of(module),
                                                                 shuffle=False)]
    finally:
        module.train(was_training)
    return TaskData(torch.cat(parts), data.y.cpu(), data.task if isinstance(data.task, int) else data.task.cpu())


def embed_benchmark(features: Callable, module: torch.nn.Module, benchmark: Benchmark, *, batch_size: int = 256,
                    progress: bool = True) -> Benchmark:
    """Every task's train and test set embedded once (``embed``): the same tasks, labels and
    scenario, with ``(N, d)`` feature tensors as inputs."""
    tasks = []
    for task in tqdm(benchmark.tasks, desc="embedding", unit="task", disable=not progress):
        tasks.append(replace(task, train=embed(features, module, task.train, batch_size=batch_size),
                             test=embed(features, module, task.test, batch_size=batch_size)))
    d = tasks[0].train.x.shape[1]
    return replace(benchmark, name=f"{benchmark.name}_features", tasks=tuple(tasks), input_shape=(d,))
