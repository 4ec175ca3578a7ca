"""Data: where files come from (:mod:`.sources`), image sets (:mod:`.vision`), text corpora
(:mod:`.text`), benchmarks."""

from .sources import DataUnavailableError, cache_dir, cache_status, fetch, fetch_all
from .text import TextData, load_bbc_news, load_drug_reviews, load_rotten_tomatoes, tokenize
from .vision import ImageData, load_digits, load_fashion_mnist, load_mnist

__all__ = ["DataUnavailableError", "ImageData", "TextData", "cache_dir", "cache_status", "fetch", "fetch_all",
           "load_bbc_news", "load_digits", "load_drug_reviews", "load_fashion_mnist", "load_mnist",
           "load_rotten_tomatoes", "tokenize"]
