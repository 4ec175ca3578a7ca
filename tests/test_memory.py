"""Memory buffers: algorithm R against a plain loop, its inclusion probability, class balance."""

import numpy as np
import pytest
import torch

from cl_course_lib.memory import (ClassBalancedBuffer, EpisodicMemory, ReservoirBuffer, reservoir_draws)
from cl_course_lib.data.benchmarks import TaskData


def algorithm_r(stream, size, draws):
    """Vitter's algorithm R, one sample at a time; draws[s] is uniform on {0..s}."""
    memory = []
    for s, item in enumerate(stream):
        if s < size:
            memory.append(item)
        elif draws[s] < size:
            memory[draws[s]] = item
    return memory


@pytest.mark.parametrize("size,batches", [(5, [3, 4, 10, 1, 7]), (40, [64, 64, 64]), (3, [100])])
def test_reservoir_equals_one_by_one_algorithm_r_given_the_same_draws(size, batches):
    generator = torch.Generator().manual_seed(1)
    n = sum(batches)
    draws = reservoir_draws(0, n, generator)  # draws[s] uniform on {0..s}
    buffer = ReservoirBuffer(size)
    start = 0
    for b in batches:
        ids = torch.arange(start, start + b)
        buffer.add(ids[:, None].float(), ids, 0, draws=draws[start:start + b])
        start += b
    expected = algorithm_r(range(n), size, draws.tolist())
    assert buffer.y[: len(buffer)].tolist() == expected
    assert (buffer.x[: len(buffer), 0].long() == buffer.y[: len(buffer)]).all() and buffer.seen == n
    # a big batch with many repeated slots really happened (the later sample must win)
    assert len(set(draws[size:].tolist())) < n - size


def test_draws_are_uniform_on_their_ranges():
    draws = reservoir_draws(9, 200_000, torch.Generator().manual_seed(0))  # the first on {0..9}
    assert ((draws >= 0) & (draws <= 9 + torch.arange(200_000))).all()
    first = reservoir_draws(4, 1, torch.Generator().manual_seed(0))
    counts = np.bincount([reservoir_draws(4, 1, torch.Generator().manual_seed(s)).item() for s in range(5000)],
                         minlength=5)
    assert first.item() in range(5) and counts.min() > 900 and counts.max() < 1100  # 1000 ± 3.2σ


def test_every_sample_stays_with_probability_size_over_n():
    """N = 50 samples, size 10: each stays with probability 0.2. Over 4000 seeded repetitions
    each count is Binomial(4000, 0.2) = 800 ± 25.3; the bound 800 ± 120 (4.7σ) holds for a
    correct buffer, while "replace the oldest" keeps only the last 10 (counts 0 or 4000) and
    "replace a random slot always" keeps the first samples with probability ~0.9⁴⁰ ≈ 0.015."""
    size, n, reps = 10, 50, 4000
    generator = torch.Generator().manual_seed(0)
    counts = np.zeros(n)
    for _ in range(reps):
        buffer = ReservoirBuffer(size, generator=generator)
        for batch in torch.arange(n).split(16):
            buffer.add(batch[:, None].float(), batch, 0)
        counts[buffer.y[: len(buffer)].numpy()] += 1
    assert counts.sum() == size * reps
    assert np.abs(counts - reps * size / n).max() < 120


def test_class_balanced_buffer_is_balanced_after_every_new_class():
    buffer = ClassBalancedBuffer(10, generator=torch.Generator().manual_seed(0))
    for c, expected in [(0, {0: 10}), (1, {0: 5, 1: 5}), (2, {0: 4, 1: 3, 2: 3}), (3, {0: 3, 1: 3, 2: 2, 3: 2})]:
        for _ in range(3):
            y = torch.full((7,), c)
            buffer.add(torch.randn(7, 2), y, c)
        assert buffer.per_class_counts() == expected and len(buffer) == 10
    # a batch that mixes classes, some new: still balanced, never over size
    buffer.add(torch.randn(12, 2), torch.tensor([4, 5] * 6), 4)
    assert sorted(buffer.per_class_counts().values()) == [1, 1, 2, 2, 2, 2] and len(buffer) == 10


def test_class_balanced_buffer_keeps_classes_below_their_share_whole():
    buffer = ClassBalancedBuffer(10)
    buffer.add(torch.randn(2, 3), torch.tensor([0, 0]), 0)
    buffer.add(torch.randn(30, 3), torch.ones(30, dtype=torch.long), 1)
    assert buffer.per_class_counts() == {0: 2, 1: 5}  # class 1's share is 5 of 10


def test_class_balanced_is_uniform_within_a_class():
    size, n, reps = 4, 20, 3000  # class 0: 20 samples, share 4 → each kept with probability 0.2
    counts = np.zeros(n)
    generator = torch.Generator().manual_seed(0)
    for _ in range(reps):
        buffer = ClassBalancedBuffer(2 * size, generator=generator)
        buffer.add(torch.arange(n)[:, None].float(), torch.zeros(n, dtype=torch.long), 0)
        buffer.add(torch.zeros(9, 1), torch.ones(9, dtype=torch.long), 1)  # halves class 0's share
        kept = buffer.x[buffer.filled & (buffer.y == 0), 0].long()
        counts[kept.numpy()] += 1
    assert counts.sum() == size * reps
    assert np.abs(counts - reps * size / n).max() < 100  # 600 ± 21.9 (4.6σ)


@pytest.mark.parametrize("make", [ReservoirBuffer, ClassBalancedBuffer])
def test_size_is_never_exceeded_and_storage_follows_the_data(make):
    buffer = make(7)
    for t in range(5):
        x = torch.randn(9, 2, 2, dtype=torch.float64)
        buffer.add(x, torch.randint(0, 3, (9,)), t)
        assert len(buffer) <= 7
    assert buffer.x.dtype == torch.float64 and buffer.x.shape == (7, 2, 2)
    x, y, task = buffer.sample(100)
    assert len(x) == len(y) == len(task) == 7 and task.dtype == torch.long
    assert len(set(map(tuple, x.flatten(1).tolist()))) == 7  # without replacement
    data = buffer.data
    assert isinstance(data.task, torch.Tensor) and len(data) == 7


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_storage_is_allocated_on_the_data_device():
    buffer = ReservoirBuffer(4)
    buffer.add(torch.randn(3, 2, device="cuda"), torch.zeros(3, dtype=torch.long, device="cuda"), 0)
    assert buffer.x.device.type == "cuda" and buffer.sample(2)[0].device.type == "cuda"


def test_task_ids_are_stored_per_sample():
    buffer = ReservoirBuffer(10)
    buffer.add(torch.randn(4, 1), torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 2, 3]))
    buffer.add(torch.randn(2, 1), torch.zeros(2, dtype=torch.long), 5)
    assert sorted(buffer.data.task.tolist()) == [0, 1, 2, 3, 5, 5]


def test_episodic_memory_splits_equally_over_tasks():
    memory = EpisodicMemory(10)
    for t in range(3):
        memory.add_task(TaskData(torch.randn(50, 2), torch.full((50,), t), t))
        assert [len(m) for m in memory.tasks] == [10 // (t + 1)] * (t + 1)
        assert all((m.task == k).all() and (m.y == k).all() for k, m in enumerate(memory.tasks))
    assert len(memory) == 9 and memory.per_class_counts() == {0: 3, 1: 3, 2: 3}


def two_tasks_into(memory):
    for t in range(2):
        memory.add_task(TaskData(torch.randn(3, 1), torch.zeros(3, dtype=torch.long), t))


@pytest.mark.parametrize("action,message", [
    (lambda: ReservoirBuffer(0), "size=0 is not allowed: size must be .*>="),
    (lambda: ReservoirBuffer(2.5), "size=2.5 is not allowed: size must be an int"),
    (lambda: ReservoirBuffer(3).sample(2), "cannot sample from an empty buffer"),
    (lambda: ClassBalancedBuffer(3).data, "the buffer is empty"),
    (lambda: two_tasks_into(EpisodicMemory(1)), "cannot hold one sample for each of 2 tasks"),
])
def test_bad_sizes_and_empty_buffers_are_explained(action, message):
    with pytest.raises((ValueError, TypeError), match=message):
        action()
