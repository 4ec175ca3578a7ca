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


def image_bench(n=12) -> Benchmark:
    """Two tasks of grey 28×28 images, the raw inputs an ImageInput resizes per batch."""
    g = torch.Generator().manual_seed(0)
    tasks = tuple(Task(t, f"t{t}", ("a", "b"), TaskData(torch.rand(n, 1, 28, 28, generator=g),
                                                         torch.randint(0, 2, (n,), generator=g), t),
                       TaskData(torch.rand(4, 1, 28, 28, generator=g), torch.randint(0, 2, (4,), generator=g), t))
                  for t in range(2))
    return Benchmark("toy_images", "domain", tasks, 2, 1, (1, 28, 28))


def image_model():
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    return cl.models.Preprocessed(cl.models.ImageInput(32), cl.models.ImageClassifier(backbone, 4, 2))


@pytest.mark.parametrize("batch_size, half", [(16, 8), (5, 2)])
def test_image_inputs_name_the_image_size_as_well(monkeypatch, batch_size, half):
    strategy = out_of_memory_on_observe(monkeypatch, Naive(image_model()))
    with pytest.raises(torch.OutOfMemoryError) as caught:
        cl.run(strategy, image_bench(), batch_size=batch_size, device="cpu", progress=False)
    message = str(caught.value)
    assert "--image-size" in message and "ImageInput(size)" in message
    assert f"batch_size={half})" in message and "precision='bf16'" in message
    assert "max_length" not in message and "tokens" not in message
    assert "CUDA out of memory. Tried to allocate 2.00 GiB" in message and "more details" not in message
    assert isinstance(caught.value.__cause__, torch.OutOfMemoryError)


def test_token_and_flat_inputs_do_not_mention_the_image_size(monkeypatch):
    for strategy, bench in ((text_strategy(), bench_of(lambda n, s: tokens(n, s))),
                            (Naive(MLP(LENGTH, [4], 2)), bench_of(lambda n, s: torch.randn(n, LENGTH)))):
        out_of_memory_on_observe(monkeypatch, strategy)
        with pytest.raises(torch.OutOfMemoryError) as caught:
            cl.run(strategy, bench, batch_size=8, device="cpu", progress=False)
        assert "image" not in str(caught.value).lower()
