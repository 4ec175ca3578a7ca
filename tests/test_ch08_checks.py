"""Chapter 8's exercise checks: right answers pass, each usual mistake fails with its own hint,
a stub says "not done yet", and the checks leave the caller's random state alone."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cl_course_lib as cl
from check_helpers import failing, leaves_random_state_alone, not_done_yet, passing, stub
from cl_course_lib.checks import ch08

_BN = nn.modules.batchnorm._BatchNorm


def _batchnorms(module):
    return [m for m in module.modules() if isinstance(m, _BN)]


# ---- exercise 1: new heads, the backbone frozen for good


def probe_model(backbone, n_outputs, heads):
    model = cl.models.ImageClassifier(backbone.model, backbone.n_features, n_outputs, heads=heads)
    net = model.backbone
    net.requires_grad_(False)
    net.eval()
    net.train = lambda mode=True: nn.Module.train(net, False)
    return model


def probe_with_frozen_batchnorm(backbone, n_outputs, heads):  # another right answer: the library's swap
    backbone.model.requires_grad_(False)
    cl.models.freeze_batchnorm(backbone.model)
    return cl.models.ImageClassifier(backbone.model, backbone.n_features, n_outputs, heads=heads)


def probe_with_hook(backbone, n_outputs, heads):  # another right answer: eval mode restored at every call
    backbone.model.requires_grad_(False)
    backbone.model.register_forward_pre_hook(lambda m, args: m.eval() and None)
    return cl.models.ImageClassifier(backbone.model, backbone.n_features, n_outputs, heads=heads)


def probe_with(*, frozen=True, eval_once=False, momentum_zero=False, convs_only=False, heads_frozen=False,
               one_head=False, copied=False, returns=True):
    """probe_model with one chosen mistake."""
    def probe(backbone, n_outputs, heads):
        net = copy.deepcopy(backbone.model) if copied else backbone.model
        model = cl.models.ImageClassifier(net, backbone.n_features, n_outputs, heads=1 if one_head else heads)
        if frozen:
            net.requires_grad_(False)
        if convs_only:
            for bn in _batchnorms(net):
                bn.requires_grad_(True)
        if eval_once:
            net.eval()
        if momentum_zero:
            for bn in _batchnorms(net):
                bn.momentum = 0.0
        if heads_frozen:
            model.requires_grad_(False)
        return model if returns else None
    return probe


# ---- exercise 2: BatchNorm statistics fixed while the rest fine-tunes


def freeze_bn_statistics(model):
    for module in model.modules():
        if isinstance(module, _BN):
            module.eval()
            module.train = lambda mode=True, bn=module: nn.Module.train(bn, False)
    return model


def freeze_bn_statistics_with_hook(model):  # another right answer: a pre-hook on the whole model
    layers = _batchnorms(model)

    def keep(module, args):
        for bn in layers:
            bn.eval()
    model.register_forward_pre_hook(keep)
    return model


def freeze_bn_statistics_and_affine(model):  # also right: γ and β frozen as well
    freeze_bn_statistics(model)
    for bn in _batchnorms(model):
        bn.requires_grad_(False)
    return model


def momentum_zero(model):
    for bn in _batchnorms(model):
        bn.momentum = 0.0
    return model


def untracked(model):
    for bn in _batchnorms(model):
        bn.track_running_stats = False
    return model


def bn_eval_once(model):
    for bn in _batchnorms(model):
        bn.eval()
    return model


def bn_requires_grad_only(model):
    for bn in _batchnorms(model):
        bn.requires_grad_(False)
    return model


def everything_frozen(model):
    model.requires_grad_(False)
    return freeze_bn_statistics(model)


def whole_model_in_eval(model):
    model.eval()
    model.train = lambda mode=True: nn.Module.train(model, False)
    return model


def library_swap(model):
    return cl.models.freeze_batchnorm(model)


def in_a_copy(model):
    return freeze_bn_statistics(copy.deepcopy(model))


def no_return(model):
    freeze_bn_statistics(model)


# ---- exercise 3: random projection + ridge


def rp_ridge_fit(h, y, n_classes, projection, ridge):
    phi = torch.relu(h.double() @ projection.double())
    gram = phi.T @ phi
    return torch.linalg.solve(gram + ridge * torch.eye(len(gram), dtype=gram.dtype),
                              phi.T @ F.one_hot(y, n_classes).double())


def rp_ridge_fit_by_sums(h, y, n_classes, projection, ridge):  # another right answer: sample by sample sums
    m = projection.shape[1]
    gram, targets = torch.zeros(m, m, dtype=torch.float64), torch.zeros(m, n_classes, dtype=torch.float64)
    for h_n, y_n in zip(h.double(), y.tolist()):
        phi = torch.relu(h_n @ projection)
        gram += torch.outer(phi, phi)
        targets[:, y_n] += phi
    return torch.linalg.solve(gram + ridge * torch.eye(m, dtype=torch.float64), targets)


def rp_ridge_fit_dual(h, y, n_classes, projection, ridge):  # also right: Φᵀ(ΦΦᵀ + λI)⁻¹Y
    phi = torch.relu(h.double() @ projection.double())
    return phi.T @ torch.linalg.solve(phi @ phi.T + ridge * torch.eye(len(phi), dtype=phi.dtype),
                                      F.one_hot(y, n_classes).double())


def fit_with(*, relu=True, use_ridge=True, everywhere=False, averaged=False, float32=False, own_projection=False,
             one_hot_seen=False, labels=False, transposed=False, returns=True):
    """rp_ridge_fit with one chosen mistake."""
    def fit(h, y, n_classes, projection, ridge):
        dtype = torch.float32 if float32 else torch.float64
        if own_projection:
            projection = torch.randn(projection.shape, dtype=torch.float64)
        z = h.to(dtype) @ projection.to(dtype)
        phi = torch.relu(z) if relu else z
        if labels:
            target = y.to(dtype).unsqueeze(1)
        else:
            target = (F.one_hot(y) if one_hot_seen else F.one_hot(y, n_classes)).to(dtype)
        gram, c = phi.T @ phi, phi.T @ target
        if averaged:
            gram, c = gram / len(y), c / len(y)
        if not use_ridge:
            w = torch.linalg.lstsq(phi, target).solution
        elif everywhere:
            w = torch.linalg.solve(gram + ridge, c)
        else:
            w = torch.linalg.solve(gram + ridge * torch.eye(len(gram), dtype=dtype), c)
        if transposed:
            w = w.T
        return w if returns else None
    return fit


def rp_ridge_predict(h, projection, weights):
    return (torch.relu(h.double() @ projection) @ weights).argmax(dim=1)


def test_right_answers_pass():
    passing(ch08.check_probe_model(probe_model))
    passing(ch08.check_probe_model(probe_with_frozen_batchnorm))
    passing(ch08.check_probe_model(probe_with_hook))
    passing(ch08.check_freeze_bn_statistics(freeze_bn_statistics))
    passing(ch08.check_freeze_bn_statistics(freeze_bn_statistics_with_hook))
    passing(ch08.check_freeze_bn_statistics(freeze_bn_statistics_and_affine))
    passing(ch08.check_rp_ridge_fit(rp_ridge_fit))
    passing(ch08.check_rp_ridge_fit(rp_ridge_fit_by_sums))
    passing(ch08.check_rp_ridge_fit(rp_ridge_fit_dual))
    passing(ch08.check_rp_ridge_fit(ch08.reference_rp_ridge_fit))
    passing(ch08.check_rp_ridge_predict(rp_ridge_predict))
    passing(ch08.check_rp_ridge_predict(ch08.reference_rp_ridge_predict))


@pytest.mark.parametrize("check", [ch08.check_probe_model, ch08.check_freeze_bn_statistics, ch08.check_rp_ridge_fit,
                                   ch08.check_rp_ridge_predict])
def test_a_stub_is_not_done_yet(check):
    not_done_yet(check(stub))


@pytest.mark.parametrize("wrong, hint", [
    (probe_with(), "requires_grad_(False) does not stop BatchNorm from updating its statistics in train mode"),
    (probe_with(eval_once=True), "undone by the next model.train()"),
    (probe_with(momentum_zero=True), "momentum=0 keeps the running statistics fixed"),
    (probe_with(frozen=False, eval_once=True), "Nothing of the backbone is frozen"),
    (probe_with(convs_only=True), "γ and β"),
    (probe_with(heads_frozen=True), "Nothing trains"),
    (probe_with(one_head=True), "give every task its own head"),
    (probe_with(copied=True), "Build the model on backbone.model itself"),
    (probe_with(returns=False), "a missing `return`"),
])
def test_probe_model_mistakes(wrong, hint):
    failing(ch08.check_probe_model(wrong), hint)


def test_requires_grad_alone_passes_the_count_and_fails_the_how():
    text = failing(ch08.check_probe_model(probe_with()), "BatchNorm running_mean changed")
    assert "✓ trainable: the heads only" in text and "✗ how: after 5 training steps" in text
    assert "✗ how: in train mode the backbone computes its eval-mode features" in text


def test_momentum_zero_keeps_the_statistics_but_fails_the_train_mode_features():
    text = failing(ch08.check_probe_model(probe_with(momentum_zero=True)), "momentum=0")
    assert "✓ how: after 5 training steps" in text and "✗ how: in train mode the backbone" in text


@pytest.mark.parametrize("wrong, hint", [
    (momentum_zero, "momentum=0 keeps the running statistics fixed"),
    (untracked, "track_running_stats=False"),
    (bn_eval_once, "undone by the next model.train()"),
    (bn_requires_grad_only, "requires_grad_(False) on the BatchNorm layers does not stop BatchNorm"),
    (everything_frozen, "You froze the parameters too"),
    (whole_model_in_eval, "no longer puts the rest of the model in train mode"),
    (library_swap, "cl.models.freeze_batchnorm's way"),
    (in_a_copy, "in place and return it"),
    (no_return, "a missing `return`"),
])
def test_freeze_bn_statistics_mistakes(wrong, hint):
    failing(ch08.check_freeze_bn_statistics(wrong), hint)


def test_momentum_zero_passes_the_statistics_and_fails_the_how():
    text = failing(ch08.check_freeze_bn_statistics(momentum_zero), "batch's own mean and variance")
    assert "✓ after 6 training steps" in text and "✗ how: in train mode every BatchNorm normalises" in text


def test_eval_once_fails_the_statistics_after_training_steps():
    text = failing(ch08.check_freeze_bn_statistics(bn_eval_once), "Strategy.observe calls at every step")
    assert "✗ after 6 training steps" in text


def test_freezing_everything_keeps_the_statistics_and_fails_the_training():
    text = failing(ch08.check_freeze_bn_statistics(everything_frozen), "the convolutions must still train")
    assert "✓ after 6 training steps" in text and "✗ the convolutions and the heads still train" in text


@pytest.mark.parametrize("wrong, hint", [
    (fit_with(relu=False), "No ReLU"),
    (fit_with(use_ridge=False), "λ was not used"),
    (fit_with(everywhere=True), "to every entry"),
    (fit_with(averaged=True), "You averaged over the samples"),
    (fit_with(float32=True), "compute φ and the solve in float64"),
    (fit_with(own_projection=True), "Use the projection you are given"),
    (fit_with(one_hot_seen=True), "F.one_hot(y, n_classes)"),
    (fit_with(labels=True), "regress onto one-hot labels"),
    (fit_with(transposed=True), "yours is transposed"),
    (fit_with(returns=False), "a missing `return`"),
])
def test_rp_ridge_fit_mistakes(wrong, hint):
    failing(ch08.check_rp_ridge_fit(wrong), hint)


def test_ignoring_the_ridge_fails_the_how_case():
    text = failing(ch08.check_rp_ridge_fit(fit_with(use_ridge=False)), "use the ridge you are given")
    assert "✗ how: the ridge λ is used" in text


@pytest.mark.parametrize("wrong, hint", [
    (lambda h, p, w: ((h.double() @ p) @ w).argmax(dim=1), "No ReLU"),
    (lambda h, p, w: (torch.relu(h.double() @ p) @ w).argmin(dim=1), "the lowest score"),
    (lambda h, p, w: torch.relu(h.double() @ p) @ w, "You returned the scores"),
    (lambda h, p, w: rp_ridge_predict(h, p, w).double(), "Return integer labels"),
    (lambda h, p, w: rp_ridge_predict(h, torch.randn(p.shape, dtype=torch.float64), w),
     "Use the projection you are given"),
    (lambda h, p, w: None, "a missing `return`"),
])
def test_rp_ridge_predict_mistakes(wrong, hint):
    failing(ch08.check_rp_ridge_predict(wrong), hint)


def test_the_check_backbone_is_mobilenet_v2_with_measured_statistics():
    backbone = ch08.random_backbone(0)
    assert backbone.name == "mobilenet_v2" and backbone.n_features == 1280 and "random weights" in backbone.source
    bn = _batchnorms(backbone.model)[0]
    assert bn.training and bn.momentum == 0.1 and not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert torch.equal(ch08.random_backbone(0).model.state_dict()["features.0.1.running_var"],
                       backbone.model.state_dict()["features.0.1.running_var"])


def test_checks_leave_the_global_random_state_alone():
    leaves_random_state_alone(lambda: ch08.check_probe_model(probe_model),
                              lambda: ch08.check_freeze_bn_statistics(freeze_bn_statistics),
                              lambda: ch08.check_rp_ridge_fit(rp_ridge_fit),
                              lambda: ch08.check_rp_ridge_predict(rp_ridge_predict))
