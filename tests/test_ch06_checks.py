"""Chapter 6's exercise checks: right answers pass, each usual mistake fails with its own hint,
a stub says "not done yet", and the checks leave the caller's random state alone."""

import pytest
import torch
from torch import nn

from check_helpers import failing, leaves_random_state_alone, not_done_yet, passing, stub
from cl_course_lib.checks import ch06


def column_with(*, inner_relu=True, outer_relu=True, use_alpha=True, same_layer=False):
    """Eq. 2 written with the weights, with one chosen mistake."""
    def column_forward(net, x, k):
        n_layers = len(net.columns[k].layers)
        h = [x.flatten(1)] * (k + 1)
        for i in range(n_layers):
            z = [net.columns[j].layers[i](h[j]) for j in range(k + 1)]
            out = [t if i == n_layers - 1 else torch.relu(t) for t in z]
            if i:
                src = out if same_layer else h
                for j in range(1, k + 1):
                    a = net.columns[j].laterals[i - 1]
                    scaled = torch.cat([(a.alpha[m] if use_alpha else 1.0) * src[m] for m in range(j)], dim=1)
                    inner = scaled @ a.V.weight.T
                    z[j] = z[j] + (torch.relu(inner) if inner_relu else inner) @ a.U.weight.T
            h = [t if i == n_layers - 1 or not outer_relu else torch.relu(t) for t in z]
        return h[k]
    return column_forward


def freeze(module):
    module.requires_grad_(False)
    module.eval()
    module.train = lambda mode=True: nn.Module.train(module, False)


def freeze_with_hook(module):  # another right answer: eval mode restored at every call
    module.requires_grad_(False)
    module.register_forward_pre_hook(lambda m, args: m.eval() and None)


def only_requires_grad(module):
    module.requires_grad_(False)


def only_eval_once(module):
    module.requires_grad_(False)
    module.eval()


def only_eval_forever(module):
    module.eval()
    module.train = lambda mode=True: nn.Module.train(module, False)


def momentum_zero(module):  # statistics frozen, but BatchNorm still normalises with the batch's
    module.requires_grad_(False)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.momentum = 0.0
        if isinstance(m, nn.Dropout):
            m.p = 0.0


def test_right_answers_pass():
    passing(ch06.check_column_forward(column_with()))
    passing(ch06.check_column_forward(lambda net, x, k: ch06.reference_column(net, x, k)))
    passing(ch06.check_freeze(freeze))
    passing(ch06.check_freeze(freeze_with_hook))


@pytest.mark.parametrize("check", [ch06.check_column_forward, ch06.check_freeze])
def test_a_stub_is_not_done_yet(check):
    not_done_yet(check(stub))


@pytest.mark.parametrize("wrong, hint", [
    (column_with(inner_relu=False), "its own non-linearity"),
    (column_with(outer_relu=False), "Apply σ (ReLU) to every hidden layer"),
    (column_with(use_alpha=False), "α is not applied"),
    (column_with(same_layer=True), "layer i − 1 of the earlier columns"),
    (lambda net, x, k: net(x, k), "instead of calling the adapter module"),
    (lambda net, x, k: None, "returned None"),
    (lambda net, x, k: column_with()(net, x, k)[:, :1], "shape (batch, n_outputs)"),
])
def test_column_forward_mistakes(wrong, hint):
    failing(ch06.check_column_forward(wrong), hint)


def test_a_column_reading_a_later_column_fails_the_how_case():
    def peeks(net, x, k):
        return column_with()(net, x, k) + 0 * net.columns[-1].layers[-1].bias.sum() + \
            1e-3 * net.columns[-1].layers[0].weight.sum()
    text = failing(ch06.check_column_forward(peeks), "never a later one")
    assert "✓ column 0" not in text or "✗ how" in text


@pytest.mark.parametrize("wrong, hint", [
    (only_requires_grad, "requires_grad=False is not enough"),
    (only_eval_once, "undone by the next model.train()"),
    (only_eval_forever, "still have requires_grad=True"),
    (momentum_zero, "normalises with the batch's statistics"),
])
def test_freeze_mistakes(wrong, hint):
    failing(ch06.check_freeze(wrong), hint)


def test_only_eval_once_passes_the_what_and_fails_the_how():
    text = failing(ch06.check_freeze(only_eval_once), "undone")
    assert "✓ a forward right after freeze" in text and "✗ how" in text


def test_checks_leave_the_global_random_state_alone():
    leaves_random_state_alone(lambda: ch06.check_column_forward(column_with()), lambda: ch06.check_freeze(freeze),
                              lambda: ch06.check_freeze(only_eval_once))
