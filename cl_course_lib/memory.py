"""Memory buffers for rehearsal: a fixed number of past samples, kept as tensors.

- :class:`ReservoirBuffer`: a uniform sample of everything seen (Vitter's algorithm R).
- :class:`ClassBalancedBuffer`: an equal share per class seen so far, uniform within a class.
- :class:`EpisodicMemory`: an equal share per *task*, a random subset of each finished task
  (the episodic memory of GEM and A-GEM, as in Hsu et al. 2018's code).

Storage is allocated on the first ``add``, on the device and with the dtype of the data
added, for inputs of any nesting (``data.inputs``: a tensor, or a tokenizer's dict); ``sample`` draws without replacement. Every random draw takes an optional
``torch.Generator`` (CPU), else the global generator (seeded by ``seed_everything``).
"""

from __future__ import annotations

import torch

from .data import inputs
from .data.benchmarks import TaskData
from .validation import check


def reservoir_slots(seen: int, size: int, draws: torch.Tensor) -> torch.Tensor:
    """Where algorithm R (Vitter 1985) puts each of ``len(draws)`` new samples: slot ``s``
    for the stream's sample number ``s = seen + i`` while the buffer is filling, then slot
    ``draws[i]`` if it is ``< size``, else −1 (dropped). ``draws[i]`` must be uniform on
    ``{0, …, seen + i}``, so every sample of a stream of N stays with probability size/N.
    Several samples may get the same slot: the later one wins (see ``_last_writer``)."""
    position = seen + torch.arange(len(draws), device=draws.device)
    slots = torch.where(draws < size, draws, torch.full_like(draws, -1))
    return torch.where(position < size, position, slots)


def reservoir_draws(seen: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` integers, the i-th uniform on ``{0, …, seen + i}`` (float64: exact for streams < 2⁵²)."""
    upper = seen + 1 + torch.arange(n, dtype=torch.float64)
    return (torch.rand(n, generator=generator, dtype=torch.float64) * upper).long()


def _last_writer(slots: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(slot, i)`` pairs with, for every slot drawn, the *last* sample i that drew it: the
    result of writing the samples one by one. (``index_put_`` with duplicate indices leaves
    the winner undefined, so we pick it explicitly with a deterministic scatter-max.)"""
    valid = slots >= 0
    order = torch.arange(len(slots), device=slots.device)
    last = torch.full((size,), -1, dtype=torch.long, device=slots.device)
    last.scatter_reduce_(0, slots[valid], order[valid], reduce="amax")
    written = (last >= 0).nonzero().squeeze(1)
    return written, last[written]


class _Buffer:
    """Storage shared by the buffers: ``size`` slots of (x, y, task id), ``filled`` marks the used ones."""

    def __init__(self, size: int, *, generator: torch.Generator | None = None):
        self.size = check("size", size, integer=True, at_least=1, example=1000)
        self.generator = generator
        self.seen = 0  # samples offered to add() so far
        self.x = self.y = self.task = self.filled = None

    def _allocate(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.x is None:  # lazily, on the data's device and dtype
            self.x = inputs.empty_like(x, self.size)
            self.y = y.new_zeros(self.size)
            self.task = torch.zeros(self.size, dtype=torch.long, device=y.device)
            self.filled = torch.zeros(self.size, dtype=torch.bool, device=y.device)

    def _write(self, slots: torch.Tensor, x, y, task_ids) -> None:
        """Write sample i to slot ``slots[i]`` (−1: skip), one by one in order."""
        written, source = _last_writer(slots, self.size)
        inputs.assign(self.x, written, x, source)
        self.y[written], self.task[written] = y[source], task_ids[source]
        self.filled[written] = True

    def __len__(self) -> int:
        return 0 if self.filled is None else int(self.filled.sum())

    @property
    def data(self) -> TaskData:
        """Everything stored, with per-sample task ids."""
        if not len(self):
            raise ValueError("the buffer is empty: add() samples before reading its data.")
        index = self.filled.nonzero().squeeze(1)
        return TaskData(inputs.select(self.x, index), self.y[index], self.task[index])

    def sample(self, n: int, generator: torch.Generator | None = None):
        """``min(n, len(self))`` stored samples, uniformly without replacement: ``(x, y, task_ids)``."""
        check("n", n, integer=True, at_least=1, example=128)
        if not len(self):
            raise ValueError("cannot sample from an empty buffer: add() samples first.")
        stored = self.filled.nonzero().squeeze(1)
        pick = torch.randperm(len(stored), generator=generator or self.generator)[:n].to(stored.device)
        index = stored[pick]
        return inputs.select(self.x, index), self.y[index], self.task[index]

    def state_dict(self) -> dict:
        """The stored samples, the counters and the generator's state (for checkpoints)."""
        return {"seen": self.seen, "x": self.x, "y": self.y, "task": self.task, "filled": self.filled,
                "generator": None if self.generator is None else self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``'s state."""
        copied = {k: None if state[k] is None else inputs.apply(torch.clone, state[k]) for k in ("x", "y", "task", "filled")}
        self.seen, self.x, self.y, self.task, self.filled = state["seen"], *copied.values()
        if state["generator"] is not None:
            self.generator = self.generator or torch.Generator()
            self.generator.set_state(state["generator"].cpu())

    def per_class_counts(self) -> dict[int, int]:
        """How many stored samples each label has."""
        if not len(self):
            return {}
        labels, counts = self.y[self.filled].unique(return_counts=True)
        return dict(zip(labels.tolist(), counts.tolist()))


def _task_ids(task: int | torch.Tensor, n: int, device) -> torch.Tensor:
    return torch.full((n,), task, dtype=torch.long, device=device) if isinstance(task, int) else task.long()


class ReservoirBuffer(_Buffer):
    """A uniform random sample of ``size`` items from the whole stream (algorithm R): the
    s-th sample (0-based) fills slot s while s < size, else replaces a uniformly random slot
    with probability size/(s + 1). Vectorised over a batch, with the same result as adding
    its samples one by one (``reservoir_slots`` + ``_last_writer``)."""

    def add(self, x: torch.Tensor, y: torch.Tensor, task: int | torch.Tensor,
            draws: torch.Tensor | None = None) -> None:
        """Offer a batch; ``draws`` (for tests and teaching) replaces the random integers of ``reservoir_draws``."""
        self._allocate(x, y)
        draws = reservoir_draws(self.seen, len(y), self.generator) if draws is None else draws
        self._write(reservoir_slots(self.seen, self.size, draws.to(y.device)), x, y,
                    _task_ids(task, len(y), y.device))
        self.seen += len(y)


class ClassBalancedBuffer(_Buffer):
    """An equal share of the slots per class seen so far: class number r (in order of
    arrival) of k gets ``size // k`` slots, plus one if ``r < size % k``. When a batch brings
    new classes, the classes over their new share lose random samples (a random subset of a
    uniform sample is uniform); within a class, algorithm R over that class's own stream.
    New classes of a batch are registered before its samples are stored."""

    def __init__(self, size: int, *, generator: torch.Generator | None = None):
        super().__init__(size, generator=generator)
        self.classes: list[int] = []  # in order of arrival
        self.class_seen: dict[int, int] = {}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "classes": list(self.classes), "class_seen": dict(self.class_seen)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.classes, self.class_seen = list(state["classes"]), dict(state["class_seen"])

    def quota(self, label: int) -> int:
        k, r = len(self.classes), self.classes.index(label)
        return self.size // k + (r < self.size % k)

    def add(self, x: torch.Tensor, y: torch.Tensor, task: int | torch.Tensor) -> None:
        self._allocate(x, y)
        task_ids = _task_ids(task, len(y), y.device)
        labels = list(dict.fromkeys(y.tolist()))  # distinct, in order of first appearance
        new = [c for c in labels if c not in self.class_seen]
        if new:
            self.classes += new
            self.class_seen.update(dict.fromkeys(new, 0))
            self._evict_to_quotas()
        for c in labels:
            rows = (y == c).nonzero().squeeze(1)
            mine = (self.filled & (self.y == c)).nonzero().squeeze(1)
            free = (~self.filled).nonzero().squeeze(1)
            # the class's local slots: its stored samples, then free slots for it to grow into
            local_to_slot = torch.cat([mine, free[: self.quota(c) - len(mine)]])
            draws = reservoir_draws(self.class_seen[c], len(rows), self.generator).to(y.device)
            local = reservoir_slots(self.class_seen[c], self.quota(c), draws)
            slots = torch.where(local >= 0, local_to_slot[local.clamp_min(0)], local)
            self._write(slots, inputs.select(x, rows), y[rows], task_ids[rows])
            self.class_seen[c] += len(rows)
        self.seen += len(y)

    def _evict_to_quotas(self) -> None:
        for c in self.classes:
            mine = (self.filled & (self.y == c)).nonzero().squeeze(1)
            extra = len(mine) - self.quota(c)
            if extra > 0:
                drop = torch.randperm(len(mine), generator=self.generator)[:extra].to(mine.device)
                self.filled[mine[drop]] = False


class EpisodicMemory(_Buffer):
    """Per-task memories for GEM and A-GEM: after each task, ``size // n_tasks`` slots per
    task seen so far; the old tasks keep the first samples of their random subset, the new
    task brings a random subset of its training set (Hsu et al. 2018's code; Lopez-Paz &
    Ranzato 2017 keep the last samples of each task instead, the same for shuffled data)."""

    def __init__(self, size: int, *, generator: torch.Generator | None = None):
        super().__init__(size, generator=generator)
        self.tasks: list[TaskData] = []  # one per finished task (views into the storage), LongTensor task ids

    def add_task(self, data: TaskData) -> None:
        per_task = self.size // (len(self.tasks) + 1)
        if per_task < 1:
            raise ValueError(f"a memory of size={self.size} cannot hold one sample for each of "
                             f"{len(self.tasks) + 1} tasks; use a size of at least the number of tasks.")
        pick = torch.randperm(len(data), generator=self.generator)[:per_task].to(data.y.device)
        x, y, _ = data.batch(pick)
        new = TaskData(x, y, _task_ids(data.task, len(data), data.y.device)[pick])
        kept = [t.subset(slice(0, per_task)) for t in self.tasks] + [new]
        merged = TaskData.concat(kept)  # the one copy of the memory; each task's part is a view of it
        self.x, self.y, self.task = merged.x, merged.y, merged.task
        self.filled = torch.ones(len(merged), dtype=torch.bool, device=merged.y.device)
        self._split(merged, [len(t) for t in kept])
        self.seen += len(data)

    def _split(self, merged: TaskData, lengths: list[int]) -> None:
        starts = [0, *torch.tensor(lengths, dtype=torch.long).cumsum(0).tolist()]
        self.tasks = [merged.subset(slice(a, b)) for a, b in zip(starts[:-1], starts[1:])]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "task_lengths": [len(t) for t in self.tasks]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if state["task_lengths"]:
            self._split(TaskData(self.x, self.y, self.task), state["task_lengths"])
        else:
            self.tasks = []
