"""`make lab`'s server starts (as root too), prints its URL and serves the first chapter, with
the course's settings; in Chromium a learner runs the chapter and moves its explorer."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.browser import chromium, move_slider, visible_images, watch

ROOT = Path(__file__).resolve().parents[1]
FIRST_CHAPTER = "chapters/01_online_linear_regression.ipynb"


def test_makefile_opens_the_first_chapter_as_root():
    makefile = (ROOT / "Makefile").read_text()
    assert f"FIRST_CHAPTER := {FIRST_CHAPTER}" in makefile and "--allow-root" in makefile
    assert (ROOT / FIRST_CHAPTER).exists()


def test_jupyter_lab_serves_the_course(tmp_path):
    jupyter = Path(sys.executable).with_name("jupyter")
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(jupyter), "lab", "--allow-root", "--no-browser", "--port=0", f"--ServerApp.root_dir={ROOT}",
             f"--ServerApp.runtime_dir={tmp_path}"], stdout=out, stderr=subprocess.STDOUT)
    try:
        url = None
        for _ in range(120):
            match = re.search(r"(http://(?:localhost|127\.0\.0\.1):\d+/lab\?token=\w+)", log.read_text())
            if match:
                url = match.group(1)
                break
            time.sleep(0.5)
        assert url, log.read_text()[-2000:]
        base, token = url.split("/lab?token=")
        page = urllib.request.urlopen(f"{base}/lab/tree/{FIRST_CHAPTER}?token={token}", timeout=30).read().decode()
        assert "JupyterLab" in page
        contents = urllib.request.urlopen(f"{base}/api/contents/{FIRST_CHAPTER}?token={token}", timeout=30)
        assert contents.status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def start_lab(folder: Path, tmp_path: Path):
    """`jupyter lab` as `make lab` starts it (the venv's, as root too), serving ``folder``, with a
    fresh user-settings and workspace folder so only the course's shipped settings apply.
    Returns (server process, base URL, token)."""
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "user-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("jupyter")), "lab", "--allow-root", "--no-browser", "--port=0",
             f"--ServerApp.root_dir={folder}", f"--ServerApp.runtime_dir={tmp_path}"],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    for _ in range(120):
        match = re.search(r"(http://(?:localhost|127\.0\.0\.1):\d+)/lab\?token=(\w+)", log.read_text())
        if match:
            return server, match.group(1), match.group(2)
        time.sleep(0.5)
    server.terminate()
    raise AssertionError(log.read_text()[-2000:])


def run_all_cells(page, tries: int = 3):
    """Run → Run All Cells, as a learner does. A click that comes while the kernel is still
    connecting queues nothing (under load that happens), so check that the cells are queued
    (their prompts show [*]) and click again if not."""
    for _ in range(tries):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.locator(".jp-InputPrompt", has_text="[*]").first.wait_for(timeout=20_000)
            return
        except Exception:
            page.keyboard.press("Escape")
    raise AssertionError(f"Run All Cells queued no cell in {tries} tries")


def test_setup_installs_the_course_lab_settings():
    """jupyter/ mirrors the environment's prefix; `make setup` copies it into .venv."""
    shipped = sorted(p.relative_to(ROOT / "jupyter") for p in (ROOT / "jupyter").rglob("*") if p.is_file())
    assert {str(p) for p in shipped} == {"etc/jupyter/labconfig/page_config.json",
                                         "share/jupyter/lab/settings/overrides.json"}
    page_config = json.loads((ROOT / "jupyter" / shipped[0]).read_text())
    assert page_config["disabledExtensions"] == {"@jupyterlab/apputils-extension:announcements": True}
    overrides = json.loads((ROOT / "jupyter" / shipped[1]).read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert 'cp -R jupyter/. "${NB_PYTHON_PREFIX:-$CONDA_PREFIX}/"' in (ROOT / "postBuild").read_text()  # Binder
    assert "cp -R jupyter/. $(VENV)/" in (ROOT / "Makefile").read_text()
    prefix = Path(sys.prefix)
    if (ROOT / ".venv") == prefix:  # under make test: setup has installed them
        installed = json.loads((prefix / shipped[0]).read_text())
        assert page_config["disabledExtensions"].items() <= installed["disabledExtensions"].items(), "run make setup"
        assert json.loads((prefix / shipped[1]).read_text()) == overrides, "run make setup"


def test_a_learner_runs_the_first_chapter_in_jupyterlab_and_moves_its_explorer(tmp_path):
    """What a learner does after `make lab`: the first chapter opens in the light theme with no
    question about Jupyter news, Run All Cells runs it in the kernel, and the explorer's widget
    renders and shows another frame when its slider moves."""
    folder = tmp_path / "course"
    (folder / "chapters").mkdir(parents=True)
    shutil.copy(ROOT / FIRST_CHAPTER, folder / FIRST_CHAPTER)  # the learner's run must not touch the repository
    with chromium() as browser:
        server, base, token = start_lab(folder, tmp_path)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            seen = watch(page, base)
            page.goto(f"{base}/lab/tree/{FIRST_CHAPTER}?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            assert "disabledExtensions" in page.content() and "apputils-extension:announcements" in page.content()
            assert page.evaluate("document.body.dataset.jpThemeName") == "JupyterLab Light"
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
            page.wait_for_timeout(1000)  # where the announcements are on, their question pops up by now
            assert page.get_by_text("official Jupyter news").count() == 0, \
                "JupyterLab asked about Jupyter news: the announcements extension is not off"
            run_all_cells(page)
            slider = page.locator(".jp-OutputArea .widget-slider").first
            try:
                slider.wait_for(timeout=150_000)
            except Exception:
                page.screenshot(path=str(tmp_path / "jupyterlab-timeout.png"))
                raise
            slider.scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            before = visible_images(page)
            move_slider(page, slider)
            after = visible_images(page)
            page.screenshot(path=str(tmp_path / "jupyterlab.png"))
            news = page.get_by_text("official Jupyter news").count()
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert len(before) == len(after) == 1 and before != after  # one frame shown, and the slider switched it
    assert news == 0, "JupyterLab asked about Jupyter news: the announcements extension is not off"
    assert seen.outside == [], seen.outside
