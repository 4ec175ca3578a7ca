"""Checks for chapter 2's exercises: the accuracy matrix and the metrics read from it.

Every check compares the learner's function with the one implementation (``train.evaluate``
for a row, :mod:`cl_course_lib.metrics` for the numbers), on a worked example whose usual
mistakes each give a different number, then on random matrices of every size from 2 to 9
tasks. Some cases test *how*, not only *what*: a row must be measured in eval mode and with
the task's head in task-IL; BWT must ignore row 0 (the untrained model) and FWT must use it;
the forgetting after task k must not look at rows after k, nor at row 0.

The toy benchmarks and models are built here, small and seeded, so a check takes
milliseconds and never touches the learner's random state.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import metrics
from ..data.benchmarks import Benchmark, Task, TaskData
from ..models import MLP
from ..train import evaluate
from .core import Check, Report, expect

# The worked example of the exercise notebook: 4 tasks, row 0 before training.
# Task 1 improves after task 2 (so its best is not on the diagonal) and task 2 recovers above
# its first peak at the end (so the forgetting at k must not include row k).
EXAMPLE = np.array([
    [0.10, 0.12, 0.08, 0.11],
    [0.90, 0.20, 0.15, 0.10],
    [0.94, 0.90, 0.30, 0.12],
    [0.70, 0.85, 0.96, 0.25],
    [0.60, 0.93, 0.80, 0.98],
])


def _random_matrices(seed: int = 0):
    """Accuracy matrices of shape (T + 1, T) for T = 2..9, two of each, entries in [0, 1]."""
    gen = np.random.default_rng(seed)
    return [gen.uniform(0.0, 1.0, size=(t + 1, t)) for t in range(2, 10) for _ in range(2)]


def _number(value, what: str) -> float:
    """The learner's result as a float, or a failed case saying what to return."""
    if isinstance(value, torch.Tensor):
        expect(value.numel() == 1, f"Return {what} as one number; got a tensor of shape {tuple(value.shape)}.")
        return float(value.item())
    if isinstance(value, np.ndarray):
        expect(value.size == 1, f"Return {what} as one number; got an array of shape {value.shape}.")
        return float(value.item())
    expect(isinstance(value, (int, float, np.number)) and not isinstance(value, bool),
           f"Return {what} as a number; got {type(value).__name__}.")
    return float(value)


def _numbers(values, what: str, length: int, wrong_length: str = "") -> np.ndarray:
    """The learner's sequence as a float array of ``length``, or a failed case saying why
    (``wrong_length``: the hint when only the length is wrong)."""
    expect(values is not None, f"Return {what}; your function returned None (a missing `return`?).")
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        array = np.array([_number(v, "each value") for v in values], dtype=float)
    except TypeError:
        expect(False, f"Return a list (or array) of numbers, {what}; got {type(values).__name__}.")
    expect(len(array) == length, wrong_length or f"Return {what}; got {len(array)} values.")
    return array


def _close(a, b, tol: float = 1e-9) -> bool:
    return bool(np.allclose(a, b, rtol=0.0, atol=tol))


# --------------------------------------------------------------------------------------
# Exercise 1: one row of the accuracy matrix


def _toy_benchmark(scenario: str, seed: int, n_tasks: int = 3, k: int = 2, d: int = 12, n: int = 200) -> Benchmark:
    """Random inputs and labels laid out like ``benchmarks.split`` lays out a real benchmark."""
    gen = torch.Generator().manual_seed(seed)
    tasks = []
    for t in range(n_tasks):
        offset = t * k if scenario == "class" else 0

        def sample(size):
            return TaskData(torch.randn(size, d, generator=gen),
                            torch.randint(0, k, (size,), generator=gen) + offset, t)

        classes = tuple(str(offset + c) for c in range(k))
        tasks.append(Task(t, f"toy task {t + 1}", classes, train=sample(n // 2), test=sample(n)))
    n_outputs = k * n_tasks if scenario == "class" else k
    n_heads = n_tasks if scenario == "task" else 1
    return Benchmark(f"toy_{scenario}", scenario, tuple(tasks), n_outputs, n_heads, (d,))


def _seeded(build, seed: int):
    """``build()`` under a fixed torch seed, without touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class _DropoutNet(nn.Module):
    """A one-head model with dropout: it predicts differently in train and eval mode."""

    def __init__(self, d: int, n_outputs: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, n_outputs))

    def forward(self, x: torch.Tensor, task=None) -> torch.Tensor:
        return self.body(x)


@torch.no_grad()
def _own_outputs_row(model, bench: Benchmark) -> list[float]:
    """The task-IL shortcut on a class-IL model: arg-max over the task's own outputs only."""
    model.eval()
    k = bench.n_outputs // bench.n_tasks
    row = []
    for task in bench.tasks:
        logits = model(task.test.x, task.id)[:, task.id * k:(task.id + 1) * k]
        row.append((logits.argmax(dim=1) + task.id * k == task.test.y).float().mean().item())
    return row


def _learner_row(accuracy_row, model, bench) -> np.ndarray:
    return _numbers(accuracy_row(model, bench), f"one accuracy per task: {bench.n_tasks} numbers", bench.n_tasks)


def check_accuracy_row(accuracy_row) -> Report:
    """``accuracy_row(model, bench) -> list[float]``: test accuracy on every task, as ``cl.run`` records it."""
    check = Check("accuracy_row")

    @check.case("class-IL: one accuracy per task, arg-max over all outputs, as cl.run records it")
    def _():
        bench = _toy_benchmark("class", seed=0)
        model = _seeded(lambda: MLP(12, [16], bench.n_outputs), seed=1)
        got = _learner_row(accuracy_row, model, bench)
        want = evaluate(model, bench)
        expect(np.all((got >= 0) & (got <= 1)),
               "An accuracy is a fraction between 0 and 1: divide the number of correct predictions "
               "by the number of test samples.")
        expect(not _close(got, _own_outputs_row(model, bench), 1e-6),
               "You took the arg-max over the task's own outputs only. That uses the task id at test "
               "time: it is task-IL accuracy. In class-IL the arg-max runs over all outputs.")
        with torch.no_grad():
            train_row = [float((model(t.train.x).argmax(dim=1) == t.train.y).float().mean()) for t in bench.tasks]
        expect(not _close(got, train_row, 1e-6), "You scored the training sets: use each task's test set, task.test.")
        expect(_close(got, want, 1e-6),
               "For each task: predictions = model(task.test.x, task.test.task).argmax(dim=1), accuracy = "
               "(predictions == task.test.y).float().mean(). Labels are already global (task 2 is 2 and 3).")

    @check.case("task-IL: each task is scored with its own head (the task id is passed to the model)")
    def _():
        bench = _toy_benchmark("task", seed=2)
        model = _seeded(lambda: MLP(12, [16], bench.n_outputs, heads=bench.n_heads), seed=3)
        got = _learner_row(accuracy_row, model, bench)
        with torch.no_grad():
            head_0 = [float((model(t.test.x, 0).argmax(dim=1) == t.test.y).float().mean()) for t in bench.tasks]
        expect(not _close(got, head_0, 1e-6),
               "Every task was scored with head 0: pass the task's id, model(x, task.test.task).")
        expect(_close(got, evaluate(model, bench), 1e-6),
               "Call the model with the task id, model(task.test.x, task.test.task), so that a multi-head "
               "model uses the task's head; single-head models ignore it.")

    @check.case("the model is evaluated in eval mode (a model with dropout gives its eval-mode accuracy)")
    def _():
        bench = _toy_benchmark("domain", seed=4)
        model = _seeded(lambda: _DropoutNet(12, bench.n_outputs), seed=5)
        want = evaluate(model, bench)  # leaves the model in eval mode
        model.train()  # as the training loop leaves it
        got = _seeded(lambda: _learner_row(accuracy_row, model, bench), seed=6)
        expect(_close(got, want, 1e-6),
               "Call model.eval() before predicting. In train mode, dropout (and BatchNorm) make "
               "the predictions random, so the accuracy matrix would be noisy; cl.run evaluates in eval mode.")

    return check.run()


# --------------------------------------------------------------------------------------
# Exercise 2: backward and forward transfer

_ANY_T = "take T from the matrix, T = R.shape[1], and do not hard-code 4 tasks."


def _call_on_copy(fn, matrix: np.ndarray):
    """Call ``fn`` on a copy of ``matrix`` and fail if it modified its argument."""
    given = matrix.copy()
    result = fn(given)
    expect(np.array_equal(given, matrix), "Your function changed the matrix it was given: compute "
           "from R without writing into it (no R[...] = ..., no in-place -=).")
    return result


def _any_t_hint(fn, right_on_example, t: int) -> str:
    """The hint for a wrong value on a random matrix: the size, if the worked example is right."""
    try:
        example_ok = right_on_example(fn(EXAMPLE.copy()))
    except Exception:
        example_ok = False
    if example_ok:
        return f"Right on the example but not with T = {t}: {_ANY_T}"
    return f"Wrong with T = {t} tasks as well: fix the worked example first (the case above), then try again."


def _call_any_t(fn, matrix: np.ndarray):
    """``_call_on_copy``, turning an index error on an unusual T into the hint it stands for."""
    try:
        return _call_on_copy(fn, matrix)
    except IndexError as err:
        expect(False, f"With T = {matrix.shape[1]} tasks your code indexed outside R ({err}): {_ANY_T}")


def check_backward_transfer(backward_transfer) -> Report:
    """``backward_transfer(R) -> float``: Lopez-Paz & Ranzato 2017, eq. (3)."""
    check = Check("backward_transfer")
    want = metrics.backward_transfer(EXAMPLE)
    t = EXAMPLE.shape[1]
    diffs = [EXAMPLE[t, j] - EXAMPLE[j + 1, j] for j in range(t - 1)]
    mistakes = {
        -want: "Wrong sign: BWT is R[T, j] − R[j, j] (after the last task minus right after task j), "
               "negative when the model forgets.",
        sum(diffs) / t: "Divide by T − 1: the last task has nothing after it, so only tasks 1..T−1 count.",
        float(np.mean([EXAMPLE[t, j] - EXAMPLE[j, j] for j in range(t - 1)])):
            "Off by one row: row 0 is the untrained model, so 'right after task j' (column j − 1 in "
            "code) is row j: R[j, j - 1], i.e. np.diag(R[1:]).",
        float(np.mean([EXAMPLE[t - 1, j] - EXAMPLE[j + 1, j] for j in range(t - 1)])):
            "The final row is R[T] (= R[-1]), after the last task; you used the row before it.",
    }

    @check.case(f"the worked example (T = 4) gives BWT = {want:.4f}")
    def _():
        got = _number(_call_on_copy(backward_transfer, EXAMPLE), "BWT")
        for wrong, hint in mistakes.items():
            expect(not np.isclose(got, wrong, atol=1e-9), f"Got {got:.4f}. {hint}")
        expect(np.isclose(got, want, atol=1e-9),
               f"Got {got:.4f}, expected {want:.4f}. BWT = 1/(T−1) Σ_(j=1..T−1) (R[T, j] − R[j, j]), "
               "with R[i, j] in code R[i, j - 1].")

    @check.case("random matrices with T = 2 to 9 tasks: matches cl_course_lib.metrics")
    def _():
        for matrix in _random_matrices(seed=1):
            got = _number(_call_any_t(backward_transfer, matrix), "BWT")
            expect(np.isclose(got, metrics.backward_transfer(matrix), atol=1e-9),
                   _any_t_hint(backward_transfer, lambda v: np.isclose(float(v), want, atol=1e-9), matrix.shape[1]))

    @check.case("how: row 0 (the untrained model) plays no part in BWT")
    def _():
        gen = np.random.default_rng(2)
        for matrix in _random_matrices(seed=3)[:6]:
            other = matrix.copy()
            other[0] = gen.uniform(0.0, 1.0, size=matrix.shape[1])
            a, b = (_number(_call_on_copy(backward_transfer, m), "BWT") for m in (matrix, other))
            expect(np.isclose(a, b, atol=1e-12),
                   "Your BWT changes when only row 0 changes. BWT compares trained models with each "
                   "other (rows 1..T); row 0 is only for FWT.")

    return check.run()


def check_forward_transfer(forward_transfer) -> Report:
    """``forward_transfer(R) -> float``: Lopez-Paz & Ranzato 2017, eq. (4)."""
    check = Check("forward_transfer")
    want = metrics.forward_transfer(EXAMPLE)
    t = EXAMPLE.shape[1]
    mistakes = {
        float(np.mean([EXAMPLE[j, j] for j in range(1, t)])):
            "Subtract b̄_j = R[0, j]: without it you measure how well an untrained guess does, not transfer.",
        float(np.mean([EXAMPLE[j + 1, j] - EXAMPLE[0, j] for j in range(1, t)])):
            "That is the accuracy right *after* training on task j. FWT looks at task j *before* it is "
            "trained on: row j − 1 (after task j − 1), i.e. R[j - 1, j] in maths, np.diag(R[:T]) in code.",
        float(np.sum([EXAMPLE[j, j] - EXAMPLE[0, j] for j in range(1, t)]) / t):
            "Divide by T − 1: task 1 has no task before it, so only tasks 2..T count.",
        -want: "Wrong sign: FWT = R[j − 1, j] − b̄_j, positive when earlier tasks help.",
    }

    @check.case(f"the worked example (T = 4) gives FWT = {want:.4f}")
    def _():
        got = _number(_call_on_copy(forward_transfer, EXAMPLE), "FWT")
        for wrong, hint in mistakes.items():
            expect(not np.isclose(got, wrong, atol=1e-9), f"Got {got:.4f}. {hint}")
        expect(np.isclose(got, want, atol=1e-9),
               f"Got {got:.4f}, expected {want:.4f}. FWT = 1/(T−1) Σ_(j=2..T) (R[j−1, j] − b̄_j): "
               "in code the entries R[j, j] − R[0, j] for columns j = 1..T−1.")

    @check.case("random matrices with T = 2 to 9 tasks: matches cl_course_lib.metrics")
    def _():
        for matrix in _random_matrices(seed=4):
            got = _number(_call_any_t(forward_transfer, matrix), "FWT")
            expect(np.isclose(got, metrics.forward_transfer(matrix), atol=1e-9),
                   _any_t_hint(forward_transfer, lambda v: np.isclose(float(v), want, atol=1e-9), matrix.shape[1]))

    @check.case("how: FWT uses row 0: raising b̄_2..b̄_T by 0.1 lowers it by 0.1, and b̄_1 plays no part")
    def _():
        for matrix in _random_matrices(seed=5)[:6]:
            base = _number(_call_on_copy(forward_transfer, matrix), "FWT")
            raised = matrix.copy()
            raised[0, 1:] += 0.1
            expect(np.isclose(_number(_call_on_copy(forward_transfer, raised), "FWT"), base - 0.1, atol=1e-9),
                   "FWT must subtract the untrained model's accuracy b̄_j = R[0, j] on each task it "
                   "averages: a task that is easy even untrained gives no credit to earlier tasks.")
            first = matrix.copy()
            first[0, 0] = 1.0 - first[0, 0]
            expect(np.isclose(_number(_call_on_copy(forward_transfer, first), "FWT"), base, atol=1e-12),
                   "Your FWT depends on b̄_1 = R[0, 0], but task 1 has no task before it: start at the "
                   "second column.")

    return check.run()


# --------------------------------------------------------------------------------------
# Exercise 3: the forgetting curve


def _reference_curve(matrix: np.ndarray) -> np.ndarray:
    """F_k for k = 2..T: the library's forgetting on the matrix as it stood after task k."""
    return np.array([metrics.forgetting(matrix[: k + 1, :k]) for k in range(2, matrix.shape[1] + 1)])


def check_forgetting_curve(forgetting_curve) -> Report:
    """``forgetting_curve(R) -> list[float]``: F_k (Chaudhry et al. 2018) after each task k = 2..T."""
    check = Check("forgetting_curve")
    want = _reference_curve(EXAMPLE)
    t = EXAMPLE.shape[1]

    def variant(best):  # the curve with another choice of "best accuracy before k"
        return [float(np.mean([best(k, j) - EXAMPLE[k, j] for j in range(k - 1)])) for k in range(2, t + 1)]

    mistakes = [
        (variant(lambda k, j: EXAMPLE[j + 1, j]),
         "That is −BWT: you compared with the accuracy right after each task was learnt. Forgetting "
         "compares with the *best* accuracy before k: max over rows l = 1..k−1 of R[l, j]."),
        (variant(lambda k, j: EXAMPLE[1:k + 1, j].max()),
         "Your max includes row k itself, so f_j can never be negative. Take the max over rows "
         "1..k−1 (before task k): R[1:k, j].max()."),
        ([metrics.forgetting(EXAMPLE)] * (t - 1),
         "Every value is the forgetting after the last task. F_k uses the matrix as it stood after "
         "task k: rows 0..k and columns 0..k−1, R[:k + 1, :k]."),
    ]

    @check.case("the worked example (T = 4) gives [F_2, F_3, F_4] = [" + ", ".join(f"{v:.4f}" for v in want) + "]")
    def _():
        got = _numbers(_call_on_copy(forgetting_curve, EXAMPLE),
                       "one value per k = 2..T, so T − 1 = 3 values (after task 1 there is nothing to forget yet)", t - 1)
        for wrong, hint in mistakes:
            expect(not _close(got, wrong), f"Got {np.round(got, 4).tolist()}. {hint}")
        expect(_close(got, want),
               f"Got {np.round(got, 4).tolist()}. F_k = 1/(k−1) Σ_(j<k) (max_(1≤l<k) R[l, j] − R[k, j]): "
               "in code, rows 1..k−1 are R[1:k] and tasks 1..k−1 are the columns [:k - 1].")

    @check.case("random matrices with T = 2 to 9 tasks: matches cl_course_lib.metrics.forgetting at every k")
    def _():
        for matrix in _random_matrices(seed=6):
            t_r = matrix.shape[1]
            got = _numbers(_call_any_t(forgetting_curve, matrix), "the curve", t_r - 1,
                           f"With T = {t_r} tasks the curve has T − 1 = {t_r - 1} value{'s' * (t_r > 2)}: {_ANY_T}")
            expect(_close(got, _reference_curve(matrix)),
                   _any_t_hint(forgetting_curve, lambda v: len(v) == len(want) and _close(np.asarray(v, float), want), t_r))

    @check.case("how: F_k looks only at rows 1..k (changing row 0 or any row after k leaves it unchanged)")
    def _():
        gen = np.random.default_rng(7)
        for matrix in _random_matrices(seed=8)[4:10]:
            t_r = matrix.shape[1]
            values = f"T − 1 = {t_r - 1} values"
            base = _numbers(_call_any_t(forgetting_curve, matrix), values, t_r - 1)
            no_row_0 = matrix.copy()
            no_row_0[0] = 1.0
            expect(_close(_numbers(_call_any_t(forgetting_curve, no_row_0), values, t_r - 1), base, 1e-12),
                   "Your curve changes when only row 0 (the untrained model) changes: forgetting is "
                   "measured from the best accuracy *after training*, rows 1 and up.")
            for k in range(2, t_r):
                later = matrix.copy()
                later[k + 1:] = gen.uniform(0.0, 1.0, size=later[k + 1:].shape)
                got = _numbers(_call_any_t(forgetting_curve, later), values, t_r - 1)
                expect(_close(got[: k - 1], base[: k - 1], 1e-12),
                       f"F_{k} changed when only rows after {k} changed: F_k is what was known after task "
                       "k, so it may use rows 1..k only.")

    return check.run()
