"""Chapter 4's exercise checks: right answers pass, each usual mistake fails with its own hint,
a stub says "not done yet", and the checks leave the caller's random state alone."""

import random

import pytest
import torch
from check_helpers import failing, leaves_random_state_alone, not_done_yet, passing, stub

from cl_course_lib.checks import ch04
from cl_course_lib.memory import ReservoirBuffer
from cl_course_lib.strategies.agem import project_agem


def reservoir_with(*, offset=1, test=True, fifo=False, global_rng=False, draw_always=False):
    """Algorithm R with one chosen mistake (the defaults: the right answer)."""
    def reservoir_sample(stream, size, draw):
        memory = [None] * size
        for i, item in enumerate(stream):
            if i < size:
                memory[i] = item
            elif fifo:
                memory = memory[1:] + [item]
            elif draw_always:
                memory[draw(size)] = item
            else:
                j = random.randrange(i + 1) if global_rng else draw(i + offset)
                if not test or j < size:
                    memory[j % size] = item
        return memory
    return reservoir_sample


def reservoir_tensor(stream, size, draw):
    """A right answer that returns a tensor and uses the library's buffer for the slots."""
    stream = torch.as_tensor(stream)
    draws = torch.tensor([0] * min(size, len(stream)) + [draw(i + 1) for i in range(size, len(stream))])
    buffer = ReservoirBuffer(size)
    buffer.add(torch.zeros(len(stream), 1), stream, 0, draws=draws)
    return buffer.y


def agem_with(*, sign=-1.0, denominator="g_ref", always=False, in_place=False):
    def agem_project(g, g_ref):
        dot = g @ g_ref
        if dot >= 0 and not always:
            return g
        norm = g_ref @ g_ref if denominator == "g_ref" else g @ g
        if in_place:
            g += sign * (dot / norm) * g_ref
            return g
        return g + sign * (dot / norm) * g_ref
    return agem_project


CHECKS = {
    "reservoir_loop": (ch04.check_reservoir_sample, reservoir_with()),
    "reservoir_tensor": (ch04.check_reservoir_sample, reservoir_tensor),
    "agem_project": (ch04.check_agem_project, agem_with()),
    "agem_project_library": (ch04.check_agem_project, project_agem),
}


@pytest.mark.parametrize("name", CHECKS)
def test_right_answers_pass(name):
    check, right = CHECKS[name]
    passing(check(right))


@pytest.mark.parametrize("check", [ch04.check_reservoir_sample, ch04.check_agem_project])
def test_a_stub_is_not_done_yet(check):
    not_done_yet(check(stub))


@pytest.mark.parametrize("wrong, hint", [
    (reservoir_with(fifo=True), "replace the oldest"),
    (reservoir_with(offset=0), "Off by one"),
    (reservoir_with(global_rng=True), "global random generator"),
    (reservoir_with(draw_always=True), "every item is kept"),
    (lambda stream, size, draw: list(stream[:size]), "called draw 0 times"),
    (lambda stream, size, draw: None, "returned None"),
    (lambda stream, size, draw: list(stream), "you returned"),
])
def test_reservoir_mistakes(wrong, hint):
    failing(ch04.check_reservoir_sample(wrong), hint)


def test_a_fifo_memory_fails_the_slots_and_the_distribution():
    text = failing(ch04.check_reservoir_sample(reservoir_with(fifo=True)), "replace the oldest")
    assert "0 of 4 checks passed" not in text and "✓ while the memory is filling" in text


@pytest.mark.parametrize("wrong, hint", [
    (agem_with(sign=+1.0), "Wrong sign"),
    (agem_with(always=True), "Project only when"),
    (agem_with(denominator="g"), "not by g·g"),
    (agem_with(in_place=True), "in place"),
    (lambda g, g_ref: g - (g @ g_ref) / (g @ g) * g, "multiple of g"),
    (lambda g, g_ref: None, "returned None"),
    (lambda g, g_ref: (g - g_ref).tolist(), "torch tensor"),
])
def test_agem_mistakes(wrong, hint):
    failing(ch04.check_agem_project(wrong), hint)


def test_the_in_place_mistake_fails_only_the_how_case():
    text = failing(ch04.check_agem_project(agem_with(in_place=True)), "in place")
    assert "2 of 3 checks passed" in text


def test_checks_leave_the_global_random_state_alone():
    leaves_random_state_alone(lambda: ch04.check_reservoir_sample(reservoir_with()),
                              lambda: ch04.check_agem_project(agem_with()))
