"""The training loop on a small real benchmark (sklearn digits): shapes, determinism,
bounds, and the errors a learner meets first."""

import numpy as np
import pytest
import torch

import cl_course_lib as cl
from cl_course_lib.data.benchmarks import split
from cl_course_lib.data.vision import load_digits
from cl_course_lib.models import MLP
from cl_course_lib.strategies import Cumulative, Joint, Naive


def digits(scenario):
    return split(load_digits(), [(0, 1), (2, 3), (4, 5)], scenario=scenario)


EPOCHS = 20  # the digits tasks are small (~290 images): enough steps to learn each one


def trained(strategy_class, scenario="class", seed=0):
    cl.seed_everything(seed)
    bench = digits(scenario)
    model = MLP(64, [64], bench.n_outputs, heads=bench.n_heads)
    return cl.run(strategy_class(model, lr=1e-3), bench, epochs=EPOCHS, batch_size=32, progress=False)


def test_result_shapes_and_bookkeeping():
    result = trained(Naive)
    assert result.acc_matrix.values.shape == (4, 3)
    assert len(result.task_starts) == 3 and result.task_starts[0] == 0
    assert len(result.losses) == result.task_starts[2] + EPOCHS * int(np.ceil(len(digits("class").tasks[2].train) / 32))
    assert np.isfinite(result.losses).all()
    assert result.train_seconds > 0 and result.eval_seconds > 0


def test_same_seed_same_numbers():
    assert np.array_equal(trained(Naive).acc_matrix.values, trained(Naive).acc_matrix.values)


def test_naive_class_incremental_forgets_and_learns_the_current_task():
    r = trained(Naive).acc_matrix.values
    assert r[3, 2] > 0.9  # the last task is learned
    assert r[3, 0] < 0.2  # the first is forgotten: its classes are never predicted any more


def test_task_incremental_naive_keeps_more():
    assert trained(Naive, "task").acc_matrix.acc > trained(Naive, "class").acc_matrix.acc + 0.3


def test_joint_is_an_upper_bound_with_identical_rows():
    result = trained(Joint)
    rows = result.acc_matrix.values[1:]
    assert np.array_equal(rows, np.repeat(rows[:1], 3, axis=0)) and result.acc_matrix.bwt == 0
    assert result.acc_matrix.acc > 0.9
    assert result.task_starts == [0, len(result.losses), len(result.losses)]  # trained once


def test_cumulative_keeps_old_tasks():
    assert trained(Cumulative).acc_matrix.acc > 0.9


def test_model_that_does_not_fit_the_benchmark_is_explained():
    bench = digits("task")
    with pytest.raises(ValueError, match=r"needs 3 head\(s\) of 2 outputs"):
        cl.run(Naive(MLP(64, [8], 2)), bench, progress=False)
    with pytest.raises(ValueError, match="needs 3 head"):
        cl.run(Naive(MLP(64, [8], 6, heads=3)), bench, progress=False)


@pytest.mark.parametrize("kwargs", [dict(epochs=0), dict(batch_size=0), dict(epochs=1.5)])
def test_bad_loop_arguments(kwargs):
    bench = digits("domain")
    name, value = next(iter(kwargs.items()))
    with pytest.raises((ValueError, TypeError), match=f"{name}={value} is not allowed: {name} must be an int >= 1"):
        cl.run(Naive(MLP(64, [8], 2)), bench, progress=False, **kwargs)


def test_strategy_arguments_are_validated():
    with pytest.raises(ValueError, match=r"lr=0 is not allowed: lr must be a number > 0. Pass e.g. lr=0.001"):
        Naive(MLP(64, [8], 2), lr=0)
    with pytest.raises(ValueError, match="optimizer='adamax' is not allowed: optimizer must be one of 'adam', 'adamw'"):
        Naive(MLP(64, [8], 2), optimizer="adamax")
    with pytest.raises(TypeError, match="Strategy"):
        cl.run("naive", digits("domain"))


def test_untrained_row_is_recorded_before_any_step():
    cl.seed_everything(0)
    bench = digits("class")
    model = MLP(64, [32], bench.n_outputs)
    before = [cl.train.accuracy(model, t.test) for t in bench.tasks]
    result = cl.run(Naive(model), bench, progress=False)
    assert np.allclose(result.acc_matrix.values[0], before)


def test_accuracy_against_a_hand_count():
    bench = digits("class")
    model = MLP(64, [8], bench.n_outputs)
    test = bench.tasks[1].test
    with torch.no_grad():
        expected = (model(test.x).argmax(1) == test.y).float().mean().item()
    assert cl.train.accuracy(model, test, batch_size=7) == pytest.approx(expected)
