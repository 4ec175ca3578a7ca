"""Regression streams: samples ``(x_t, y_t)`` that arrive one at a time, with or without drift.

Every stream is a :class:`Stream` of float64 tensors (exact comparisons with batch least
squares need float64). The synthetic streams know their true weight at every step, so a
chapter can measure how well an online learner *tracks* it, not only how well it predicts::

    stream = linear_stream(2000, 5, drift="abrupt", change_at=1000, seed=0)
    stream.x.shape, stream.y.shape, stream.w_true.shape   # (2000, 5), (2000,), (2000, 5)

The same ``seed`` gives the same inputs, noise and first-regime weight for every ``drift``,
so runs with and without drift differ only in the weights after the change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..validation import check

DRIFTS = ("none", "abrupt", "gradual")
FEATURE_DISTS = ("gaussian", "rademacher")


@dataclass(frozen=True)
class Stream:
    """A regression stream: sample ``t`` is ``(x[t], y[t])``.

    - ``x``: (n, d) float64 inputs; ``y``: (n,) float64 targets.
    - ``w_true``: (n, d) the true weight at every step (``y[t] = w_true[t] · x[t] + noise``),
      or ``None`` for real data, whose true weight nobody knows.
    - ``change_at`` / ``change_end``: the drift happens over steps ``change_at .. change_end - 1``
      (``change_end == change_at`` for an abrupt change); ``None`` without drift.
    """

    x: torch.Tensor
    y: torch.Tensor
    w_true: torch.Tensor | None
    name: str
    change_at: int | None = None
    change_end: int | None = None

    @property
    def n_samples(self) -> int:
        return self.x.shape[0]

    @property
    def n_features(self) -> int:
        return self.x.shape[1]

    def __len__(self) -> int:
        return self.n_samples


def _feature_scales(value, n_features: int) -> torch.Tensor:
    scales = [value] if isinstance(value, (int, float)) else list(value)
    if len(scales) == 1:
        scales = scales * n_features
    ok = len(scales) == n_features and all(
        isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) and s > 0 for s in scales
    )
    if not ok:
        raise ValueError(
            f"feature_scales={value!r} is invalid: it must be one positive number or {n_features} "
            f"positive numbers (one per feature). Pass e.g. feature_scales=1.0."
        )
    return torch.tensor(scales, dtype=torch.float64)


def linear_stream(
    n_samples: int,
    n_features: int,
    *,
    noise: float = 0.1,
    drift: str = "none",
    change_at: int | None = None,
    width: int | None = None,
    feature_scales: float | Sequence[float] = 1.0,
    feature_dist: str = "gaussian",
    seed: int = 0,
) -> Stream:
    """A linear regression stream ``y_t = w_t · x_t + ε_t`` with ``ε_t ~ N(0, noise²)``.

    Weights: ``w_a`` and ``w_b`` are drawn from ``N(0, I)``.

    - ``drift="none"``: ``w_t = w_a`` throughout.
    - ``drift="abrupt"``: ``w_t = w_a`` before ``change_at`` and ``w_b`` from it on
      (default ``change_at = n_samples // 2``).
    - ``drift="gradual"``: ``w_t`` moves linearly from ``w_a`` to ``w_b`` over the ``width``
      steps starting at ``change_at`` (defaults ``n_samples // 2`` and ``n_samples // 4``).

    Inputs: feature ``j`` is ``feature_scales[j]`` times a standard normal
    (``feature_dist="gaussian"``) or times a random sign ±1 (``"rademacher"``). With signs,
    every sample has the same length ``‖x_t‖² = Σ_j feature_scales[j]²``, which makes the
    step-size bound of per-sample SGD exact (see ``online.step_size_bounds``).
    """
    # int(): NumPy ints pass the checks, but torch's seeding and the drift checks below want Python ints.
    n_samples = int(check("n_samples", n_samples, integer=True, at_least=1, example=1000))
    n_features = int(check("n_features", n_features, integer=True, at_least=1, example=5))
    check("noise", noise, number=True, at_least=0, below=math.inf, example=0.1)  # below inf: finite
    check("drift", drift, one_of=DRIFTS)
    check("feature_dist", feature_dist, one_of=FEATURE_DISTS)
    seed = int(check("seed", seed, integer=True, at_least=0, example=0))
    scales = _feature_scales(feature_scales, n_features)

    if drift == "none":
        for name, value in (("change_at", change_at), ("width", width)):
            if value is not None:
                raise ValueError(
                    f"{name}={value!r} has no effect with drift='none'. Pass drift='abrupt' or "
                    f"drift='gradual', or leave {name} out."
                )
    if drift == "abrupt" and width is not None:
        raise ValueError(
            f"width={width!r} has no effect with drift='abrupt' (the change is instant). "
            "Pass drift='gradual', or leave width out."
        )
    if drift != "none":
        if n_samples < 2:
            raise ValueError(
                f"n_samples={n_samples} is too short for a drift: it needs at least 2 samples "
                "(one before and one after the change). Pass e.g. n_samples=1000."
            )
        change_at = n_samples // 2 if change_at is None else change_at
        if isinstance(change_at, bool) or not isinstance(change_at, int) or not 1 <= change_at < n_samples:
            raise ValueError(
                f"change_at={change_at!r} is invalid: it must be an integer with 1 <= change_at < "
                f"n_samples={n_samples} (the first step of the new regime). "
                f"Pass e.g. change_at={n_samples // 2}."
            )
    if drift == "gradual":
        width = max(1, n_samples // 4) if width is None else width
        room = n_samples - change_at
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= room:
            raise ValueError(
                f"width={width!r} is invalid: the drift must fit in the stream, so "
                f"1 <= width <= n_samples - change_at = {room}. Pass e.g. width={max(1, room // 2)}, "
                "or an earlier change_at."
            )

    gen = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    # Always draw in the same order, so one seed gives the same x and noise for every drift.
    w_a = torch.randn(n_features, generator=gen, dtype=f64)
    w_b = torch.randn(n_features, generator=gen, dtype=f64)
    if feature_dist == "gaussian":
        base = torch.randn(n_samples, n_features, generator=gen, dtype=f64)
    else:
        base = torch.randint(0, 2, (n_samples, n_features), generator=gen).to(f64) * 2 - 1
    x = base * scales
    eps = torch.randn(n_samples, generator=gen, dtype=f64)

    # mix[t] in [0, 1]: 0 = regime a, 1 = regime b; w_true[t] = (1 - mix) w_a + mix w_b.
    steps = torch.arange(n_samples, dtype=f64)
    if drift == "none":
        mix, change_end = torch.zeros(n_samples, dtype=f64), None
    elif drift == "abrupt":
        mix, change_end = (steps >= change_at).to(f64), change_at
    else:
        mix, change_end = ((steps - change_at + 1) / width).clamp(0.0, 1.0), change_at + width
    w_true = (1 - mix)[:, None] * w_a + mix[:, None] * w_b  # (n, d)
    y = (x * w_true).sum(dim=1) + noise * eps
    name = f"linear ({drift} drift)" if drift != "none" else "linear"
    return Stream(x, y, w_true, name, change_at if drift != "none" else None, change_end)


def diabetes_stream(*, seed: int = 0) -> Stream:
    """The diabetes data (Efron et al. 2004; 442 patients, 10 features) as a stream.

    Features and target are standardised (mean 0, standard deviation 1, over the whole set)
    and the rows shuffled with ``seed``. It ships with scikit-learn, so it works offline.
    """
    seed = int(check("seed", seed, integer=True, at_least=0, example=0))  # int(): torch refuses NumPy ints
    from sklearn.datasets import load_diabetes

    x_np, y_np = load_diabetes(return_X_y=True, scaled=False)
    x = torch.as_tensor(x_np, dtype=torch.float64)
    y = torch.as_tensor(y_np, dtype=torch.float64)
    x = (x - x.mean(dim=0)) / x.std(dim=0, correction=0)
    y = (y - y.mean()) / y.std(correction=0)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    return Stream(x[order].contiguous(), y[order].contiguous(), None, "diabetes")
