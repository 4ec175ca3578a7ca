"""The diagonal Fisher and MAS importance against plain per-sample loops, by both exact
methods (the closed form for Linear layers and torch.func's vmap)."""

import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cl_course_lib.data.benchmarks import TaskData

from cl_course_lib.importance import (fisher_diagonal, output_sensitivity, per_sample_gradient_moment,
                                      snapshot, weighted_squared_distance)
from cl_course_lib.models import MLP


def loop_importance(model, data, per_sample_scalar, transform):
    """Reference: one backward pass per sample, then the mean of transform(grad)."""
    model.eval()
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(data)):
        model.zero_grad(set_to_none=True)
        per_sample_scalar(model(data.x[i:i + 1], data.task)[0], data.y[i]).backward()
        for n, p in model.named_parameters():
            if p.grad is not None:  # None: a head this task does not use
                total[n] += transform(p.grad)
    return {n: t / len(data) for n, t in total.items()}


def log_likelihood(logits, y):
    return F.log_softmax(logits, dim=0)[y]


def max_relative_error(a, b):
    return max(((a[n] - b[n]).norm() / b[n].norm()).item() for n in b)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = MLP(20, [16, 12], 4, heads=2)
    data = TaskData(torch.randn(50, 20), torch.randint(0, 4, (50,)), 1)
    return model, data


METHODS = ["linear", "vmap"]


@pytest.mark.parametrize("method", METHODS)
def test_empirical_fisher_matches_the_loop(setup, method):
    model, data = setup
    fast = fisher_diagonal(model, data, kind="empirical", batch_size=16, method=method)
    assert max_relative_error(fast, loop_importance(model, data, log_likelihood, torch.square)) <= 1e-5


@pytest.mark.parametrize("method", METHODS)
def test_true_fisher_matches_the_loop_with_the_same_sampled_labels(setup, method):
    model, data = setup
    torch.manual_seed(1)
    fast = fisher_diagonal(model, data, kind="true", batch_size=16, method=method)
    torch.manual_seed(1)
    with torch.no_grad():
        sampled = torch.multinomial(F.softmax(model(data.x, data.task), dim=1), 1)[:, 0]
    reference = loop_importance(model, TaskData(data.x, sampled, data.task), log_likelihood, torch.square)
    assert max_relative_error(fast, reference) <= 1e-5


def test_true_and_empirical_fisher_differ(setup):
    model, data = setup
    torch.manual_seed(0)
    true = fisher_diagonal(model, data, kind="true")
    empirical = fisher_diagonal(model, data, kind="empirical")
    assert max_relative_error(true, empirical) > 0.05


@pytest.mark.parametrize("method", METHODS)
def test_only_the_tasks_head_has_fisher_information(setup, method):
    model, data = setup
    fisher = fisher_diagonal(model, data, kind="empirical", method=method)
    assert fisher["heads.0.weight"].abs().sum() == 0 and fisher["heads.1.weight"].abs().sum() > 0


def test_max_samples_uses_the_first_samples(setup):
    model, data = setup
    first = TaskData(data.x[:7], data.y[:7], data.task)
    a = fisher_diagonal(model, data, kind="empirical", max_samples=7, batch_size=3)
    b = fisher_diagonal(model, first, kind="empirical")
    assert max_relative_error(a, b) <= 1e-6


def test_fisher_is_not_the_square_of_the_mean_gradient(setup):
    """The classic mistake: squaring a batch-mean gradient underestimates F by ~1/N."""
    model, data = setup
    fisher = fisher_diagonal(model, data, kind="empirical")
    model.zero_grad()
    F.cross_entropy(model(data.x, data.task), data.y).backward()
    crude = model.body[1].weight.grad.square()
    assert crude.sum() < 0.5 * fisher["body.1.weight"].sum()


@pytest.mark.parametrize("method", METHODS)
def test_mas_importance_matches_the_loop(setup, method):
    model, data = setup
    fast = output_sensitivity(model, data, batch_size=8, method=method)
    reference = loop_importance(model, data, lambda logits, y: logits.square().sum(), torch.abs)
    assert max_relative_error(fast, reference) <= 1e-5


class ScaledMLP(nn.Module):
    """A trainable parameter outside any Linear layer, and a layer used twice: no closed form."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.5))
        self.inner, self.out = nn.Linear(20, 20), nn.Linear(20, 4)

    def forward(self, x, task=None):
        return self.out(torch.tanh(self.inner(torch.tanh(self.inner(x)))) * self.scale)


def test_auto_falls_back_to_vmap_when_there_is_no_closed_form(setup):
    _, data = setup
    torch.manual_seed(0)
    model = ScaledMLP()
    fast = fisher_diagonal(model, data, kind="empirical", method="auto", batch_size=16)
    assert max_relative_error(fast, loop_importance(model, data, log_likelihood, torch.square)) <= 1e-5
    with pytest.raises(ValueError, match="method='linear' needs every trainable parameter"):
        fisher_diagonal(model, data, kind="empirical", method="linear")


def test_a_linear_layer_used_twice_takes_the_vmap_path(setup):
    _, data = setup
    torch.manual_seed(0)
    model = ScaledMLP()
    model.scale.requires_grad_(False)  # now every trainable parameter is in a Linear layer, but one runs twice
    fast = per_sample_gradient_moment(model, data, lambda z, y: -F.cross_entropy(z, y, reduction="none"), 2)
    reference = loop_importance(model, data, log_likelihood, torch.square)
    del reference["scale"]  # frozen: no importance
    assert fast.keys() == reference.keys()
    assert max_relative_error(fast, reference) <= 1e-5


def test_importance_leaves_the_model_mode_alone(setup):
    model, data = setup
    model.train()
    fisher_diagonal(model, data)
    assert model.training


def test_bad_arguments(setup):
    model, data = setup
    with pytest.raises(ValueError, match="kind='exact' is not allowed: kind must be one of 'true', 'empirical'"):
        fisher_diagonal(model, data, kind="exact")
    merged = TaskData(data.x, data.y, torch.zeros(50, dtype=torch.long))
    with pytest.raises(ValueError, match="one task at a time"):
        fisher_diagonal(model, merged)
    with pytest.raises(ValueError, match="method='jacobian' is not allowed"):
        fisher_diagonal(model, data, method="jacobian")


def test_snapshot_is_a_copy_not_a_view(setup):
    model, _ = setup
    saved = snapshot(model)
    with torch.no_grad():
        model.body[1].weight.add_(1.0)
    assert not torch.equal(saved["body.1.weight"], model.body[1].weight)


def test_weighted_squared_distance_closed_form(setup):
    model, _ = setup
    anchor = snapshot(model)
    importance = {n: torch.full_like(p, 2.0) for n, p in anchor.items()}
    assert weighted_squared_distance(model, importance, anchor) == 0
    with torch.no_grad():
        model.body[1].bias[3] += 0.5
    assert weighted_squared_distance(model, importance, anchor).item() == pytest.approx(2.0 * 0.25)
    assert weighted_squared_distance(model, None, anchor).item() == pytest.approx(0.25)


def test_speed_of_the_fisher_against_the_loop(record_property):
    """Reported, not asserted (timings depend on the machine): MLP 784-400-400-10, 1,000 samples."""
    torch.manual_seed(0)
    model = MLP(784, [400, 400], 10)
    data = TaskData(torch.rand(1000, 1, 28, 28), torch.randint(0, 10, (1000,)), 0)
    seconds, results = {}, {}
    for method in METHODS:
        start = time.perf_counter()
        results[method] = fisher_diagonal(model, data, kind="empirical", method=method)
        seconds[method] = time.perf_counter() - start
    start = time.perf_counter()
    reference = loop_importance(model, data, log_likelihood, torch.square)
    loop = time.perf_counter() - start
    assert all(max_relative_error(r, reference) <= 1e-5 for r in results.values())
    record_property("benchmark", "Fisher, MLP 784-400-400-10, 1,000 samples: "
                    f"closed form (Linear) {seconds['linear']:.3f} s ({loop / seconds['linear']:.0f}x the loop), "
                    f"torch.func vmap {seconds['vmap']:.3f} s ({loop / seconds['vmap']:.1f}x), "
                    f"per-sample loop {loop:.3f} s ({torch.get_num_threads()} thread(s))")


def test_weights_at_their_anchor_get_no_gradient_from_the_penalty(setup):
    """A head untouched since the anchor gets None, not zeros: Adam must leave it alone."""
    model, data = setup
    anchor = snapshot(model)
    with torch.no_grad():
        model.body[1].weight.add_(0.1)
    importance = {n: torch.ones_like(p) for n, p in anchor.items()}
    weighted_squared_distance(model, importance, anchor).backward()
    assert model.heads[0].weight.grad is None and model.heads[1].bias.grad is None
    assert torch.allclose(model.body[1].weight.grad, torch.full_like(model.body[1].weight, 0.2))


@pytest.mark.parametrize("outside", [1.0, 3.0], ids=["scale only", "scaled again outside"])
def test_weighted_squared_distance_gradient_against_autograd(setup, outside):
    """scale s: value s Σ Ω (θ − θ*)², gradient 2 s Ω (θ − θ*), as autograd gives for the plain
    formula, also when the caller multiplies the result (the backward's slower path)."""
    model, _ = setup
    torch.manual_seed(1)
    anchor = snapshot(model)
    importance = {n: torch.rand_like(p) for n, p in anchor.items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    value = outside * weighted_squared_distance(model, importance, anchor, scale=0.7)
    value.backward()
    params = dict(model.named_parameters())
    reference = outside * 0.7 * sum((importance[n] * (params[n] - anchor[n]).square()).sum() for n in anchor)
    grads = torch.autograd.grad(reference, [params[n] for n in anchor])
    assert value.item() == pytest.approx(reference.item(), rel=1e-5)
    for n, g in zip(anchor, grads):
        assert torch.allclose(params[n].grad, g, rtol=1e-5, atol=1e-8)
