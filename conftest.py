"""Test-wide settings. ``tests/numerics.py`` pins what decides the notebooks' checked
numbers (one thread, the CPU kernels' code paths, the quick profile on the CPU); it is
applied here, before anything imports torch, so that nbval's kernels and every subprocess
inherit it. ``tests/nbval_tolerance.py`` compares checked outputs with a numeric tolerance."""

import os

from tests import numerics

numerics.apply()

pytest_plugins = ["tests.nbval_tolerance"]


def pytest_report_header():
    """Say under which settings the notebooks' numbers are checked."""
    keys = [*numerics.FORCED, *numerics.DEFAULTS]
    return "checked numerics (tests/numerics.py): " + " ".join(f"{k}={os.environ[k]}" for k in keys)


def pytest_terminal_summary(terminalreporter):
    """Print the figures that tests recorded with record_property("benchmark", ...)."""
    lines = [value for report in terminalreporter.stats.get("passed", [])
             for key, value in report.user_properties if key == "benchmark"]
    if lines:
        terminalreporter.section("benchmarks (reported, not asserted)")
        for line in lines:
            terminalreporter.write_line(line)
