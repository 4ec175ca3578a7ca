"""Benchmarks: disjoint tasks, sizes, label maps per scenario, and clear errors."""

import pytest
import torch

from cl_course_lib.data.benchmarks import SCENARIOS, TaskData, permuted, rotated, split
from cl_course_lib.data.vision import ImageData


@pytest.fixture(scope="module")
def data():
    """6 classes, 10 train and 4 test samples each, 4×4 images whose pixels encode the class."""
    g = torch.Generator().manual_seed(0)
    y_train, y_test = torch.arange(6).repeat_interleave(10), torch.arange(6).repeat_interleave(4)
    x_train = torch.rand(60, 1, 4, 4, generator=g) + y_train.view(-1, 1, 1, 1)
    x_test = torch.rand(24, 1, 4, 4, generator=g) + y_test.view(-1, 1, 1, 1)
    return ImageData(x_train, y_train, x_test, y_test, tuple("abcdef"), "toy")


PAIRS = [(0, 1), (2, 3), (4, 5)]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_split_tasks_are_disjoint_and_complete(data, scenario):
    bench = split(data, PAIRS, scenario=scenario)
    assert bench.n_tasks == 3
    for task, pair in zip(bench.tasks, PAIRS):
        original = task.train.x.floor().flatten(1)[:, 0].long()  # the class encoded in the pixels
        assert set(original.tolist()) == set(pair)
        assert len(task.train) == 20 and len(task.test) == 8
        assert task.classes == tuple("abcdef"[c] for c in pair)


def test_task_scenario_has_one_head_per_task_with_local_labels(data):
    bench = split(data, PAIRS, scenario="task")
    assert (bench.n_heads, bench.n_outputs) == (3, 2)
    for task in bench.tasks:
        assert set(task.train.y.tolist()) == {0, 1} and task.train.task == task.id


def test_domain_scenario_shares_one_head_with_local_labels(data):
    bench = split(data, PAIRS, scenario="domain")
    assert (bench.n_heads, bench.n_outputs) == (1, 2)
    assert all(set(t.test.y.tolist()) == {0, 1} for t in bench.tasks)


def test_class_scenario_uses_global_labels(data):
    bench = split(data, [(4, 5), (0, 1)], scenario="class")
    assert (bench.n_heads, bench.n_outputs) == (1, 4)
    assert set(bench.tasks[0].train.y.tolist()) == {0, 1}  # classes 4, 5 come first
    assert set(bench.tasks[1].train.y.tolist()) == {2, 3}


def test_class_scenario_takes_tasks_of_different_sizes(data):
    bench = split(data, [(0, 1), (2, 3, 4), (5,)], scenario="class")
    assert (bench.n_heads, bench.n_outputs) == (1, 6)
    assert [sorted(set(t.train.y.tolist())) for t in bench.tasks] == [[0, 1], [2, 3, 4], [5]]


def test_local_label_follows_the_class_order_within_a_task(data):
    bench = split(data, [(3, 2)], scenario="domain")
    original = bench.tasks[0].train.x.floor().flatten(1)[:, 0].long()
    assert torch.equal(bench.tasks[0].train.y, (original == 2).long())


def test_max_train_per_task(data):
    assert len(split(data, PAIRS, scenario="class", max_train_per_task=5).tasks[1].train) == 5


@pytest.mark.parametrize("scenario,heads,outputs,offset", [("task", 3, 6, 0), ("domain", 1, 6, 0), ("class", 1, 18, 6)])
def test_permuted_tasks(data, scenario, heads, outputs, offset):
    bench = permuted(data, 3, scenario=scenario)
    assert (bench.n_heads, bench.n_outputs) == (heads, outputs)
    first, second = bench.tasks[0].train, bench.tasks[1].train
    assert torch.equal(first.x, data.x_train)  # task 0 is the original data
    assert torch.equal(second.x.flatten(1).sort(dim=1).values, data.x_train.flatten(1).sort(dim=1).values)
    assert not torch.equal(second.x, data.x_train)
    assert torch.equal(second.y, data.y_train + offset)


def test_rotated_by_180_twice_is_the_identity(data):
    bench = rotated(data, [0, 180], scenario="domain")
    back = torch.rot90(bench.tasks[1].test.x, 2, dims=(2, 3))
    assert torch.allclose(back, data.x_test)


def test_concat_carries_task_ids(data):
    bench = split(data, PAIRS, scenario="task")
    merged = TaskData.concat([t.train for t in bench.tasks])
    assert len(merged) == 60 and merged.task.tolist() == [0] * 20 + [1] * 20 + [2] * 20
    x, y, task = merged.batch(torch.tensor([0, 59]))
    assert task.tolist() == [0, 2]


@pytest.mark.parametrize("kwargs,message", [
    (dict(task_classes=[]), "n_tasks=0 is not allowed: n_tasks must be an int >= 1"),
    (dict(task_classes=[(0, 1), (1, 2)]), "more than one task"),
    (dict(task_classes=[(0, 9)]), r"classes \[9\] do not exist"),
    (dict(task_classes=[(0, 1), ()]), "at least one class"),
    (dict(task_classes=[(0, 1), (2,)], scenario="task"), "same number of classes.*got 2, 1 classes per task"),
    (dict(task_classes=[(0, 1), (2,)], scenario="domain"), "scenario='class'"),
    (dict(task_classes=[(0, 1)], scenario="clas"), "scenario='clas' is not allowed: scenario must be one of 'task', 'domain', 'class'"),
])
def test_bad_arguments_are_explained(data, kwargs, message):
    kwargs = dict(scenario="class") | kwargs
    with pytest.raises(ValueError, match=message):
        split(data, **kwargs)


def test_empty_task_is_explained(data):
    empty = ImageData(data.x_train[:20], data.y_train[:20], data.x_test, data.y_test, data.classes, "toy")
    with pytest.raises(ValueError, match="no training or no test samples"):
        split(empty, [(0, 1), (2, 3)], scenario="class")


def test_permuted_needs_tasks(data):
    with pytest.raises(ValueError, match="n_tasks=0 is not allowed: n_tasks must be an int >= 1"):
        permuted(data, 0, scenario="domain")
