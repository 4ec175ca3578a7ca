"""The checked-run settings (tests/numerics.py) and that the test run is under them."""

import json
import os
import subprocess
import sys

from tests import numerics

PROBE = ("import json, torch; print(json.dumps({'threads': torch.get_num_threads(), "
         "'capability': torch.backends.cpu.get_cpu_capability()}))")


def test_numerical_settings_are_defaults_and_profile_and_device_are_forced():
    environ = numerics.apply({"MKL_CBWR": "AUTO", "CL_COURSE_PROFILE": "full", "CL_COURSE_DEVICE": "cuda"})
    assert environ["MKL_CBWR"] == "AUTO"  # a perturbation chosen on purpose is kept
    assert environ["ATEN_CPU_CAPABILITY"] == "avx2" and environ["CL_COURSE_THREADS"] == "1"
    assert (environ["CL_COURSE_PROFILE"], environ["CL_COURSE_DEVICE"]) == ("quick", "cpu")


def test_this_run_and_its_subprocesses_are_under_them():
    """conftest.py applied the settings to os.environ, which nbval's kernels inherit."""
    for key, value in numerics.FORCED.items():
        assert os.environ[key] == value
    for key in numerics.DEFAULTS:
        assert key in os.environ
    probe = json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                                      check=True).stdout)
    assert probe["threads"] == int(os.environ["OMP_NUM_THREADS"])
    if os.environ["ATEN_CPU_CAPABILITY"] == "avx2":  # an AVX-512 CPU is held to AVX2
        assert not probe["capability"].startswith("AVX512")
