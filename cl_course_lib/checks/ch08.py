"""Checks for chapter 8's exercises: a linear probe on a pretrained CNN (new heads, the
backbone frozen, BatchNorm statistics included), BatchNorm statistics kept fixed while the
rest of the network fine-tunes, and RanPAC's random projection + ridge head on frozen
features.

Exercises 1 and 2 run on torchvision's MobileNetV2 architecture (headless, 1280 features) with
random weights, whose BatchNorm statistics are first measured on random images, as pretrained
ones were measured on ImageNet. The check's training images come from another distribution
(grey images, the same in the three channels), so a BatchNorm layer left to itself visibly
moves its statistics, and normalising with the batch's statistics visibly changes the
features. Building it takes about 0.1 s; every check runs in a second or two.

Both exercises are checked by behaviour, through the training step the course uses
(``Strategy.observe``, which calls ``model.train()`` at every step): no parameter or running
statistic of what must stay fixed may change (bit for bit), what must train must move, and in
train mode the BatchNorm layers must compute what they compute in eval mode. The hints name
the usual mistakes, found from the modules themselves: ``requires_grad_(False)`` alone (it
does not stop the statistics), one ``.eval()`` (undone by the next ``model.train()``),
``momentum = 0`` (fixed statistics, still the batch's used), everything frozen.

Exercise 3 compares ``rp_ridge_fit`` and ``rp_ridge_predict`` with
``cl.closed_form.RandomProjectionRidge`` given the same projection and λ, recognises the usual
mistakes by computing them (no ReLU, λ ignored, added to every entry, or scaled by N), and
tests *how*: λ shrinks the weights, the projection given is the one used, and fitting the
tasks in another order gives the W_o of the library accumulated task by task.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..closed_form import RandomProjectionRidge
from ..models.heads import Heads
from ..models.vision import Backbone, load_backbone
from ..strategies import Naive
from .core import Check, Report, expect

_BN = nn.modules.batchnorm._BatchNorm


def _seeded(build, seed: int):
    """``build()`` under a fixed torch seed, without touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def random_backbone(seed: int = 0) -> Backbone:
    """torchvision's MobileNetV2, headless (1280 features), with random weights and BatchNorm
    statistics measured on random images (cumulative averages over 3 batches of 16); in train
    mode, as ``load_backbone`` returns a network."""
    def build():
        backbone = load_backbone("mobilenet_v2", pretrained=False)
        net = backbone.model
        layers = [m for m in net.modules() if isinstance(m, _BN)]
        for bn in layers:
            bn.momentum = None  # a cumulative average: the statistics of all calibration batches
        net.train()
        with torch.no_grad():
            for _ in range(3):
                net(torch.randn(16, 3, 32, 32))
        for bn in layers:
            bn.momentum = 0.1
            bn.num_batches_tracked.zero_()
        return backbone  # in train mode, as load_backbone returns it (torchvision builds models so)
    return _seeded(build, seed)


def _images(seed: int, n: int, size: int = 32) -> torch.Tensor:
    """Grey images (the same in the three channels) normalised as ``ImageInput`` does: not the
    distribution the statistics were measured on."""
    def build():
        grey = torch.rand(n, 1, size, size) ** 2
        return ((grey - 0.45) / 0.225).expand(-1, 3, -1, -1).contiguous()
    return _seeded(build, seed)


def _batchnorms(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(m, _BN)]


def _watch_modes(module: nn.Module, *, every: bool = False) -> dict:
    """Forward pre-hooks that record, at call time, which BatchNorm layers (and, with
    ``every``, which other modules) of ``module`` ran in train mode. ``module`` itself is left
    out: a learner's pre-hook on it may switch modes when it is called."""
    seen: dict = {"bn_training": [], "bn_eval": [], "other_eval": [], "handles": []}

    def hook(name, is_bn):
        def record(m, args):
            if is_bn:
                seen["bn_training" if m.training else "bn_eval"].append(name)
            elif not m.training:
                seen["other_eval"].append(name)
        return record
    for name, m in module.named_modules():
        if name and (isinstance(m, _BN) or every):
            seen["handles"].append(m.register_forward_pre_hook(hook(name, isinstance(m, _BN))))
    return seen


def _unwatch(seen: dict) -> dict:
    for handle in seen.pop("handles"):
        handle.remove()
    return seen


def _captured_output(model: nn.Module, part: nn.Module, x: torch.Tensor, task: int = 0) -> torch.Tensor:
    """What ``part`` returns while ``model(x, task)`` runs (no gradients, own random state)."""
    out: list[torch.Tensor] = []
    handle = part.register_forward_hook(lambda m, args, result: out.append(result.detach().clone()))
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model(x, task)
    finally:
        handle.remove()
    expect(bool(out), "The backbone did not run in model(x, task): build the model on it.")
    return out[-1]


def _eval_mode_output(model: nn.Module, part: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``part``'s output in ``model(x, 0)`` with every module's training flag set to False
    directly (not through ``.train()``/``.eval()``, which a learner may have replaced); the
    flags are restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    for m, _ in flags:
        m.training = False
    try:
        return _captured_output(model, part, x)
    finally:
        for m, flag in flags:
            m.training = flag


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 rounding of a different but equivalent formula (FrozenBatchNorm2d
    folds γ/√(σ² + ε) into one scale)."""
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()) + 1e-6))


_TRAP = ("BatchNorm running_mean changed: requires_grad_(False) does not stop BatchNorm from updating its statistics "
         "in train mode. Every forward pass in train mode moves running_mean and running_var towards the batch "
         "(μ ← 0.9 μ + 0.1 μ_B), no gradient needed, so the frozen backbone drifts towards the current task. Keep "
         "the BatchNorm layers in eval mode for good — see chapter 8, the section on BatchNorm.")
_UNDONE = ("After model.train() the BatchNorm layers are in train mode again: one .eval() is undone by the next "
           "model.train(), which Strategy.observe calls at every step and which sets the mode of every submodule. "
           "Keep them in eval mode for good, e.g. module.train = lambda mode=True: nn.Module.train(module, False), "
           "or a forward pre-hook that calls .eval().")
_BATCH_STATISTICS = ("The BatchNorm layers ran in train mode, so they normalised with each batch's own mean and "
                     "variance (and moved their running ones): requires_grad_(False) does not put a layer in eval "
                     "mode. Keep the BatchNorm layers in eval mode for good — see chapter 8, the section on BatchNorm.")
_MOMENTUM = ("momentum=0 keeps the running statistics fixed, but in train mode a BatchNorm layer still normalises "
             "every batch with the batch's own mean and variance, not with its running ones: the features at "
             "training are not those at test, and they depend on what else is in the batch. Put the layer in eval "
             "mode (for good) instead.")
_UNTRACKED = ("track_running_stats=False makes a BatchNorm layer normalise with the batch's statistics in train mode "
              "(its running ones are only used in eval mode): the features at training are not those at test. Put "
              "the layer in eval mode (for good) instead.")


def _mode_hints(layers: list[nn.Module], seen: dict, eval_at_return: bool) -> None:
    """The hint for BatchNorm layers that did not compute their eval-mode function."""
    expect(not any(bn.momentum == 0 for bn in layers), _MOMENTUM)
    expect(all(bn.track_running_stats for bn in layers), _UNTRACKED)
    if seen["bn_training"]:
        expect(not eval_at_return, _UNDONE)
        expect(False, _BATCH_STATISTICS)


# --------------------------------------------------------------------------------------
# Exercise 1: new heads, the backbone frozen (BatchNorm included)


def _probe(probe_model, backbone: Backbone, n_outputs: int, heads: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = probe_model(backbone, n_outputs, heads)
    expect(model is not None, "Return the model (a missing `return`?).")
    expect(isinstance(model, nn.Module), f"Return a torch module; got {type(model).__name__}.")
    expect(any(m is backbone.model for m in model.modules()),
           "Build the model on backbone.model itself, the network you are given (e.g. "
           "cl.models.ImageClassifier(backbone.model, backbone.n_features, n_outputs, heads=heads)); do not load or "
           "copy another one: that would be the one frozen, and the check watches backbone.model.")
    return model


def _trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _count_hints(model: nn.Module, backbone: Backbone, n_outputs: int, heads: int) -> None:
    d = backbone.n_features
    want, one_head = heads * (d * n_outputs + n_outputs), d * n_outputs + n_outputs
    got = _trainable(model)
    if got == want:
        return
    net = backbone.model
    total = sum(p.numel() for p in net.parameters())
    affine = sum(p.numel() for _, bn in _batchnorms(net) for p in bn.parameters() if p.requires_grad)
    expect(got != 0, "Nothing trains: the heads must keep requires_grad=True (freeze backbone.model only).")
    expect(not total or _trainable(net) < total, f"Nothing of the backbone is frozen: all its {total:,} parameters "
           "still have requires_grad=True. Freeze backbone.model (backbone.model.requires_grad_(False)).")
    expect(not (affine and got == want + affine), f"The convolutions are frozen, but the BatchNorm layers' γ and β "
           f"({affine:,} numbers, their weight and bias) are parameters too and still train: freeze all of "
           "backbone.model, backbone.model.requires_grad_(False).")
    expect(got != one_head or heads == 1, f"{got:,} trainable numbers is one head of {d} × {n_outputs} + {n_outputs}: "
           f"give every task its own head (heads={heads}), e.g. cl.models.ImageClassifier(..., heads=heads).")
    expect(got <= want, f"{got - want:,} parameters besides the heads still train: freeze all of backbone.model.")
    expect(False, f"{got:,} trainable numbers; the heads alone are heads × (d·k + k) = {heads} × ({d}·{n_outputs} + "
           f"{n_outputs}) = {want:,}, and nothing else may train.")


def check_probe_model(probe_model) -> Report:
    """``probe_model(backbone, n_outputs, heads) -> model``: ``model(x, task)`` on ``(B, 3, H, W)``
    images, ``heads`` new heads on ``backbone``'s features, the backbone frozen for good
    (no gradient, BatchNorm statistics fixed and used, through later ``model.train()``)."""
    check = Check("probe_model")

    @check.case("model(x, t) gives (B, n_outputs) logits for every head t; the heads are separate")
    def _():
        for n_outputs, heads in ((3, 2), (4, 1)):
            model = _probe(probe_model, random_backbone(0), n_outputs, heads)
            x = _images(0, 4)
            model.eval()
            with torch.no_grad():
                outputs = [model(x, t) for t in range(heads)]
            for t, out in enumerate(outputs):
                expect(isinstance(out, torch.Tensor) and tuple(out.shape) == (4, n_outputs),
                       f"model(x, {t}) on 4 images should give logits of shape (4, {n_outputs}); got "
                       f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}. The head maps "
                       f"backbone.n_features = 1280 features to n_outputs.")
            if heads > 1:
                expect(not torch.allclose(outputs[0], outputs[1]), "model(x, 0) and model(x, 1) are the same: give "
                       "every task its own head (heads=heads), and let model(x, task) run head `task`.")

    @check.case("trainable: the heads only, heads × (1280·k + k) numbers (5 heads of k = 2: 12,810)")
    def _():
        for n_outputs, heads in ((2, 5), (3, 2), (10, 1)):
            backbone = random_backbone(1)
            _count_hints(_probe(probe_model, backbone, n_outputs, heads), backbone, n_outputs, heads)

    @check.case("how: after 5 training steps (Strategy.observe, model.train() at every step) no parameter or "
                "BatchNorm statistic of the backbone changed, bit for bit; the heads did")
    def _():
        backbone = random_backbone(2)
        before = {k: v.clone() for k, v in backbone.model.state_dict().items()}
        model = _probe(probe_model, backbone, 2, 2)
        layers = [bn for _, bn in _batchnorms(backbone.model)]
        eval_at_return = bool(layers) and not any(bn.training for bn in layers)
        backbone_ids = {id(p) for p in backbone.model.parameters()}
        heads = {n: p.detach().clone() for n, p in model.named_parameters() if id(p) not in backbone_ids}
        expect(any(p.requires_grad for p in model.parameters()),
               "Nothing trains: the heads must keep requires_grad=True (freeze backbone.model only).")
        strategy = Naive(model, lr=1e-2)
        x, y = _images(2, 40), _seeded(lambda: torch.randint(0, 2, (40,)), 2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(2)
            for step in range(5):
                strategy.observe(x[8 * step:8 * step + 8], y[8 * step:8 * step + 8], step % 2)
        after = backbone.model.state_dict()
        changed = [k for k in before if k in after and not k.endswith("num_batches_tracked")
                   and not torch.equal(before[k], after[k])]
        statistics = [k for k in changed if k.endswith(("running_mean", "running_var"))]
        weights = [k for k in changed if k not in statistics]
        bn_names = {name for name, _ in _batchnorms(backbone.model)}
        if weights:
            affine_only = all(k.rsplit(".", 1)[0] in bn_names for k in weights)
            expect(not affine_only, f"The BatchNorm layers' γ and β changed ({weights[0]}, ...): they are parameters "
                   "of the backbone too; freeze all of backbone.model (requires_grad_(False)).")
            expect(False, f"{len(weights)} weights of the backbone changed while the heads trained (e.g. "
                   f"{weights[0]}): freeze backbone.model, backbone.model.requires_grad_(False).")
        if statistics:
            expect(not eval_at_return, _UNDONE)
            expect(False, _TRAP)
        moved = [n for n, p in model.named_parameters() if n in heads and not torch.equal(p.detach(), heads[n])]
        expect(bool(moved), "The heads did not change in 5 training steps: they must train (requires_grad=True).")

    @check.case("how: in train mode the backbone computes its eval-mode features (BatchNorm normalises with its "
                "running statistics, not the batch's)")
    def _():
        backbone = random_backbone(3)
        x = _images(3, 8)
        with torch.no_grad():
            reference = copy.deepcopy(backbone.model).eval()(x)
        model = _probe(probe_model, backbone, 2, 2)
        layers = [bn for _, bn in _batchnorms(backbone.model)]
        eval_at_return = bool(layers) and not any(bn.training for bn in layers)
        model.eval()
        model.train()  # what every training step does
        seen = _watch_modes(backbone.model)
        try:
            got = _captured_output(model, backbone.model, x)
        finally:
            _unwatch(seen)
        if not _close(got, reference):
            _mode_hints(layers, seen, eval_at_return)
            expect(False, "In train mode the backbone's features differ from its eval-mode features: leave its "
                   "weights and statistics as they are and keep all of it in eval mode.")

    return check.run()


# --------------------------------------------------------------------------------------
# Exercise 2: BatchNorm statistics fixed while the rest fine-tunes


class FineTuned(nn.Module):
    """A whole MobileNetV2 to fine-tune: the backbone, a dropout (p = 0.2, as torchvision's
    classifier has before its linear layer) and heads; ``model(x, task)``."""

    def __init__(self, backbone: Backbone, n_outputs: int = 3, heads: int = 2):
        super().__init__()
        self.backbone, self.dropout = backbone.model, nn.Dropout(0.2)
        self.heads = Heads(backbone.n_features, n_outputs, heads)

    def forward(self, x: torch.Tensor, task=None) -> torch.Tensor:
        return self.heads(self.dropout(self.backbone(x)), task)


def _fine_tuned(seed: int) -> FineTuned:
    backbone = random_backbone(seed)
    return _seeded(lambda: FineTuned(backbone).train(), seed + 100)


def _frozen_statistics(freeze_bn_statistics, model: nn.Module) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        got = freeze_bn_statistics(model)
    expect(got is not None, "Return the model (a missing `return`?).")
    expect(isinstance(got, nn.Module), f"Return the model, a torch module; got {type(got).__name__}.")
    expect(got is model, "Change the model in place and return it (the same object), not a copy.")
    return got


def check_freeze_bn_statistics(freeze_bn_statistics) -> Report:
    """``freeze_bn_statistics(model) -> model``: in place, every BatchNorm layer keeps its running
    statistics and normalises with them (eval mode) through later ``model.train()``; every
    other module trains as before (convolutions learn, dropout drops)."""
    check = Check("freeze_bn_statistics")
    state: dict = {}

    def trained():
        if state:
            return state
        model = _fine_tuned(10)
        statistics = {k: v.clone() for k, v in model.state_dict().items()
                      if k.endswith(("running_mean", "running_var"))}
        weights = {n: p.detach().clone() for n, p in model.named_parameters()}
        model = _frozen_statistics(freeze_bn_statistics, model)
        layers = [bn for _, bn in _batchnorms(model)]
        eval_at_return = bool(layers) and not any(bn.training for bn in layers)
        trainable = any(p.requires_grad for p in model.parameters())
        seen = _watch_modes(model)
        x, y = _images(10, 48), _seeded(lambda: torch.randint(0, 3, (48,)), 10)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(10)
                strategy = Naive(model, lr=1e-2) if trainable else None
                for step in range(6):
                    batch = slice(8 * step, 8 * step + 8)
                    if strategy is not None:
                        strategy.observe(x[batch], y[batch], step % 2)
                    else:  # nothing can train: the forward passes of the steps alone, in train mode
                        model.train()
                        with torch.no_grad():
                            model(x[batch], step % 2)
        finally:
            _unwatch(seen)
        state.update(model=model, statistics=statistics, weights=weights, layers=layers, trainable=trainable,
                     eval_at_return=eval_at_return, seen=seen)
        return state

    @check.case("returns the model, with its own BatchNorm layers (nn.BatchNorm2d, the same objects)")
    def _():
        model = _fine_tuned(11)
        before = {id(bn) for _, bn in _batchnorms(model)}
        got = _frozen_statistics(freeze_bn_statistics, model)
        after = {id(bn) for _, bn in _batchnorms(got)}
        swapped = [type(m).__name__ for m in got.modules() if "Frozen" in type(m).__name__]
        expect(not swapped, f"The BatchNorm layers were replaced by {swapped[0] if swapped else ''}: that is "
               "cl.models.freeze_batchnorm's way (it freezes γ and β too). Here write it yourself, with the model's "
               "own BatchNorm layers.")
        expect(after == before, "The model's BatchNorm layers are not the ones it had: keep them and change their "
               "mode, not the modules.")

    @check.case("after 6 training steps (Strategy.observe, model.train() at every step) every BatchNorm's "
                "running_mean and running_var are unchanged, bit for bit")
    def _():
        s = trained()
        after = s["model"].state_dict()
        moved = [k for k, v in s["statistics"].items() if not torch.equal(after[k], v)]
        if moved:
            layers = s["layers"]
            expect(not s["eval_at_return"], _UNDONE)
            frozen_bn = all(not p.requires_grad for bn in layers for p in bn.parameters())
            expect(not frozen_bn, _TRAP.replace("requires_grad_(False)",
                                                "requires_grad_(False) on the BatchNorm layers"))
            expect(False, f"{len(moved)} running statistics changed (e.g. {moved[0]}): the BatchNorm layers ran in "
                   "train mode, which updates them. Keep them in eval mode for good.")

    @check.case("how: in train mode every BatchNorm normalises with its running statistics: the backbone's "
                "train-mode output equals its eval-mode output")
    def _():
        model = _frozen_statistics(freeze_bn_statistics, _fine_tuned(12))
        layers = [bn for _, bn in _batchnorms(model)]
        eval_at_return = bool(layers) and not any(bn.training for bn in layers)
        x = _images(12, 8)
        model.eval()
        model.train()  # what every training step does
        reference = _eval_mode_output(model, model.backbone, x)
        seen = _watch_modes(model)
        try:
            got = _captured_output(model, model.backbone, x)
        finally:
            _unwatch(seen)
        if not _close(got, reference):
            _mode_hints(layers, seen, eval_at_return)
            expect(False, "In train mode the backbone's output differs from its eval-mode output: only the "
                   "BatchNorm layers' mode should change, nothing else.")

    @check.case("the convolutions and the heads still train: every one of their weights changed in the 6 steps")
    def _():
        s = trained()
        expect(s["trainable"], "You froze the parameters too: the convolutions must still train (continual "
               "fine-tuning); only the BatchNorm statistics stay fixed. No requires_grad_(False).")
        params = dict(s["model"].named_parameters())
        watched = [n for n, m in s["model"].named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        still = [n for n in watched if torch.equal(params[f"{n}.weight"].detach(), s["weights"][f"{n}.weight"])]
        frozen = [n for n in watched if not params[f"{n}.weight"].requires_grad]
        example = frozen[0] if frozen else ""
        expect(not frozen, f"{len(frozen)} convolutions or heads have requires_grad=False (e.g. {example}): freeze "
               "the statistics, not the weights; the convolutions must still train.")
        expect(not still, f"{len(still)} of {len(watched)} convolutions or heads did not change (e.g. "
               f"{still[0] if still else ''}): only the BatchNorm statistics stay fixed; everything else trains.")

    @check.case("how: in a train-mode forward the BatchNorm layers run in eval mode, every other module (the "
                "dropout too) in train mode")
    def _():
        model = _frozen_statistics(freeze_bn_statistics, _fine_tuned(13))
        layers = [bn for _, bn in _batchnorms(model)]
        eval_at_return = bool(layers) and not any(bn.training for bn in layers)
        model.eval()
        model.train()
        seen = _watch_modes(model, every=True)
        try:
            _captured_output(model, model.backbone, _images(13, 4))
        finally:
            _unwatch(seen)
        others = sorted(seen["other_eval"], key=lambda name: "dropout" not in name)  # the dropout first
        expect(not others, f"{len(others)} modules that are not BatchNorm ran in eval mode (e.g. "
               f"{', '.join(others[:2])}): model.train() no longer puts the rest of the model in train mode (its "
               "dropout is off). Keep only the BatchNorm layers in eval mode.")
        if seen["bn_training"]:
            expect(not eval_at_return, _UNDONE)
            expect(False, f"{len(set(seen['bn_training']))} BatchNorm layers ran in train mode (e.g. "
                   f"{seen['bn_training'][0]}): " + (_MOMENTUM if any(bn.momentum == 0 for bn in layers) else
                                                     "put them in eval mode, for good."))

    return check.run()


# --------------------------------------------------------------------------------------
# Exercise 3: random projection + ridge regression (RanPAC) on frozen features


def _ridge_data(seed: int, n: int = 90, d: int = 12, n_classes: int = 4, missing: int = 0):
    """Features (float32) with class structure, labels with every class of the first
    ``n_classes - missing``."""
    def build():
        k = n_classes - missing
        centres = torch.randn(n_classes, d) * 1.5
        y = torch.cat([torch.arange(k), torch.randint(0, k, (n - k,))])[torch.randperm(n)]
        return centres[y] + torch.randn(n, d), y
    return _seeded(build, seed)


def _projection(d: int, m: int, seed: int) -> torch.Tensor:
    """RanPAC's projection as the library draws it: Gaussian, float64, (d, M)."""
    return RandomProjectionRidge(d, 1, projection_dim=m, seed=seed).projection.clone()


def _library_fit(chunks, n_classes: int, projection: torch.Tensor, ridge: float) -> torch.Tensor:
    head = RandomProjectionRidge(projection.shape[0], n_classes, projection_dim=projection.shape[1], ridge=ridge)
    head.projection.copy_(projection)
    for h, y in chunks:
        head.update(h, y)
    return head.weights().clone()


def reference_rp_ridge_fit(h, y, n_classes, projection, ridge) -> torch.Tensor:
    """``W_o = (ΦᵀΦ + λI)⁻¹ ΦᵀY``, φ = ReLU(h W), one-hot Y, in float64."""
    phi = torch.relu(h.double() @ projection.double())
    gram = phi.T @ phi
    return torch.linalg.solve(gram + ridge * torch.eye(len(gram), dtype=gram.dtype),
                              phi.T @ F.one_hot(y, n_classes).double())


def _fit_mistakes(h, y, n_classes, projection, ridge) -> list[tuple[torch.Tensor, str]]:
    phi = torch.relu(h.double() @ projection)
    linear = h.double() @ projection
    one_hot = F.one_hot(y, n_classes).double()
    eye = torch.eye(projection.shape[1], dtype=torch.float64)

    def solve(a, b):
        return torch.linalg.solve(a, b)
    return [
        (solve(linear.T @ linear + ridge * eye, linear.T @ one_hot), "No ReLU: RanPAC's features are φ = ReLU(h W), "
         "a nonlinear expansion; without it the projection is a linear map and adds nothing to a linear head."),
        (torch.linalg.lstsq(phi, one_hot).solution, "λ was not used: that is least squares, (ΦᵀΦ)⁻¹ΦᵀY. Add λ to the "
         "diagonal of ΦᵀΦ: (ΦᵀΦ + λI)⁻¹ ΦᵀY."),
        (torch.linalg.pinv(phi) @ one_hot, "λ was not used: that is the pseudo-inverse solution. Add λ to the "
         "diagonal of ΦᵀΦ: (ΦᵀΦ + λI)⁻¹ ΦᵀY."),
        (solve(phi.T @ phi + ridge, phi.T @ one_hot), "You added λ to every entry of ΦᵀΦ: add it to the diagonal "
         "only, + λ·I (torch.eye(M))."),
        (solve(phi.T @ phi / len(y) + ridge * eye, phi.T @ one_hot / len(y)), "You averaged over the samples "
         "(ΦᵀΦ/N, ΦᵀY/N), which multiplies λ by N: use the sums, G = ΦᵀΦ and C = ΦᵀY. Sums are what add up task "
         "by task."),
    ]


def _fit_hints(got, h, y, n_classes, projection, ridge, hint: str) -> None:
    """Pass if ``got`` is the library's W_o; else the hint of a usual mistake it matches, else ``hint``."""
    if _same(got, _library_fit([(h, y)], n_classes, projection, ridge)):
        return
    for wrong, mistake in _fit_mistakes(h, y, n_classes, projection, ridge):
        expect(not _same(got, wrong, 1e-6), mistake)
    expect(False, hint)


def _weights_of(rp_ridge_fit, h, y, n_classes, projection, ridge) -> torch.Tensor:
    got = rp_ridge_fit(h.clone(), y.clone(), n_classes, projection.clone(), ridge)
    m = projection.shape[1]
    expect(got is not None, "Return W_o (a missing `return`?).")
    expect(isinstance(got, torch.Tensor), f"Return W_o as a torch tensor; got {type(got).__name__}.")
    if tuple(got.shape) == (n_classes, m) and n_classes != m:
        expect(False, f"W_o should be (M, n_classes) = ({m}, {n_classes}), scores φ(h) W_o; yours is transposed.")
    if got.dim() == 1 or (got.dim() == 2 and got.shape[1] == 1):
        expect(False, "W_o has one column: regress onto one-hot labels, Y = F.one_hot(y, n_classes), one column "
               "per class (not onto the class number).")
    if got.dim() == 2 and got.shape[0] == m and got.shape[1] == int(y.max()) + 1 < n_classes:
        expect(False, f"W_o has {got.shape[1]} columns, one per class seen: use F.one_hot(y, n_classes), so that "
               "classes without samples yet get a column too.")
    expect(tuple(got.shape) == (m, n_classes), f"Return W_o of shape (M, n_classes) = ({m}, {n_classes}); got "
           f"{tuple(got.shape)}.")
    expect(got.dtype == torch.float64, f"W_o is {got.dtype}: compute φ and the solve in float64 (h.double(); the "
           "projection is float64 already). ΦᵀΦ sums squares of many features, and float32 loses digits there.")
    return got.detach()


def _same(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-8) -> bool:
    return a.shape == b.shape and float((a - b).abs().max()) <= rel * float(b.abs().max()) + 1e-12


def check_rp_ridge_fit(rp_ridge_fit) -> Report:
    """``rp_ridge_fit(h, y, n_classes, projection, ridge) -> W_o``: ``(ΦᵀΦ + λI)⁻¹ ΦᵀY`` with
    ``φ = ReLU(h W)`` and one-hot ``Y``, float64 ``(M, n_classes)``."""
    check = Check("rp_ridge_fit")

    @check.case("random features: the W_o of cl.closed_form.RandomProjectionRidge (same projection, λ = 1), "
                "float64, (M, n_classes)")
    def _():
        h, y = _ridge_data(0)
        projection = _projection(12, 30, 0)
        got = _weights_of(rp_ridge_fit, h, y, 4, projection, 1.0)
        gap = float((got - _library_fit([(h, y)], 4, projection, 1.0)).abs().max())
        _fit_hints(got, h, y, 4, projection, 1.0, f"Your W_o differs from (ΦᵀΦ + λI)⁻¹ ΦᵀY (largest difference "
                   f"{gap:.3g}), with φ = ReLU(h @ projection) and Y one-hot.")

    @check.case("n_classes is respected: classes with no samples yet get a column of zeros")
    def _():
        h, y = _ridge_data(1, n_classes=5, missing=2)  # classes 3 and 4 not seen
        projection = _projection(12, 30, 1)
        got = _weights_of(rp_ridge_fit, h, y, 5, projection, 1.0)
        expect(torch.equal(got[:, 3:], torch.zeros_like(got[:, 3:])), "A class without samples should get a column "
               "of zeros (its column of ΦᵀY is zero).")
        _fit_hints(got, h, y, 5, projection, 1.0, "The classes that do have samples should still get their columns "
                   "of (ΦᵀΦ + λI)⁻¹ ΦᵀY.")

    @check.case("how: the ridge λ is used: λ = 10⁴ shrinks W_o, to the library's W_o for that λ")
    def _():
        h, y = _ridge_data(2)
        projection = _projection(12, 30, 2)
        small = _weights_of(rp_ridge_fit, h, y, 4, projection, 1.0)
        large = _weights_of(rp_ridge_fit, h, y, 4, projection, 1e4)
        expect(not _same(large, small, 1e-6), "λ = 10⁴ gave the W_o of λ = 1: use the ridge you are given, "
               "(ΦᵀΦ + λI)⁻¹ ΦᵀY.")
        if not _same(large, _library_fit([(h, y)], 4, projection, 1e4)):
            for wrong, mistake in _fit_mistakes(h, y, 4, projection, 1e4):
                expect(not _same(large, wrong, 1e-6), mistake)
            expect(float(large.norm()) < 0.5 * float(small.norm()), "A large λ should shrink W_o towards 0; with "
                   "λ = 10⁴ yours kept more than half its size at λ = 1. Add λ to the diagonal of ΦᵀΦ, the matrix "
                   "you invert: (ΦᵀΦ + λI)⁻¹ ΦᵀY.")
            expect(False, "With λ = 10⁴ your W_o differs from (ΦᵀΦ + λI)⁻¹ ΦᵀY.")

    @check.case("how: the projection given is the one used: another projection gives the library's W_o for it")
    def _():
        h, y = _ridge_data(3)
        for seed in (3, 4):
            projection = _projection(12, 30, seed)
            got = _weights_of(rp_ridge_fit, h, y, 4, projection, 1.0)
            _fit_hints(got, h, y, 4, projection, 1.0, "Use the projection you are given (φ = ReLU(h @ projection)); "
                       "do not draw your own: every task must see the same one.")

    @check.case("how: two tasks fitted in reverse order (samples shuffled) give the W_o accumulated task by task "
                "(RandomProjectionRidge.update twice), to 1e-8")
    def _():
        h, y = _ridge_data(5, n=120, n_classes=4)
        projection = _projection(12, 40, 5)
        first, second = (h[y < 2], y[y < 2]), (h[y >= 2], y[y >= 2])
        incremental = _library_fit([first, second], 4, projection, 1.0)
        order = _seeded(lambda: torch.randperm(len(y)), 5)
        shuffled = torch.cat([second[0], first[0]])[order], torch.cat([second[1], first[1]])[order]
        got = _weights_of(rp_ridge_fit, *shuffled, 4, projection, 1.0)
        if not _same(got, incremental):
            for wrong, mistake in _fit_mistakes(*shuffled, 4, projection, 1.0):
                expect(not _same(got, wrong, 1e-6), mistake)
        expect(_same(got, incremental), "Fitted on the tasks in another order, your W_o differs from the one "
               "accumulated task by task: G = ΦᵀΦ = Σ_n φ_n φ_nᵀ and C = ΦᵀY = Σ_n φ_n y_nᵀ are sums over the "
               "samples, so W_o = (G + λI)⁻¹ C cannot depend on their order.")

    return check.run()


def reference_rp_ridge_predict(h, projection, weights) -> torch.Tensor:
    """``argmax_c φ(h)ᵀ W_o``, φ = ReLU(h W)."""
    return (torch.relu(h.double() @ projection.double()) @ weights.double()).argmax(dim=1)


def _labels_of(rp_ridge_predict, h, projection, weights) -> torch.Tensor:
    got = rp_ridge_predict(h.clone(), projection.clone(), weights.clone())
    expect(got is not None, "Return the predicted labels (a missing `return`?).")
    expect(isinstance(got, torch.Tensor), f"Return a torch tensor of labels; got {type(got).__name__}.")
    if got.dim() == 2 and tuple(got.shape) == (len(h), weights.shape[1]):
        expect(False, "You returned the scores (N, n_classes): return the label of the best class, "
               "scores.argmax(dim=1).")
    expect(tuple(got.shape) == (len(h),), f"Return one label per sample, shape (N,) = ({len(h)},); got "
           f"{tuple(got.shape)}.")
    expect(not got.is_floating_point(), "Return integer labels (argmax gives a LongTensor).")
    return got.long()


def _predict_hints(got, h, projection, weights, hint: str = "") -> None:
    want = reference_rp_ridge_predict(h, projection, weights)
    if torch.equal(got, want):
        return
    scores = torch.relu(h.double() @ projection) @ weights
    for wrong, mistake in (
            (((h.double() @ projection) @ weights).argmax(dim=1), "No ReLU: the scores are φ(h) W_o with "
             "φ(h) = ReLU(h @ projection), the features W_o was fitted on."),
            (scores.argmin(dim=1), "You took the lowest score: the label is the argmax of φ(h) W_o.")):
        expect(not torch.equal(got, wrong), mistake)
    expect(False, hint or f"{int((got != want).sum())} of {len(h)} labels differ from argmax_c φ(h)ᵀ W_o.")


def check_rp_ridge_predict(rp_ridge_predict) -> Report:
    """``rp_ridge_predict(h, projection, W_o) -> labels (N,)``: ``argmax_c φ(h)ᵀ W_o``."""
    check = Check("rp_ridge_predict")

    @check.case("random features (float32) and the library's W_o: the labels of RandomProjectionRidge")
    def _():
        h, y = _ridge_data(6)
        projection = _projection(12, 30, 6)
        weights = _library_fit([(h, y)], 4, projection, 1.0)
        test, _ = _ridge_data(7)
        got = _labels_of(rp_ridge_predict, test, projection, weights)
        _predict_hints(got, test, projection, weights)
        head = RandomProjectionRidge(12, 4, projection_dim=30, ridge=1.0)
        head.projection.copy_(projection)
        head.update(h, y)
        expect(torch.equal(got, head(test).argmax(dim=1)), "Your labels differ from RandomProjectionRidge's.")

    @check.case("how: the projection given is the one used: another projection and its W_o give its labels")
    def _():
        h, y = _ridge_data(8)
        test, _ = _ridge_data(9)
        for seed in (8, 9):
            projection = _projection(12, 30, seed)
            weights = _library_fit([(h, y)], 4, projection, 1.0)
            got = _labels_of(rp_ridge_predict, test, projection, weights)
            _predict_hints(got, test, projection, weights, "Use the projection you are given "
                           "(φ = ReLU(h @ projection)), the one W_o was fitted with; do not draw your own.")

    return check.run()
