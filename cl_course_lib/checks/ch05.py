"""Checks for chapter 5's exercises: the distillation loss and LwF's loss for one batch.

Every check compares the learner's function with the library (``distillation.distillation_loss``,
``strategies.LwF``) on small seeded tensors and models that take milliseconds. Each usual
mistake gets its own hint: a missing T², probabilities where ``F.kl_div`` wants
log-probabilities, the KL the wrong way round, a mean over classes instead of over the batch,
the new task's head distilled too. Two cases test *how*, not only *what*: the gradient with
respect to the student must be T (softmax(z_s/T) − softmax(z_t/T)) / B and none may reach
the teacher; LwF's teacher must be queried without building a graph through its weights.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ..distillation import distillation_loss
from ..models import MLP
from .core import Check, Report, expect


def _seeded(build, seed: int):
    """``build()`` under a fixed torch seed, without touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _logits(seed: int, batch: int = 16, classes: int = 5, scale: float = 3.0):
    return _seeded(lambda: (scale * torch.randn(batch, classes), scale * torch.randn(batch, classes)), seed)


def _scalar(value, what: str = "the loss") -> torch.Tensor:
    expect(value is not None, f"Return {what}; your function returned None (a missing `return`?).")
    expect(isinstance(value, torch.Tensor),
           f"Return {what} as a torch tensor (so that it can be backpropagated); got {type(value).__name__}.")
    expect(value.numel() == 1, f"Return one number, {what} of the whole batch; got shape {tuple(value.shape)}.")
    return value.reshape(())


def _kd_variants(zs, zt, T):
    """The values of the usual wrong versions, to name the mistake."""
    ls, lt = F.log_softmax(zs / T, dim=1), F.log_softmax(zt / T, dim=1)
    ps, pt = ls.exp(), lt.exp()
    B, C = zs.shape
    kl = (pt * (lt - ls)).sum()  # summed over the batch
    return {
        "no T²": kl / B,
        "reversed": T**2 * (ps * (ls - lt)).sum() / B,
        "probabilities": T**2 * F.kl_div(ps, pt, reduction="batchmean"),
        "mean over classes": T**2 * kl / (B * C),
        "sum over batch": T**2 * kl,
        "T on student only": T**2 * (F.softmax(zt, 1) * (F.log_softmax(zt, 1) - ls)).sum() / B,
        "T on teacher only": T**2 * (pt * (lt - F.log_softmax(zs, 1))).sum() / B,
    }


_HINTS = {
    "no T²": "You left out the factor T²: the KL of the softened distributions has gradients that shrink like 1/T², "
             "and T² puts them back on the scale of the hard-label loss (Hinton et al. 2015, §2).",
    "reversed": "That is KL(student ‖ teacher), the wrong way round: the teacher's distribution is the target, "
                "KL(p_teacher ‖ p_student) = Σ p_t (log p_t − log p_s). With F.kl_div(input, target), "
                "input is the student's log-probabilities.",
    "probabilities": "F.kl_div expects log-probabilities as its first argument (input): pass "
                     "F.log_softmax(student_logits / T, dim=1), not F.softmax(...).",
    "mean over classes": "You averaged over the classes too (reduction='mean'): the KL is a sum over classes, "
                         "averaged over the batch only (reduction='batchmean').",
    "sum over batch": "You summed over the batch: take the mean over the samples (reduction='batchmean').",
    "T on student only": "Divide the teacher's logits by T too: both distributions are softened.",
    "T on teacher only": "Divide the student's logits by T too: both distributions are softened.",
}


def _value_hints(got: float, zs, zt, T) -> None:
    want = distillation_loss(zs, zt, T).item()
    if abs(got - want) <= 1e-4 * max(1.0, abs(want)):
        return
    for name, value in _kd_variants(zs, zt, T).items():
        if abs(got - value.item()) <= 1e-4 * max(1.0, abs(value.item())):
            expect(False, _HINTS[name])
    expect(False, f"Expected {want:.5g}, got {got:.5g}: T² · Σ_c p_t,c (log p_t,c − log p_s,c), averaged over the "
                  "batch, with p = softmax(logits / T, dim=1).")


def check_distillation_loss(distillation_loss_fn) -> Report:
    """``distillation_loss(student_logits, teacher_logits, temperature) -> tensor``:
    T² · KL(softmax(z_t / T) ‖ softmax(z_s / T)), the mean over the batch."""
    check = Check("distillation_loss")

    @check.case("the loss is 0 when the student's logits equal the teacher's")
    def _():
        zs, _ = _logits(0)
        got = _scalar(distillation_loss_fn(zs.clone(), zs.clone(), 2.0)).item()
        expect(abs(got) < 1e-5, f"KL(p ‖ p) = 0, so the loss must be 0 when both logits agree; got {got:.4g}.")

    @check.case("the value at T = 2 is T² · KL(p_teacher ‖ p_student), the mean over the batch")
    def _():
        zs, zt = _logits(1)
        _value_hints(_scalar(distillation_loss_fn(zs, zt, 2.0)).item(), zs, zt, 2.0)

    @check.case("other temperatures (T = 1 and T = 5) and another shape (8 × 10) also match")
    def _():
        for seed, T, shape in ((2, 1.0, (16, 5)), (3, 5.0, (8, 10))):
            zs, zt = _logits(seed, *shape)
            _value_hints(_scalar(distillation_loss_fn(zs, zt, T)).item(), zs, zt, T)

    @check.case("how: the gradient is T (softmax(z_s/T) − softmax(z_t/T)) / B, and none reaches the teacher")
    def _():
        zs, zt = _logits(4)
        zs, zt = zs.requires_grad_(True), zt.requires_grad_(True)
        T = 3.0
        got = _scalar(distillation_loss_fn(zs, zt, T))
        expect(got.requires_grad, "The loss carries no gradient: compute it with torch operations on the student's "
                                  "logits (no .item(), numpy or torch.no_grad() around the student).")
        g_student, g_teacher = torch.autograd.grad(got, [zs, zt], allow_unused=True)
        expect(g_teacher is None or not g_teacher.abs().sum().item() > 0,
               "A gradient flows into the teacher's logits: the teacher is a fixed target. "
               "Use teacher_logits.detach() (or compute the teacher's outputs under torch.no_grad()).")
        want = T * (F.softmax(zs.detach() / T, 1) - F.softmax(zt.detach() / T, 1)) / len(zs)
        expect(g_student is not None and torch.allclose(g_student, want, rtol=1e-4, atol=1e-7),
               "The gradient with respect to the student's logits is not T (p_s − p_t) / B.")

    return check.run()


# --------------------------------------------------------------------------------------
# Exercise 2: LwF's loss for one batch, task-incremental (several heads)


def _lwf_case(seed: int, heads: int = 4, current: int = 2):
    """A multi-head MLP trained a little away from its teacher, a batch of the current task."""
    def build():
        teacher = MLP(12, [16], 3, heads=heads)
        model = copy.deepcopy(teacher)
        with torch.no_grad():
            for p in model.parameters():
                p += 0.3 * torch.randn_like(p)
        x, y = torch.randn(20, 12), torch.randint(0, 3, (20,))
        return model, teacher.eval().requires_grad_(False), x, y
    model, teacher, x, y = _seeded(build, seed)
    return model, teacher, x, y, current, list(range(current))


def _reference_lwf(model, teacher, x, y, task, old_tasks, alpha, T, *, include_new=False):
    new = F.cross_entropy(model(x, task), y)
    heads = list(old_tasks) + ([task] if include_new else [])
    with torch.no_grad():
        targets = [teacher(x, t) for t in heads]
    return new + alpha * sum(distillation_loss(model(x, t), z, T) for t, z in zip(heads, targets))


def check_lwf_loss(lwf_loss) -> Report:
    """``lwf_loss(model, teacher, x, y, task, old_tasks, alpha, temperature) -> tensor``:
    CE(f_θ(x, task), y) + α Σ_{t ∈ old_tasks} KD(f_θ(x, t), f_θ*(x, t)) (Li & Hoiem 2016)."""
    check = Check("lwf_loss")

    @check.case("with α = 0 it is the cross-entropy of the current task's head")
    def _():
        model, teacher, x, y, task, old = _lwf_case(10)
        got = _scalar(lwf_loss(model, teacher, x, y, task, old, 0.0, 2.0)).item()
        want = F.cross_entropy(model(x, task), y).item()
        expect(abs(got - want) < 1e-5, f"At α = 0 the loss is the new task's cross-entropy, {want:.5g}; got {got:.5g}. "
                                       "Use model(x, task) (the current head) and the labels y.")

    @check.case("the value: CE on the current head + α Σ over the old heads of the distillation loss")
    def _():
        model, teacher, x, y, task, old = _lwf_case(11)
        alpha, T = 1.5, 2.0
        got = _scalar(lwf_loss(model, teacher, x, y, task, old, alpha, T)).item()
        want = _reference_lwf(model, teacher, x, y, task, old, alpha, T).item()
        if abs(got - want) < 1e-4 * max(1.0, abs(want)):
            return
        ce = F.cross_entropy(model(x, task), y).item()
        if abs(got - _reference_lwf(model, teacher, x, y, task, old, alpha, T, include_new=True).item()) < 1e-4:
            expect(False, "You also distilled the current task's head: the teacher never learnt this task, so its "
                          "outputs there are noise. Sum over old_tasks only.")
        if abs(got - (ce + (want - ce) / alpha)) < 1e-4:
            expect(False, "The distillation term is not multiplied by alpha (λ_o in Li & Hoiem).")
        per_head = (want - ce) / alpha
        if abs(got - (ce + alpha * per_head / len(old))) < 1e-4:
            expect(False, "You averaged the old heads' distillation losses: LwF sums them, one term per old task.")
        expect(False, f"Expected {want:.5g}, got {got:.5g}: F.cross_entropy(model(x, task), y) + alpha * "
                      "sum(distillation_loss(model(x, t), teacher(x, t), temperature) for t in old_tasks).")

    @check.case("the same as the library's LwF on a second model (two old tasks, α = 1, T = 2)")
    def _():
        from ..strategies import LwF
        model, teacher, x, y, task, old = _lwf_case(12, heads=3, current=2)
        strategy = LwF(model, alpha=1.0, temperature=2.0)
        strategy.teacher, strategy.old_tasks, strategy.multi_head = teacher, old, True
        logits = model(x, task)
        want = (strategy.loss(logits, y) + strategy.alpha * strategy.distillation(x, task, logits)).item()
        got = _scalar(lwf_loss(model, teacher, x, y, task, old, 1.0, 2.0)).item()
        expect(abs(got - want) < 1e-4 * max(1.0, abs(want)), f"The library's LwF gives {want:.5g}; yours {got:.5g}.")

    @check.case("how: the gradient reaches the student's weights and none of the teacher's")
    def _():
        model, teacher, x, y, task, old = _lwf_case(13)
        teacher.requires_grad_(True)  # as if the learner had forgotten to freeze it: the loss must not use it
        got = _scalar(lwf_loss(model, teacher, x, y, task, old, 1.0, 2.0))
        expect(got.requires_grad, "The loss carries no gradient: compute it from model's outputs with torch operations.")
        g_teacher = torch.autograd.grad(got, list(teacher.parameters()), allow_unused=True)
        expect(all(g is None or not g.abs().sum().item() > 0 for g in g_teacher),
               "Gradient flows into the teacher's weights: compute its outputs under torch.no_grad() (or .detach() "
               "them). The teacher is a frozen copy of the model before this task.")
        g_model = torch.autograd.grad(_scalar(lwf_loss(model, teacher, x, y, task, old, 1.0, 2.0)),
                                      [model.heads[t].weight for t in [*old, task]], allow_unused=True)
        expect(all(g is not None and g.abs().sum().item() > 0 for g in g_model),
               "Some heads get no gradient: the current head learns from the labels, each old head from the teacher.")

    return check.run()

