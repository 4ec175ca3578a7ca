"""``run``: the one training loop of the course, and the ``Result`` it returns.

The device contract, which every chapter follows:

- ``cl.device()`` is the course's device (``CL_COURSE_DEVICE``, else cuda > mps > cpu), and
  the default of ``run(device=...)``. A cell that builds tensors or a model to call
  directly asks for it: ``x.to(cl.device())``; never a fixed ``"cpu"`` or ``"cuda"``.
- ``run`` moves the strategy's model to its device and **leaves it there** (in eval mode)
  after the run. The benchmark passed in is not changed: its tensors stay where they were
  built (the CPU); ``run`` trains on its own copy on the device (``placement="device"``),
  or on batches copied from the host (``placement="host"``, a ``DataLoader`` with pinned
  memory, for data that does not fit; ``"auto"`` chooses).
- Functions that take a model and data (``accuracy``, ``evaluate``, ``importance``, the
  memories) move each batch to the model's device themselves. Numbers for printing and
  asserting come back with ``.item()``, ``.tolist()`` or ``.cpu()``; float64 only on the
  CPU (MPS has none).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import checkpoint, config
from .data import inputs
from .data.benchmarks import Benchmark, TaskData
from .data.loading import batches, n_batches
from .metrics import AccuracyMatrix
from .strategies.base import Strategy
from .validation import check

PLACEMENTS = ("auto", "device", "host")


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
    """Fraction of ``data`` whose arg-max logit is the label (model in eval mode, on its
    device; ``data`` may live anywhere)."""
    model.eval()
    device = config.device_of(model)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for x, y, task in batches(data, batch_size, device=device, shuffle=False):
        correct += (model(x, task).argmax(dim=1) == y).sum()
    return correct.item() / len(data)


def evaluate(model: torch.nn.Module, benchmark: Benchmark) -> list[float]:
    """Test accuracy on every task of the benchmark."""
    return [accuracy(model, task.test) for task in benchmark.tasks]


def run(strategy: Strategy, benchmark: Benchmark, *, epochs: int = 1, batch_size: int = 128,
        device: torch.device | str | None = None, placement: str = "auto", workers: int = 0,
        checkpoint_dir: str | Path | None = None, progress: bool = True, name: str = "") -> Result:
    """Train ``strategy`` on each task of ``benchmark`` in turn, evaluating on every task
    after every task (and once before training, for forward transfer).

    ``device`` defaults to ``config.device()``; ``placement`` says where the data lives
    while training (see the module docstring; ``workers`` DataLoader processes for
    ``"host"``). With ``checkpoint_dir``, a checkpoint is written after every task and a
    rerun with the same arguments resumes after the last one (``checkpoint``).
    """
    _check_run_arguments(strategy, benchmark, epochs, batch_size)
    check("placement", placement, one_of=PLACEMENTS)
    check("workers", workers, integer=True, at_least=0, example=2)
    device = torch.device(device) if device is not None else config.device()
    expected = checkpoint.fingerprint(strategy, benchmark, epochs, batch_size) if checkpoint_dir else None
    model = strategy.model.to(device)
    benchmark = benchmark.to(device) if _on_device(benchmark, device, placement) else benchmark
    strategy.setup(benchmark)
    saved = checkpoint.load(checkpoint_dir, expected) if checkpoint_dir else None
    if saved is None:
        done, losses, task_starts, timer = 0, [], [], {"train": 0.0, "eval": 0.0}
        with _timed(timer, "eval", device):
            rows = [evaluate(model, benchmark)]
    else:
        strategy.load_state_dict(saved["strategy"])
        checkpoint.set_random_states(saved["rng"])
        done, rows, task_starts, timer = (saved["progress"][k] for k in ("tasks", "rows", "task_starts", "timer"))
        losses = list(saved["progress"]["losses"].to(device).unbind())
    bar = tqdm(total=epochs * benchmark.n_tasks, initial=epochs * done, desc=name or type(strategy).__name__,
               unit="epoch", disable=not progress)
    for t in range(done, benchmark.n_tasks):
        task = benchmark.tasks[t]
        task_starts.append(len(losses))
        with _timed(timer, "train", device):
            strategy.before_task(task)
            data = strategy.training_set(benchmark, t)
            strategy.plan_steps(epochs * n_batches(data, batch_size))
            for _ in range(epochs):
                for x, y, task_id in batches(data, batch_size, device=device, shuffle=True, workers=workers) if data is not None else ():
                    with _explain_out_of_memory(x, batch_size, device):
                        losses.append(strategy.observe(x, y, task_id)["loss"])
                bar.update()
                bar.set_postfix(task=t + 1, loss=f"{losses[-1].item():.3f}" if losses else "-")
            strategy.after_task(task)
        with _timed(timer, "eval", device):
            rows.append(evaluate(model, benchmark))
        if checkpoint_dir:
            checkpoint.save(checkpoint_dir, expected, strategy, {
                "tasks": t + 1, "rows": rows, "task_starts": task_starts, "timer": timer,
                "losses": torch.stack(losses).cpu() if losses else torch.empty(0)})
    bar.close()
    return Result(name or type(strategy).__name__, AccuracyMatrix(np.array(rows)),
                  torch.stack(losses).cpu().numpy() if losses else np.empty(0), task_starts,
                  timer["train"], timer["eval"],
                  {"benchmark": benchmark.name, "scenario": benchmark.scenario, "epochs": epochs,
                   "batch_size": batch_size, "device": str(device)})


def _on_device(benchmark: Benchmark, device: torch.device, placement: str) -> bool:
    """Whether the data goes to the device: always on the CPU (the host is the device),
    else for "auto" when it takes at most half the device's free memory."""
    if placement != "auto" or device.type == "cpu":
        return placement != "host"
    size = sum(t.nbytes for task in benchmark.tasks for part in (task.train, task.test)
               for t in inputs.tensors(part.x) + [part.y])
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else float("inf")
    return size <= free / 2


@contextmanager
def _explain_out_of_memory(x, batch_size: int, device: torch.device):
    """Re-raise running out of device memory with the settings that fix it."""
    try:
        yield
    except torch.OutOfMemoryError as err:
        ids = x.get("input_ids") if isinstance(x, dict) else None
        length = f" × {ids.shape[1]} tokens" if ids is not None else ""
        images = isinstance(x, torch.Tensor) and x.dim() >= 3
        fewer = "halve batch_size" + (" or max_length (shorter sequences)" if ids is not None else "") + (
            " or the image size the model resizes to (ImageInput(size), --image-size)" if images else "")
        raise torch.OutOfMemoryError(
            f"out of memory on {device} at a batch of {batch_size}{length}: {fewer} "
            f"(e.g. batch_size={max(1, batch_size // 2)}), or train in precision='bf16'. "
            f"PyTorch said: {str(err).splitlines()[0] if str(err) else 'out of memory'}") from err


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
    check("epochs", epochs, integer=True, at_least=1, example=1)
    check("batch_size", batch_size, integer=True, at_least=1, example=128)
    # Probe the model on two samples through the first and the last head the benchmark uses.
    model, x = strategy.model, inputs.select(benchmark.tasks[0].test.x, slice(0, 2))
    x = inputs.to(x, config.device_of(model))
    try:
        with torch.no_grad():
            first, last = model.eval()(x, 0), model(x, benchmark.n_heads - 1)
    except IndexError:
        first = last = None
    fits = last is not None and last.shape[-1] == benchmark.n_outputs
    if fits and benchmark.n_heads > 1 and torch.equal(first, last):
        fits = False  # the same outputs through every head: a one-head model, which ignores the task id
    if not fits:
        raise ValueError(
            f"the model does not fit the {benchmark.scenario}-incremental benchmark, which needs "
            f"{benchmark.n_heads} head(s) of {benchmark.n_outputs} outputs"
            f"{'' if last is None else f' (the model gives {last.shape[-1]} outputs through head {benchmark.n_heads - 1})'}"
            ": build it with n_outputs=bench.n_outputs, heads=bench.n_heads.")
