"""The book builds from the committed outputs, and lists every notebook."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def toc_files():
    toc = yaml.safe_load((ROOT / "toc.yml").read_text())
    return {entry["file"] for part in toc["parts"] for entry in part["chapters"]}


def test_every_notebook_is_in_the_toc():
    notebooks = {str(p.relative_to(ROOT)) for folder in ("chapters", "exercises", "solutions")
                 for p in (ROOT / folder).glob("*.ipynb")}
    assert notebooks == toc_files()


def test_book_builds(tmp_path):
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    done = subprocess.run([str(jupyter_book), "build", str(ROOT), "--path-output", str(tmp_path),
                           "--config", str(ROOT / "book.yml"), "--toc", str(ROOT / "toc.yml")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    html = tmp_path / "_build" / "html"
    for notebook in toc_files():
        page = (html / notebook).with_suffix(".html")
        assert page.exists(), f"{page} was not built"
    chapter = (html / "chapters" / "02_catastrophic_forgetting.html").read_text()
    assert "application/vnd.jupyter.widget-state+json" in chapter  # the explorer's frames are embedded
