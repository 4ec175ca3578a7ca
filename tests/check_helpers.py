"""Shared by the tests of the exercise checks (tests/test_chNN_checks.py)."""


def stub(*args):
    """A learner's untouched exercise function."""
    raise NotImplementedError  # your code here


def failing(report, hint: str) -> str:
    """Assert that ``report`` failed (not "not done yet") and shows ``hint``; return its text."""
    text = repr(report)
    assert not report.passed and not report.todo, text
    assert hint in text, text
    assert "Traceback" not in text
    return text


def not_done_yet(report) -> None:
    """Assert that ``report`` is the friendly "not done yet" for an untouched stub."""
    assert report.todo and not report.passed
    assert "not done yet" in repr(report) and "Traceback" not in repr(report)


def passing(report) -> None:
    """Assert that ``report`` passed every case."""
    assert report.passed, repr(report)
    assert "Well done!" in repr(report)


def leaves_random_state_alone(*calls) -> None:
    """Assert that running every ``call()`` leaves Python's, NumPy's and torch's global
    random states as they were: the checks must draw from their own generators."""
    import random

    import numpy as np
    import torch

    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(123)
    before = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    for call in calls:
        call()
    assert random.getstate() == before[0] and np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])
