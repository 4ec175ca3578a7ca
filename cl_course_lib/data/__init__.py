"""Data: where files come from (:mod:`.sources`), image sets (:mod:`.vision`), benchmarks."""

from .sources import DataUnavailableError, cache_dir, cache_status, fetch, fetch_all
from .vision import ImageData, load_digits, load_fashion_mnist, load_mnist

__all__ = ["DataUnavailableError", "ImageData", "cache_dir", "cache_status", "fetch", "fetch_all",
           "load_digits", "load_fashion_mnist", "load_mnist"]
