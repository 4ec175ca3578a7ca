"""Run ``python -m cl_course_lib`` in a subprocess (one torch thread) and read its ``--json`` line."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def launch(*args) -> subprocess.Popen:
    """Start ``python -m cl_course_lib ARGS`` in the course root, output captured."""
    return subprocess.Popen([sys.executable, "-m", "cl_course_lib", *map(str, args)], cwd=ROOT,
                            env={**os.environ, "CL_COURSE_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen) -> dict:
    """Wait for a launched run; it must succeed; return its last output line, parsed as JSON."""
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])
