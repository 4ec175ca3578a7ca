"""features.py: embedding a benchmark once gives exactly the features of calling the
function batch by batch in eval mode, with dropout off, the module's mode restored, and
labels, task ids and the benchmark's layout kept."""

import pytest
import torch
import transformers
from torch import nn

from cl_course_lib.data.benchmarks import Benchmark, Task, TaskData
from cl_course_lib.features import embed, embed_benchmark
from cl_course_lib.models import TextClassifier


def dropout_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(p=0.5), nn.Linear(32, 7), nn.Dropout(p=0.5))


def tiny_bert_classifier(n_outputs=3, heads=1) -> TextClassifier:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32)  # hidden and attention dropout 0.1 by default
    return TextClassifier(transformers.BertModel(config), n_outputs, heads=heads)


def tokens(n, length=9, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, length + 1, (n,), generator=g)
    mask = (torch.arange(length) < lengths[:, None]).long()
    return {"input_ids": torch.randint(1, 100, (n, length), generator=g) * mask, "attention_mask": mask}


def by_hand(features, module, x, batch_size):
    """The reference: ``features`` on consecutive batches, module in eval mode, no grad."""
    module.eval()
    n = len(x["input_ids"]) if isinstance(x, dict) else len(x)
    with torch.no_grad():
        parts = [features({k: v[i:i + batch_size] for k, v in x.items()} if isinstance(x, dict)
                          else x[i:i + batch_size]) for i in range(0, n, batch_size)]
    return torch.cat(parts)


@pytest.mark.parametrize("batch_size", [1, 7, 256])
def test_embed_equals_batch_by_batch_features_in_eval_mode(batch_size):
    net = dropout_net()
    data = TaskData(torch.randn(30, 10), torch.randint(0, 3, (30,)), 2)
    net.train()
    out = embed(net, net, data, batch_size=batch_size)
    expected = by_hand(net, net, data.x, batch_size)
    assert out.x.shape == (30, 7)
    assert torch.allclose(out.x, expected, rtol=0, atol=1e-6)
    assert not out.x.requires_grad and out.x.device.type == "cpu"


def test_dropout_is_off_while_embedding():
    net = dropout_net()
    data = TaskData(torch.randn(40, 10), torch.zeros(40, dtype=torch.long), 0)
    net.train()
    noisy = [net(data.x) for _ in range(2)]
    assert not torch.equal(noisy[0], noisy[1])  # dropout p=0.5 is live in train mode
    first, second = embed(net, net, data).x, embed(net, net, data).x
    assert torch.equal(first, second)


@pytest.mark.parametrize("training", [True, False])
def test_the_modules_training_flag_is_restored(training):
    net = dropout_net().train(training)
    seen = []

    def features(x):
        seen.append(net.training)
        return net(x)
    embed(features, net, TaskData(torch.randn(5, 10), torch.zeros(5, dtype=torch.long), 0), batch_size=2)
    assert seen == [False, False, False]  # eval mode for every batch
    assert net.training is training and all(m.training is training for m in net.modules())


def test_the_training_flag_is_restored_when_the_features_fail():
    net = dropout_net().train()

    def broken(x):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        embed(broken, net, TaskData(torch.randn(5, 10), torch.zeros(5, dtype=torch.long), 0))
    assert net.training


def test_labels_and_task_ids_are_kept():
    net = dropout_net()
    y = torch.randint(0, 3, (12,))
    merged = TaskData(torch.randn(12, 10), y, torch.tensor([0, 1, 2] * 4))
    out = embed(net, net, merged, batch_size=5)
    assert torch.equal(out.y, y) and torch.equal(out.task, merged.task)
    single = embed(net, net, TaskData(torch.randn(12, 10), y, 3))
    assert single.task == 3 and isinstance(single.task, int)


def text_benchmark(scenario="task") -> Benchmark:
    tasks = []
    for t in range(2):
        train = TaskData(tokens(13, seed=t), torch.randint(0, 3, (13,)), t)
        test = TaskData(tokens(6, seed=10 + t), torch.randint(0, 3, (6,)), t)
        tasks.append(Task(t, f"t{t}", ("a", "b", "c"), train, test))
    return Benchmark("toy_text", scenario, tuple(tasks), 3, 2 if scenario == "task" else 1, (9,))


def test_embed_benchmark_of_a_text_encoder_keeps_the_layout_and_gives_eval_features():
    model = tiny_bert_classifier(heads=2)
    bench = text_benchmark()
    model.train()
    out = embed_benchmark(model.features, model, bench, batch_size=4, progress=False)
    assert model.training  # restored
    assert (out.scenario, out.n_outputs, out.n_heads, out.n_tasks) == (bench.scenario, 3, 2, 2)
    assert out.input_shape == (16,) and out.name == "toy_text_features"
    for before, after in zip(bench.tasks, out.tasks):
        assert (after.id, after.name, after.classes) == (before.id, before.name, before.classes)
        for split in ("train", "test"):
            old, new = getattr(before, split), getattr(after, split)
            assert torch.equal(new.y, old.y) and new.task == old.task
            assert new.x.shape == (len(old), 16)
            assert torch.allclose(new.x, by_hand(model.features, model, old.x, 4), rtol=0, atol=1e-6)
    # BERT's dropout is live in train mode, so eval-mode features are not what training sees
    model.train()
    x = bench.tasks[0].train.x
    with torch.no_grad():
        assert not torch.allclose(model.features(x), out.tasks[0].train.x, atol=1e-6)
