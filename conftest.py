"""Test-wide settings. One torch thread per process: `make test` runs two pytest workers on
two cores, and the notebooks' stored outputs were produced with one thread (the last
digits of a float sum can depend on how many threads split it)."""

import os

os.environ.setdefault("CL_COURSE_THREADS", "1")


def pytest_terminal_summary(terminalreporter):
    """Print the figures that tests recorded with record_property("benchmark", ...)."""
    lines = [value for report in terminalreporter.stats.get("passed", [])
             for key, value in report.user_properties if key == "benchmark"]
    if lines:
        terminalreporter.section("benchmarks (reported, not asserted)")
        for line in lines:
            terminalreporter.write_line(line)
