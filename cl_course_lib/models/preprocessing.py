"""Per-batch transforms on the device, at the model's input: what a pretrained network
expects, made from the compact inputs the data keeps.

A transform lives in the model (``Preprocessed(transform, model)``), not in the data, so
that every path a batch takes sees the same one: training, a replay memory (which then
stores the small raw inputs, 28×28 digits rather than 224×224×3 images), importance,
distillation teachers and evaluation.

- ``ImageInput``: grey → RGB, resize, normalise, for ImageNet-pretrained CNNs
  (torchvision's weights expect 3 channels normalised with their ``mean`` and ``std``).
- ``TrimPadding``: tokenised text padded to one length per task cut, per batch, to its
  longest sequence, the same as padding each batch to its own longest ("dynamic padding",
  as ``transformers.DataCollatorWithPadding``): attention costs O(L²) per sequence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..validation import check

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageInput(nn.Module):
    """``(B, C, H, W)`` or ``(B, H, W)`` images in [0, 1] → ``(B, 3, size, size)``, normalised:
    grey images are repeated over the three channels, resized bilinearly (with antialiasing
    when shrinking) and normalised per channel, ``(x − mean) / std``.

    Args:
        size: the side of the square output (e.g. 224 for ImageNet weights, 32 for a quick run).
        mean, std: per-channel statistics of the pretrained weights (ImageNet's by default).
        channels_last: return the images in ``torch.channels_last`` memory order (NHWC), the
            layout GPUs' tensor-core convolutions run fastest in (the model too:
            ``model.to(memory_format=torch.channels_last)``).
    """

    def __init__(self, size: int, *, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 channels_last: bool = False):
        super().__init__()
        self.size = check("size", size, integer=True, at_least=1, example=224)
        self.channels_last = bool(channels_last)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"ImageInput takes (B, H, W) or (B, 1 or 3, H, W) images; got shape {tuple(x.shape)}.")
        x = x.float().expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.size)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class TrimPadding(nn.Module):
    """A tokenizer's dict of ``(B, L)`` tensors cut to ``(B, ℓ)``, ℓ the longest sequence of
    the batch (the last position where ``attention_mask`` is 1), for right-padded text."""

    def forward(self, x: Mapping) -> dict:
        if not isinstance(x, Mapping) or "attention_mask" not in x:
            raise ValueError("TrimPadding takes a tokenizer's output, a dict with an 'attention_mask'; "
                             f"got {type(x).__name__}.")
        mask = x["attention_mask"]
        used = mask.any(dim=0).nonzero()
        length = int(used.max()) + 1 if len(used) else 1
        return {key: value[:, :length] if value.dim() >= 2 and value.shape[1] == mask.shape[1] else value
                for key, value in x.items()}


class Preprocessed(nn.Module):
    """``model(transform(x), task)``: a per-batch transform in front of a model of this
    library's interface (``model(x, task)``)."""

    def __init__(self, transform: nn.Module, model: nn.Module):
        super().__init__()
        self.transform, self.model = transform, model

    def forward(self, x, task: int | torch.Tensor | None = None) -> torch.Tensor:
        return self.model(self.transform(x), task)

    def features(self, x) -> torch.Tensor:
        """The wrapped model's ``features`` of the transformed inputs (for ``features.embed``)."""
        return self.model.features(self.transform(x))
