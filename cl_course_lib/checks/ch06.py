"""Checks for chapter 6's exercises: a progressive column's forward pass with its laterals, and
freezing a module for good (BatchNorm and dropout included).

Exercise 1 compares the learner's column with the library's ``ProgressiveNet`` on small seeded
nets, and recognises the usual mistakes by computing them (a lateral without its inner
non-linearity, without α, or read from layer i instead of i − 1). It tests *how* as well: the
adapters must be written with their weights (calling the adapter module is refused), and
column k must not depend on later columns.

Exercise 2 tests *how* a module is frozen, not only a flag: after ``freeze(module)`` and a later
``model.train()``, a training-mode forward must leave BatchNorm's running statistics alone, give
the same output twice (no dropout) and the output of eval mode, and no parameter of the frozen
part may get a gradient, while the rest of the model still trains.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.progressive import ProgressiveNet
from .core import Check, Report, expect


def _seeded(build, seed: int):
    """``build()`` under a fixed torch seed, without touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


# --------------------------------------------------------------------------------------
# Exercise 1: a column's forward pass with lateral connections (Rusu et al. 2016, eq. 2)


def _net(seed: int, widths=(5, 5, 5, 5), columns: int = 3) -> ProgressiveNet:
    """A small ProgressiveNet with non-trivial α (not 1, different per earlier column)."""
    def build():
        net = ProgressiveNet(widths[0], list(widths[1:-1]), widths[-1], columns=columns)
        with torch.no_grad():
            for column in net.columns[1:]:
                for adapter in column.laterals:
                    adapter.alpha.copy_(0.5 + torch.rand_like(adapter.alpha))
        x = torch.randn(7, widths[0])
        return net.eval(), x
    return _seeded(build, seed)


def reference_column(net: ProgressiveNet, x: torch.Tensor, k: int, *, inner_relu: bool = True,
                     outer_relu: bool = True, use_alpha: bool = True, same_layer: bool = False) -> torch.Tensor:
    """Column ``k``'s logits by eq. 2 written with the weights, or with one chosen mistake."""
    relu = torch.relu
    n_layers = len(net.widths) - 1
    h = [x.flatten(1)] * (k + 1)  # h[j] = h_{i-1}^{(j)}
    for i in range(n_layers):
        last = i == n_layers - 1
        new = []
        for j in range(k + 1):
            layer = net.columns[j].layers[i]
            z = h[j] @ layer.weight.T + layer.bias
            new.append(z)
        if i:  # every column j ≥ 1 gets laterals from layer i−1 (or, wrongly, layer i) of columns < j
            source = [(n if last else relu(n)) for n in new] if same_layer else h
            for j in range(1, k + 1):
                adapter = net.columns[j].laterals[i - 1]
                parts = [(adapter.alpha[m] if use_alpha else 1.0) * source[m] for m in range(j)]
                inner = torch.cat(parts, dim=1) @ adapter.V.weight.T
                new[j] = new[j] + (relu(inner) if inner_relu else inner) @ adapter.U.weight.T
        h = [z if last or not outer_relu else relu(z) for z in new]
    return h[k]


class _NoModuleCall(RuntimeError):
    pass


def _forbid_adapter_calls(net: ProgressiveNet) -> None:
    def refuse(*args, **kwargs):
        raise _NoModuleCall("write the lateral with its weights (adapter.alpha, adapter.V.weight, adapter.U.weight) "
                            "instead of calling the adapter module")
    for column in net.columns[1:]:
        for adapter in column.laterals:
            adapter.forward = refuse


def _logits(value, x: torch.Tensor, n_outputs: int) -> torch.Tensor:
    expect(value is not None, "Return column k's logits; your function returned None (a missing `return`?).")
    expect(isinstance(value, torch.Tensor), f"Return a torch tensor of logits; got {type(value).__name__}.")
    expect(tuple(value.shape) == (len(x), n_outputs),
           f"Return the logits of shape (batch, n_outputs) = {(len(x), n_outputs)}; got {tuple(value.shape)}.")
    return value.detach()


def _column_hints(got: torch.Tensor, net: ProgressiveNet, x: torch.Tensor, k: int) -> None:
    want = reference_column(net, x, k)
    if torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        return
    mistakes = [
        ({"same_layer": True}, ("The lateral into layer i must read layer i − 1 of the earlier columns (the layer "
                                "that feeds layer i of column k), not their layer i: h_i^(k) is computed from the "
                                "h_{i−1} of every column.")),
        ({"inner_relu": False}, ("The adapter has its own non-linearity: U σ(V (α ⊙ h)), with σ = ReLU between V and "
                                 "U (eq. 2). Without it the lateral is linear.")),
        ({"outer_relu": False}, ("Apply σ (ReLU) to every hidden layer's total input, W h + b + lateral; only the "
                                 "output layer (logits) has none.")),
        ({"use_alpha": False}, ("α is not applied: scale earlier column j's activations by α_j (adapter.alpha[j]) "
                                "before V.")),
    ]
    for kwargs, hint in mistakes:
        try:
            wrong = reference_column(net, x, k, **kwargs)
        except RuntimeError:  # that mistake does not fit these layer widths
            continue
        if torch.allclose(got, wrong, rtol=1e-4, atol=1e-5):
            expect(False, hint)
    expect(False, f"Column {k}'s logits differ from eq. 2 (largest difference {(got - want).abs().max().item():.3g}). "
                  "For each layer i and every column j ≤ k: z = W_i h_{i−1}^(j) + b_i, plus for i ≥ 2 and j ≥ 1 "
                  "column j's lateral U σ(V (α ⊙ [h_{i−1}^(0), …, h_{i−1}^(j−1)])); ReLU on hidden layers.")


def check_column_forward(column_forward) -> Report:
    """``column_forward(net, x, k) -> logits``: column k of a ProgressiveNet by eq. 2, written with the weights."""
    check = Check("column_forward")

    def learner(seed, k, widths=(5, 5, 5, 5)):
        net, x = _net(seed, widths)
        want = net(x, k).detach()
        _forbid_adapter_calls(net)
        with torch.no_grad():
            got = _logits(column_forward(net, x, k), x, net.n_outputs)
        return net, x, got, want

    @check.case("column 0 (no laterals) gives the library's logits")
    def _():
        _, _, got, want = learner(0, 0)
        expect(torch.allclose(got, want, rtol=1e-4, atol=1e-5),
               "Column 0 has no laterals: z = W_i h_{i−1} + b_i layer by layer (net.columns[0].layers[i]), ReLU on "
               "the hidden layers, none on the output.")

    @check.case("column 1, one earlier column: the lateral of eq. 2")
    def _():
        net, x, got, want = learner(1, 1)
        _column_hints(got, net, x, 1)
        expect(torch.allclose(got, want, rtol=1e-4, atol=1e-5), "Your logits differ from net(x, 1).")

    @check.case("column 2, two earlier columns, other layer widths: each α_j on its own column, in order 0, 1")
    def _():
        net, x, got, want = learner(2, 2, widths=(6, 5, 4, 3))
        _column_hints(got, net, x, 2)
        expect(torch.allclose(got, want, rtol=1e-4, atol=1e-5),
               "Your logits differ from net(x, 2): column 1 has its own lateral from column 0, which column 2 "
               "reads through column 1's activations; concatenate the earlier columns in order, [h^(0), h^(1)], "
               "with α_0 on the first block and α_1 on the second.")

    @check.case("how: column k does not depend on later columns (change column 2, column 1 stays)")
    def _():
        net, x = _net(3)
        _forbid_adapter_calls(net)
        with torch.no_grad():
            before = _logits(column_forward(net, x, 1), x, net.n_outputs)
            for p in net.columns[2].parameters():
                p.add_(1.0)
            after = _logits(column_forward(net, x, 1), x, net.n_outputs)
        expect(torch.equal(before, after),
               "Column 1's output changed when column 2's weights did: column k reads columns 0..k only "
               "(the earlier ones through its laterals), never a later one.")

    return check.run()


# --------------------------------------------------------------------------------------
# Exercise 2: freeze a module for good


class _Model(nn.Module):
    """A 'frozen' part (Linear, BatchNorm, ReLU, Dropout, Linear) and a trainable head with dropout."""

    def __init__(self):
        super().__init__()
        self.old = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 3))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 2))

    def forward(self, x):
        return self.head(self.old(x))


def _model(seed: int):
    def build():
        model = _Model()
        with torch.no_grad():  # running statistics that differ from a batch's, as after training
            model.old[1].running_mean.normal_()
            model.old[1].running_var.uniform_(0.5, 2.0)
        return model, 3 * torch.randn(16, 4) + 1
    return _seeded(build, seed)


def _bn_state(model: _Model) -> list[torch.Tensor]:
    bn = model.old[1]
    return [bn.running_mean.clone(), bn.running_var.clone()]


def _unchanged(before, after) -> bool:
    return all(torch.equal(a, b) for a, b in zip(before, after))


def check_freeze(freeze) -> Report:
    """``freeze(module)``: no gradients and eval mode for good, even after a later ``model.train()``."""
    check = Check("freeze")

    def frozen_model(seed):
        model, x = _model(seed)
        with torch.no_grad():
            reference = model.old.eval()(x).clone()  # what the frozen part must keep answering
        model.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            freeze(model.old)
        return model, x, reference

    not_eval = ("requires_grad=False is not enough: in training mode BatchNorm updates its running statistics "
                "without any gradient, and dropout drops units. Put the module in eval mode (module.eval()), "
                "and keep it there.")

    @check.case("no parameter of the frozen module gets a gradient; the rest of the model still does")
    def _():
        model, x, _ = frozen_model(10)
        model.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model(x).square().sum().backward()
        grads = [name for name, p in model.old.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
        expect(all(not p.requires_grad for p in model.old.parameters()),
               f"Parameters {grads or [n for n, p in model.old.named_parameters() if p.requires_grad]} still have "
               "requires_grad=True: call module.requires_grad_(False) (or set p.requires_grad = False for every "
               "p in module.parameters()).")
        expect(not grads, f"Parameters {grads} got a gradient: set requires_grad to False on all of them.")
        expect(all(p.requires_grad and p.grad is not None for p in model.head.parameters()),
               "The head, which you did not pass to freeze, stopped training: freeze only `module`.")

    @check.case("a forward right after freeze leaves BatchNorm's running statistics alone")
    def _():
        model, x, _ = frozen_model(11)
        before = _bn_state(model)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model(x)
        expect(_unchanged(before, _bn_state(model)), "BatchNorm's running mean and variance changed in a forward "
               "pass: " + not_eval)

    @check.case("how: after a later model.train(), a training-mode forward changes nothing (statistics, output)")
    def _():
        model, x, reference = frozen_model(12)
        before = _bn_state(model)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model.old(x)
        expect(_unchanged(before, _bn_state(model)), "Right after freeze the module still updates BatchNorm's "
               "statistics: " + not_eval)
        model.eval()
        model.train()  # the training loop does this at every task (or every step)
        before = _bn_state(model)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            first = model.old(x)
            second = model.old(x)
        if not _unchanged(before, _bn_state(model)):
            expect(False, "After model.train() the frozen BatchNorm updated its running statistics again: one "
                          "module.eval() is undone by the next model.train(), which sets every submodule's mode. "
                          "Make the module stay in eval mode, e.g. replace its train method: "
                          "module.train = lambda mode=True: nn.Module.train(module, False).")
        expect(torch.equal(first, second),
               "Two forward passes of the frozen module gave different outputs after model.train(): dropout is "
               "active again. Keep the module in eval mode for good (override its train method).")
        expect(torch.allclose(first, reference, rtol=1e-5, atol=1e-6),
               "The frozen module's output is not its eval-mode output: in training mode BatchNorm normalises with "
               "the batch's statistics, not the running ones (setting momentum to 0 freezes the statistics but not "
               "the output). Keep the module in eval mode.")

    @check.case("the rest of the model still switches to training mode")
    def _():
        model, _, _ = frozen_model(13)
        model.eval()
        model.train()
        expect(model.head.training and model.head[0].training,
               "model.train() no longer puts the head in training mode: change the frozen module only, not its "
               "parent or nn.Module itself.")

    return check.run()
