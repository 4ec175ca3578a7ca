"""costs.py: trainable parameters, numbers stored beside the model (against what each
method's state holds), and the peak memory of a block against a known allocation."""

import sys

import pytest
import torch

import cl_course_lib as cl
from cl_course_lib.costs import peak_memory, stored_numbers, trainable_parameters
from cl_course_lib.data.benchmarks import Benchmark, Task, TaskData
from cl_course_lib.models import MLP
from cl_course_lib.strategies import EWC, Naive, Replay

D, CLASSES = 12, 3


def benchmark(n_train=50, x=None) -> Benchmark:
    tasks = []
    for t in range(2):
        g = torch.Generator().manual_seed(t)
        train_x = torch.randn(n_train, D, generator=g) if x is None else x(n_train, g)
        test_x = torch.randn(10, D, generator=g) if x is None else x(10, g)
        tasks.append(Task(t, f"t{t}", ("a", "b", "c"), TaskData(train_x, torch.randint(0, CLASSES, (n_train,), generator=g), t),
                          TaskData(test_x, torch.randint(0, CLASSES, (10,), generator=g), t)))
    return Benchmark("toy", "task", tuple(tasks), CLASSES, 2, (D,))


def one_task(strategy, bench):
    """Train on the first task only, as run does (hooks included)."""
    first = Benchmark(bench.name, bench.scenario, bench.tasks[:1], bench.n_outputs, bench.n_heads, bench.input_shape)
    cl.run(strategy, first, batch_size=10, device="cpu", progress=False)


def test_trainable_parameters_count_only_what_requires_grad():
    model = MLP(D, [8, 6], CLASSES, heads=2)
    total = sum(p.numel() for p in model.parameters())
    assert trainable_parameters(model) == total == D * 8 + 8 + 8 * 6 + 6 + 2 * (6 * CLASSES + CLASSES)
    for p in model.heads.parameters():
        p.requires_grad_(False)
    assert trainable_parameters(model) == total - 2 * (6 * CLASSES + CLASSES)
    for p in model.parameters():
        p.requires_grad_(False)
    assert trainable_parameters(model) == 0


def test_naive_stores_nothing():
    strategy = Naive(MLP(D, [8], CLASSES, heads=2))
    assert stored_numbers(strategy) == 0
    one_task(strategy, benchmark())
    assert stored_numbers(strategy) == 0  # the model and Adam's moments are not "stored numbers"


def test_replay_stores_its_buffers_inputs_labels_and_task_ids():
    mem_size = 20
    strategy = Replay(MLP(D, [8], CLASSES, heads=2), mem_size=mem_size)
    one_task(strategy, benchmark(n_train=50))  # 50 samples seen > 20 slots: the buffer is full
    saved = strategy.state_dict()["method"]["buffer"]
    assert len(strategy.buffer) == mem_size and saved["x"].shape == (mem_size, D)
    expected = mem_size * D + mem_size + mem_size  # inputs, labels, task ids
    assert saved["x"].numel() + saved["y"].numel() + saved["task"].numel() == expected
    assert stored_numbers(strategy) == expected


def test_replay_of_token_inputs_counts_every_tensor_of_the_dict():
    mem_size, length = 16, 5

    def token_inputs(n, g):
        return {"input_ids": torch.randint(0, 100, (n, length), generator=g),
                "attention_mask": torch.ones(n, length, dtype=torch.long)}

    class BagOfTokens(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.EmbeddingBag(100, 4, mode="sum")
            self.heads = torch.nn.ModuleList(torch.nn.Linear(4, CLASSES) for _ in range(2))

        def forward(self, x, task):
            h = self.embedding(x["input_ids"], per_sample_weights=x["attention_mask"].float())
            return self.heads[task](h) if isinstance(task, int) else torch.stack(
                [self.heads[int(t)](h[i]) for i, t in enumerate(task)])

    strategy = Replay(BagOfTokens(), mem_size=mem_size)
    one_task(strategy, benchmark(n_train=40, x=token_inputs))
    assert len(strategy.buffer) == mem_size
    assert stored_numbers(strategy) == 2 * mem_size * length + mem_size + mem_size


def test_ewc_stores_at_least_a_fisher_and_an_anchor_per_parameter():
    model = MLP(D, [8], CLASSES, heads=2)
    strategy = EWC(model, fisher_samples=20)
    one_task(strategy, benchmark())
    assert len(strategy.terms) == 1
    assert stored_numbers(strategy) >= 2 * trainable_parameters(model)


def test_peak_memory_on_linux_sees_a_freed_allocation_and_resets_between_blocks():
    if not sys.platform.startswith("linux"):
        pytest.skip("the process RSS is read from /proc (Linux)")
    n_bytes = 200 * 1024 * 1024
    with peak_memory("cpu") as peak:
        block = torch.ones(n_bytes // 4)  # float32, every page written
        del block
    assert peak.kind == "process RSS"
    # RSS is counted in pages by the kernel with per-CPU counters that lag by a few hundred
    # kB, so the peak may read a little under the allocation: 1 % slack, well below 200 MB
    assert 0.99 * n_bytes <= peak.bytes <= n_bytes + 64 * 1024 * 1024  # above the start, not the whole process
    with peak_memory(torch.device("cpu")) as quiet:
        pass
    assert quiet.kind == "process RSS" and 0 <= quiet.bytes < 16 * 1024 * 1024  # the earlier peak was reset


def test_peak_memory_elsewhere_measures_nothing(monkeypatch):
    monkeypatch.setattr(sys, "platform", "plan9")
    with peak_memory("cpu") as peak:
        torch.ones(1000)
    assert peak.bytes is None and peak.kind == "not measured"
