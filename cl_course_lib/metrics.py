"""Continual-learning metrics as pure functions of the accuracy matrix.

The matrix ``R`` has shape ``(T + 1, T)`` for ``T`` tasks:

- ``R[0, j]`` is the accuracy on task ``j`` of the model *before any training* (the
  vector b̄ of Lopez-Paz & Ranzato 2017, needed for forward transfer);
- ``R[i, j]`` (``i ≥ 1``) is the accuracy on task ``j`` after training on tasks ``1..i``.

So row ``i`` is "after task i" with tasks counted from 1, and column ``j`` is task ``j + 1``.

References: D. Lopez-Paz, M. Ranzato, "Gradient Episodic Memory for Continual Learning",
NeurIPS 2017, §2, eqs. (2)–(4) (ACC, BWT, FWT); A. Chaudhry et al., "Riemannian Walk for Incremental
Learning", ECCV 2018, §4.1 (forgetting).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validation import check


def _validated(matrix) -> np.ndarray:
    """``matrix`` as a float array of shape (T + 1, T), or a ValueError saying what is wrong."""
    r = np.asarray(matrix, dtype=float)
    if r.ndim != 2 or r.shape[0] != r.shape[1] + 1 or r.shape[1] < 1:
        raise ValueError(
            f"an accuracy matrix has shape (T + 1, T): row 0 before training, row i after "
            f"task i; got shape {r.shape}. Pass a run's matrix, e.g. result.acc_matrix, or T + 1 "
            "rows of T accuracies."
        )
    return r


def _needs_two_tasks(r: np.ndarray, metric: str) -> None:
    if r.shape[1] < 2:
        raise ValueError(f"{metric} compares tasks with each other, so it needs at least 2 tasks; got 1. "
                         "Use it on a run of 2 tasks or more (with one task only ACC is defined).")


def average_accuracy(matrix, after: int | None = None) -> float:
    """ACC = (1/T) Σ_j R[T, j]: mean accuracy over all tasks after the last one.

    With ``after=k`` it is the mean over the tasks seen so far, (1/k) Σ_{j≤k} R[k, j].
    """
    r = _validated(matrix)
    k = r.shape[1] if after is None else check(
        "after", after, integer=True, at_least=1, at_most=r.shape[1],
        fix=f"Pass a task number from 1 to {r.shape[1]}, or leave after out for all tasks.")
    return float(r[k, :k].mean())


def backward_transfer(matrix) -> float:
    """BWT = 1/(T−1) Σ_{j<T} (R[T, j] − R[j, j]): how learning later tasks changed earlier
    ones (negative = forgetting). Lopez-Paz & Ranzato 2017, eq. (3)."""
    r = _validated(matrix)
    _needs_two_tasks(r, "BWT")
    t = r.shape[1]
    return float(np.mean([r[t, j] - r[j + 1, j] for j in range(t - 1)]))


def forward_transfer(matrix) -> float:
    """FWT = 1/(T−1) Σ_{j≥2} (R[j−1, j] − b̄_j): accuracy on a task *before* training on it,
    above the untrained model's b̄ = R[0]. Lopez-Paz & Ranzato 2017, eq. (4)."""
    r = _validated(matrix)
    _needs_two_tasks(r, "FWT")
    t = r.shape[1]
    return float(np.mean([r[j, j] - r[0, j] for j in range(1, t)]))


def forgetting(matrix) -> float:
    """Average forgetting after the last task (Chaudhry et al. 2018, eq. (3)):
    f_j = max_{l<T} R[l, j] − R[T, j] over the rows after training, averaged over j < T."""
    r = _validated(matrix)
    _needs_two_tasks(r, "forgetting")
    t = r.shape[1]
    return float(np.mean([r[1:t, j].max() - r[t, j] for j in range(t - 1)]))


@dataclass(frozen=True)
class AccuracyMatrix:
    """The accuracy matrix with its metrics as properties (see the module docstring)."""

    values: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "values", _validated(self.values))

    @property
    def n_tasks(self) -> int:
        return self.values.shape[1]

    @property
    def acc(self) -> float:
        return average_accuracy(self.values)

    @property
    def bwt(self) -> float:
        return backward_transfer(self.values)

    @property
    def fwt(self) -> float:
        return forward_transfer(self.values)

    @property
    def forgetting(self) -> float:
        return forgetting(self.values)

    def up_to(self, k: int) -> "AccuracyMatrix":
        """The matrix as it stood after task ``k``: the first k tasks, rows 0..k."""
        check("k", k, integer=True, at_least=1, at_most=self.n_tasks,
              fix=f"Pass a task number from 1 to {self.n_tasks}.")
        return AccuracyMatrix(self.values[: k + 1, :k])

    def summary(self) -> dict[str, float]:
        """ACC, BWT, FWT and forgetting (the last three need 2 tasks or more)."""
        out = {"acc": self.acc}
        if self.n_tasks >= 2:
            out.update(bwt=self.bwt, fwt=self.fwt, forgetting=self.forgetting)
        return out
