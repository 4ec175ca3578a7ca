"""L2, EWC, online EWC, SI and MAS: closed forms on small problems, and smoke tests that
their penalties are really doing something after a task (the "silently always 0" bug)."""


import numpy as np
import pytest
import torch
from torch import nn

import cl_course_lib as cl
from cl_course_lib.data.benchmarks import split
from cl_course_lib.data.vision import load_digits
from cl_course_lib.importance import weighted_squared_distance
from cl_course_lib.models import MLP
from cl_course_lib.strategies import EWC, L2, MAS, SI, OnlineEWC


class Point(nn.Module):
    """A "model" whose output is its parameter vector θ, whatever the input."""

    def __init__(self, start):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(start, dtype=torch.float64))

    def forward(self, x, task=None):
        return self.theta.expand(len(x), -1)


class QuadraticSI(SI):
    """SI on the loss ½ Σ_i h_i (θ_i − a_i)² (y carries a)."""

    h = torch.tensor([1.0, 4.0], dtype=torch.float64)

    def loss(self, out, a):
        return 0.5 * (self.h * (out - a).square()).sum(dim=1).mean()


def test_si_importance_equals_the_analytic_path_integral_on_a_quadratic():
    theta0, a, lr, steps, xi = np.array([2.0, -1.0]), np.array([0.5, 0.5]), 0.05, 30, 0.1
    si = QuadraticSI(Point(theta0), c=0.0, xi=xi, lr=lr, optimizer="sgd")
    x, target = torch.zeros(1, 1), torch.tensor(a[None])
    for _ in range(steps):
        si.observe(x, target, 0)
    si.after_task(None)
    h = QuadraticSI.h.numpy()
    # gradient descent on a quadratic: θ_t − a = (1 − lr h)^t (θ0 − a), g_t = h (θ_t − a), Δθ_t = −lr g_t,
    # so ω = −Σ_t g_t Δθ_t = lr h² (θ0 − a)² Σ_t (1 − lr h)^{2t}  (a geometric series)
    r = (1 - lr * h) ** 2
    omega = lr * h**2 * (theta0 - a) ** 2 * (1 - r**steps) / (1 - r)
    moved = (1 - lr * h) ** steps * (theta0 - a) - (theta0 - a)
    assert np.allclose(si.importance["theta"].numpy(), omega / (moved**2 + xi), rtol=1e-10)
    # and the path integral is (nearly) the drop of the loss, as in the continuous-time picture
    drop = 0.5 * h * ((theta0 - a) ** 2 - ((1 - lr * h) ** steps * (theta0 - a)) ** 2)
    assert np.allclose(omega, drop, rtol=0.15)


def test_si_path_integral_is_of_the_task_loss_alone():
    """With c > 0 the penalty's pull must not enter ω (Zenke et al. use the task loss only):
    SI's closed-form removal at the end of the task against a step-by-step reference, over
    many Adam steps."""
    theta0, a, c, xi = np.array([2.0, -1.0]), torch.tensor([0.5, 0.5], dtype=torch.float64), 3.0, 0.1
    si = QuadraticSI(Point(theta0), c=c, xi=xi, lr=0.05, optimizer="adam")
    si.tasks_done = 1  # as if a task had been learned, ending at θ0 = θ*
    si.importance["theta"] += torch.tensor([1.0, 0.5], dtype=torch.float64)
    start_importance = si.importance["theta"].clone()
    task_path, total_path = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    for _ in range(25):
        before = si.model.theta.detach().clone()
        si.observe(torch.zeros(1, 1), a[None], 0)
        step = si.model.theta.detach() - before
        task_grad = QuadraticSI.h * (before - a)
        task_path -= task_grad * step
        total_path -= (task_grad + 2 * c * start_importance * (before - torch.tensor(theta0))) * step
    moved = si.model.theta.detach() - torch.tensor(theta0)
    si.after_task(None)
    gained = si.importance["theta"] - start_importance
    assert torch.allclose(gained, task_path / (moved**2 + xi), rtol=1e-9)
    assert not torch.allclose(gained, total_path / (moved**2 + xi), rtol=1e-2)  # the penalty did pull


def digits_tasks():
    return split(load_digits(), [(0, 1), (2, 3)], scenario="domain")


def trained_model(bench):
    cl.seed_everything(0)
    model = MLP(64, [32], bench.n_outputs, heads=bench.n_heads)
    cl.run(cl.strategies.Naive(model, lr=1e-2), bench, epochs=3, batch_size=32, progress=False)
    return model


def test_ewc_penalty_is_zero_at_the_anchor_and_grows_as_f_times_the_squared_distance():
    bench = digits_tasks()
    ewc = EWC(trained_model(bench), lam=10.0, fisher_kind="empirical")
    ewc.after_task(bench.tasks[0])
    assert ewc.penalty().item() == pytest.approx(0.0, abs=1e-9)
    fisher, anchor = ewc.terms[0]
    with torch.no_grad():
        ewc.model.body[1].weight[3, 5] += 0.2
    expected = 10.0 / 2 * fisher["body.1.weight"][3, 5] * 0.2**2
    assert ewc.penalty().item() == pytest.approx(expected.item(), rel=1e-4)
    assert expected > 0


def test_ewc_keeps_one_term_per_task_and_its_penalty_is_their_sum():
    bench = digits_tasks()
    ewc = EWC(trained_model(bench), lam=3.0)
    ewc.after_task(bench.tasks[0])
    with torch.no_grad():
        for p in ewc.model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ewc.after_task(bench.tasks[1])
    with torch.no_grad():
        for p in ewc.model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert len(ewc.terms) == 2
    explicit = sum(weighted_squared_distance(ewc.model, f, a) for f, a in ewc.terms)
    assert ewc.penalty().item() == pytest.approx(3.0 / 2 * explicit.item(), rel=1e-4)


def test_online_ewc_with_gamma_one_and_one_task_is_ewc():
    bench = digits_tasks()
    model = trained_model(bench)
    ewc, online = EWC(model, lam=7.0), OnlineEWC(model, lam=7.0, gamma=1.0)
    torch.manual_seed(3)
    ewc.after_task(bench.tasks[0])
    torch.manual_seed(3)
    online.after_task(bench.tasks[0])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    assert online.penalty().item() == pytest.approx(ewc.penalty().item(), rel=1e-6) and ewc.penalty() > 0


def test_online_ewc_decays_the_running_fisher():
    bench = digits_tasks()
    online = OnlineEWC(trained_model(bench), lam=1.0, gamma=0.5, fisher_kind="empirical")
    online.after_task(bench.tasks[0])
    first = {n: f.clone() for n, f in online.running_fisher.items()}
    online.after_task(bench.tasks[1])
    second = online.fisher(bench.tasks[1])
    name = "body.1.weight"
    assert torch.allclose(online.running_fisher[name], 0.5 * first[name] + second[name])


def test_l2_penalty_closed_form():
    bench = digits_tasks()
    l2 = L2(trained_model(bench), lam=4.0)
    assert l2.penalty() == 0.0
    l2.after_task(bench.tasks[0])
    with torch.no_grad():
        l2.model.heads[0].bias[1] += 0.5
    assert l2.penalty().item() == pytest.approx(4.0 / 2 * 0.25)


@pytest.mark.parametrize("make", [
    lambda m: L2(m, lam=1.0), lambda m: EWC(m, lam=100.0), lambda m: OnlineEWC(m, lam=100.0, gamma=0.9),
    lambda m: SI(m, c=1.0), lambda m: MAS(m, lam=1.0),
], ids=["l2", "ewc", "online_ewc", "si", "mas"])
def test_smoke_two_tasks_finite_loss_and_a_working_penalty(make):
    bench = digits_tasks()
    cl.seed_everything(0)
    model = MLP(64, [32], bench.n_outputs, heads=bench.n_heads)
    strategy = make(model)
    result = cl.run(strategy, bench, epochs=2, batch_size=32, progress=False)
    assert np.isfinite(result.losses).all()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)
    assert strategy.penalty().item() > 0  # importances are non-zero and the anchor is a copy


def test_si_importance_is_nonzero_after_a_real_task():
    bench = digits_tasks()
    cl.seed_everything(0)
    si = SI(MLP(64, [32], 2), c=1.0)
    cl.run(si, bench, epochs=1, batch_size=32, progress=False)
    assert all(v.abs().sum() > 0 for v in si.importance.values())


@pytest.mark.parametrize("make,message", [
    (lambda m: EWC(m, lam=-1.0), "lam=-1.0 is not allowed: lam must be .*>="),
    (lambda m: OnlineEWC(m, gamma=1.5), "gamma=1.5 is not allowed: gamma must be .*<="),
    (lambda m: SI(m, xi=0.0), "xi=0.0 is not allowed: xi must be .*>"),
    (lambda m: EWC(m, fisher_samples=0), "fisher_samples=0 is not allowed: fisher_samples must be .*>="),
    (lambda m: EWC(m, fisher_kind="exact"), "fisher_kind='exact' is not allowed: fisher_kind must be one of"),
])
def test_bad_hyperparameters_are_explained(make, message):
    with pytest.raises(ValueError, match=message):
        make(MLP(64, [8], 2))
