"""Matplotlib figures shared by chapters and widgets. Each function draws on ``ax`` when
given (so figures compose) and otherwise makes its own, and returns the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .metrics import AccuracyMatrix


def as_matrix(obj) -> AccuracyMatrix:
    """Accept a Result, an AccuracyMatrix or a (T + 1) × T array."""
    if isinstance(obj, AccuracyMatrix):
        return obj
    return getattr(obj, "acc_matrix", None) or AccuracyMatrix(np.asarray(obj))


def _axes(ax: Axes | None, size=(4.2, 3.6)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    return fig, ax


def accuracy_matrix(result, *, ax: Axes | None = None, title: str = "", upto: int | None = None) -> Figure:
    """Heatmap of the accuracy matrix: row "before" is the untrained model, row i is after
    training task i, column j is the test accuracy on task j. Rows after ``upto`` are blank."""
    r = as_matrix(result).values.copy()
    n_tasks = r.shape[1]
    if upto is not None:
        r[upto + 1:] = np.nan
    fig, ax = _axes(ax)
    ax.imshow(r, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i, j in np.ndindex(r.shape):
        if not np.isnan(r[i, j]):
            ax.text(j, i, f"{r[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if r[i, j] > 0.6 else "white")
    ax.set_xticks(range(n_tasks), [str(j + 1) for j in range(n_tasks)])
    ax.set_yticks(range(n_tasks + 1), ["before"] + [str(i) for i in range(1, n_tasks + 1)])
    ax.set_xlabel("evaluated on task")
    ax.set_ylabel("after training task")
    ax.set_title(title or "accuracy matrix")
    return fig


def task_curves(result, *, ax: Axes | None = None, title: str = "", upto: int | None = None) -> Figure:
    """Accuracy on each task (one line per task) after each training stage, from the
    stage where the task was learned; the dashed line is the mean over tasks seen so far."""
    matrix = as_matrix(result)
    r, n_tasks = matrix.values, matrix.n_tasks
    last = n_tasks if upto is None else upto
    fig, ax = _axes(ax, size=(5.2, 3.6))
    colours = plt.get_cmap("tab10")
    for j in range(min(last, n_tasks)):
        stages = np.arange(j + 1, last + 1)
        ax.plot(stages, r[stages, j], "o-", ms=3, color=colours(j % 10), label=f"task {j + 1}")
    seen = np.arange(1, last + 1)
    ax.plot(seen, [matrix.values[k, :k].mean() for k in seen], "k--", lw=1.5, label="mean (seen)")
    ax.set_xlim(0.7, n_tasks + 0.3)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks(range(1, n_tasks + 1))
    ax.set_xlabel("after training task")
    ax.set_ylabel("test accuracy")
    ax.set_title(title or "accuracy on each task over time")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


def loss_curve(result, *, ax: Axes | None = None, title: str = "", smooth: int = 20) -> Figure:
    """Training loss per step (moving average over ``smooth`` steps), task starts marked."""
    fig, ax = _axes(ax, size=(5.5, 3.2))
    losses, smooth = result.losses, max(1, min(smooth, len(result.losses)))
    # the mean of steps s−smooth+1 .. s is drawn at step s, so nothing shows before it happened
    ax.plot(np.arange(smooth - 1, len(losses)), np.convolve(losses, np.ones(smooth) / smooth, mode="valid"), lw=1)
    for t, step in enumerate(result.task_starts):
        ax.axvline(step, color="grey", lw=0.8, ls=":")
        ax.text(step, ax.get_ylim()[1], f" task {t + 1}", va="top", fontsize=7, color="grey")
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("training loss")
    ax.set_title(title or result.name)
    return fig


def compare(results: dict, *, metric: str = "acc", ax: Axes | None = None, title: str = "") -> Figure:
    """Bar chart of one metric (``acc``, ``bwt``, ``fwt`` or ``forgetting``) across runs."""
    fig, ax = _axes(ax, size=(0.9 * len(results) + 2, 3.2))
    values = [as_matrix(r).summary()[metric] for r in results.values()]
    bars = ax.bar(list(results), values, color=plt.get_cmap("tab10")(range(len(values))))
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel(metric.upper() if metric != "forgetting" else "forgetting")
    ax.set_title(title or metric.upper())
    return fig
