"""The book builds from the committed outputs, lists every notebook, and needs no network:
MathJax and the widget manager come from _vendor/, and in a real browser (where Chromium is
installed) the formulas render and an explorer's slider switches its frames."""

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium")


def toc_files():
    toc = yaml.safe_load((ROOT / "toc.yml").read_text())
    return {entry["file"] for part in toc["parts"] for entry in part["chapters"]}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The built site's html folder (one build for the module)."""
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    done = subprocess.run([str(jupyter_book), "build", str(ROOT), "--path-output", str(out),
                           "--config", str(ROOT / "book.yml"), "--toc", str(ROOT / "toc.yml")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "_build" / "html"


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


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site without a log line per request."""

    def log_message(self, *args):
        pass


def test_math_and_an_explorer_work_in_a_browser_with_no_network(site):
    if CHROMIUM is None:
        # In CI a skip would hide a broken site: .ci/run installs Chromium, so its absence fails.
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test: Chromium is missing (Debian: apt-get install chromium)")
        pytest.skip("needs Chromium (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    outside = []

    def local_only(route):
        if route.request.url.startswith(base):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.route("**/*", local_only)
            page.goto(f"{base}/chapters/03_regularization.html")
            page.wait_for_selector("mjx-container", timeout=60_000)
            page.wait_for_selector(".widget-slider", timeout=60_000)
            assert page.locator("mjx-container").count() > 20 and page.locator("mjx-merror").count() == 0

            def visible_frame():
                return [img.get_attribute("src") for img in page.locator(".widget-image").all() if img.is_visible()]
            before = visible_frame()
            page.locator(".widget-slider [role=slider], .widget-slider .noUi-handle").first.focus()
            page.keyboard.press("ArrowLeft")
            page.wait_for_timeout(300)
            after = visible_frame()
            browser.close()
    finally:
        server.shutdown()
    assert len(before) == len(after) == 1 and before != after  # the slider switched the frame, with no kernel
    assert outside == []
