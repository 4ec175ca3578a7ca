"""`make slides` turns each chapter into a reveal.js deck that works offline. The slides come
from the cells' `slideshow` metadata in the chapters' MyST sources (a heading starts a slide);
slides_config.py loads reveal.js, MathJax, RequireJS and the widget manager from copies next to
the deck. In a real browser (Debian's Chromium, every request to another host aborted) a deck
opens cleanly, from a server and from file://, with its formulas typeset and its explorer drawn,
and the right arrow moves to the next slide."""

import html.parser
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from tests.browser import MATHJAX_DONE, chromium, serve, watch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "slides_config.py"
CHAPTERS = sorted((ROOT / "chapters").glob("*.md"))
# the deck the browser opens: a small chapter, with an explorer (widgets) and formulas
CHAPTER = ROOT / "chapters" / "01_online_linear_regression.ipynb"
COMMAND = "jupyter nbconvert --config slides_config.py chapters/*.ipynb"


def slide_type(cell):
    return cell.metadata.get("slideshow", {}).get("slide_type", "-")


def headings_inside(source):
    """The "## "/"### " headings of a Markdown cell after its first line (outside ``` fences)."""
    found, fence = [], None
    for number, line in enumerate(source.splitlines()):
        if line.lstrip().startswith(("```", "~~~", ":::")):
            mark = line.lstrip()[:3]
            fence = mark if fence is None else (None if mark == fence else fence)
        elif fence is None and number > 0 and line.startswith(("## ", "### ")):
            found.append(line)
    return found


def test_make_slides_runs_nbconvert_with_the_config():
    assert CONFIG.is_file()
    assert f"$(BIN)/{COMMAND}" in (ROOT / "Makefile").read_text()


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_every_heading_starts_a_slide(source):
    """The title cell and each "## " cell start a slide, each "### " cell a subslide, the hidden
    (remove-cell) cells are skipped, every other cell continues its slide; a heading never sits
    inside a cell. The paired notebook carries the same metadata (jupytext --sync was run)."""
    cells = jupytext.read(source).cells
    wrong = []
    for index, cell in enumerate(cells):
        first_line = cell.source.split("\n", 1)[0]
        if "remove-cell" in cell.metadata.get("tags", []):
            expected = {"skip"}
        elif index == 0:
            expected = {"slide"}
        elif cell.cell_type == "markdown" and first_line.startswith("## "):
            expected = {"slide"}
        elif cell.cell_type == "markdown" and first_line.startswith("### "):
            expected = {"subslide"}
        else:
            expected = {"-", "skip"}
        if slide_type(cell) not in expected:
            wrong.append(f"cell {index + 1} ({first_line[:50]!r}): {slide_type(cell)}, expected {expected}")
        if cell.cell_type == "markdown" and headings_inside(cell.source):
            wrong.append(f"cell {index + 1}: split it before {headings_inside(cell.source)}")
    assert cells[0].source.startswith("# "), "the first cell is the chapter's title"
    assert not wrong, "\n".join(wrong)
    paired = jupytext.read(source.with_suffix(".ipynb")).cells
    assert [slide_type(c) for c in paired] == [slide_type(c) for c in cells], "run jupytext --sync"


@pytest.fixture(scope="module")
def deck(tmp_path_factory):
    """One chapter's deck, made as `make slides` makes them (the same command and config),
    into a temporary folder instead of _build/slides."""
    out = tmp_path_factory.mktemp("slides")
    nbconvert = Path(sys.executable).with_name("jupyter-nbconvert")
    done = subprocess.run([str(nbconvert), "--config", str(CONFIG), "--output-dir", str(out), str(CHAPTER)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    page = out / f"{CHAPTER.stem}.slides.html"
    assert page.is_file(), sorted(p.name for p in out.iterdir())
    return page


class Assets(html.parser.HTMLParser):
    """The scripts and style sheets a page loads."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])


def test_everything_the_deck_loads_is_next_to_it(deck):
    """No CDN: every script, style sheet and AMD module (reveal.js and its notes plugin) is a
    relative URL to a file in the deck's folder, and the Mermaid import asks for no host."""
    text = deck.read_text()
    parser = Assets()
    parser.feed(text)
    modules = re.findall(r'"([^"]+\.js)"', re.search(r"require\(\s*\{.*?\},\s*\[(.*?)\]", text, re.S)[1])
    urls = parser.urls + modules
    assert len(parser.urls) >= 5 and len(modules) == 2, urls
    remote = [u for u in urls if re.match(r"([a-z][a-z0-9+.-]*:|//)", u)]
    assert not remote, f"loaded from the network: {remote}"
    missing = [u for u in urls if not (deck.parent / u.split("?")[0]).is_file()]
    assert not missing, f"not next to the deck: {missing}"
    assert not re.search(r"""import\s.*from\s+['"](https?:)?//""", text), "Mermaid from a CDN"
    # what compat.js loads, and the theme's fonts
    assert (deck.parent / "mathjax" / "tex-mml-chtml.js").is_file()
    assert list((deck.parent / "reveal.js" / "dist" / "theme" / "fonts").rglob("*.woff"))


OPEN_DECK = """async () => {
    // the template loads reveal.js with RequireJS (no global): ask RequireJS for the same module
    window.Reveal = await new Promise(done => require(["reveal.js/dist/reveal.js"], done));
    return Reveal.getIndices();
}"""


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_the_deck_opens_offline_with_its_formulas_and_the_arrow_moves_on(deck, scheme):
    """Served on 127.0.0.1, and opened from the folder itself (file://, a USB stick): no
    console error, no failed request, nothing asked of another host, formulas typeset without
    error, the explorer drawn, and the right arrow goes to the next slide."""
    with serve(deck.parent) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        local = base if scheme == "http" else deck.parent.as_uri()
        seen = watch(page, local)
        page.goto(f"{local}/{deck.name}", wait_until="load")
        page.wait_for_selector(".reveal.ready", state="attached", timeout=30_000)
        math = page.evaluate(MATHJAX_DONE)
        page.wait_for_selector(".widget-slider", state="attached", timeout=30_000)
        before = page.evaluate(OPEN_DECK)
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(300)
        after = page.evaluate("Reveal.getIndices()")
        total = page.evaluate("Reveal.getTotalSlides()")
        page.wait_for_timeout(500)  # anything the new slide asks for
        problems = seen.problems()
        page.close()
    assert not problems, "\n".join(problems)
    assert math["loaded"] and math["containers"] > 10 and math["errors"] == 0, math
    assert before["h"] == 0 and after["h"] == 1, (before, after)
    assert total >= 8, f"{total} slides: are the headings slides?"
