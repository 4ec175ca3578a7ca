"""Chapter 3's exercise checks: right answers pass, each usual mistake fails with its own hint,
a stub says "not done yet", and the checks leave the caller's random state alone."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from check_helpers import failing, leaves_random_state_alone, not_done_yet, passing, stub
from cl_course_lib import importance
from cl_course_lib.checks import ch03


def ewc_penalty(model, fisher, anchor, lam):
    return lam / 2 * importance.weighted_squared_distance(model, fisher, anchor)


def fisher_loop(model, data):
    fisher = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for x_n, y_n in zip(data.x, data.y):
        log_p = -F.cross_entropy(model(x_n[None], data.task), y_n[None])
        for (name, _), g in zip(model.named_parameters(), torch.autograd.grad(log_p, list(model.parameters()))):
            fisher[name] += g.square() / len(data)
    return fisher


def fisher_library(model, data):
    return importance.fisher_diagonal(model, data, kind="empirical")


def fisher_vmap(model, data, *, square_first=True):
    params = {name: p.detach() for name, p in model.named_parameters()}

    def log_p(params, x, y):
        return -F.cross_entropy(functional_call(model, params, (x.unsqueeze(0), data.task)), y.unsqueeze(0))

    per_sample = vmap(grad(log_p), in_dims=(None, 0, 0))(params, data.x, data.y)
    if square_first:
        return {name: g.square().mean(dim=0) for name, g in per_sample.items()}
    return {name: g.mean(dim=0).square() for name, g in per_sample.items()}


def si_with(*, clone=True, sign=1.0, normalise="xi"):
    """SI over plain SGD with one chosen mistake."""
    def si_importance(model, batches, lr, xi):
        start = {n: p.detach().clone() for n, p in model.named_parameters()}
        omega = {n: torch.zeros_like(p) for n, p in start.items()}
        for x, y in batches:
            before = {n: (p.detach().clone() if clone else p.detach()) for n, p in model.named_parameters()}
            model.zero_grad()
            F.cross_entropy(model(x), y).backward()
            with torch.no_grad():
                for n, p in model.named_parameters():
                    g = p.grad.clone()
                    p -= lr * p.grad
                    omega[n] += -sign * g * (p - before[n])
        if normalise == "none":
            return omega
        moved = {n: (p.detach() - start[n]).square() for n, p in model.named_parameters()}
        if normalise == "no_xi":
            return {n: omega[n] / moved[n].clamp_min(1e-30) for n in omega}
        return {n: omega[n] / (moved[n] + xi) for n in omega}
    return si_importance


CHECKS = {
    "ewc_penalty": (ch03.check_ewc_penalty, ewc_penalty),
    "fisher_loop": (ch03.check_fisher_loop, fisher_loop),
    "fisher_loop_library": (ch03.check_fisher_loop, fisher_library),
    "fisher_vectorised": (ch03.check_fisher_vectorised, fisher_vmap),
    "fisher_vectorised_library": (ch03.check_fisher_vectorised, fisher_library),
    "si_importance": (ch03.check_si_importance, si_with()),
}


@pytest.mark.parametrize("name", CHECKS)
def test_right_answers_pass(name):
    check, right = CHECKS[name]
    passing(check(right))


@pytest.mark.parametrize("check", [ch03.check_ewc_penalty, ch03.check_fisher_loop,
                                   ch03.check_fisher_vectorised, ch03.check_si_importance])
def test_a_stub_is_not_done_yet(check):
    not_done_yet(check(stub))


@pytest.mark.parametrize("wrong, hint", [
    (lambda m, f, a, lam: 2 * ewc_penalty(m, f, a, lam), "with the 1/2"),
    (lambda m, f, a, lam: lam / 2 * importance.weighted_squared_distance(m, None, a), "L2 penalty"),
    (lambda m, f, a, lam: lam / 2 * sum((f[n] * (p - a[n]) ** 2).sum() for n, p in m.named_parameters()
                                        if n.endswith("weight")), "skipped the biases"),
    (lambda m, f, a, lam: lam / 2 * sum((f[n] * (p - a[n]) ** 2).mean() for n, p in m.named_parameters()), "mean over"),
    (lambda m, f, a, lam: torch.tensor(ewc_penalty(m, f, a, lam).item()), "no gradient"),
    (lambda m, f, a, lam: ewc_penalty(m, f, a, lam).item(), "as a torch tensor"),
    (lambda m, f, a, lam: None, "returned None"),
])
def test_ewc_penalty_mistakes(wrong, hint):
    failing(ch03.check_ewc_penalty(wrong), hint)


def test_fisher_mistakes_get_their_hints():
    failing(ch03.check_fisher_loop(lambda m, d: {k: v * len(d) for k, v in fisher_loop(m, d).items()}), "N = 48 times")
    failing(ch03.check_fisher_vectorised(lambda m, d: fisher_vmap(m, d, square_first=False)), "batch-mean gradient")
    failing(ch03.check_fisher_loop(lambda m, d: {k: v for k, v in list(fisher_loop(m, d).items())[:2]}),
            "biases included")
    text = failing(ch03.check_fisher_loop(lambda m, d: importance.fisher_diagonal(m, d, kind="true")), "Values differ")
    assert "0 of 2 checks passed" in text


def test_a_looping_vectorised_fisher_fails_the_how_case():
    text = failing(ch03.check_fisher_vectorised(fisher_loop), "forward ran 64 times")
    assert "✓ equals the mean" in text  # the value case passed: only *how* failed


@pytest.mark.parametrize("wrong, hint", [
    (si_with(clone=False), "view of the live tensor"),
    (si_with(sign=-1.0), "with the minus sign"),
    (si_with(normalise="none"), "raw path integral"),
    (si_with(normalise="no_xi"), "Add ξ"),
    (lambda model, batches, lr, xi: {n: torch.ones_like(p) for n, p in model.named_parameters()}, "did not change"),
])
def test_si_mistakes(wrong, hint):
    failing(ch03.check_si_importance(wrong), hint)


def test_checks_leave_the_global_random_state_alone():
    leaves_random_state_alone(lambda: ch03.check_ewc_penalty(ewc_penalty),
                              lambda: ch03.check_fisher_vectorised(fisher_vmap),
                              lambda: ch03.check_si_importance(si_with()))
