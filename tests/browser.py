"""Debian's Chromium driven by Playwright, as a reader with no network connection sees the course.

Every request that leaves 127.0.0.1 is aborted and recorded, and every console error and failed
request is collected, so a test can say that a page needed nothing from outside and loaded
cleanly. Never ``playwright install``: it downloads a browser (and fails offline).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")


def require_chromium():
    """Skip without Chromium, except in CI (.ci/run installs it), where a skip would hide a broken page."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: Chromium is missing (Debian: apt-get install chromium)")
        pytest.skip("needs Chromium (Debian: apt-get install chromium)")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder without a log line per request."""

    def log_message(self, *args):
        pass


@contextmanager
def serve(folder: Path):
    """Serve ``folder`` on 127.0.0.1 (a free port); yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@contextmanager
def chromium():
    """A headless Chromium (Debian's), closed afterwards."""
    require_chromium()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watch:
    """What a page asked of the world: requests to other hosts (aborted), console errors, failures."""

    outside: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def clear(self):
        self.outside.clear(), self.console_errors.clear(), self.failed.clear()

    def problems(self) -> list[str]:
        return ([f"request to another host: {u}" for u in self.outside]
                + [f"console error: {m}" for m in self.console_errors]
                + [f"failed request: {u}" for u in self.failed])


def watch(page, base: str) -> Watch:
    """Abort every request outside ``base`` and record it, console errors and failed requests."""
    seen = Watch()

    def local_only(route):
        if route.request.url.startswith(base) or route.request.url.startswith(("data:", "blob:")):
            return route.continue_()
        seen.outside.append(route.request.url)
        return route.abort()

    page.route("**/*", local_only)
    page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.console_errors.append(str(e)))
    page.on("requestfailed", lambda r: None if r.url in seen.outside else seen.failed.append(f"{r.url} ({r.failure})"))
    page.on("response", lambda r: seen.failed.append(f"{r.url} ({r.status})") if r.status >= 400 else None)
    return seen


MATHJAX_DONE = """async () => {
    if (!window.MathJax || !MathJax.startup) return {loaded: false, containers: 0, errors: 0};
    await MathJax.startup.promise;
    await document.fonts.ready;  // MathJax's fonts load after typesetting: let them arrive
    return {loaded: true, containers: document.querySelectorAll('mjx-container').length,
            errors: document.querySelectorAll('mjx-merror').length};
}"""


def visible_images(page) -> list[str]:
    """The sources of the widget images a reader sees now (an explorer shows one frame at a time)."""
    return page.evaluate("""() => [...document.querySelectorAll('.widget-image')]
        .filter(img => img.offsetParent !== null).map(img => img.src)""")


def move_slider(page, slider) -> None:
    """Move one slider a step with the keyboard, as a reader does (left, or right if it is at its start)."""
    handle = slider.locator("[role=slider], .noUi-handle, input[type=range]").first
    handle.focus()
    before = handle.get_attribute("aria-valuenow")
    handle.press("ArrowLeft")
    page.wait_for_timeout(200)
    if handle.get_attribute("aria-valuenow") == before:
        handle.press("ArrowRight")
        page.wait_for_timeout(200)
