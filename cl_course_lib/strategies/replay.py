"""Experience replay (Chaudhry et al. 2019, "On Tiny Episodic Memories"; Rolnick et al. 2019)."""

from __future__ import annotations

import torch
from torch import nn

from ..data import inputs
from ..memory import ClassBalancedBuffer, ReservoirBuffer
from ..validation import check
from .base import Strategy

BUFFERS = {"reservoir": ReservoirBuffer, "class_balanced": ClassBalancedBuffer}


class Replay(Strategy):
    """Experience replay (ER): every step minimises one cross-entropy over the concatenation
    of the current mini-batch B_t and a mini-batch B_M drawn uniformly from the memory M,

        min_θ  (1 / |B_t ∪ B_M|) Σ_{(x, y) ∈ B_t ∪ B_M} ℓ(f_θ(x), y)

    (Chaudhry et al. 2019, Algorithm 1 with the reservoir update). With |B_M| = |B_t| (the
    default) this is the mean of the current and the replayed batch's losses, an old:new
    ratio of 1:1 as in Hsu et al. 2018's naive rehearsal. The memory is filled *online*:
    every observed batch is offered to the buffer after B_M was drawn from it (so a batch is
    not replayed against itself), which needs no task boundary. Replayed samples carry their
    own task ids, so a multi-head model routes each to its head.

    Args:
        mem_size: total number of stored samples (≥ 1).
        buffer: ``"reservoir"`` (a uniform sample of the stream) or ``"class_balanced"`` (an
            equal share per label; see ``memory``).
        replay_batch_size: |B_M| (≥ 1); None: the size of the current batch.
        options: the step's settings (``Strategy``: lr, optimizer, precision, ...).
    """

    key = "replay"
    state_attributes = ("buffer",)

    def __init__(self, model: nn.Module, *, mem_size: int = 1000, buffer: str = "reservoir",
                 replay_batch_size: int | None = None, **options):
        super().__init__(model, **options)
        check("mem_size", mem_size, integer=True, at_least=1, example=1000)
        self.replay_batch_size = check("replay_batch_size", replay_batch_size, integer=True, at_least=1,
                                       optional=True, example=128)
        self.buffer = BUFFERS[check("buffer", buffer, one_of=BUFFERS)](mem_size)

    def prepare_batch(self, x, y, task):
        """B_t ∪ B_M, then B_t offered to the memory (the very first batch: B_t alone)."""
        if not len(self.buffer):
            self.buffer.add(x, y, task)
            return x, y, task
        x_mem, y_mem, task_mem = self.buffer.sample(self.replay_batch_size or len(y))
        self.buffer.add(x, y, task)
        task_now = torch.full_like(y, task, dtype=torch.long) if isinstance(task, int) else task
        return inputs.cat([x, x_mem]), torch.cat([y, y_mem]), torch.cat([task_now, task_mem])
