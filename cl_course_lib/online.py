"""Online linear regression: the one implementation behind chapter 1.

Samples ``(x_t, y_t)`` arrive one at a time. Every learner here is run *prequentially*
(Dawid 1984): at step ``t`` it first predicts ``ŷ_t = w_{t-1} · x_t`` with the weights it
has, suffers the loss ``ℓ_t = ½ (ŷ_t − y_t)²``, and only then learns from the sample.

- :func:`sgd_step` / :func:`run_sgd`: least mean squares, i.e. SGD on one sample per step
  (Widrow & Hoff 1960): ``w ← w − η x (w·x − y)``.
- :func:`rls_update` / :class:`RecursiveLeastSquares`: recursive least squares, the exact
  online solution of (exponentially weighted) least squares by the Sherman–Morrison
  formula (Sherman & Morrison 1950; Haykin, *Adaptive Filter Theory*, 4th ed. 2002, ch. 9).
- :func:`sliding_window_least_squares`: least squares on the last ``window`` samples,
  vectorised over all steps at once.
- :func:`least_squares`, :func:`cumulative_loss`, :func:`best_fixed_cumulative_loss`,
  :func:`cumulative_regret`: the batch solution and the yardsticks (regret against the
  best fixed weight in hindsight; Cesa-Bianchi & Lugosi, *Prediction, Learning, and
  Games*, 2006, §11).

Shapes: ``x`` is (n, d) or (d,) for one sample, ``y`` is (n,) or a scalar, ``w`` is (d,),
``P`` is (d, d). Use float64 where results are compared with batch solutions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .validation import check


def _stream_shapes(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x must have shape (n, d) and y shape (n,), with the same n; got x {tuple(x.shape)} "
            f"and y {tuple(y.shape)}. Pass a whole stream, e.g. stream.x and stream.y."
        )


@dataclass(frozen=True)
class OnlineRun:
    """What a prequential run produced.

    - ``predictions[t]``: (n,) the prediction of ``y[t]`` made *before* learning from sample ``t``.
    - ``weights[t]``: (n, d) the weights *after* learning from samples ``0 .. t``.
    """

    predictions: torch.Tensor
    weights: torch.Tensor

    def losses(self, y: torch.Tensor) -> torch.Tensor:
        """Per-step prequential losses ``½ (ŷ_t − y_t)²``, shape (n,)."""
        return squared_loss(self.predictions, y)


def squared_loss(predictions: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise ``½ (ŷ − y)²``: the ½ makes the gradient ``x (ŷ − y)`` without a factor 2."""
    return 0.5 * (predictions - y) ** 2


# --------------------------------------------------------------------------------------
# SGD (least mean squares)


def sgd_step(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor | float, lr: float) -> torch.Tensor:
    """One SGD step on one sample for the squared loss ``ℓ(w) = ½ (w·x − y)²``.

    ``∇ℓ(w) = x (w·x − y)``, so ``w_new = w − lr · x (w·x − y)`` (the LMS rule, Widrow &
    Hoff 1960). Returns a new tensor; ``w`` is left unchanged. Shapes: w (d,), x (d,), y scalar.
    """
    return w - lr * x * (w @ x - y)


def run_sgd(x: torch.Tensor, y: torch.Tensor, *, lr: float, w0: torch.Tensor | None = None) -> OnlineRun:
    """Per-sample SGD over a stream, prequentially: predict ``x_t`` with ``w_{t-1}``, then step.

    Starts from ``w0`` (default zeros). A step size that is too large makes the weights
    grow without bound (and overflow to inf/nan): see :func:`step_size_bounds`.
    """
    _stream_shapes(x, y)
    lr = float(check("lr", lr, number=True, above=0, below=math.inf, example=0.01))  # below inf: finite
    n, d = x.shape
    w = torch.zeros(d, dtype=x.dtype) if w0 is None else w0.to(x.dtype).clone()
    predictions = torch.empty(n, dtype=x.dtype)
    weights = torch.empty(n, d, dtype=x.dtype)
    for t in range(n):  # inherently sequential: w_t depends on w_{t-1}
        predictions[t] = w @ x[t]
        w = sgd_step(w, x[t], y[t], lr)
        weights[t] = w
    return OnlineRun(predictions, weights)


class StepSizeBounds(NamedTuple):
    """Step sizes below which per-sample SGD is stable, for inputs like ``x``.

    - ``mean = 2 / λ_max(R)`` with ``R = E[x xᵀ]``: the *average* weight obeys
      ``E[w_t − w*] = (I − η R) E[w_{t-1} − w*]`` and converges iff ``η < mean`` (Haykin
      2002, ch. 4–5, "convergence in the mean"). It is also the bound of full-batch gradient descent.
    - ``every_sample = 2 / max_t ‖x_t‖²``: the error along ``x_t`` is multiplied by
      ``1 − η ‖x_t‖²``, so below this bound no step overshoots (noise-free, the distance to
      ``w*`` never grows). Since ``‖x‖² ≥ λ_max`` on average (``E‖x‖² = tr R``), a single
      noisy run needs this stricter bound unless one direction dominates.
    """

    mean: float
    every_sample: float


def step_size_bounds(x: torch.Tensor) -> StepSizeBounds:
    """The two stability bounds of :class:`StepSizeBounds`, estimated from inputs ``x`` (n, d)."""
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (n, d) with n >= 1; got {tuple(x.shape)}. Pass e.g. stream.x.")
    second_moment = x.T @ x / x.shape[0]  # R = E[x xᵀ], (d, d)
    lambda_max = torch.linalg.eigvalsh(second_moment)[-1].item()
    return StepSizeBounds(mean=2.0 / lambda_max, every_sample=2.0 / (x**2).sum(dim=1).max().item())


# --------------------------------------------------------------------------------------
# Recursive least squares


def rls_update(
    w: torch.Tensor, P: torch.Tensor, x: torch.Tensor, y: torch.Tensor | float, forgetting: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """One recursive-least-squares step (Haykin 2002, ch. 9), without inverting a matrix.

    ``P`` is the inverse of the (weighted) input correlation matrix,
    ``P_t⁻¹ = λ P_{t-1}⁻¹ + x xᵀ``. The Sherman–Morrison formula
    ``(A + x xᵀ)⁻¹ = A⁻¹ − A⁻¹x xᵀA⁻¹ / (1 + xᵀA⁻¹x)`` with ``A = λ P_{t-1}⁻¹`` gives::

        π = P x                      # (d,)
        k = π / (λ + xᵀ π)           # gain vector (d,)
        e = y − w · x                # a-priori error
        w ← w + k e
        P ← (P − π πᵀ / (λ + xᵀ π)) / λ

    Cost O(d²) per sample instead of O(d³). ``λ = forgetting`` in (0, 1]; λ < 1 weights the
    sample seen ``k`` steps ago by ``λᵏ`` (effective memory ≈ 1 / (1 − λ) samples).
    ``π πᵀ`` is used instead of ``k πᵀ`` because it is exactly symmetric in floating point.
    """
    Px = P @ x
    denominator = forgetting + x @ Px
    error = y - w @ x
    w_new = w + (Px / denominator) * error
    P_new = (P - torch.outer(Px, Px) / denominator) / forgetting
    return w_new, P_new


class RecursiveLeastSquares:
    """Recursive least squares with forgetting factor ``λ`` and initial ``P = δ⁻¹ I``.

    After samples ``1..t`` the weights solve exactly (Haykin 2002, ch. 9)::

        w_t = argmin_w  Σ_i λ^(t−i) (y_i − w·x_i)²  +  δ λ^t ‖w‖²

    so with ``λ = 1`` and a tiny ``δ`` they equal batch least squares on all data so far.
    """

    def __init__(self, n_features: int, *, forgetting: float = 1.0, delta: float = 1e-6,
                 dtype: torch.dtype = torch.float64):
        check("n_features", n_features, integer=True, at_least=1,
              fix="Pass the input dimension, e.g. n_features=stream.n_features.")
        self.forgetting = float(check("forgetting", forgetting, number=True, above=0, at_most=1.0, example=0.99))
        self.delta = float(check("delta", delta, number=True, above=0, below=math.inf, example=1e-6))
        self.w = torch.zeros(n_features, dtype=dtype)  # (d,)
        self.P = torch.eye(n_features, dtype=dtype) / self.delta  # (d, d), P_0 = δ⁻¹ I

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``w · x`` for one sample (d,) or a batch (n, d)."""
        return x @ self.w

    def update(self, x: torch.Tensor, y: torch.Tensor | float) -> torch.Tensor:
        """Learn from one sample; return the prediction made *before* learning (a-priori)."""
        prediction = self.w @ x
        self.w, self.P = rls_update(self.w, self.P, x, y, self.forgetting)
        return prediction

    def run(self, x: torch.Tensor, y: torch.Tensor) -> OnlineRun:
        """Update on every sample of a stream in order; prequential predictions and weights."""
        _stream_shapes(x, y)
        n, d = x.shape
        x, y = x.to(self.w.dtype), y.to(self.w.dtype)
        predictions = torch.empty(n, dtype=self.w.dtype)
        weights = torch.empty(n, d, dtype=self.w.dtype)
        for t in range(n):
            predictions[t] = self.update(x[t], y[t])
            weights[t] = self.w
        return OnlineRun(predictions, weights)


# --------------------------------------------------------------------------------------
# Batch solutions and sliding window


def least_squares(
    x: torch.Tensor, y: torch.Tensor, *, delta: float = 0.0, sample_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Batch (weighted, ridge) least squares: ``argmin_w Σ_i s_i (w·x_i − y_i)² + δ ‖w‖²``.

    Solved as one least-squares problem on the stacked system ``[√s x; √δ I] w ≈ [√s y; 0]``
    (no normal equations, which square the condition number). With ``δ = 0`` and rank-deficient
    ``x`` it returns the minimum-norm solution.
    """
    _stream_shapes(x, y)
    check("delta", delta, number=True, at_least=0, below=math.inf, example=0.0)
    a, b = x, y
    if sample_weights is not None:
        root = sample_weights.to(x.dtype).sqrt()
        a, b = x * root[:, None], y * root
    if delta > 0:
        d = x.shape[1]
        a = torch.cat([a, math.sqrt(delta) * torch.eye(d, dtype=x.dtype)])
        b = torch.cat([b, torch.zeros(d, dtype=x.dtype)])
    driver = "gelsd" if a.device.type == "cpu" else None  # gelsd copes with rank deficiency
    return torch.linalg.lstsq(a, b[:, None], driver=driver).solution[:, 0]


def sliding_window_least_squares(
    x: torch.Tensor, y: torch.Tensor, *, window: int, delta: float = 1e-6
) -> OnlineRun:
    """Least squares on the last ``window`` samples, at every step, vectorised.

    ``weights[t]`` solves ``(Σ_{s∈W_t} x_s x_sᵀ + δ I) w = Σ_{s∈W_t} x_s y_s`` with
    ``W_t = {max(0, t − window + 1), ..., t}``. The window sums are differences of running
    sums, and all ``n`` small systems are solved in one batched call: no Python loop.
    The tiny ridge ``δ`` makes the first steps (fewer than d samples) well posed.
    Memory of a truly online version: the last ``window`` samples, O(window · d).
    """
    _stream_shapes(x, y)
    check("window", window, integer=True, at_least=1, example=200)
    delta = float(check("delta", delta, number=True, above=0, below=math.inf, example=1e-6))
    n, d = x.shape
    zeros_dd = torch.zeros(1, d, d, dtype=x.dtype)
    outer_sums = torch.cat([zeros_dd, torch.cumsum(x[:, :, None] * x[:, None, :], dim=0)])  # (n+1, d, d)
    cross_sums = torch.cat([torch.zeros(1, d, dtype=x.dtype), torch.cumsum(x * y[:, None], dim=0)])  # (n+1, d)
    end = torch.arange(1, n + 1)  # window of weights[t] covers samples start..end-1, end = t + 1
    start = (end - window).clamp(min=0)
    gram = outer_sums[end] - outer_sums[start] + delta * torch.eye(d, dtype=x.dtype)  # (n, d, d)
    weights = torch.linalg.solve(gram, cross_sums[end] - cross_sums[start])  # (n, d)
    predictions = torch.zeros(n, dtype=x.dtype)
    predictions[1:] = (weights[:-1] * x[1:]).sum(dim=1)  # ŷ_t = w_{t-1} · x_t, ŷ_0 = 0
    return OnlineRun(predictions, weights)


# --------------------------------------------------------------------------------------
# Cumulative loss and regret


def cumulative_loss(predictions: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``L_t = Σ_{s≤t} ½ (ŷ_s − y_s)²`` for every ``t``, shape (n,)."""
    return torch.cumsum(squared_loss(predictions, y), dim=0)


def best_fixed_cumulative_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``min_w Σ_{s≤t} ½ (w·x_s − y_s)²`` for every prefix ``t``: the best fixed weight in
    hindsight (batch least squares on samples ``0..t``), shape (n,).

    Vectorised: with running sums ``A_t = Σ x xᵀ``, ``b_t = Σ x y``, ``c_t = Σ y²`` the
    minimum is ``½ (c_t − b_tᵀ A_t⁺ b_t)``; ``A_t⁺`` is the pseudo-inverse (A_t is singular
    while t < d).
    """
    _stream_shapes(x, y)
    gram = torch.cumsum(x[:, :, None] * x[:, None, :], dim=0)  # (n, d, d)
    cross = torch.cumsum(x * y[:, None], dim=0)  # (n, d)
    total = torch.cumsum(y**2, dim=0)  # (n,)
    w_best = (torch.linalg.pinv(gram, hermitian=True, rtol=1e-10) @ cross[:, :, None])[:, :, 0]  # (n, d)
    return (0.5 * (total - (cross * w_best).sum(dim=1))).clamp(min=0.0)


def cumulative_regret(predictions: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Regret after every step: ``R_t = Σ_{s≤t} ½(ŷ_s − y_s)² − min_w Σ_{s≤t} ½(w·x_s − y_s)²``.

    The comparator is the best *fixed* weight for the samples seen so far. RLS has regret
    O(d log t) on bounded data (Vovk 2001; Azoury & Warmuth 2001); under drift a learner
    that tracks can have negative regret, because no fixed weight fits both regimes.
    """
    return cumulative_loss(predictions, y) - best_fixed_cumulative_loss(x, y)
