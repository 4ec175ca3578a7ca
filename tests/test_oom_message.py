"""run's out-of-memory message: the settings that fix it, for token and tensor inputs."""

import pytest
import torch
import transformers

import cl_course_lib as cl
from cl_course_lib.data.benchmarks import Benchmark, Task, TaskData
from cl_course_lib.models import MLP, TextClassifier
from cl_course_lib.strategies import Naive

LENGTH = 6


def tokens(n, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1, 100, (n, LENGTH), generator=g),
            "attention_mask": torch.ones(n, LENGTH, dtype=torch.long)}


def bench_of(make_x, n=20) -> Benchmark:
    tasks = tuple(Task(t, f"t{t}", ("a", "b"), TaskData(make_x(n, t), torch.randint(0, 2, (n,)), t),
                       TaskData(make_x(4, 10 + t), torch.randint(0, 2, (4,)), t)) for t in range(2))
    return Benchmark("toy", "domain", tasks, 2, 1, (LENGTH,))


def text_strategy():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32)
    return Naive(TextClassifier(transformers.BertModel(config), 2))


def out_of_memory_on_observe(monkeypatch, strategy):
    def observe(x, y, task):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore details")
    monkeypatch.setattr(strategy, "observe", observe)
    return strategy


@pytest.mark.parametrize("batch_size, half", [(8, 4), (7, 3), (1, 1)])
def test_token_inputs_name_half_the_batch_size_and_max_length(monkeypatch, batch_size, half):
    strategy = out_of_memory_on_observe(monkeypatch, text_strategy())
    with pytest.raises(torch.OutOfMemoryError) as caught:
        cl.run(strategy, bench_of(lambda n, s: tokens(n, s)), batch_size=batch_size, device="cpu", progress=False)
    message = str(caught.value)
    assert f"batch_size={half})" in message and "max_length" in message
    assert f"{LENGTH} tokens" in message and "CUDA out of memory. Tried to allocate 2.00 GiB" in message
    assert "more details" not in message  # only PyTorch's first line
    assert isinstance(caught.value.__cause__, torch.OutOfMemoryError)  # chained to the original


def test_tensor_inputs_name_half_the_batch_size_without_max_length(monkeypatch):
    strategy = out_of_memory_on_observe(monkeypatch, Naive(MLP(LENGTH, [4], 2)))
    with pytest.raises(torch.OutOfMemoryError) as caught:
        cl.run(strategy, bench_of(lambda n, s: torch.randn(n, LENGTH)), batch_size=16, device="cpu",
               progress=False)
    message = str(caught.value)
    assert "batch_size=8)" in message and "max_length" not in message and "tokens" not in message


def test_other_errors_of_observe_pass_through_unchanged(monkeypatch):
    strategy = Naive(MLP(LENGTH, [4], 2))

    def observe(x, y, task):
        raise RuntimeError("something else")
    monkeypatch.setattr(strategy, "observe", observe)
    with pytest.raises(RuntimeError, match="^something else$"):
        cl.run(strategy, bench_of(lambda n, s: torch.randn(n, LENGTH)), batch_size=16, device="cpu",
               progress=False)
