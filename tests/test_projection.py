"""GEM's and A-GEM's gradient projections against brute force."""

import itertools

import numpy as np
import pytest
import torch

from cl_course_lib.gradients import grad_vector, loss_gradient, set_grad
from cl_course_lib.strategies.agem import project_agem
from cl_course_lib.strategies.gem import project_gem


def closest_point_brute_force(g, G):
    """argmin ½‖z − g‖² s.t. G z ≥ 0, by enumerating every active set S: z = g + G_Sᵀ v_S with
    G_S z = 0; the optimum is the one KKT point that is feasible with v_S ≥ 0."""
    K = len(G)
    found = []
    for r in range(K + 1):
        for S in map(list, itertools.combinations(range(K), r)):
            v = np.linalg.solve(G[S] @ G[S].T, -G[S] @ g) if S else np.zeros(0)
            z = g + G[S].T @ v
            if (G @ z >= -1e-9).all() and (v >= -1e-9).all():
                found.append(z)
    assert found
    assert all(np.allclose(z, found[0], atol=1e-8) for z in found)  # the optimum is unique
    return found[0]


def violated_problems(n=40, P=8):
    rng = np.random.default_rng(0)
    while n:
        K = int(rng.integers(1, 5))
        G, g = rng.normal(size=(K, P)), rng.normal(size=P)
        if (G @ g < 0).any():
            n -= 1
            yield g, G


@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_gem_projection_is_the_closest_gradient_that_keeps_every_memory_loss_from_rising(margin):
    for g, G in violated_problems():
        ours = project_gem(torch.tensor(g), torch.tensor(G), margin=margin, eps=0.0).numpy()
        # the margin γ (v ≥ γ) is the projection of g + γ Σ_k g_k (see project_gem)
        expected = closest_point_brute_force(g + margin * G.sum(axis=0), G)
        assert np.allclose(ours, expected, atol=1e-6)
        if margin == 0:
            assert (G @ ours >= -1e-6).all()


def test_gem_eps_barely_moves_the_solution():
    g, G = next(violated_problems())
    exact = project_gem(torch.tensor(g), torch.tensor(G), eps=0.0)
    damped = project_gem(torch.tensor(g), torch.tensor(G), eps=1e-3)
    assert not torch.equal(exact, damped) and torch.allclose(exact, damped, atol=1e-2)


def test_gem_does_not_project_when_no_constraint_is_violated():
    G = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    g = torch.tensor([0.5, 0.0, -3.0])  # dot products 0.5 and 0: no violation
    assert project_gem(g, G, margin=0.5) is g


def test_agem_projection():
    rng = np.random.default_rng(1)
    for _ in range(50):
        g, g_ref = torch.tensor(rng.normal(size=6)), torch.tensor(rng.normal(size=6))
        out = project_agem(g, g_ref)
        if g @ g_ref >= 0:
            assert out is g
        else:
            assert abs(float(out @ g_ref)) < 1e-10  # on the boundary of the half-space
            brute = closest_point_brute_force(g.numpy(), g_ref.numpy()[None])
            assert np.allclose(out.numpy(), brute, atol=1e-8)
        assert float(out @ g_ref) >= -1e-10


def test_agem_is_gem_with_one_constraint():
    g, g_ref = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, 1.0, 1.0])
    assert torch.allclose(project_agem(g, g_ref), project_gem(g, g_ref[None], eps=0.0), atol=1e-8)


def test_gradient_vectors_round_trip_and_skip_nothing():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    params = list(model.parameters())
    x = torch.randn(5, 3)
    flat = loss_gradient(model(x).square().sum(), params)
    assert all(p.grad is None for p in params)  # loss_gradient leaves p.grad alone
    model(x).square().sum().backward()
    assert torch.equal(grad_vector(params), flat) and len(flat) == sum(p.numel() for p in params)
    set_grad(params, 2 * flat)
    assert torch.equal(grad_vector(params), 2 * flat) and params[2].grad.shape == params[2].shape
