"""Chapter 5's exercise checks: right answers pass, each usual mistake fails with its own hint,
a stub says "not done yet", and the checks leave the caller's random state alone."""

import pytest
import torch
import torch.nn.functional as F
from check_helpers import failing, leaves_random_state_alone, not_done_yet, passing, stub

from cl_course_lib.checks import ch05
from cl_course_lib.distillation import distillation_loss


def kd_by_hand(zs, zt, T):
    log_p_s, log_p_t = F.log_softmax(zs / T, dim=1), F.log_softmax(zt.detach() / T, dim=1)
    return T**2 * (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1).mean()


def kd_with(zs, zt, T, *, t2=True, reverse=False, probs=False, reduction="batchmean", detach=True):
    """The distillation loss with one chosen mistake."""
    zt = zt.detach() if detach else zt
    ls, lt = F.log_softmax(zs / T, dim=1), F.log_softmax(zt / T, dim=1)
    if reverse:
        value = F.kl_div(lt, ls, log_target=True, reduction=reduction)
    elif probs:
        value = F.kl_div(ls.exp(), lt.exp(), reduction=reduction)
    else:
        value = F.kl_div(ls, lt, log_target=True, reduction=reduction)
    return value * T**2 if t2 else value


def lwf_loss(model, teacher, x, y, task, old_tasks, alpha, temperature):
    with torch.no_grad():
        targets = [teacher(x, t) for t in old_tasks]
    distill = sum(distillation_loss(model(x, t), z, temperature) for t, z in zip(old_tasks, targets))
    return F.cross_entropy(model(x, task), y) + alpha * distill


def kd_with_teacher_graph(student_logits, teacher_logits, T):
    """The distillation loss without .detach(): gradient reaches the teacher."""
    return T**2 * F.kl_div(F.log_softmax(student_logits / T, 1), F.log_softmax(teacher_logits / T, 1),
                           log_target=True, reduction="batchmean")


def lwf_with(*, new_head=False, no_alpha=False, mean=False, grad_teacher=False):
    """LwF's task-IL loss with one chosen mistake (the teacher queried outside torch.no_grad())."""
    kd = kd_with_teacher_graph if grad_teacher else distillation_loss

    def wrong(model, teacher, x, y, task, old_tasks, alpha, temperature):
        heads = [*old_tasks, task] if new_head else list(old_tasks)
        terms = [kd(model(x, t), teacher(x, t), temperature) for t in heads]
        distill = sum(terms) / (len(terms) if mean else 1)
        return F.cross_entropy(model(x, task), y) + (1 if no_alpha else alpha) * distill
    return wrong


@pytest.mark.parametrize("right", [distillation_loss, kd_by_hand])
def test_right_distillation_losses_pass(right):
    passing(ch05.check_distillation_loss(right))


def test_right_lwf_loss_passes():
    passing(ch05.check_lwf_loss(lwf_loss))


@pytest.mark.parametrize("check", [ch05.check_distillation_loss, ch05.check_lwf_loss])
def test_a_stub_is_not_done_yet(check):
    not_done_yet(check(stub))


@pytest.mark.filterwarnings("ignore:reduction")
@pytest.mark.parametrize("wrong, hint", [
    (lambda s, t, T: kd_with(s, t, T, t2=False), "factor T²"),
    (lambda s, t, T: kd_with(s, t, T, reverse=True), "wrong way round"),
    (lambda s, t, T: kd_with(s, t, T, probs=True), "log-probabilities"),
    (lambda s, t, T: kd_with(s, t, T, reduction="mean"), "averaged over the classes"),
    (lambda s, t, T: kd_with(s, t, T, reduction="sum"), "summed over the batch"),
    (lambda s, t, T: T**2 * F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t.detach(), 1), log_target=True,
                                     reduction="batchmean"), "teacher's logits by T too"),
    (lambda s, t, T: kd_with(s, t, T).item(), "as a torch tensor"),
    (lambda s, t, T: None, "returned None"),
])
def test_distillation_mistakes(wrong, hint):
    failing(ch05.check_distillation_loss(wrong), hint)


def test_a_teacher_that_gets_a_gradient_fails_only_the_how_case():
    text = failing(ch05.check_distillation_loss(lambda s, t, T: kd_with(s, t, T, detach=False)), "into the teacher")
    assert "3 of 4 checks passed" in text


@pytest.mark.parametrize("wrong, hint", [
    (lwf_with(new_head=True), "current task's head"),
    (lwf_with(no_alpha=True), "multiplied by alpha"),
    (lwf_with(mean=True), "LwF sums them"),
])
def test_lwf_mistakes(wrong, hint):
    failing(ch05.check_lwf_loss(wrong), hint)


def test_a_teacher_with_a_graph_fails_only_the_how_case():
    text = failing(ch05.check_lwf_loss(lwf_with(grad_teacher=True)), "into the teacher's weights")
    assert "3 of 4 checks passed" in text


def test_checks_leave_the_global_random_state_alone():
    leaves_random_state_alone(lambda: ch05.check_distillation_loss(distillation_loss),
                              lambda: ch05.check_lwf_loss(lwf_loss))
