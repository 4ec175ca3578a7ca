"""``run``: the one training loop of the course, and the ``Result`` it returns."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from . import config
from .data.benchmarks import Benchmark, TaskData
from .metrics import AccuracyMatrix
from .strategies.base import Strategy


@dataclass
class Result:
    """What a run produced.

    ``acc_matrix`` is (T + 1) × T (row 0 before training; see ``metrics``). ``losses``
    holds the loss of every optimisation step; ``task_starts[t]`` is the index in
    ``losses`` of the first step of task t. Times are wall-clock seconds.
    """

    name: str
    acc_matrix: AccuracyMatrix
    losses: np.ndarray
    task_starts: list[int]
    train_seconds: float
    eval_seconds: float
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """ACC/BWT/FWT/forgetting and the times, as plain floats (JSON-ready)."""
        return {**self.acc_matrix.summary(), "train_seconds": self.train_seconds,
                "eval_seconds": self.eval_seconds}


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: TaskData, batch_size: int = 4096) -> float:
    """Fraction of ``data`` whose arg-max logit is the label (model in eval mode)."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=data.y.device)
    for start in range(0, len(data), batch_size):
        x, y, task = data.batch(torch.arange(start, min(start + batch_size, len(data)), device=data.y.device))
        correct += (model(x, task).argmax(dim=1) == y).sum()
    return correct.item() / len(data)


def evaluate(model: torch.nn.Module, benchmark: Benchmark) -> list[float]:
    """Test accuracy on every task of the benchmark."""
    return [accuracy(model, task.test) for task in benchmark.tasks]


def run(strategy: Strategy, benchmark: Benchmark, *, epochs: int = 1, batch_size: int = 128,
        device: torch.device | str | None = None, progress: bool = True, name: str = "") -> Result:
    """Train ``strategy`` on each task of ``benchmark`` in turn, evaluating on every task
    after every task (and once before training, for forward transfer).

    Data stays on ``device`` (default ``config.device()``) and is batched by index.
    """
    _check_run_arguments(strategy, benchmark, epochs, batch_size)
    device = torch.device(device) if device is not None else config.device()
    model = strategy.model.to(device)
    benchmark = benchmark.to(device)
    bar = tqdm(total=epochs * benchmark.n_tasks, desc=name or type(strategy).__name__,
               unit="epoch", disable=not progress)
    timer = {"train": 0.0, "eval": 0.0}
    with _timed(timer, "eval", device):
        rows = [evaluate(model, benchmark)]
    losses, task_starts = [], []
    for t, task in enumerate(benchmark.tasks):
        task_starts.append(len(losses))
        with _timed(timer, "train", device):
            strategy.before_task(task)
            data = strategy.training_set(benchmark, t)
            for _ in range(epochs):
                for index in _batches(data, batch_size, device):
                    losses.append(strategy.observe(*data.batch(index))["loss"])
                bar.update()
                bar.set_postfix(task=t + 1, loss=f"{losses[-1].item():.3f}" if losses else "-")
            strategy.after_task(task)
        with _timed(timer, "eval", device):
            rows.append(evaluate(model, benchmark))
    bar.close()
    return Result(name or type(strategy).__name__, AccuracyMatrix(np.array(rows)),
                  torch.stack(losses).cpu().numpy() if losses else np.empty(0), task_starts,
                  timer["train"], timer["eval"],
                  {"benchmark": benchmark.name, "scenario": benchmark.scenario, "epochs": epochs,
                   "batch_size": batch_size, "device": str(device)})


def _batches(data: TaskData | None, batch_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Shuffled mini-batch indices for one epoch (none when there is nothing to train on)."""
    return () if data is None else torch.randperm(len(data), device=device).split(batch_size)


@contextmanager
def _timed(timer: dict, key: str, device: torch.device):
    """Add the wall-clock time of the block to ``timer[key]``, waiting for queued GPU work."""
    _sync(device)
    started = time.perf_counter()
    yield
    _sync(device)
    timer[key] += time.perf_counter() - started


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _check_run_arguments(strategy, benchmark, epochs, batch_size) -> None:
    if not isinstance(strategy, Strategy):
        raise TypeError(f"strategy must be a cl_course_lib Strategy (e.g. strategies.Naive(model)); "
                        f"got {type(strategy).__name__}.")
    if not isinstance(benchmark, Benchmark):
        raise TypeError(f"benchmark must be a Benchmark (e.g. benchmarks.split_mnist()); got {type(benchmark).__name__}.")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}.")
    # Probe the model on one sample through the last head the benchmark will use.
    model, x = strategy.model, benchmark.tasks[0].test.x[:1]
    try:
        with torch.no_grad():
            n_out = model.eval()(x.to(next(model.parameters()).device), benchmark.n_heads - 1).shape[-1]
    except IndexError:
        n_out = None
    n_heads = getattr(model, "n_heads", benchmark.n_heads)  # models of this library say how many
    if (n_out, n_heads) != (benchmark.n_outputs, benchmark.n_heads):
        raise ValueError(
            f"the model does not fit the {benchmark.scenario}-incremental benchmark, which needs "
            f"{benchmark.n_heads} head(s) of {benchmark.n_outputs} outputs (the model has {n_heads} "
            f"head(s){'' if n_out is None else f' of {n_out} outputs'}): build it with "
            "n_outputs=bench.n_outputs, heads=bench.n_heads.")
