"""Test-wide settings. One torch thread per process: `make test` runs two pytest workers on
two cores, and the notebooks' stored outputs were produced with one thread (the last
digits of a float sum can depend on how many threads split it)."""

import os

os.environ.setdefault("CL_COURSE_THREADS", "1")
