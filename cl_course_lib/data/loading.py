"""Mini-batches of a ``TaskData``, from wherever its tensors live.

- **On the device** (the fast path: MNIST, embeddings): the data already lives where the
  model is, so a batch is one indexing operation, ``data.batch(index)``, with the shuffled
  ``index`` drawn on that device. No copy, no worker, no Python per sample.
- **On the host** (data too large for the device): a ``torch.utils.data.DataLoader``
  serves whole batches (a ``BatchSampler`` hands ``__getitem__`` a list of indices, so
  there is still one indexing operation per batch, never one per sample), in ``workers``
  background processes, into pinned memory when the target is a GPU, and each batch is
  copied to the device without blocking.

Both paths draw their shuffling from torch's global generator, so ``seed_everything``
fixes them and a resumed run (``train.run(checkpoint_dir=...)``) continues them.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from . import inputs
from .benchmarks import TaskData

Batch = tuple[inputs.Inputs, torch.Tensor, "int | torch.Tensor"]


def batches(data: TaskData, batch_size: int, *, device: torch.device | str, shuffle: bool,
            workers: int = 0) -> Iterator[Batch]:
    """``(x, y, task)`` mini-batches of ``data`` on ``device`` covering every sample once
    (in random order with ``shuffle``); the last one may be smaller."""
    device = torch.device(device)
    if _same_device(inputs.device(data.x), device):
        index = torch.randperm(len(data), device=data.y.device) if shuffle else torch.arange(len(data), device=data.y.device)
        for part in index.split(batch_size):
            yield data.batch(part)
        return
    sampler = (RandomSampler if shuffle else SequentialSampler)(range(len(data)))
    loader = DataLoader(_WholeBatches(data), sampler=BatchSampler(sampler, batch_size, drop_last=False),
                        batch_size=None, collate_fn=_as_is, num_workers=workers, pin_memory=device.type == "cuda")
    for x, y, task in loader:
        yield (inputs.to(x, device, non_blocking=True), y.to(device, non_blocking=True),
               task if isinstance(task, int) else task.to(device, non_blocking=True))


def n_batches(data: TaskData | None, batch_size: int) -> int:
    """How many batches one pass over ``data`` takes."""
    return 0 if data is None else math.ceil(len(data) / batch_size)


def _as_is(batch: Batch) -> Batch:
    """The batch ``__getitem__`` made (the default would turn tuples of inputs into lists)."""
    return batch


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index or 0) == (b.index or 0)


class _WholeBatches(Dataset):
    """A ``TaskData`` indexed by a list of sample indices: one batch per ``__getitem__``."""

    def __init__(self, data: TaskData):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: list[int]) -> Batch:
        return self.data.batch(torch.as_tensor(index))
