"""The book builds from the committed outputs with Sphinx warnings as errors, lists every
notebook, and needs no network: MathJax and the widget manager come from _vendor/. In a real
browser (Debian's Chromium, every request to another host aborted) every page loads cleanly,
its images and formulas render, its links resolve, and every explorer's slider works."""

import html.parser
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import yaml

from tests.browser import MATHJAX_DONE, chromium, move_slider, serve, visible_images, watch

ROOT = Path(__file__).resolve().parents[1]
# the pages besides the notebooks that a reader must be able to open
OTHER_PAGES = ["index.html", "README.html", "glossary.html", "references.html"]


def toc_files():
    toc = yaml.safe_load((ROOT / "toc.yml").read_text())
    return {entry["file"] for part in toc["parts"] for entry in part["chapters"] if entry["file"].endswith(".ipynb")}


def notebook_pages():
    return sorted(str(Path(f).with_suffix(".html")) for f in toc_files())


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The built site's html folder (one build for the module), built as `make book` does:
    every Sphinx warning is an error (-W), all of them reported (--keep-going)."""
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    done = subprocess.run([str(jupyter_book), "build", str(ROOT), "--path-output", str(out),
                           "--config", str(ROOT / "book.yml"), "--toc", str(ROOT / "toc.yml"),
                           "-W", "--keep-going"], capture_output=True, text=True, timeout=300)
    warnings = [line for line in (done.stdout + done.stderr).splitlines() if "WARNING" in line]
    assert done.returncode == 0 and not warnings, "\n".join(warnings) or done.stdout[-3000:] + done.stderr[-3000:]
    return out / "_build" / "html"


def test_make_book_treats_warnings_as_errors():
    assert "jupyter-book build . --config book.yml --toc toc.yml -W --keep-going" in (ROOT / "Makefile").read_text()


def test_every_notebook_is_in_the_toc():
    notebooks = {str(p.relative_to(ROOT)) for folder in ("chapters", "exercises", "solutions")
                 for p in (ROOT / folder).glob("*.ipynb")}
    assert notebooks == toc_files()


def test_book_builds(site):
    for notebook in toc_files():
        page = (site / notebook).with_suffix(".html")
        assert page.exists(), f"{page} was not built"
    chapter = (site / "chapters" / "02_catastrophic_forgetting.html").read_text()
    assert "application/vnd.jupyter.widget-state+json" in chapter  # the explorer's frames are embedded


def test_every_script_of_every_page_is_local(site):
    """No CDN: a page opened with no network connection still has its math and widgets."""
    for notebook in toc_files():
        page = (site / notebook).with_suffix(".html")
        scripts = re.findall(r'<script[^>]*\ssrc="([^"]+)"', page.read_text())
        assert not [s for s in scripts if re.match(r"(https?:)?//", s)], f"{page.name} loads scripts from the network"
        for src in scripts:
            assert (page.parent / src.split("?")[0]).resolve().is_file(), f"{page.name}: {src} is missing"
    chapter = (site / "chapters" / "03_regularization.html").read_text()
    assert all(f"_static/{name}" in chapter for name in ("mathjax/tex-mml-chtml.js", "widgets/embed-amd.js"))




class Anchors(html.parser.HTMLParser):
    """The ids a page defines and the hrefs of its links."""

    def __init__(self):
        super().__init__()
        self.ids, self.hrefs = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.ids.update(v for k, v in attrs.items() if k in ("id", "name") and v)
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


def parse(page: Path) -> Anchors:
    parser = Anchors()
    parser.feed(page.read_text())
    return parser


def test_every_internal_link_and_anchor_resolves(site):
    pages = [site / p for p in OTHER_PAGES + notebook_pages()]
    parsed, broken = {}, []
    for page in pages:
        for href in parse(page).hrefs:
            if re.match(r"[a-z][a-z0-9+.-]*:", href) or href.startswith("//"):
                continue  # another site (Binder, Colab, a paper's DOI), mailto:, javascript:
            url = urlsplit(urljoin(page.relative_to(site).as_posix(), href))
            target = site / unquote(url.path) if url.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(site)}: {href} (no such file)")
            elif url.fragment and target.suffix == ".html":
                ids = parsed.setdefault(target, parse(target)).ids
                if unquote(url.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)}: {href} (no such anchor)")
    assert not broken, "\n".join(broken)


def test_every_chapter_has_a_download_button_and_launch_links(site):
    book = yaml.safe_load((ROOT / "book.yml").read_text())
    repo, branch = urlsplit(book["repository"]["url"]).path.strip("/"), book["repository"]["branch"]
    for notebook in sorted(f for f in toc_files() if f.startswith("chapters/")):
        page = (site / notebook).with_suffix(".html").read_text()
        assert "btn-download-source-button" in page and f"_sources/{notebook}" in page
        assert f"https://mybinder.org/v2/gh/{repo}/{branch}?urlpath=lab/tree/{notebook}" in page
        assert f"https://colab.research.google.com/github/{repo}/blob/{branch}/{notebook}" in page


def test_a_notebook_opened_in_colab_installs_the_course_from_the_books_repository():
    """Colab has no cl_course_lib: each notebook's hidden first code cell installs it from the
    repository the launch links point at (and does nothing where the course is installed)."""
    url = yaml.safe_load((ROOT / "book.yml").read_text())["repository"]["url"]
    for notebook in sorted(toc_files()):
        source = (ROOT / notebook).with_suffix(".md").read_text()
        first_code = source[source.index("```{code-cell}"):].split("```\n", 1)[0]
        assert "tags: [remove-cell]" in first_code and 'find_spec("cl_course_lib") is None' in first_code, notebook
        assert f'"cl-course-lib @ git+{url}"' in first_code and "cl_course_lib fetch-data" in first_code, notebook


@pytest.fixture(scope="module")
def browser_on_site(site):
    with serve(site) as base, chromium() as browser:
        yield browser, base


IMAGES_LOADED = """async () => {
    const images = [...document.images];
    images.forEach(img => { img.loading = 'eager'; });
    const settle = img => img.complete ? null : new Promise(done => { img.onload = img.onerror = done; });
    await Promise.race([Promise.all(images.map(settle)), new Promise(done => setTimeout(done, 15000))]);
    return images.filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src);
}"""


def test_every_page_loads_cleanly_with_its_images_and_formulas(browser_on_site, tmp_path_factory):
    """Index, chapters, exercises, solutions, glossary and references: no console error, no failed
    request, nothing asked of another host, every image decoded, every formula typeset. A
    screenshot of each chapter is left in the test's temporary folder."""
    browser, base = browser_on_site
    shots = tmp_path_factory.mktemp("screenshots")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = watch(page, base)
    problems = {}
    for path in OTHER_PAGES + notebook_pages():
        seen.clear()
        page.goto(f"{base}/{path}", wait_until="load")
        if path == "index.html":  # a redirect to the course's front page
            page.wait_for_url(f"{base}/README.html")
            page.wait_for_load_state("load")
        broken_images = page.evaluate(IMAGES_LOADED)
        math = page.evaluate(MATHJAX_DONE)
        found = seen.problems() + [f"image not decoded: {src}" for src in broken_images]
        if math["errors"]:
            found.append(f"{math['errors']} MathJax errors")
        if path.startswith("chapters/"):
            if not (math["loaded"] and math["containers"] > 0):
                found.append("no formula was typeset")
            page.screenshot(path=str(shots / Path(path).with_suffix(".png").name))
        if found:
            problems[path] = found
    page.close()
    print(f"screenshots of the chapters: {shots}")
    assert not problems, "\n".join(f"{p}: {'; '.join(f)}" for p, f in problems.items())
    assert len(list(shots.glob("*.png"))) == len([p for p in notebook_pages() if p.startswith("chapters/")])


def test_every_explorer_slider_changes_what_is_shown(browser_on_site):
    """Each explorer switches precomputed frames in the browser, so on the static page, with no
    kernel, moving any explorer's slider must show another frame."""
    browser, base = browser_on_site
    with_explorers = {p for p in notebook_pages()
                      if p.startswith("chapters/") and "Explorer(" in (ROOT / p).with_suffix(".md").read_text()}
    page = browser.new_page()
    seen = watch(page, base)
    checked, stuck = [], []
    for path in sorted(with_explorers):
        page.goto(f"{base}/{path}", wait_until="load")
        page.wait_for_selector(".widget-slider", timeout=60_000)
        sliders = page.locator(".widget-slider")
        for i in range(sliders.count()):
            before = visible_images(page)
            move_slider(page, sliders.nth(i))
            after = visible_images(page)
            (checked if before != after else stuck).append(f"{path} slider {i + 1}")
    page.close()
    assert not stuck, f"sliders that changed nothing: {stuck}"
    assert not seen.problems(), seen.problems()
    assert {c.split(" slider")[0] for c in checked} == with_explorers and len(with_explorers) >= 7, checked
