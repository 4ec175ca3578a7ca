"""Run-time settings: the profile (quick or full), the device, seeds and threads.

Environment variables, read when asked (not cached), so a notebook can change them:

- ``CL_COURSE_PROFILE``: ``quick`` (small sizes, default without CUDA) or ``full``
  (the real sizes, default with CUDA).
- ``CL_COURSE_DEVICE``: any ``torch.device`` string; default cuda > mps > cpu.
- ``CL_COURSE_THREADS``: torch's intra-op thread count, applied on import of
  ``cl_course_lib``. Set it to 1 when several processes share the cores (pytest-xdist,
  a kernel beside a test run): spinning OpenMP threads then cost more than they give.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .validation import check

PROFILES = ("quick", "full")


def profile() -> str:
    """The size profile: ``CL_COURSE_PROFILE`` if set, else ``full`` with CUDA, else ``quick``."""
    chosen = os.environ.get("CL_COURSE_PROFILE", "").strip().lower()
    if not chosen:
        return "full" if torch.cuda.is_available() else "quick"
    return check("CL_COURSE_PROFILE", chosen, one_of=PROFILES,
                 fix="Set it to 'quick' or 'full', or unset it to choose by hardware.")


def by_profile(*, quick, full):
    """Return ``quick`` or ``full`` depending on the active profile (same code path, other sizes)."""
    return quick if profile() == "quick" else full


def device() -> torch.device:
    """The device to train on: ``CL_COURSE_DEVICE`` if set, else cuda > mps > cpu."""
    chosen = os.environ.get("CL_COURSE_DEVICE", "").strip()
    if chosen:
        try:
            return torch.device(chosen)
        except RuntimeError as err:
            raise ValueError(
                f"CL_COURSE_DEVICE={chosen!r} is not a torch device ({err}); "
                "use e.g. 'cpu', 'cuda', 'cuda:1' or 'mps'."
            ) from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_of(module: torch.nn.Module) -> torch.device:
    """Where a module lives: its first parameter's device, else its first buffer's, else the CPU."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def seed_everything(seed: int = 0, *, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with ``deterministic`` also ask torch for
    deterministic kernels, so that notebooks print the same numbers on every run."""
    seed = int(check("seed", seed, integer=True, at_least=0, example=0))  # int(): random.seed refuses NumPy ints
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic matmuls on CUDA.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def apply_thread_setting() -> int:
    """Apply ``CL_COURSE_THREADS`` to torch (if set) and return the thread count in use."""
    wanted = os.environ.get("CL_COURSE_THREADS", "").strip()
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise ValueError(f"CL_COURSE_THREADS={wanted!r} is not allowed: it must be a positive integer. "
                             "Set e.g. CL_COURSE_THREADS=1, or unset it to keep torch's default.")
        torch.set_num_threads(int(wanted))
    return torch.get_num_threads()
