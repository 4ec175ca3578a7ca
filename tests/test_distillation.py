"""The distillation loss of LwF (Hinton et al. 2015)."""

import pytest
import torch

from cl_course_lib.distillation import distillation_loss


def test_zero_when_student_equals_teacher_and_positive_otherwise():
    z = torch.randn(6, 4)
    assert distillation_loss(z, z.clone(), 2.0).item() == pytest.approx(0.0, abs=1e-7)
    for seed in range(5):
        torch.manual_seed(seed)
        assert distillation_loss(torch.randn(6, 4), torch.randn(6, 4), 3.0).item() > 0


def test_equals_a_hand_computation():
    student, teacher, T = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 3.0], [1.0, -1.0, 0.0]]), 2.0
    total = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        q = [torch.tensor(v / T).exp().item() for v in s_row]
        p = [torch.tensor(v / T).exp().item() for v in t_row]
        q, p = [v / sum(q) for v in q], [v / sum(p) for v in p]
        total += sum(pi * (torch.tensor(pi).log() - torch.tensor(qi).log()).item() for pi, qi in zip(p, q))
    assert distillation_loss(student, teacher, T).item() == pytest.approx(T**2 * total / 2, rel=1e-5)


def test_high_temperature_gradient_is_the_logit_difference_over_n():
    """Hinton et al. §2.1: with zero-mean logits, T² · ∂KL/∂z_s → (z_s − z_t) / (C · N) as T grows
    (C classes: softmax(z/T) ≈ (1 + z/T) / C); the T² factor keeps it independent of T. The
    next term of the expansion is of order (z_s² − z_t²) / (T · C · N): the bound shrinks like 1/T."""
    torch.manual_seed(0)
    N, C = 5, 4
    student, teacher = torch.randn(N, C), torch.randn(N, C)
    student, teacher = student - student.mean(1, keepdim=True), teacher - teacher.mean(1, keepdim=True)
    for T in (50.0, 500.0):
        z = student.clone().requires_grad_()
        distillation_loss(z, teacher, T).backward()
        second_order = (student.square().max() + teacher.square().max()) / (T * C * N)
        assert (z.grad - (student - teacher) / (C * N)).abs().max() < second_order


def test_teacher_gets_no_gradient_and_temperature_is_checked():
    teacher = torch.randn(3, 2, requires_grad=True)
    distillation_loss(torch.randn(3, 2, requires_grad=True), teacher, 2.0).backward()
    assert teacher.grad is None
    with pytest.raises(ValueError, match=r"temperature=0\.0 is not allowed.*> 0"):
        distillation_loss(torch.randn(3, 2), torch.randn(3, 2), 0.0)
