"""Elastic weight consolidation (Kirkpatrick et al. 2017), one penalty per past task."""

from __future__ import annotations

from torch import nn

from ..data.benchmarks import Task
from ..importance import FISHER_KINDS, fisher_diagonal, snapshot, weighted_squared_distance
from ..validation import check
from .base import Strategy


class EWC(Strategy):
    """Loss + ``λ/2 Σ_k Σ_i F_{k,i} (θ_i − θ*_{k,i})²`` over every past task k, with θ*_k the
    weights after task k and F_k the diagonal Fisher there (Kirkpatrick et al. 2017, eq. 3,
    one quadratic penalty per task as in their multi-task version).

    The penalty is the Laplace approximation of the old tasks' posterior: a Gaussian at θ*_k
    whose precision is the Fisher (see ``importance.fisher_diagonal``).

    Args:
        lam: λ ≥ 0, the penalty strength.
        fisher_kind: ``"true"`` (labels sampled from the model) or ``"empirical"`` (data labels).
        fisher_samples: training samples of a task used for its Fisher (None: all).
        options: the step's settings (``Strategy``: lr, optimizer, precision, ...).
    """

    key = "ewc"
    state_attributes = ("terms", "fisher_sum", "centre", "offset")

    def __init__(self, model: nn.Module, *, lam: float = 1e4, fisher_kind: str = "true",
                 fisher_samples: int | None = 1000, **options):
        super().__init__(model, **options)
        self.lam = check("lam", lam, number=True, at_least=0, example=1e4)
        self.fisher_kind = check("fisher_kind", fisher_kind, one_of=FISHER_KINDS)
        self.fisher_samples = check("fisher_samples", fisher_samples, integer=True, at_least=1, optional=True,
                                    example=1000)
        self.terms: list[tuple[dict, dict]] = []  # (Fisher F_k, weights θ*_k) per past task
        self.fisher_sum = self.centre = self.offset = None  # their merged quadratic (_merge_terms)

    def fisher(self, task: Task) -> dict:
        """The diagonal Fisher of the current weights on the task's training data."""
        return fisher_diagonal(self.model, task.train, kind=self.fisher_kind, max_samples=self.fisher_samples)

    def penalty(self):
        if not self.terms:
            return 0.0
        return (weighted_squared_distance(self.model, self.fisher_sum, self.centre, scale=self.lam / 2)
                + self.lam / 2 * self.offset)

    def after_task(self, task: Task) -> None:
        self.terms.append((self.fisher(task), snapshot(self.model)))
        self._merge_terms()

    def _merge_terms(self) -> None:
        """Σ_k F_k (θ − θ*_k)² = A (θ − μ)² + c, exactly, with A = Σ_k F_k, μ = Σ_k F_k θ*_k / A and
        c = Σ_k F_k (θ*_k − μ)²: one quadratic per step however many tasks (a product of
        Gaussians is a Gaussian). Where A = 0 the weight is free and μ does not matter."""
        names = self.terms[0][0].keys()
        self.fisher_sum = {n: sum(f[n] for f, _ in self.terms) for n in names}
        self.centre = {n: sum(f[n] * a[n] for f, a in self.terms) / self.fisher_sum[n].clamp_min(1e-30)
                       for n in names}
        self.offset = sum((f[n] * (a[n] - self.centre[n]).square()).sum().item() for f, a in self.terms for n in f)
