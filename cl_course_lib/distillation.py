"""Knowledge distillation (Hinton, Vinyals & Dean 2015), the loss of learning without forgetting."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .validation import check


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float = 2.0) -> torch.Tensor:
    """``T² · KL(softmax(z_t / T) ‖ softmax(z_s / T))``, the mean over the batch.

    Logits of shape ``(B, C)``. Softening with a temperature T > 1 shows the student the
    teacher's "dark knowledge" (the relative odds of the wrong classes). The gradient of
    the KL with respect to ``z_s`` is ``(softmax(z_s/T) − softmax(z_t/T)) / T``, which shrinks
    like ``(z_s − z_t) / T²`` at high T (Hinton et al. 2015, §2.1, eq. 2–3): the factor T²
    keeps its scale independent of T. KL differs from the soft cross-entropy
    ``−Σ p_t log p_s`` of Li & Hoiem (2016, eq. 2) by the teacher's entropy, a constant:
    the gradients are the same. The teacher gets no gradient.
    """
    check("temperature", temperature, number=True, above=0, example=2.0)
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
    return temperature**2 * F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean")
