"""The committed notebooks: jupytext pairs in sync, checked outputs present, exercises
matched by solutions. (Executing them is nbval's job: pytest collects the .ipynb files.)"""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("chapters", "exercises", "solutions")
NOTEBOOKS = sorted(p for folder in FOLDERS for p in (ROOT / folder).glob("*.ipynb"))
SOURCES = sorted(p for folder in FOLDERS for p in (ROOT / folder).glob("*.md"))


def _cells(nb):
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in nb.cells]


def test_there_are_notebooks():
    assert NOTEBOOKS and SOURCES


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_every_markdown_source_has_its_notebook(source):
    assert source.with_suffix(".ipynb").exists(), f"run: jupytext --sync --execute {source.relative_to(ROOT)}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_pair_in_sync(notebook):
    source = notebook.with_suffix(".md")
    assert source.exists(), f"{notebook.name} has no paired .md source"
    assert _cells(jupytext.read(source)) == _cells(nbformat.read(notebook, as_version=4)), (
        f"{notebook.name} differs from its .md: run jupytext --sync --execute {source.relative_to(ROOT)}")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_checked_cells_have_outputs(notebook):
    nb = nbformat.read(notebook, as_version=4)
    empty = [i for i, c in enumerate(nb.cells)
             if "nbval-check-output" in c.metadata.get("tags", []) and not c.get("outputs")]
    assert not empty, f"cells {empty} are checked by nbval but have no stored output: re-execute"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_were_executed(notebook):
    """Committed outputs come from a run. The one exception is the hidden first cell that installs
    the course on Colab: it was added after the runs, does nothing where the course is
    installed (no output), and nbval executes it with the rest in CI."""
    nb = nbformat.read(notebook, as_version=4)
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code" and c.source.strip()
               and 'find_spec("cl_course_lib") is None' not in c.source)


@pytest.mark.parametrize("exercise", sorted((ROOT / "exercises").glob("*_exercises.ipynb")), ids=lambda p: p.name)
def test_each_exercise_has_a_solution_calling_the_same_checks(exercise):
    solution = ROOT / "solutions" / exercise.name.replace("_exercises", "_solutions")
    assert solution.exists()
    calls = [re.findall(r"ch\d+\.check_\w+", exercise.read_text()), re.findall(r"ch\d+\.check_\w+", solution.read_text())]
    assert calls[0] and sorted(set(calls[0])) == sorted(set(calls[1]))


def _course_map() -> dict[str, str]:
    """README's course map: chapter notebook stem -> its 'exercises' column."""
    rows = re.findall(r"^\| \d+ \| \[[^]]+\]\(chapters/(\w+)\.ipynb\) \|[^|]+\| ([^|]+) \|$",
                      (ROOT / "README.md").read_text(), flags=re.M)
    return {stem: column.strip() for stem, column in rows}


def test_readme_course_map_lists_every_chapter():
    assert sorted(_course_map()) == sorted(p.stem for p in (ROOT / "chapters").glob("*.md"))


@pytest.mark.parametrize("stem", sorted(p.stem for p in (ROOT / "chapters").glob("*.md")))
def test_readme_names_the_exercises_the_notebook_has(stem):
    exercise = ROOT / "exercises" / f"{stem}_exercises.md"
    titles = re.findall(r"^## Exercise \d+: (.+)$", exercise.read_text(), flags=re.M)
    assert _course_map().get(stem) == "; ".join(titles), (
        f"README's course map should list {stem}'s exercises as: {'; '.join(titles)}")
