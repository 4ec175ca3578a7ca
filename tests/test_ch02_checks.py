"""Chapter 2's exercise checks: the library's own functions pass, each usual mistake fails
with its own hint, a stub says "not done yet", and the checks leave the caller's state alone."""

import numpy as np
import pytest
import torch

from check_helpers import failing, not_done_yet, passing, stub
from cl_course_lib import metrics
from cl_course_lib.checks import ch02
from cl_course_lib.train import evaluate


def forgetting_curve(R):
    return [metrics.forgetting(R[: k + 1, :k]) for k in range(2, R.shape[1] + 1)]


CHECKS = {
    "accuracy_row": (ch02.check_accuracy_row, evaluate),
    "backward_transfer": (ch02.check_backward_transfer, metrics.backward_transfer),
    "forward_transfer": (ch02.check_forward_transfer, metrics.forward_transfer),
    "forgetting_curve": (ch02.check_forgetting_curve, forgetting_curve),
}


@pytest.mark.parametrize("name", CHECKS)
def test_the_library_passes(name):
    check, right = CHECKS[name]
    passing(check(right))


@pytest.mark.parametrize("name", CHECKS)
def test_a_stub_is_not_done_yet(name):
    not_done_yet(CHECKS[name][0](stub))


# --- accuracy_row ----------------------------------------------------------------------


def row_with(predict, *, eval_mode=True, split="test", fraction=True):
    """An accuracy_row built from ``predict(model, task) -> predicted labels``."""
    @torch.no_grad()
    def accuracy_row(model, bench):
        if eval_mode:
            model.eval()
        row = []
        for task in bench.tasks:
            data = getattr(task, split)
            correct = (predict(model, task, data) == data.y).sum().item()
            row.append(correct / len(data) if fraction else correct)
        return row
    return accuracy_row


def test_accuracy_row_with_the_tasks_own_outputs_is_called_task_il():
    def own_outputs(model, task, data):
        k = 2
        return model(data.x, data.task)[:, k * task.id:k * task.id + k].argmax(dim=1) + k * task.id

    failing(ch02.check_accuracy_row(row_with(own_outputs)), "task-IL")


def test_accuracy_row_mistakes_get_their_hints():
    right = lambda model, task, data: model(data.x, data.task).argmax(dim=1)  # noqa: E731
    failing(ch02.check_accuracy_row(row_with(right, fraction=False)), "fraction between 0 and 1")
    failing(ch02.check_accuracy_row(row_with(right, split="train")), "training sets")
    head_0 = lambda model, task, data: model(data.x, 0).argmax(dim=1)  # noqa: E731
    failing(ch02.check_accuracy_row(row_with(head_0)), "scored with head 0")
    text = failing(ch02.check_accuracy_row(row_with(right, eval_mode=False)), "model.eval()")
    assert "2 of 3 checks passed" in text  # what passed is said too


def test_accuracy_row_without_the_task_id_is_explained_in_one_line():
    no_task = lambda model, task, data: model(data.x).argmax(dim=1)  # noqa: E731
    text = failing(ch02.check_accuracy_row(row_with(no_task)), "pass the task id")
    assert "ValueError" in text and "not run" in text


def test_accuracy_row_wrong_length_and_none():
    failing(ch02.check_accuracy_row(lambda model, bench: evaluate(model, bench)[:-1]), "3 numbers; got 2 values")
    failing(ch02.check_accuracy_row(lambda model, bench: None), "returned None")


def test_accuracy_row_check_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    ch02.check_accuracy_row(evaluate)
    assert torch.equal(torch.get_rng_state(), before)


# --- backward and forward transfer ------------------------------------------------------


def bwt_variant(row_after):
    """BWT with ``row_after(j)`` as the 'right after task j' row index (0-based columns)."""
    def bwt(R):
        T = R.shape[1]
        return float(np.mean([R[T, j] - R[row_after(j), j] for j in range(T - 1)]))
    return bwt


@pytest.mark.parametrize("wrong, hint", [
    (lambda R: -metrics.backward_transfer(R), "Wrong sign"),
    (lambda R: float(np.sum([R[-1, j] - R[j + 1, j] for j in range(R.shape[1])]) / R.shape[1]), "Divide by T − 1"),
    (bwt_variant(lambda j: j), "Off by one row"),
    (lambda R: float(np.mean([R[-2, j] - R[j + 1, j] for j in range(R.shape[1] - 1)])), "row before it"),
    (lambda R: float(np.mean([R[4, j] - R[j + 1, j] for j in range(3)])), "T = R.shape[1]"),
])
def test_backward_transfer_mistakes(wrong, hint):
    failing(ch02.check_backward_transfer(wrong), hint)


def test_backward_transfer_that_reads_row_0_fails_the_how_case():
    offset = ch02.EXAMPLE[0].mean()
    wrong = lambda R: metrics.backward_transfer(R) + R[0].mean() - offset  # noqa: E731 (right on the example only)
    text = failing(ch02.check_backward_transfer(wrong), "only row 0 changes")
    assert "✓ the worked example" in text


def test_random_matrices_blame_the_size_only_when_the_example_is_right():
    wrong_everywhere = bwt_variant(lambda j: j)
    text = failing(ch02.check_backward_transfer(wrong_everywhere), "fix the worked example first")
    assert "do not hard-code" not in text


def test_a_function_that_writes_into_R_is_caught():
    def in_place(R):
        R[0] = 0.0
        return metrics.backward_transfer(R)

    failing(ch02.check_backward_transfer(in_place), "changed the matrix")


@pytest.mark.parametrize("wrong, hint", [
    (lambda R: float(np.mean([R[j, j] for j in range(1, R.shape[1])])), "Subtract b̄_j"),
    (lambda R: float(np.mean([R[j + 1, j] - R[0, j] for j in range(1, R.shape[1])])), "*after*"),
    (lambda R: float(np.mean(np.diag(R[:-1]) - R[0])), "Divide by T − 1"),
    (lambda R: -metrics.forward_transfer(R), "Wrong sign"),
    (lambda R: float(np.mean([R[j, j] - R[0, j] for j in range(1, 4)])), "T = R.shape[1]"),
])
def test_forward_transfer_mistakes(wrong, hint):
    failing(ch02.check_forward_transfer(wrong), hint)


def test_forward_transfer_that_reads_b1_fails_the_how_case():
    offset = ch02.EXAMPLE[0, 0]
    wrong = lambda R: metrics.forward_transfer(R) + R[0, 0] - offset  # noqa: E731
    failing(ch02.check_forward_transfer(wrong), "depends on b̄_1")


# --- forgetting curve -------------------------------------------------------------------


def curve_with(best):
    """The forgetting curve with ``best(R, k, j)`` as the reference accuracy of task j at k."""
    def curve(R):
        T = R.shape[1]
        return [float(np.mean([best(R, k, j) - R[k, j] for j in range(k - 1)])) for k in range(2, T + 1)]
    return curve


@pytest.mark.parametrize("wrong, hint", [
    (curve_with(lambda R, k, j: R[j + 1, j]), "That is −BWT"),
    (curve_with(lambda R, k, j: R[1:k + 1, j].max()), "includes row k itself"),
    (lambda R: [metrics.forgetting(R)] * (R.shape[1] - 1), "as it stood after"),
    (lambda R: forgetting_curve(R)[1:], "T − 1 = 3 values"),
    (lambda R: [metrics.forgetting(R[: k + 1, :k]) for k in range(1, R.shape[1] + 1) if k >= 2][:3], "T = R.shape[1]"),
])
def test_forgetting_curve_mistakes(wrong, hint):
    failing(ch02.check_forgetting_curve(wrong), hint)


def test_forgetting_curve_that_reads_row_0_or_the_future_fails_the_how_case():
    with_row_0 = curve_with(lambda R, k, j: R[0:k, j].max())
    text = failing(ch02.check_forgetting_curve(with_row_0), "only row 0")
    assert "✓ the worked example" in text

    peeks_ahead = curve_with(lambda R, k, j: R[1:R.shape[1], j].max())  # best over all rows but the last, at every k
    failing(ch02.check_forgetting_curve(peeks_ahead), "changed when only rows after")
