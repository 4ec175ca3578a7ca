"""environment.yml (conda) and pyproject.toml (pip) list the same packages and ranges."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch"}


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement.strip()).groups()
    name = name.lower().replace("_", "-")
    return CONDA_TO_PIP.get(name, name), spec.replace(" ", "")


def test_conda_and_pip_list_the_same_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip = dict(_split(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"])
    conda_entries = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = dict(_split(e) for e in conda_entries if isinstance(e, str) and not e.startswith(("python", "pip")))
    assert conda == pip


def test_python_floor_matches():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda_entries = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    assert f"python{project['requires-python']}" in conda_entries
