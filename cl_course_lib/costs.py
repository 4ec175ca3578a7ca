"""What a method costs besides accuracy: trainable parameters, numbers stored, peak memory.

Díaz-Rodríguez et al. (2018) ask for model size, samples stored and compute next to
accuracy; these helpers measure them the same way for every method of a table.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from .strategies.base import Strategy


def trainable_parameters(module: nn.Module) -> int:
    """Parameters that require a gradient."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _numel(value) -> int:
    """Numbers in a (nested) state: tensors of data, not bookkeeping flags or generator states."""
    if isinstance(value, torch.Tensor):
        return 0 if value.dtype == torch.bool else value.numel()
    if isinstance(value, dict):
        return sum(_numel(v) for k, v in value.items() if k != "generator")
    if isinstance(value, (list, tuple)):
        return sum(_numel(v) for v in value)
    return 0


def stored_numbers(strategy: Strategy) -> int:
    """Numbers a method keeps beside its model to protect old tasks: its saved state (a replay
    memory's inputs and labels, EWC's Fisher and anchor, LwF's teacher, ...), as
    ``state_dict`` saves it, without the model, the optimiser and the schedule."""
    state = strategy.state_dict()
    return sum(_numel(value) for key, value in state.items() if key not in ("model", "optimizer", "schedule", "scaler"))


class PeakMemory:
    """``bytes``: the peak memory of the block; ``kind`` says what was measured."""

    bytes: int | None = None
    kind: str = "not measured"


@contextmanager
def peak_memory(device: torch.device | str):
    """Measure the peak memory of the block: on CUDA the peak of tensors allocated
    above the start (``torch.cuda.max_memory_allocated``); on the CPU under Linux the
    process's peak resident set size above its size at the start (VmHWM, reset through
    ``/proc/self/clear_refs``, minus VmRSS); elsewhere nothing (``bytes`` stays None)."""
    device, peak = torch.device(device), PeakMemory()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
    linux = device.type == "cpu" and sys.platform.startswith("linux") and _reset_peak_rss()
    start = _status_kb("VmRSS:") * 1024 if linux else (start if device.type == "cuda" else 0)
    yield peak
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak.bytes, peak.kind = torch.cuda.max_memory_allocated(device) - start, "CUDA tensors"
    elif linux:
        peak.bytes, peak.kind = _status_kb("VmHWM:") * 1024 - start, "process RSS"


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kb(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0
