"""cl_course_lib.online: every algorithm against its closed form or batch solution."""

from __future__ import annotations

import pytest
import torch

from cl_course_lib import online
from cl_course_lib.checks import ch01
from cl_course_lib.data.streams import linear_stream

F64 = torch.float64


def random_data(n: int = 120, d: int = 4, seed: int = 0, noise: float = 0.3):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=F64)
    y = x @ torch.randn(d, generator=gen, dtype=F64) + noise * torch.randn(n, generator=gen, dtype=F64)
    return x, y


# --------------------------------------------------------------------------------------
# SGD


def test_sgd_step_is_the_closed_form_and_autograd_gradient():
    w, x = torch.tensor([0.5, -1.0, 2.0], dtype=F64), torch.tensor([1.0, 2.0, -1.0], dtype=F64)
    y, lr = torch.tensor(0.5, dtype=F64), 0.1
    before = w.clone()
    got = online.sgd_step(w, x, y, lr)
    # w·x − y = 0.5 − 2 − 2 − 0.5 = −4, so w_new = w + 0.4 x
    assert torch.allclose(got, torch.tensor([0.9, -0.2, 1.6], dtype=F64), atol=1e-15)
    leaf = w.clone().requires_grad_(True)
    (0.5 * (leaf @ x - y) ** 2).backward()
    assert torch.allclose(got, w - lr * leaf.grad, atol=1e-15)
    assert torch.equal(w, before)  # not modified in place


def test_run_sgd_is_prequential():
    x, y = random_data()
    run = online.run_sgd(x, y, lr=0.05)
    assert run.predictions.shape == (120,) and run.weights.shape == (120, 4)
    assert run.predictions[0] == 0  # w_0 = 0
    assert torch.allclose(run.predictions[1:], (run.weights[:-1] * x[1:]).sum(dim=1), atol=1e-12)
    assert torch.allclose(run.weights[5], online.sgd_step(run.weights[4], x[5], y[5], 0.05), atol=1e-15)
    assert torch.allclose(run.losses(y), 0.5 * (run.predictions - y) ** 2)


@pytest.fixture(scope="module")
def steep_stream():
    """Two features of scales 2 and 0.5 with random signs: ‖x_t‖² = 4.25 for every t, λ_max ≈ 4."""
    return linear_stream(400, 2, noise=0.1, feature_scales=(2.0, 0.5), feature_dist="rademacher", seed=0)


def test_step_size_bounds(steep_stream):
    bounds = online.step_size_bounds(steep_stream.x)
    assert bounds.every_sample == pytest.approx(2 / 4.25, abs=1e-12)
    second_moment = steep_stream.x.T @ steep_stream.x / len(steep_stream)
    assert bounds.mean == pytest.approx(2 / torch.linalg.eigvalsh(second_moment).max().item(), rel=1e-12)
    assert bounds.mean == pytest.approx(0.5, abs=0.02)


def test_sgd_converges_below_the_bound_and_diverges_above(steep_stream):
    s, bound = steep_stream, online.step_size_bounds(steep_stream.x)
    for factor in (0.2, 0.5, 0.9):  # all below 2/‖x‖² here, since ‖x‖² ≈ λ_max
        losses = online.run_sgd(s.x, s.y, lr=factor * bound.mean).losses(s.y)
        assert losses[-50:].mean() < 0.2 and losses[-50:].mean() < losses[:50].mean(), factor
    diverged = online.run_sgd(s.x, s.y, lr=1.1 * bound.mean).losses(s.y)
    assert not (diverged[-50:].mean() < 1e10)  # huge, inf or nan
    # Between the per-sample bound 2/‖x‖² and 2/λ_max: the average converges, a single run does not.
    between = online.run_sgd(s.x, s.y, lr=0.95 * bound.mean).losses(s.y)
    assert between[-50:].mean() > 100 * between[:50].mean()


def test_sgd_validates_arguments():
    x, y = random_data()
    with pytest.raises(ValueError, match="lr=0"):
        online.run_sgd(x, y, lr=0)
    with pytest.raises(ValueError, match="shape"):
        online.run_sgd(x, y[:-1], lr=0.1)


# --------------------------------------------------------------------------------------
# Recursive least squares


def test_rls_equals_batch_least_squares():
    x, y = random_data(n=200, d=6)
    delta = 1e-6
    run = online.RecursiveLeastSquares(6, delta=delta).run(x, y)
    for t in (10, 50, 200):  # from t = 10: with t = d the system is square and the δ bias shows
        ridge = online.least_squares(x[:t], y[:t], delta=delta)
        assert torch.allclose(run.weights[t - 1], ridge, rtol=0, atol=1e-9), t  # exactly the ridge solution
        plain = torch.linalg.lstsq(x[:t], y[:t, None]).solution[:, 0]
        assert torch.allclose(run.weights[t - 1], plain, rtol=0, atol=1e-6), t  # and lstsq to 1e-6


def test_rls_forgetting_equals_weighted_least_squares():
    x, y = random_data(n=150, d=4, seed=1)
    lam, delta = 0.95, 0.5
    rls = online.RecursiveLeastSquares(4, forgetting=lam, delta=delta)
    run = rls.run(x, y)
    for t in (1, 3, 20, 150):
        weights = lam ** torch.arange(t - 1, -1, -1, dtype=F64)  # λ^(t−i), the newest sample weighs 1
        want = online.least_squares(x[:t], y[:t], delta=delta * lam**t, sample_weights=weights)
        assert torch.allclose(run.weights[t - 1], want, rtol=0, atol=1e-9), t
    # P is the inverse of the weighted correlation matrix, and exactly symmetric.
    gram = (x * (lam ** torch.arange(149, -1, -1, dtype=F64))[:, None]).T @ x + delta * lam**150 * torch.eye(4, dtype=F64)
    assert torch.allclose(rls.P @ gram, torch.eye(4, dtype=F64), atol=1e-9)
    assert torch.equal(rls.P, rls.P.T)


def test_rls_update_prediction_and_no_inversion():
    x, y = random_data(n=30, d=3)
    rls = online.RecursiveLeastSquares(3)
    with ch01._no_matrix_inversion():  # any inv/solve/pinv would raise here
        for t in range(5):
            w_before = rls.w.clone()
            prediction = rls.update(x[t], y[t])
            assert torch.allclose(prediction, w_before @ x[t])  # a-priori prediction
    assert callable(torch.linalg.inv) and torch.linalg.inv(torch.eye(2, dtype=F64))[0, 0] == 1  # restored


def test_rls_validates_arguments():
    for kwargs, name in (({"forgetting": 0.0}, "forgetting"), ({"forgetting": 1.5}, "forgetting"),
                         ({"delta": 0.0}, "delta"), ({"delta": float("nan")}, "delta")):
        with pytest.raises(ValueError, match=name):
            online.RecursiveLeastSquares(3, **kwargs)
    with pytest.raises(ValueError, match="n_features"):
        online.RecursiveLeastSquares(0)


# --------------------------------------------------------------------------------------
# Sliding window, batch solutions, regret


def test_sliding_window_equals_least_squares_on_the_last_window():
    x, y = random_data(n=300, d=4, seed=2)
    window, delta = 40, 1e-6
    run = online.sliding_window_least_squares(x, y, window=window, delta=delta)
    assert run.weights.shape == (300, 4)
    for t in (0, 2, 39, 40, 41, 170, 299):
        lo = max(0, t - window + 1)
        want = online.least_squares(x[lo:t + 1], y[lo:t + 1], delta=delta)
        assert torch.allclose(run.weights[t], want, rtol=0, atol=1e-9), t
        if t + 1 >= window:
            plain = torch.linalg.lstsq(x[lo:t + 1], y[lo:t + 1, None]).solution[:, 0]
            assert torch.allclose(run.weights[t], plain, rtol=0, atol=1e-6), t
    assert run.predictions[0] == 0
    assert torch.allclose(run.predictions[1:], (run.weights[:-1] * x[1:]).sum(dim=1), atol=1e-12)
    with pytest.raises(ValueError, match="window"):
        online.sliding_window_least_squares(x, y, window=0)


def test_least_squares_weighted_ridge_matches_normal_equations():
    x, y = random_data(n=50, d=3, seed=3)
    s = torch.rand(50, generator=torch.Generator().manual_seed(0), dtype=F64) + 0.1
    want = torch.linalg.solve(x.T @ (s[:, None] * x) + 0.7 * torch.eye(3, dtype=F64), x.T @ (s * y))
    assert torch.allclose(online.least_squares(x, y, delta=0.7, sample_weights=s), want, atol=1e-10)
    with pytest.raises(ValueError, match="delta"):
        online.least_squares(x, y, delta=-1.0)


def test_best_fixed_loss_and_regret_match_prefix_least_squares():
    x, y = random_data(n=60, d=4, seed=4)
    best = online.best_fixed_cumulative_loss(x, y)
    for t in range(1, 61):  # including t < d, where the prefix fits exactly
        w = torch.linalg.lstsq(x[:t], y[:t, None], driver="gelsd").solution[:, 0]
        assert best[t - 1].item() == pytest.approx(0.5 * ((x[:t] @ w - y[:t]) ** 2).sum().item(), abs=1e-9)
    predictions = online.run_sgd(x, y, lr=0.05).predictions
    regret = online.cumulative_regret(predictions, x, y)
    assert torch.allclose(regret, online.cumulative_loss(predictions, y) - best)
    assert torch.allclose(online.cumulative_loss(predictions, y), torch.cumsum(0.5 * (predictions - y) ** 2, 0))
    hindsight = x @ online.least_squares(x, y)  # the best fixed weight's own predictions
    assert abs(online.cumulative_regret(hindsight, x, y)[-1].item()) < 1e-9
    assert (online.cumulative_regret(hindsight, x, y)[:-1] >= -1e-9).all()  # it is not best on prefixes


# --------------------------------------------------------------------------------------
# The library passes its own exercise checks (and an inverting RLS does not)


def test_library_passes_chapter_1_checks():
    assert ch01.check_sgd_step(online.sgd_step).passed
    assert ch01.check_rls_update(online.rls_update).passed
    assert ch01.check_regret(lambda p, x, y: online.cumulative_regret(p, x, y)[-1]).passed


def test_checks_catch_the_usual_mistakes():
    def in_place(w, x, y, lr):
        w -= lr * x * (w @ x - y)
        return w

    def inverting(w, P, x, y, lam):
        P_new = torch.linalg.inv(lam * torch.linalg.inv(P) + torch.outer(x, x))
        return w + P_new @ x * (y - w @ x), P_new

    report = ch01.check_sgd_step(in_place)
    assert not report.passed and [o.status for o in report.outcomes] == ["pass", "pass", "fail"]
    report = ch01.check_rls_update(inverting)
    assert [o.status for o in report.outcomes] == ["pass", "pass", "pass", "fail"]
    assert ch01.check_regret(lambda p, x, y: float("nan")).passed is False

    def todo(*args):
        raise NotImplementedError

    assert "not done yet" in repr(ch01.check_regret(todo))
