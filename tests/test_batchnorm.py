"""models/batchnorm.py: frozen BatchNorm computes in train mode what BatchNorm computed in
eval mode, and nothing in it moves; the running statistics of an unfrozen model drift
under train-mode forward passes even with every weight frozen (the chapter's pitfall,
checked against BatchNorm's update rule by hand); ``statistics_drift`` against its closed
form."""

import copy
import math

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from cl_course_lib.models import freeze_batchnorm, running_statistics, statistics_drift


def small_net(affine=True, eps=1e-5, seed=0) -> nn.Sequential:
    """Conv → BN → ReLU → Conv → BN → pool, with non-trivial running statistics and affine
    parameters (a fresh BatchNorm's 0/1 statistics would hide a layer that ignores them)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5, eps=eps, affine=affine), nn.ReLU(),
                        nn.Conv2d(5, 4, 3), nn.BatchNorm2d(4, eps=eps, affine=affine),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 1)
                m.running_var.uniform_(0.05, 3.0)
                if affine:
                    m.weight.normal_(1, 0.5)
                    m.bias.normal_(0, 0.5)
    return net


def batch(n=6, size=8, seed=0, shift=0.0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) + shift


def bn_layers(model):
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def frozen_layers(model):
    return [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]


def buffers(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def by_hand_eval(bn: nn.BatchNorm2d, x):
    """y = γ (x − μ) / √(σ² + ε) + β with the running statistics."""
    shape = (1, -1, 1, 1)
    weight = bn.weight if bn.affine else torch.ones_like(bn.running_mean)
    bias = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    return (weight.view(shape) * (x - bn.running_mean.view(shape)) / (bn.running_var.view(shape) + bn.eps).sqrt()
            + bias.view(shape))


# ----------------------------------------------------------------------------- freeze_batchnorm


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no_affine"])
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_frozen_model_in_train_mode_equals_the_original_in_eval_mode(affine, eps):
    original = small_net(affine=affine, eps=eps).eval()
    x = batch()
    with torch.no_grad():
        want = original(x)
        frozen = freeze_batchnorm(copy.deepcopy(original)).train()
        torch.testing.assert_close(frozen(x), want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(frozen.eval()(x), want, rtol=1e-5, atol=1e-6)
        unfrozen = copy.deepcopy(original).train()  # a copy: its train-mode pass moves its statistics
        assert not torch.allclose(unfrozen(x), want, atol=1e-3)  # train-mode BN differs: the test can fail
    assert not bn_layers(frozen) and len(frozen_layers(frozen)) == 2
    layer = frozen_layers(frozen)[1]
    assert layer.eps == eps
    source = bn_layers(original)[1]
    assert torch.equal(layer.running_mean, source.running_mean) and torch.equal(layer.running_var, source.running_var)
    if affine:
        assert torch.equal(layer.weight, source.weight) and torch.equal(layer.bias, source.bias)
    else:
        assert torch.equal(layer.weight, torch.ones(4)) and torch.equal(layer.bias, torch.zeros(4))


def test_a_frozen_layer_is_the_closed_form_of_eval_mode_batchnorm():
    bn = small_net(eps=0.3)[1].eval()
    x = torch.randn(4, 5, 3, 3)
    frozen = freeze_batchnorm(copy.deepcopy(bn))  # a BatchNorm2d itself: returned as its frozen copy
    assert isinstance(frozen, FrozenBatchNorm2d)
    with torch.no_grad():
        torch.testing.assert_close(frozen.train()(x), by_hand_eval(bn, x), rtol=1e-5, atol=1e-6)


def test_mobilenet_after_train_mode_passes_freezes_to_its_eval_mode():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(weights=None)
    model.classifier = nn.Identity()  # its dropout would differ between two train-mode passes
    model.train()
    with torch.no_grad():
        for seed in range(3):  # running statistics away from 0/1
            model(batch(4, 32, seed, shift=0.5))
    first = bn_layers(model)[0]
    assert not torch.allclose(first.running_mean, torch.zeros_like(first.running_mean))
    n_bn = len(bn_layers(model))
    assert n_bn == 52
    model.eval()
    x = batch(3, 32, seed=7)
    with torch.no_grad():
        want = model(x)
        frozen = freeze_batchnorm(model).train()  # in place, also returned
    assert frozen is model and not bn_layers(model) and len(frozen_layers(model)) == n_bn
    with torch.no_grad():
        torch.testing.assert_close(model(x), want, rtol=1e-4, atol=1e-5)


def test_nothing_in_a_frozen_model_moves_under_train_mode_passes_and_optimizer_steps():
    model = freeze_batchnorm(small_net()).train()
    frozen_state = {k: v.clone() for k, v in model.state_dict().items()
                    if any(k.startswith(f"{i}.") for i in (1, 4))}  # the two BN positions
    assert len(frozen_state) == 8  # weight, bias, running_mean, running_var per layer
    assert not any("num_batches" in k for k in model.state_dict())
    x = batch(seed=1, shift=2.0)  # data far from the stored statistics
    with torch.no_grad():
        before = model(x)
        for seed in range(3):
            model(batch(seed=10 + seed, shift=3.0))
        torch.testing.assert_close(model(x), before, rtol=0, atol=0)  # train-mode passes change nothing
    bn_ids = {id(t) for m in frozen_layers(model) for t in m.buffers()}
    assert not any(id(p) in bn_ids for p in model.parameters())  # γ, β are buffers: no optimiser sees them
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for seed in range(3):
        optimizer.zero_grad()
        model(batch(seed=20 + seed, shift=1.0)).square().sum().backward()
        optimizer.step()
    state = model.state_dict()
    for key, value in frozen_state.items():
        assert torch.equal(state[key], value), key
    assert not torch.equal(state["0.weight"], small_net().state_dict()["0.weight"])  # the convolutions did train


def test_track_running_stats_false_has_nothing_to_freeze():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False))
    with pytest.raises(ValueError, match="track_running_stats=False"):
        freeze_batchnorm(model)


def test_other_modules_are_left_alone():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.LayerNorm(4))
    state = buffers(model)
    assert freeze_batchnorm(model) is model
    assert isinstance(model[1], nn.BatchNorm1d) and isinstance(model[2], nn.LayerNorm)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


# ----------------------------------------------------------------------------- statistics and drift


def test_running_statistics_are_copies_by_layer_name():
    model = small_net()
    stats = running_statistics(model)
    assert list(stats) == ["1", "4"]
    assert torch.equal(stats["1"][0], model[1].running_mean) and torch.equal(stats["4"][1], model[4].running_var)
    model[1].running_mean.add_(1.0)
    assert not torch.equal(stats["1"][0], model[1].running_mean)  # a copy, not the live buffer
    no_stats = nn.Sequential(nn.BatchNorm2d(2, track_running_stats=False), nn.BatchNorm1d(3))
    assert list(running_statistics(no_stats)) == ["1"]


def test_statistics_drift_is_zero_for_identical_statistics_and_the_closed_form_otherwise():
    before = {"a": (torch.tensor([3.0, 4.0]), torch.ones(2)), "b": (torch.tensor([0.0, 0.0, 12.0]), torch.ones(3))}
    assert statistics_drift(before, before) == 0.0
    assert statistics_drift(before, {k: (m.clone(), v * 5) for k, (m, v) in before.items()}) == 0.0  # means only
    after = {"a": (torch.tensor([4.0, 4.0]), torch.ones(2)), "b": (torch.tensor([0.0, 2.0, 12.0]), torch.ones(3))}
    # ‖Δμ‖² = 1 + 4 = 5 over ‖μ‖² = 9 + 16 + 144 = 169, over both layers together
    assert statistics_drift(before, after) == pytest.approx(math.sqrt(5 / 169), rel=1e-12)
    with pytest.raises(ValueError, match="same"):
        statistics_drift(before, {"a": after["a"]})
    with pytest.raises(ValueError):
        statistics_drift({}, {})


def test_unfrozen_batchnorm_drifts_in_train_mode_even_with_requires_grad_false():
    """The pitfall: ``requires_grad_(False)`` stops no BatchNorm update. One train-mode pass
    moves the first layer's running mean by BatchNorm's rule μ ← (1 − m) μ + m μ_B (m = 0.1,
    μ_B the batch mean of its input) and the running variance likewise with the unbiased
    batch variance; the eval-mode outputs change, without a single gradient step."""
    model = small_net().requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    probe = batch(seed=3)
    with torch.no_grad():
        before_out = model.eval()(probe)
    before = running_statistics(model)
    x = batch(seed=4, shift=1.5)  # a new task's data
    with torch.no_grad():
        conv_out = model[0](x)
        mu_b = conv_out.mean(dim=(0, 2, 3))
        var_b = conv_out.var(dim=(0, 2, 3), unbiased=True)
        model.train()(x)
    after = running_statistics(model)
    torch.testing.assert_close(after["1"][0], 0.9 * before["1"][0] + 0.1 * mu_b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(after["1"][1], 0.9 * before["1"][1] + 0.1 * var_b, rtol=1e-5, atol=1e-6)
    drift = statistics_drift(before, after)
    by_hand = math.sqrt(sum(float((after[k][0] - before[k][0]).square().sum()) for k in before)
                        / sum(float(before[k][0].square().sum()) for k in before))
    assert drift == pytest.approx(by_hand, rel=1e-9) and drift > 0.01
    with torch.no_grad():
        assert not torch.allclose(model.eval()(probe), before_out, atol=1e-4)  # old outputs changed

    frozen = freeze_batchnorm(small_net().requires_grad_(False)).train()
    with torch.no_grad():
        reference = frozen(probe)
        frozen(x)
        assert torch.equal(frozen(probe), reference)  # frozen: the same pass changes nothing


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_freezing_keeps_the_models_dtype(dtype):
    model = small_net().eval().to(dtype)
    x = batch().to(dtype)
    with torch.no_grad():
        want = model(x)
        frozen = freeze_batchnorm(copy.deepcopy(model)).train()
        assert all(t.dtype == dtype for m in frozen_layers(frozen) for t in m.buffers())
        out = frozen(x)
    assert out.dtype == dtype
    torch.testing.assert_close(out, want, rtol=1e-2 if dtype == torch.bfloat16 else 1e-12, atol=0)
