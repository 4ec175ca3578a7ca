"""`make lab`'s server starts (as root too), prints its URL and serves the first chapter."""

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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
