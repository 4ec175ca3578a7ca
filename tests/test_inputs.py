"""Nested model inputs (``data.inputs``), their batching (``data.loading``) and what is built
on them: a model of dict inputs trained by several strategies, memories with dict inputs and
their saved state, importances and accuracy computed batch by batch."""

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cl_course_lib as cl
from cl_course_lib.data import inputs, loading
from cl_course_lib.data.benchmarks import Benchmark, Task, TaskData
from cl_course_lib.importance import fisher_diagonal
from cl_course_lib.memory import ClassBalancedBuffer, EpisodicMemory, ReservoirBuffer
from cl_course_lib.models import MLP

VOCAB, LENGTH = 24, 6


def tokens(n, seed=0):
    """A tokenizer-like batch: ``input_ids`` (n, L) and a 0/1 ``attention_mask`` of 2..L ones."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n, LENGTH), generator=g)
    lengths = torch.randint(2, LENGTH + 1, (n, 1), generator=g)
    return {"input_ids": ids, "attention_mask": (torch.arange(LENGTH) < lengths).long()}


def equal(a, b):
    """Same structure (container types, keys in order) and equal tensors."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(equal(a[k], b[k]) for k in a)
    return len(a) == len(b) and all(equal(u, v) for u, v in zip(a, b))


class BagOfTokens(nn.Module):
    """Embedding of ``input_ids``, mean over the positions the ``attention_mask`` keeps, a Linear head."""

    def __init__(self, vocab=VOCAB, dim=8, n_outputs=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, n_outputs)

    def forward(self, x, task=None):
        mask = x["attention_mask"].unsqueeze(-1).to(self.embedding.weight.dtype)
        pooled = (self.embedding(x["input_ids"]) * mask).sum(1) / mask.sum(1).clamp_min(1)
        return self.head(pooled)


def has_token_one(n, t, seed):
    """Task ``t``: label 1 iff token 1 is among the kept positions. Other kept tokens come
    from the task's own range; the padding holds random tokens, token 1 included, so only
    a model that honours the mask can be right."""
    g = torch.Generator().manual_seed(seed)
    x = tokens(n, seed)
    low = 2 + t * (VOCAB - 2) // 2
    ids = torch.randint(low, low + (VOCAB - 2) // 2, (n, LENGTH), generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    lengths = x["attention_mask"].sum(1)
    where = (torch.rand(n, generator=g) * lengths).long()  # a kept position
    ids[y == 1, where[y == 1]] = 1
    ids = torch.where(x["attention_mask"].bool(), ids, x["input_ids"] % 2)  # padding: tokens 0 and 1
    return TaskData({"input_ids": ids, "attention_mask": x["attention_mask"]}, y, t)


def token_benchmark(n_train=192, n_test=96):
    tasks = tuple(Task(t, f"tokens {t}", ("no 1", "has 1"), has_token_one(n_train, t, seed=10 + t),
                       has_token_one(n_test, t, seed=20 + t)) for t in range(2))
    return Benchmark("has_token_one", "domain", tasks, n_outputs=2, n_heads=1, input_shape=(LENGTH,))


# ---------------------------------------------------------------- inputs


@pytest.mark.parametrize("index", [torch.tensor([7, 0, 3, 3, 9]), slice(2, 6), torch.tensor([], dtype=torch.long)])
def test_select_equals_direct_indexing_on_a_dict_a_tuple_and_a_list(index):
    x = tokens(10)
    picked = inputs.select(x, index)
    assert list(picked) == ["input_ids", "attention_mask"]
    for key in x:
        assert torch.equal(picked[key], x[key][index])
    pair = (x["input_ids"], x["attention_mask"].float())
    for container in (tuple, list):
        picked = inputs.select(container(pair), index)
        assert type(picked) is container and all(torch.equal(p, t[index]) for p, t in zip(picked, pair))
    assert inputs.size(x) == 10 and inputs.device(x) == torch.device("cpu")
    assert [t.data_ptr() for t in inputs.tensors(x)] == [x["input_ids"].data_ptr(), x["attention_mask"].data_ptr()]


def test_cat_undoes_a_split_keeping_the_structure():
    x = tokens(10)
    assert equal(inputs.cat([inputs.select(x, slice(0, 3)), inputs.select(x, slice(3, 10))]), x)
    pair = (x["input_ids"], x["attention_mask"].float())
    order = torch.tensor([4, 1, 8])
    both = inputs.cat([inputs.select(pair, order), inputs.select(pair, slice(0, 2))])
    assert type(both) is tuple and all(torch.equal(b, torch.cat([t[order], t[:2]])) for b, t in zip(both, pair))


def test_empty_like_and_assign_equal_direct_indexing():
    x = {"input_ids": tokens(10)["input_ids"], "weights": torch.rand(10, 3, 2, dtype=torch.float64)}
    store = inputs.empty_like(x, 5)
    assert [(t.shape, t.dtype) for t in inputs.tensors(store)] == [((5, LENGTH), torch.long),
                                                                 ((5, 3, 2), torch.float64)]
    assert all((t == 0).all() for t in inputs.tensors(store))
    slots, source = torch.tensor([4, 1]), torch.tensor([9, 0])
    inputs.assign(store, slots, x, source)
    for key in x:
        expected = torch.zeros_like(store[key])
        expected[slots] = x[key][source]
        assert torch.equal(store[key], expected)
    pair = inputs.empty_like((x["input_ids"], x["weights"]), 3)
    inputs.assign(pair, torch.tensor([2]), (x["input_ids"], x["weights"]), torch.tensor([6]))
    assert torch.equal(pair[0][2], x["input_ids"][6]) and torch.equal(pair[1][2], x["weights"][6])
    assert (pair[0][:2] == 0).all()


def test_assign_matches_dict_tensors_by_key():
    store = {"input_ids": torch.zeros(3, 2, dtype=torch.long), "attention_mask": torch.zeros(3, 2, dtype=torch.long)}
    new = {"attention_mask": torch.ones(1, 2, dtype=torch.long), "input_ids": torch.full((1, 2), 7)}
    inputs.assign(store, torch.tensor([0]), new, torch.tensor([0]))
    assert store["input_ids"][0].tolist() == [7, 7] and store["attention_mask"][0].tolist() == [1, 1]


@pytest.mark.parametrize("bad, kind", [({"input_ids": np.zeros((3, 2))}, "ndarray"),
                                       ((torch.zeros(3), [1, 2, 3]), "int"), ("text", "str")])
def test_a_leaf_that_is_not_a_tensor_is_a_clear_type_error(bad, kind):
    with pytest.raises(TypeError, match=f"tensor or a dict/tuple/list of tensors; got {kind}.*torch.as_tensor"):
        inputs.select(bad, slice(0, 1))


# ---------------------------------------------------------------- batches


def numbered(n=23, merged=False):
    """Token inputs with label i for sample i (so a batch shows which samples it holds)."""
    data = TaskData(tokens(n, seed=3), torch.arange(n), 0)
    if merged:  # two sets joined: per-sample task ids 0 and 1
        data = TaskData.concat([data.subset(slice(0, n // 2)), TaskData(*data.batch(torch.arange(n // 2, n))[:2], 1)])
    return data


def check_batches(got, data, batch_size):
    """The batches hold every sample once, in sizes batch_size, ..., the rest; each x, task matches its y."""
    sizes = [len(y) for _, y, _ in got]
    assert sizes == [batch_size] * (len(data) // batch_size) + ([len(data) % batch_size] if len(data) % batch_size else [])
    assert len(got) == loading.n_batches(data, batch_size)
    assert sorted(torch.cat([y for _, y, _ in got]).tolist()) == list(range(len(data)))
    for x, y, task in got:
        assert equal(x, inputs.select(data.x, y))
        assert task == data.task if isinstance(data.task, int) else torch.equal(task, data.task[y])
    return torch.cat([y for _, y, _ in got]).tolist()


@pytest.fixture
def host_path(monkeypatch):
    """``(calls, force)``: the index lists the DataLoader's dataset was asked for, and a
    function that forces the DataLoader path on the CPU."""
    calls = []
    original = loading._WholeBatches.__getitem__
    monkeypatch.setattr(loading._WholeBatches, "__getitem__", lambda self, index: calls.append(list(index))
                        or original(self, index))
    return calls, lambda: monkeypatch.setattr(loading, "_same_device", lambda a, b: False)


@pytest.mark.parametrize("merged", [False, True])
def test_device_path_covers_every_sample_once(merged):
    data = numbered(merged=merged)
    assert check_batches(list(loading.batches(data, 5, device="cpu", shuffle=False)), data, 5) == list(range(23))
    torch.manual_seed(0)
    order = check_batches(list(loading.batches(data, 5, device="cpu", shuffle=True)), data, 5)
    assert order != list(range(23))
    torch.manual_seed(0)  # the global generator fixes the order
    assert [y.tolist() for _, y, _ in loading.batches(data, 5, device="cpu", shuffle=True)] == \
        [order[i:i + 5] for i in range(0, 23, 5)]
    assert loading.n_batches(None, 5) == 0 and loading.n_batches(data, 23) == 1 and loading.n_batches(data, 22) == 2


@pytest.mark.parametrize("merged", [False, True])
def test_host_path_yields_the_device_paths_batches(merged, host_path):
    calls, force = host_path
    data = numbered(merged=merged)
    on_device = list(loading.batches(data, 5, device="cpu", shuffle=False))
    assert not calls  # the device path never calls the DataLoader's dataset
    force()
    on_host = list(loading.batches(data, 5, device="cpu", shuffle=False))
    assert calls == [list(range(i, min(i + 5, 23))) for i in range(0, 23, 5)]  # whole batches per __getitem__
    assert len(on_host) == len(on_device)
    for (xh, yh, th), (xd, yd, td) in zip(on_host, on_device):
        assert equal(xh, xd) and torch.equal(yh, yd)
        assert th == td if isinstance(td, int) else torch.equal(th, td)
    calls.clear()
    torch.manual_seed(0)
    order = check_batches(list(loading.batches(data, 5, device="cpu", shuffle=True)), data, 5)
    assert order != list(range(23)) and len(calls) == 5


def test_host_path_keeps_tuple_inputs_tuples(host_path):
    host_path[1]()
    x = tokens(6)
    data = TaskData((x["input_ids"], x["attention_mask"]), torch.arange(6), 0)
    assert [type(xb) for xb, _, _ in loading.batches(data, 4, device="cpu", shuffle=False)] == [tuple, tuple]


def test_host_path_with_two_workers_covers_every_sample_once(monkeypatch):
    monkeypatch.setattr(loading, "_same_device", lambda a, b: False)
    data = numbered(11, merged=True)
    torch.manual_seed(0)
    check_batches(list(loading.batches(data, 4, device="cpu", shuffle=True, workers=2)), data, 4)


# ---------------------------------------------------------------- training on dict inputs


def _strategies():
    return {
        "naive": lambda model: cl.strategies.Naive(model, lr=2e-2),
        "replay": lambda model: cl.strategies.Replay(model, mem_size=20, lr=2e-2),
        "agem": lambda model: cl.strategies.AGEM(model, mem_size=20, ref_batch_size=16, lr=2e-2),
        "ewc": lambda model: cl.strategies.EWC(model, lam=10.0, fisher_samples=64, lr=2e-2),
    }


@pytest.mark.parametrize("name", list(_strategies()))
def test_strategies_learn_a_benchmark_of_dict_inputs(name):
    cl.seed_everything(0)
    bench = token_benchmark()
    strategy = _strategies()[name](BagOfTokens())
    result = cl.run(strategy, bench, epochs=6, batch_size=32, device="cpu", progress=False)
    acc = result.acc_matrix.values
    assert acc.shape == (3, 2) and len(result.losses) == 2 * 6 * 6
    assert acc[1, 0] > 0.8 and acc[2, 1] > 0.8, acc  # each task learnt (chance: 0.5)
    if name == "replay":
        assert len(strategy.buffer) == 20 and list(strategy.buffer.x) == ["input_ids", "attention_mask"]
        stored = strategy.buffer.data
        assert stored.task.tolist().count(1) > 0  # the second task reached the memory
    if name == "agem":
        assert [len(t) for t in strategy.memory.tasks] == [10, 10] and isinstance(strategy.memory.x, dict)
    if name == "ewc":
        fisher = strategy.terms[0][0]
        assert set(fisher) == {"embedding.weight", "head.weight", "head.bias"}
        rows = fisher["embedding.weight"].sum(1)
        # task 0's tokens (2..12) and token 1 matter; task 1's tokens and token 0 (only in masked padding) do not
        assert rows[1:13].gt(0).all() and rows[13:].eq(0).all() and rows[0] == 0


# ---------------------------------------------------------------- memories of dict inputs


def test_reservoir_buffer_keeps_what_was_added_at_the_slots_its_draws_give():
    x, y = tokens(12, seed=5), torch.arange(12)
    # positions 0..4 fill slots 0..4; then 5->2, 6 (draw 7) dropped, 7->4, 8->0, 9 dropped, 10->1, 11->1 (wins)
    draws = torch.tensor([0, 0, 0, 0, 0, 2, 7, 4, 0, 9, 1, 1])
    buffer = ReservoirBuffer(5)
    buffer.add(inputs.select(x, slice(0, 7)), y[:7], 0, draws=draws[:7])
    buffer.add(inputs.select(x, slice(7, 12)), y[7:], 1, draws=draws[7:])
    kept = torch.tensor([8, 11, 5, 3, 7])
    data = buffer.data
    assert data.y.tolist() == kept.tolist() and data.task.tolist() == [1, 1, 0, 0, 1] and buffer.seen == 12
    assert equal(data.x, inputs.select(x, kept))
    xs, ys, ts = buffer.sample(3, generator=torch.Generator().manual_seed(0))
    assert len(set(ys.tolist())) == 3 and set(ys.tolist()) <= set(kept.tolist())
    assert equal(xs, inputs.select(x, ys)) and ts.tolist() == [int(i in (7, 8, 11)) for i in ys.tolist()]
    assert sorted(buffer.sample(50)[1].tolist()) == sorted(kept.tolist())  # at most what is stored


def _fill(kind, generator):
    """A buffer of ``kind`` with some dict-input (tensor for class_balanced) samples added."""
    if kind == "episodic":
        memory = EpisodicMemory(12, generator=generator)
        memory.add_task(TaskData(tokens(30, seed=1), torch.randint(0, 2, (30,)), 0))
        memory.add_task(TaskData(tokens(30, seed=2), torch.randint(0, 2, (30,)), 1))
        return memory
    buffer = (ReservoirBuffer if kind == "reservoir" else ClassBalancedBuffer)(8, generator=generator)
    for step in range(4):
        x = tokens(10, seed=step)
        buffer.add(x if kind == "reservoir" else x["input_ids"].float(), torch.arange(10) % (2 + step), step)
    return buffer


def _grow(buffer, kind, seed):
    """Add more samples: the random draws of this call come from the buffer's generator."""
    x = tokens(10, seed=seed)
    if kind == "episodic":
        buffer.add_task(TaskData(x, torch.randint(0, 2, (10,), generator=torch.Generator().manual_seed(seed)), 2))
    else:
        buffer.add(x if kind == "reservoir" else x["input_ids"].float(), torch.arange(10) % 5, 9)


@pytest.mark.parametrize("via_file", [False, True])
@pytest.mark.parametrize("kind", ["reservoir", "episodic", "class_balanced"])
def test_state_dict_round_trip_gives_the_same_samples_and_the_same_future_draws(kind, via_file):
    original = _fill(kind, torch.Generator().manual_seed(0))
    state = original.state_dict()
    if via_file:  # as a checkpoint does
        file = io.BytesIO()
        torch.save(state, file)
        file.seek(0)
        state = torch.load(file, weights_only=False)
    restored = type(original)(original.size, generator=torch.Generator())  # another generator state
    restored.load_state_dict(state)
    assert restored.seen == original.seen and len(restored) == len(original)
    assert equal(restored.data.x, original.data.x) and torch.equal(restored.data.y, original.data.y)
    if kind == "episodic":
        assert [len(t) for t in restored.tasks] == [len(t) for t in original.tasks] == [6, 6]
    futures = []
    for buffer in (original, restored):
        _grow(buffer, kind, seed=7)
        _grow(buffer, kind, seed=8)
        x, y, task = buffer.sample(6)
        futures.append((x, y, task, buffer.data))
    (x0, y0, t0, d0), (x1, y1, t1, d1) = futures
    assert equal(x0, x1) and torch.equal(y0, y1) and torch.equal(t0, t1)
    assert equal(d0.x, d1.x) and torch.equal(d0.y, d1.y) and torch.equal(d0.task, d1.task)
    # the draws did depend on the generator: a buffer with a fresh generator ends elsewhere
    other = type(original)(original.size, generator=torch.Generator().manual_seed(123))
    other.load_state_dict({**state, "generator": None})
    _grow(other, kind, seed=7)
    _grow(other, kind, seed=8)
    assert not torch.equal(other.sample(6)[1], y0)


def test_a_loaded_buffer_does_not_share_storage_with_the_original():
    original = _fill("reservoir", torch.Generator().manual_seed(0))
    restored = ReservoirBuffer(original.size, generator=torch.Generator())
    restored.load_state_dict(original.state_dict())
    before = restored.data
    _grow(original, "reservoir", seed=7)
    assert torch.equal(restored.data.y, before.y) and equal(restored.data.x, before.x)


def test_class_balanced_buffer_takes_dict_inputs():
    buffer = ClassBalancedBuffer(4)
    x, y = tokens(4), torch.tensor([0, 1, 0, 1])
    buffer.add(x, y, 0)  # room for all four: every sample is kept, each with its own label
    stored = buffer.data
    rows = [int((x["input_ids"] == ids).all(dim=1).nonzero()) for ids in stored.x["input_ids"]]
    assert sorted(rows) == [0, 1, 2, 3]
    assert equal(stored.x, inputs.select(x, torch.tensor(rows))) and torch.equal(stored.y, y[rows])


# ---------------------------------------------------------------- importance and accuracy


def max_relative_error(a, b):
    assert a.keys() == b.keys()
    return max(((a[n] - b[n]).norm() / b[n].norm()).item() for n in b)


def _tensor_setup():
    torch.manual_seed(0)
    return MLP(12, [16], 3), TaskData(torch.randn(40, 12), torch.randint(0, 3, (40,)), 0)


def _dict_setup():
    torch.manual_seed(0)
    return BagOfTokens(n_outputs=3), TaskData(tokens(40, seed=4), torch.randint(0, 3, (40,)), 0)


@pytest.mark.parametrize("setup", [_tensor_setup, _dict_setup], ids=["mlp", "dict"])
def test_fisher_does_not_depend_on_the_batch_size(setup):
    model, data = setup()
    small = fisher_diagonal(model, data, kind="empirical", batch_size=7)
    whole = fisher_diagonal(model, data, kind="empirical", batch_size=1000)
    assert max_relative_error(small, whole) < 1e-6
    assert all(v.norm() > 0 for v in whole.values())
    # and it is the Fisher: the mean of squared per-sample gradients, one backward per sample
    reference = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(data)):
        model.zero_grad()
        x, y, task = data.batch(torch.tensor([i]))
        F.cross_entropy(model(x, task), y).backward()
        for n, p in model.named_parameters():
            reference[n] += p.grad.square() / len(data)
    assert max_relative_error(small, reference) < 1e-5


def test_accuracy_and_evaluate_equal_a_direct_computation(monkeypatch):
    model, data = _dict_setup()
    with torch.no_grad():
        direct = (model(data.x).argmax(1) == data.y).sum().item() / len(data)
    assert 0 < direct < 1
    assert cl.accuracy(model, data, batch_size=7) == direct
    mlp, tensor_data = _tensor_setup()
    with torch.no_grad():
        direct_mlp = (mlp(tensor_data.x).argmax(1) == tensor_data.y).sum().item() / len(tensor_data)
    assert cl.accuracy(mlp, tensor_data, batch_size=9) == direct_mlp
    bench = token_benchmark(n_train=8, n_test=30)
    with torch.no_grad():
        per_task = [(model(t.test.x).argmax(1) == t.test.y).sum().item() / 30 for t in bench.tasks]
    assert cl.evaluate(model, bench) == per_task
    monkeypatch.setattr(loading, "_same_device", lambda a, b: False)  # batches through the DataLoader
    assert cl.accuracy(model, data, batch_size=7) == direct
