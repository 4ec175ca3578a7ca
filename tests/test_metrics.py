"""Metrics against matrices computed by hand."""

import numpy as np
import pytest

from cl_course_lib.metrics import (AccuracyMatrix, average_accuracy, backward_transfer, forgetting,
                                   forward_transfer)

# 3 tasks. Row 0: untrained model; row i: after training task i.
R = np.array([
    [0.10, 0.20, 0.30],
    [0.90, 0.25, 0.35],
    [0.60, 0.80, 0.40],
    [0.50, 0.70, 0.95],
])


def test_acc_is_the_mean_of_the_last_row():
    assert average_accuracy(R) == pytest.approx((0.50 + 0.70 + 0.95) / 3)


def test_acc_after_k_averages_the_seen_tasks():
    assert average_accuracy(R, after=2) == pytest.approx((0.60 + 0.80) / 2)
    assert average_accuracy(R, after=1) == pytest.approx(0.90)


def test_bwt_by_hand():
    # task 1: 0.50 - 0.90; task 2: 0.70 - 0.80
    assert backward_transfer(R) == pytest.approx(((0.50 - 0.90) + (0.70 - 0.80)) / 2)


def test_fwt_by_hand():
    # task 2 before training it (row 1) minus untrained; task 3 likewise (row 2)
    assert forward_transfer(R) == pytest.approx(((0.25 - 0.20) + (0.40 - 0.30)) / 2)


def test_forgetting_uses_the_best_earlier_accuracy():
    # task 1: max(0.90, 0.60) - 0.50; task 2: max(0.25, 0.80) - 0.70
    assert forgetting(R) == pytest.approx(((0.90 - 0.50) + (0.80 - 0.70)) / 2)


def test_no_forgetting_matrix():
    perfect = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    m = AccuracyMatrix(perfect)
    assert (m.acc, m.bwt, m.fwt, m.forgetting) == (1.0, 0.0, 0.0, 0.0)


def test_up_to_is_the_matrix_so_far():
    m = AccuracyMatrix(R).up_to(2)
    assert m.values.shape == (3, 2)
    assert m.acc == pytest.approx(0.70)
    assert m.bwt == pytest.approx(0.60 - 0.90)


def test_summary_of_one_task_has_only_acc():
    assert AccuracyMatrix(np.array([[0.1], [0.9]])).summary() == {"acc": 0.9}


@pytest.mark.parametrize("bad", [np.zeros((3, 3)), np.zeros(4), np.zeros((1, 0))])
def test_wrong_shapes_are_explained(bad):
    with pytest.raises(ValueError, match=r"shape \(T \+ 1, T\)"):
        AccuracyMatrix(bad)


def test_transfer_metrics_need_two_tasks():
    with pytest.raises(ValueError, match="at least 2 tasks"):
        backward_transfer(np.array([[0.1], [0.9]]))
