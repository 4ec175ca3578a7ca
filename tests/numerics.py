"""The settings that decide the notebooks' checked numbers, in one place.

The committed outputs are made, and checked by ``make test``, under these settings:
``conftest.py`` applies them to the test run (nbval's kernels and every subprocess inherit
them), and ``python -m tests.numerics`` re-executes notebooks under them.

Why each one (measured: ``CL_COURSE_THREADS=1``, chapter 2 on an AVX-512 machine with
``ATEN_CPU_CAPABILITY=avx2`` prints exactly what an AVX2-only machine prints, and 3 of its
10 checked cells differ from the AVX-512 default):

- ``ATEN_CPU_CAPABILITY=avx2``: PyTorch picks its vectorised CPU kernels (sums, softmax,
  Adam's updates) by the CPU's instruction set, and AVX-512 kernels round differently from
  AVX2 ones. AVX2 is on every x86-64 CPU of the last decade; an AVX-512 CPU is held to it.
- ``MKL_CBWR=COMPATIBLE``: MKL's matrix products choose their code path and blocking by
  CPU model and cache size; its conditional numerical reproducibility mode fixes one path
  that gives the same bits on every x86-64 CPU, Intel or AMD (the AVX2 branch does so
  only on Intel). Roughly doubles the time of a matrix product; tests only.
- ``ONEDNN_MAX_CPU_ISA=AVX2``: the same for oneDNN (convolutions).
- one thread (``CL_COURSE_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``): how a sum is
  split across threads changes its last bits; two pytest workers share two cores anyway.
- ``CL_COURSE_PROFILE=quick``, ``CL_COURSE_DEVICE=cpu``: the checked outputs are the quick
  profile on a CPU, also on a machine with a GPU (``make full`` runs the full profile).

The numerical settings are defaults: set one in the environment to perturb the run on
purpose (``ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE make test``); the tolerant
comparison (``tests/nbval_tolerance.py``) then decides. Profile and device are forced.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

FORCED = {"CL_COURSE_PROFILE": "quick", "CL_COURSE_DEVICE": "cpu"}
DEFAULTS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "CL_COURSE_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def apply(environ=os.environ) -> dict:
    """Put the checked-run settings into ``environ`` (user-set numerics kept); return it."""
    for key, value in DEFAULTS.items():
        environ.setdefault(key, value)
    environ.update(FORCED)
    return environ


def main(argv: list[str] | None = None) -> int:
    """Re-execute notebooks under the checked settings and save their outputs (``make
    outputs``), or run them in another profile without saving (``make full``: every assert
    still holds or the run fails; the numbers are not compared)."""
    parser = argparse.ArgumentParser(prog="python -m tests.numerics", description=main.__doc__)
    parser.add_argument("sources", nargs="+", type=Path, help="the notebooks' .md sources")
    parser.add_argument("--profile", choices=("quick", "full"), default="quick",
                        help="full: run with CL_COURSE_PROFILE=full and save nothing")
    parser.add_argument("--device", help="with --profile full: the device (default: the best there is)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed side by side (one thread each)")
    args = parser.parse_args(argv)
    save = args.profile == "quick"
    if save:
        environ = apply(dict(os.environ))
    else:  # not the checked numbers: full speed, nothing written
        environ = {**os.environ, "CL_COURSE_PROFILE": args.profile}
        if args.device:
            environ["CL_COURSE_DEVICE"] = args.device
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        codes = list(pool.map(lambda source: _execute(source, environ, save), args.sources))
    return 1 if any(codes) else 0


def _execute(source: Path, environ: dict, save: bool) -> int:
    """Execute one notebook: ``jupytext --sync --execute`` (outputs saved in its .ipynb), or
    nbconvert into a scratch folder. Prints how long it took."""
    bin_dir = Path(sys.executable).parent
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        command = ([str(bin_dir / "jupytext"), "--sync", "--execute", str(source)] if save else
                   [str(bin_dir / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
                    "--ExecutePreprocessor.timeout=3600", "--output-dir", scratch,
                    str(source.with_suffix(".ipynb"))])
        done = subprocess.run(command, env=environ, capture_output=True, text=True)
    print(f"{source}: {'ok' if done.returncode == 0 else 'FAILED'} in {time.perf_counter() - started:.0f} s"
          + ("" if done.returncode == 0 else "\n" + done.stderr[-3000:]), flush=True)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
