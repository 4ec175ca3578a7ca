"""The tolerant comparison of checked notebook outputs (tests/nbval_tolerance.py)."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.nbval_tolerance import DEFAULT, Tolerance, texts_match

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("stored, new", [
    ("acc 0.961", "acc 0.961"),
    ("acc 0.961", "acc 0.96"),  # one unit in the last printed place
    ("[0.892 0.766 0.771 0.742 0.65 ]", "[0.892 0.766 0.771 0.743 0.651]"),  # numpy's padding
    ("{'acc': 0.961, 'bwt': -0.0}", "{'acc': 0.9605, 'bwt': 0.0}"),
    ("loss 1234.5", "loss 1235.6"),  # relative part: 1e-3 of 1234.5
    ("ratio 1e-06", "ratio 1.5e-06"),
    ("nan", "nan"),
])
def test_equal_up_to_the_default_tolerance(stored, new):
    assert texts_match(stored, new)


@pytest.mark.parametrize("stored, new", [
    ("task-IL 0.961", "domain-IL 0.961"),  # a changed word
    ("acc 0.961", "acc 0.957"),  # off by more than the tolerance
    ("params 22713216", "params 22713217"),  # integers are exact
    ("5 tasks", "6 tasks"),
    ("acc 0.961", "acc 0.961 0.5"),  # a number more
    ("x_1 = 0.5", "x_2 = 0.5"),  # digits in a name are text
    ("nan", "0.5"),
    ("acc 0.961", "acc -0.961"),
])
def test_different(stored, new):
    assert not texts_match(stored, new)


def test_a_cell_can_ask_for_more():
    wide = Tolerance.of_cell({"tolerance": {"abs": 0.01}})
    assert wide == Tolerance(abs=0.01, rel=DEFAULT.rel)
    assert texts_match("acc 0.961", "acc 0.955", wide) and not texts_match("acc 0.961", "acc 0.95", wide)
    assert Tolerance.of_cell({"tags": ["nbval-check-output"]}) == DEFAULT


@pytest.mark.parametrize("bad", [{"abs": -1}, {"absolute": 0.1}, {"rel": "0.1"}])
def test_bad_cell_tolerance_says_how_to_write_it(bad):
    with pytest.raises(ValueError, match="tolerance: {abs: 0.01}"):
        Tolerance.of_cell({"tolerance": bad})


def _notebook(path: Path, stored: str, metadata: dict) -> None:
    """A one-cell notebook that prints 0.1234, with ``stored`` as its checked output."""
    cell = nbformat.v4.new_code_cell("print(0.1234)", execution_count=1, metadata={"tags": ["nbval-check-output"], **metadata})
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored + "\n")]
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)


@pytest.mark.parametrize("stored, metadata, passes", [
    ("0.1234", {}, True),
    ("0.1235", {}, True),  # within the default tolerance
    ("0.1294", {}, False),  # 0.006 off
    ("0.1294", {"tolerance": {"abs": 0.01}}, True),  # the cell allows 0.01
    ("value 0.1234", {}, False),  # a word more
])
def test_nbval_uses_the_comparison(tmp_path, stored, metadata, passes):
    """End to end: pytest with nbval and this plugin on a real notebook and kernel."""
    _notebook(tmp_path / "one.ipynb", stored, metadata)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.nbval_tolerance",
         "--nbval-lax", "--nbval-current-env", "-q", str(tmp_path / "one.ipynb")],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert (done.returncode == 0) == passes, done.stdout[-2000:]
