"""Checks for chapter 1's exercises: online linear regression.

Every check compares the learner's function with the one implementation in
:mod:`cl_course_lib.online`, on fixed small examples, and names the usual mistake in its
hint. Two cases test *how*, not only *what*: the SGD step must not modify ``w`` in place,
and the RLS update must not invert (or solve with) a matrix.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np
import torch

from .. import online
from .core import Check, Report, expect

_F64 = torch.float64


def _sample(seed: int, n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A small noisy linear data set (x (n, d), y (n,)), independent of the global seed."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=_F64)
    w = torch.randn(d, generator=gen, dtype=_F64)
    y = x @ w + 0.3 * torch.randn(n, generator=gen, dtype=_F64)
    return x, y


def _tensor(value, what: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The learner's result as a float64 tensor of ``shape``, or a failed case saying why."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    expect(isinstance(value, torch.Tensor), f"Return {what} as a torch tensor; got {type(value).__name__}.")
    expect(
        tuple(value.shape) == shape,
        f"{what[0].upper() + what[1:]} should have shape {shape}; got {tuple(value.shape)}.",
    )
    return value.to(_F64)


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    return bool(torch.allclose(a, b, rtol=rtol, atol=atol))


# --------------------------------------------------------------------------------------
# Exercise 1: the SGD step


def check_sgd_step(sgd_step) -> Report:
    """``sgd_step(w, x, y, lr) -> new w`` for the loss ½ (w·x − y)²."""
    check = Check("sgd_step")
    w = torch.tensor([0.5, -1.0, 2.0], dtype=_F64)
    x = torch.tensor([1.0, 2.0, -1.0], dtype=_F64)
    y, lr = torch.tensor(0.5, dtype=_F64), 0.1
    gradient = x * (w @ x - y)
    want = online.sgd_step(w, x, y, lr)

    @check.case("one step on a small example matches w − η · x (w·x − y)")
    def _():
        got = _tensor(sgd_step(w.clone(), x.clone(), y.clone(), lr), "the new weights", tuple(w.shape))
        expect(not _close(got, w + lr * gradient), "You stepped uphill: subtract the gradient, w − η · gradient.")
        expect(
            not _close(got, w - 2 * lr * gradient),
            "Your step is twice too long: the loss is ½ (w·x − y)², whose gradient x (w·x − y) has no factor 2.",
        )
        expect(
            not _close(got, w - lr * x * (w @ x)),
            "The residual is w·x − y: you left out the target y.",
        )
        expect(
            _close(got, want),
            "The gradient of ½ (w·x − y)² with respect to w is x (w·x − y), a vector like w; "
            "the step is w − lr * x * (w @ x − y).",
        )

    @check.case("the step agrees with autograd's gradient on 20 random samples")
    def _():
        gen = torch.Generator().manual_seed(1)
        for _ in range(20):
            w_r, x_r = torch.randn(5, generator=gen, dtype=_F64), torch.randn(5, generator=gen, dtype=_F64)
            y_r = torch.randn((), generator=gen, dtype=_F64)
            lr_r = float(torch.rand((), generator=gen)) * 0.2
            leaf = w_r.clone().requires_grad_(True)
            (0.5 * (leaf @ x_r - y_r) ** 2).backward()
            got = _tensor(sgd_step(w_r.clone(), x_r, y_r, lr_r), "the new weights", (5,))
            expect(
                _close(got.detach(), w_r - lr_r * leaf.grad),
                "Your step differs from w − lr · (autograd's gradient of ½ (w·x − y)²). If the small "
                "example passes, use only the arguments w, x, y, lr (no numbers fixed in the code).",
            )

    @check.case("the w you are given is left unchanged (no in-place update)")
    def _():
        given = w.clone()
        result = sgd_step(given, x.clone(), y.clone(), lr)
        expect(
            torch.equal(given, w),
            "Your function changed the caller's w (with `w -= ...`, `w.sub_(...)` or `w[:] = ...`). "
            "Return a new tensor, `return w - lr * ...`: an online loop often still needs the old "
            "weights, e.g. to record them or to predict with them.",
        )
        expect(result is not given, "Return a new tensor, not the w you were given.")

    return check.run()


# --------------------------------------------------------------------------------------
# Exercise 2: the RLS update


class _MatrixInverted(Exception):
    pass


@contextlib.contextmanager
def _no_matrix_inversion():
    """Make every matrix inverse / solve in torch, NumPy and SciPy raise while active."""

    def refuse(*args, **kwargs):
        raise _MatrixInverted

    targets = [
        (torch.linalg, "inv"), (torch.linalg, "inv_ex"), (torch.linalg, "pinv"), (torch.linalg, "solve"),
        (torch.linalg, "solve_ex"), (torch.linalg, "lstsq"), (torch.linalg, "tensorinv"),
        (torch, "inverse"), (torch, "pinverse"), (torch, "cholesky_inverse"), (torch, "linalg_solve"),
        (torch.Tensor, "inverse"), (torch.Tensor, "pinverse"),
        (np.linalg, "inv"), (np.linalg, "pinv"), (np.linalg, "solve"), (np.linalg, "lstsq"),
    ]
    if "scipy.linalg" in sys.modules:
        scipy_linalg = sys.modules["scipy.linalg"]
        targets += [(scipy_linalg, name) for name in ("inv", "pinv", "solve", "lstsq")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in targets if hasattr(owner, name)]
    try:
        for owner, name, _ in saved:
            setattr(owner, name, refuse)
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def _run_rls(rls_update, x, y, forgetting: float, delta: float) -> torch.Tensor:
    d = x.shape[1]
    w, P = torch.zeros(d, dtype=_F64), torch.eye(d, dtype=_F64) / delta
    for t in range(len(y)):
        result = rls_update(w.clone(), P.clone(), x[t].clone(), y[t].clone(), forgetting)
        expect(
            isinstance(result, tuple) and len(result) == 2,
            "Return a pair (new w, new P): `return w_new, P_new`.",
        )
        w, P = _tensor(result[0], "the new w", (d,)), _tensor(result[1], "the new P", (d, d))
    return w


def check_rls_update(rls_update) -> Report:
    """``rls_update(w, P, x, y, forgetting) -> (w_new, P_new)``, Sherman–Morrison, no inverse."""
    check = Check("rls_update")
    x, y = _sample(seed=2, n=40, d=4)
    delta = 0.5

    @check.case("one update (forgetting = 1) matches the recursive least-squares formulas")
    def _():
        w, P = torch.tensor([0.2, -0.1, 0.0, 0.4], dtype=_F64), torch.eye(4, dtype=_F64) * 2.0
        want_w, want_P = online.rls_update(w, P, x[0], y[0], 1.0)
        result = rls_update(w.clone(), P.clone(), x[0].clone(), y[0].clone(), 1.0)
        expect(isinstance(result, tuple) and len(result) == 2, "Return a pair (new w, new P): `return w_new, P_new`.")
        got_w, got_P = _tensor(result[0], "the new w", (4,)), _tensor(result[1], "the new P", (4, 4))
        expect(
            _close(got_w, want_w),
            "w moves along the gain k = P x / (1 + xᵀ P x) by the a-priori error e = y − w·x: "
            "w_new = w + k e (use the old P in k).",
        )
        expect(
            _close(got_P, want_P),
            "w is right; now P. Sherman–Morrison: P_new = P − (P x)(P x)ᵀ / (1 + xᵀ P x).",
        )

    @check.case("40 updates from w = 0, P = I/δ give the batch ridge solution (XᵀX + δI)⁻¹Xᵀy")
    def _():
        got = _run_rls(rls_update, x, y, 1.0, delta)
        want = online.least_squares(x, y, delta=delta)
        expect(
            _close(got, want),
            "One step is right but the sequence drifts away from least squares: return the "
            "*updated* P as well as w, and use the updated pair in the next call.",
        )

    @check.case("with forgetting λ = 0.9, w equals least squares weighted by λ^(n−i)")
    def _():
        lam, n = 0.9, len(y)
        got = _run_rls(rls_update, x, y, lam, delta)
        weights = lam ** torch.arange(n - 1, -1, -1, dtype=_F64)  # λ^(n−1−i), newest sample weight 1
        want = online.least_squares(x, y, delta=delta * lam**n, sample_weights=weights)
        expect(
            _close(got, want),
            "λ appears twice: in the denominator, k = P x / (λ + xᵀ P x), and in "
            "P_new = (P − (P x)(P x)ᵀ / (λ + xᵀ P x)) / λ.",
        )

    @check.case("no matrix is inverted or solved for (only products and one division)")
    def _():
        w, P = torch.zeros(4, dtype=_F64), torch.eye(4, dtype=_F64)
        try:
            with _no_matrix_inversion():
                rls_update(w, P, x[0].clone(), y[0].clone(), 1.0)
        except _MatrixInverted:
            expect(
                False,
                "Your update calls a matrix inverse or solver (inv, pinv, solve, lstsq, ...). That "
                "costs O(d³) per sample and is what RLS avoids: Sherman–Morrison updates P with "
                "P x, one scalar xᵀ P x and an outer product, O(d²).",
            )

    return check.run()


# --------------------------------------------------------------------------------------
# Exercise 3: regret


def check_regret(regret) -> Report:
    """``regret(predictions, x, y) -> float``: cumulative ½-squared loss minus the best fixed weight's."""
    check = Check("regret")
    x, y = _sample(seed=3, n=30, d=3)
    best_w = online.least_squares(x, y)

    def scalar(value) -> float:
        if isinstance(value, (torch.Tensor, np.ndarray)):
            expect(value.size == 1 if isinstance(value, np.ndarray) else value.numel() == 1,
                   "Return one number: the regret after the last sample (sum over all steps).")
            return float(value.item())
        expect(isinstance(value, (int, float)), f"Return a number; got {type(value).__name__}.")
        return float(value)

    def hint_for(got: float, want: float, n: int) -> str:
        if abs(got - 2 * want) <= 1e-6 * abs(want) + 1e-9:
            return "Twice too large: the loss is ½ (ŷ − y)², with the ½."
        if abs(got - want / n) <= 1e-6 * abs(want / n) + 1e-9:
            return "You averaged: regret is a sum over the steps, not a mean."
        return (
            "Regret = Σ_t ½ (ŷ_t − y_t)² − min_w Σ_t ½ (w·x_t − y_t)². The minimiser is batch "
            "least squares on all samples (e.g. torch.linalg.lstsq(x, y[:, None]).solution)."
        )

    @check.case("predicting with the best fixed weight in hindsight gives regret 0")
    def _():
        got = scalar(regret((x @ best_w).clone(), x.clone(), y.clone()))
        expect(abs(got) < 1e-6, f"Got {got:.6g}. " + hint_for(got, 0.0, len(y)))

    @check.case("the all-zero predictor: regret = ½Σy² − (best fixed weight's loss)")
    def _():
        predictions = torch.zeros_like(y)
        want = float(online.cumulative_regret(predictions, x, y)[-1])
        got = scalar(regret(predictions, x.clone(), y.clone()))
        expect(abs(got - want) <= 1e-6 * abs(want), f"Got {got:.6g}, expected {want:.6g}. " + hint_for(got, want, len(y)))

    @check.case("an SGD learner's predictions: matches the library on a fresh stream")
    def _():
        x2, y2 = _sample(seed=4, n=50, d=5)
        predictions = online.run_sgd(x2, y2, lr=0.05).predictions
        want = float(online.cumulative_regret(predictions, x2, y2)[-1])
        got = scalar(regret(predictions.clone(), x2.clone(), y2.clone()))
        expect(abs(got - want) <= 1e-6 * abs(want), f"Got {got:.6g}, expected {want:.6g}. " + hint_for(got, want, len(y2)))

    return check.run()
