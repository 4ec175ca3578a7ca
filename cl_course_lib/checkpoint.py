"""Checkpoints of a training run (``train.run(..., checkpoint_dir=...)``).

After every task, ``run`` writes one file, ``checkpoint.pt``: the strategy's
``state_dict()`` (model, optimiser, the method's memories and importances), the run's
progress (accuracy rows, losses, times) and every random generator's state (torch's CPU
and CUDA generators, NumPy's, Python's). It is written atomically: to a temporary file
in the same folder, flushed to disk, then renamed over the old one, so a run killed at any
moment leaves the previous checkpoint or the new one, never half of one.

A rerun with the same arguments resumes after the last finished task, and on the CPU
reproduces the uninterrupted run bit for bit. The file also keeps a *fingerprint* of the
run's arguments (the strategy and its keyword arguments, the model's class and initial
weights, the benchmark and its training labels, epochs, batch size); a checkpoint from
other arguments is refused with a message naming the argument that differs.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from .data import inputs
from .data.benchmarks import Benchmark

FILE = "checkpoint.pt"


def fingerprint(strategy, benchmark: Benchmark, epochs: int, batch_size: int) -> dict[str, str]:
    """What must be equal for a checkpoint to continue this run, as readable strings."""
    return {
        "strategy": type(strategy).__qualname__,
        "strategy arguments": ", ".join(f"{k}={v!r}" for k, v in sorted(strategy.arguments.items())) or "(defaults)",
        "model": type(strategy.model).__qualname__,
        "model's initial weights (sha256)": _digest(strategy.model.state_dict().values()),
        "benchmark": f"{benchmark.name}, {benchmark.scenario}-incremental, {benchmark.n_tasks} tasks",
        "training data (sizes; sha256 of labels and inputs' shapes)": " ".join(str(len(t.train)) for t in benchmark.tasks)
        + "; " + _digest([t.train.y for t in benchmark.tasks]
                         + [torch.tensor(x.shape) for t in benchmark.tasks for x in inputs.tensors(t.train.x)]),
        "epochs": str(epochs),
        "batch_size": str(batch_size),
    }


def load(directory: str | os.PathLike, expected: dict[str, str]) -> dict | None:
    """The checkpoint in ``directory`` (None if there is none), after checking that it was
    written by a run with the ``expected`` fingerprint."""
    path = Path(directory) / FILE
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key, value in expected.items():
        if state["fingerprint"].get(key) != value:
            raise ValueError(
                f"{path} was written by another run: its {key} is {state['fingerprint'].get(key)!r}, this run's "
                f"is {value!r}. Pass the same arguments to resume that run, or give another checkpoint_dir "
                f"(or delete {path}) to start afresh.")
    return state


def save(directory: str | os.PathLike, expected: dict[str, str], strategy, progress: dict) -> Path:
    """Write the checkpoint atomically (temporary file, fsync, rename); return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {"fingerprint": expected, "progress": progress, "strategy": strategy.state_dict(),
             "rng": random_states()}
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{FILE}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, directory / FILE)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return directory / FILE


def random_states() -> dict:
    """The state of every random generator a run draws from."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                      "has_gauss": int(has_gauss), "cached": float(cached)},
            "python": random.getstate()}


def set_random_states(states: dict) -> None:
    """Restore ``random_states()``."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    numpy = states["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached"]))
    random.setstate(states["python"])


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
