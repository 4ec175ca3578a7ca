"""Classifiers fitted in closed form on frozen features, one task at a time.

Neither takes a gradient step. Each keeps running sums over the samples it has seen and
derives its classifier from them, so the classifier after the last task depends on the
*set* of samples, not on the order the tasks came in: it is order-invariant (to rounding;
the sums are kept in float64). Both are strong baselines for a pretrained backbone
(Zhou et al. 2023; McDonnell et al. 2023).

- ``NearestClassMean`` (SimpleCIL, Zhou et al. 2023, "Revisiting class-incremental learning
  with pre-trained models"): one prototype per class, the mean of its features,
  ``μ_c = (1/N_c) Σ_{n: y_n = c} h_n``; a sample goes to the prototype of highest cosine
  similarity.
- ``RandomProjectionRidge`` (RanPAC, McDonnell et al. 2023, eqs. 3–5): a fixed random
  projection ``W`` (d × M, Gaussian) and a ReLU, ``φ(h) = max(0, hᵀW)``, then ridge
  regression onto one-hot labels from the accumulated ``G = Σ_n φ_n φ_nᵀ`` (M × M) and
  ``C = Σ_n φ_n y_nᵀ`` (M × K): ``W_o = (G + λI)⁻¹ C``. With ``projection_dim=0`` it is
  plain ridge regression on the features, a linear probe in closed form. RanPAC chooses λ
  by validation on the data seen so far; ``ridge="gcv"`` chooses it by generalised
  cross-validation (Golub, Heath & Wahba 1979), which needs only the sums above and so keeps
  the classifier order-invariant.

``fit_sequence`` runs either over a benchmark of features (``features.embed_benchmark``)
and returns the same ``Result`` as ``train.run``.
"""

from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import device_of
from .data.benchmarks import Benchmark
from .metrics import AccuracyMatrix
from .train import Result, _timed, evaluate
from .validation import check


# λ / mean eigenvalue of G tried by ridge="gcv": half-decades from 1e-6 to 1e2.
GCV_GRID = 10.0 ** torch.arange(-6.0, 2.01, 0.5, dtype=torch.float64)


class NearestClassMean(nn.Module):
    """Class-mean prototypes scored by cosine similarity; classes not seen yet score −∞.
    ``update(h, y)`` adds samples; ``model(h)`` gives the scores ``(B, n_classes)``."""

    def __init__(self, n_features: int, n_classes: int):
        super().__init__()
        check("n_features", n_features, integer=True, at_least=1, example=384)
        check("n_classes", n_classes, integer=True, at_least=1, example=5)
        self.register_buffer("sums", torch.zeros(n_classes, n_features, dtype=torch.float64))
        self.register_buffer("counts", torch.zeros(n_classes, dtype=torch.float64))

    @torch.no_grad()
    def update(self, h: torch.Tensor, y: torch.Tensor) -> None:
        self.sums.index_add_(0, y, h.to(self.sums))
        self.counts += torch.bincount(y, minlength=len(self.counts)).to(self.counts)

    def prototypes(self) -> torch.Tensor:
        """``μ_c`` ``(n_classes, d)`` (zeros for classes not seen)."""
        return self.sums / self.counts.clamp_min(1).unsqueeze(1)

    def forward(self, h: torch.Tensor, task=None) -> torch.Tensor:
        scores = F.normalize(h.to(self.sums), dim=1) @ F.normalize(self.prototypes(), dim=1).T
        return scores.masked_fill(self.counts == 0, float("-inf"))


class RandomProjectionRidge(nn.Module):
    """RanPAC's head: ``φ(h) = ReLU(hᵀW)``, ridge regression ``W_o = (G + λI)⁻¹ C`` on the
    sums seen so far; scores ``φ(h)ᵀ W_o``, −∞ for classes not seen yet.

    Args:
        projection_dim: M ≥ 0 (0: no projection, ridge on the features themselves).
        ridge: λ > 0, fixed; or ``"gcv"``: at every solve, the λ of :data:`GCV_GRID` (times
            the mean eigenvalue of G) that minimises the generalised cross-validation score
            (``gcv_scores``). Either way the classifier is a function of the samples alone.
        seed: of the random projection (fixed: the same W for every task).

    ``ridge_used`` is the λ of the last solve.
    """

    def __init__(self, n_features: int, n_classes: int, *, projection_dim: int = 2048, ridge: float | str = 1.0,
                 seed: int = 0):
        super().__init__()
        check("n_features", n_features, integer=True, at_least=1, example=384)
        check("n_classes", n_classes, integer=True, at_least=1, example=5)
        check("projection_dim", projection_dim, integer=True, at_least=0, example=2048)
        self.ridge = ridge if ridge == "gcv" else check(
            "ridge", ridge, number=True, above=0, fix="Pass a number > 0, e.g. ridge=1.0, or ridge='gcv' to choose it.")
        self.ridge_used: float | None = None
        generator = torch.Generator().manual_seed(check("seed", seed, integer=True, at_least=0, example=0))
        projection = torch.randn(n_features, projection_dim, generator=generator, dtype=torch.float64)
        self.register_buffer("projection", projection if projection_dim else None)
        m = projection_dim or n_features
        self.register_buffer("gram", torch.zeros(m, m, dtype=torch.float64))
        self.register_buffer("targets", torch.zeros(m, n_classes, dtype=torch.float64))
        self.register_buffer("counts", torch.zeros(n_classes, dtype=torch.float64))
        self._weights: torch.Tensor | None = None  # W_o, solved when first needed after an update

    def _load_from_state_dict(self, *args, **kwargs):
        self._weights = None  # solved again from the loaded sums
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):
        self._weights = None  # .to(), .double(): solved again where the sums now live
        return super()._apply(fn, *args, **kwargs)

    def expand(self, h: torch.Tensor) -> torch.Tensor:
        """``φ(h)`` ``(B, M)``: the random projection and ReLU (the features when M = 0)."""
        h = h.to(self.gram)
        return h if self.projection is None else torch.relu(h @ self.projection)

    @torch.no_grad()
    def update(self, h: torch.Tensor, y: torch.Tensor) -> None:
        phi = self.expand(h)
        self.gram += phi.T @ phi
        self.targets += phi.T @ F.one_hot(y, len(self.counts)).to(phi)
        self.counts += torch.bincount(y, minlength=len(self.counts)).to(self.counts)
        self._weights = None

    def weights(self) -> torch.Tensor:
        """``W_o = (G + λI)⁻¹ C`` ``(M, K)``: by a Cholesky solve for a fixed λ (G + λI is
        positive definite), through G's eigendecomposition for ``"gcv"``."""
        if self._weights is None and self.ridge == "gcv" and self.counts.sum() == 0:
            self._weights = torch.zeros_like(self.targets)  # nothing seen: every class scores −∞ anyway
        elif self._weights is None and self.ridge == "gcv":
            eigenvalues, basis = self._eigen()
            lambdas, scores = self.gcv_scores(eigenvalues, basis)
            self.ridge_used = float(lambdas[scores.argmin()])
            self._weights = basis @ ((basis.T @ self.targets) / (eigenvalues + self.ridge_used).unsqueeze(1))
        elif self._weights is None:
            eye = torch.eye(len(self.gram), dtype=self.gram.dtype, device=self.gram.device)
            factor = torch.linalg.cholesky(self.gram + self.ridge * eye)
            self._weights, self.ridge_used = torch.cholesky_solve(self.targets, factor), float(self.ridge)
        return self._weights

    def _eigen(self) -> tuple[torch.Tensor, torch.Tensor]:
        eigenvalues, basis = torch.linalg.eigh(self.gram)
        # G is positive semi-definite, of rank ≤ n: eigenvalues within rounding of 0 are 0
        # (kept, they would inflate df and the residual when n < M).
        tiny = len(eigenvalues) * torch.finfo(eigenvalues.dtype).eps * eigenvalues.abs().max()
        return torch.where(eigenvalues > tiny, eigenvalues, 0.0), basis

    def gcv_scores(self, eigenvalues: torch.Tensor | None = None, basis: torch.Tensor | None = None):
        """The λ of the grid and their generalised cross-validation scores (Golub, Heath &
        Wahba 1979), ``V(λ) = n ‖Y − ΦW_o‖² / (n − df)²`` with ``df = tr Φ(G + λI)⁻¹Φᵀ``.

        From the sums alone, with ``G = Q diag(g) Qᵀ`` and ``a_i = ‖(QᵀC)_i‖²``:
        ``‖Y − ΦW_o‖² = n − Σ_i a_i (g_i + 2λ) / (g_i + λ)²`` (one-hot ``Y``: ``‖Y‖² = n``)
        and ``df = Σ_i g_i / (g_i + λ)``. Smaller is better; ``n − df ≤ 0`` scores ∞.
        """
        if eigenvalues is None:
            eigenvalues, basis = self._eigen()
        n = self.counts.sum()
        if n == 0:
            raise ValueError("gcv_scores needs samples: call update(h, y) first.")
        a = (basis.T @ self.targets).square().sum(dim=1)  # (M,)
        lambdas = GCV_GRID.to(eigenvalues) * eigenvalues.mean().clamp_min(1e-12)
        shrunk = eigenvalues.unsqueeze(0) + lambdas.unsqueeze(1)  # (grid, M): g_i + λ
        residual = n - (a * (eigenvalues + 2 * lambdas.unsqueeze(1)) / shrunk.square()).sum(dim=1)
        df = (eigenvalues / shrunk).sum(dim=1)
        scores = torch.where(n - df > 0, n * residual / (n - df).clamp_min(1e-12).square(), torch.inf)
        return lambdas, scores

    def forward(self, h: torch.Tensor, task=None) -> torch.Tensor:
        scores = self.expand(h) @ self.weights()
        return scores.masked_fill(self.counts == 0, float("-inf"))


def fit_sequence(classifier: NearestClassMean | RandomProjectionRidge, benchmark: Benchmark, *,
                 name: str = "") -> Result:
    """Update ``classifier`` with each task's training features in turn, evaluating on every
    task after each (row 0: before any task), as ``train.run`` does for trained methods.
    The benchmark's inputs must be features ``(N, d)`` (``features.embed_benchmark``)."""
    if not isinstance(classifier, (NearestClassMean, RandomProjectionRidge)):
        raise TypeError(f"classifier must be a NearestClassMean or a RandomProjectionRidge; got "
                        f"{type(classifier).__name__}.")
    x = benchmark.tasks[0].train.x
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError("fit_sequence works on features (N, d): embed the benchmark first, "
                         "features.embed_benchmark(model.features, model, bench).")
    timer, device = {"train": 0.0, "eval": 0.0}, device_of(classifier)
    with _timed(timer, "eval", device):
        rows = [evaluate(classifier, benchmark)]
    for task in benchmark.tasks:
        with _timed(timer, "train", device):
            classifier.update(task.train.x, task.train.y)
            classifier(task.train.x[:1])  # the solve (RanPAC) counts as training time
        with _timed(timer, "eval", device):
            rows.append(evaluate(classifier, benchmark))
    return Result(name or type(classifier).__name__, AccuracyMatrix(np.array(rows)), np.empty(0),
                  [0] * benchmark.n_tasks, timer["train"], timer["eval"],
                  {"benchmark": benchmark.name, "scenario": benchmark.scenario})

