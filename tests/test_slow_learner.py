"""strategies/slow_learner.py: two parameter groups, the heads' exactly in the first; one
SGD step moves the backbone by exactly ``backbone_lr_scale`` × what Naive moves it (and
the head by as much); the schedule scales both groups; a checkpoint keeps both rates."""

import copy
import io

import pytest
import torch
from torch import nn

import cl_course_lib as cl
from cl_course_lib.models import MLP, Heads, ImageClassifier
from cl_course_lib.strategies import STRATEGIES, Naive, SlowLearner


def image_model(heads=2, seed=0) -> ImageClassifier:
    torch.manual_seed(seed)
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 6))
    return ImageClassifier(backbone, 6, 3, heads=heads)


def head_ids(model):
    return {id(p) for m in model.modules() if isinstance(m, Heads) for p in m.parameters()}


def a_batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 10, 10, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def float_batch(seed):
    x, y = a_batch(seed=seed)
    return x.float(), y


def test_two_groups_heads_first_at_lr_the_rest_at_lr_times_scale():
    model = image_model()
    strategy = SlowLearner(model, backbone_lr_scale=0.05, lr=0.2)
    heads, rest = strategy.optimizer.param_groups
    assert heads["lr"] == 0.2 and rest["lr"] == pytest.approx(0.2 * 0.05, rel=1e-15)
    assert {id(p) for p in heads["params"]} == head_ids(model) == {id(p) for p in model.heads.parameters()}
    assert {id(p) for p in rest["params"]} == {id(p) for p in model.backbone.parameters()}
    assert len(heads["params"]) + len(rest["params"]) == len(list(model.parameters()))
    assert isinstance(strategy.optimizer, torch.optim.Adam)  # the Strategy default
    default = SlowLearner(image_model())
    assert default.backbone_lr_scale == 0.01
    assert default.optimizer.param_groups[1]["lr"] == pytest.approx(1e-3 * 0.01, rel=1e-15)


def test_an_mlp_body_is_the_slow_part():
    model = MLP(5, [4, 3], 2, heads=3)
    heads, rest = SlowLearner(model, lr=0.1, optimizer="sgd").optimizer.param_groups
    assert {id(p) for p in heads["params"]} == {id(p) for p in model.heads.parameters()}
    assert {id(p) for p in rest["params"]} == {id(p) for p in model.body.parameters()}


@pytest.mark.parametrize("scale", [0.01, 0.25, 1.0])
def test_one_sgd_step_moves_the_backbone_by_scale_times_naive_and_the_head_as_naive(scale):
    """Same init, same batch, SGD without momentum: Δθ = −lr·g for Naive, −scale·lr·g for the
    backbone under SlowLearner and −lr·g for its head (the gradients are the same)."""
    lr = 0.3
    base = image_model().double()
    slow_model, naive_model = copy.deepcopy(base), copy.deepcopy(base)
    slow = SlowLearner(slow_model, backbone_lr_scale=scale, lr=lr, optimizer="sgd")
    naive = Naive(naive_model, lr=lr, optimizer="sgd")
    x, y = a_batch()
    slow.observe(x, y, 1)
    naive.observe(x, y, 1)
    start = dict(base.named_parameters())
    naive_params = dict(naive_model.named_parameters())
    for name, p in slow_model.named_parameters():
        naive_move = naive_params[name].detach() - start[name].detach()
        slow_move = p.detach() - start[name].detach()
        if name.startswith("heads."):
            torch.testing.assert_close(slow_move, naive_move, rtol=1e-10, atol=1e-15)
        else:
            torch.testing.assert_close(slow_move, scale * naive_move, rtol=1e-9, atol=1e-15)
        if name.startswith("heads.0"):
            assert torch.equal(slow_move, torch.zeros_like(slow_move))  # task 1's head only
        else:
            assert naive_move.abs().max() > 0, name  # every other tensor did move: the comparison means something


def test_a_model_without_heads_is_refused():
    with pytest.raises(ValueError, match="Heads"):
        SlowLearner(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)))


def test_registered_and_its_scale_is_checked():
    assert STRATEGIES["slow_learner"] is SlowLearner and SlowLearner.key == "slow_learner"
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="backbone_lr_scale"):
            SlowLearner(image_model(), backbone_lr_scale=bad)
    with pytest.raises(TypeError, match="backbone_lr_scale"):
        SlowLearner(image_model(), backbone_lr_scale="0.01")


def test_the_linear_schedule_scales_both_groups():
    lr, scale, steps, warmup = 0.1, 0.02, 10, 0.2
    strategy = SlowLearner(image_model(), backbone_lr_scale=scale, lr=lr, optimizer="sgd", schedule="linear",
                           warmup=warmup)
    strategy.plan_steps(steps)
    warm = int(warmup * steps)
    for step in range(steps):
        factor = step / warm if step < warm else (steps - step) / (steps - warm)  # the documented schedule
        heads, rest = strategy.optimizer.param_groups
        assert heads["lr"] == pytest.approx(lr * factor, abs=1e-15)
        assert rest["lr"] == pytest.approx(lr * scale * factor, abs=1e-15)
        strategy.observe(*float_batch(step), 0)


def _through_bytes(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_state_dict_round_trip_keeps_both_groups_and_continues_bit_for_bit(schedule):
    def build():
        return SlowLearner(image_model(), backbone_lr_scale=0.1, lr=0.05, schedule=schedule, warmup=0.25)

    original = build()
    original.plan_steps(8)
    for step in range(3):
        original.observe(*float_batch(step), 0)
    restored = build()
    restored.load_state_dict(_through_bytes(original.state_dict()))
    assert [g["lr"] for g in restored.optimizer.param_groups] == [g["lr"] for g in original.optimizer.param_groups]
    if schedule == "linear":  # mid-schedule: neither group at its base rate
        assert original.optimizer.param_groups[0]["lr"] not in (0.05, 0.0)
    for strategy in (original, restored):
        for step in range(3, 6):
            strategy.observe(*float_batch(step), 1)
    for (name, a), b in zip(original.model.state_dict().items(), restored.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [g["lr"] for g in restored.optimizer.param_groups] == [g["lr"] for g in original.optimizer.param_groups]
    ratio = restored.optimizer.param_groups[1]["lr"] / restored.optimizer.param_groups[0]["lr"]
    assert ratio == pytest.approx(0.1, rel=1e-12)


def test_a_run_trains_the_head_fast_and_the_backbone_slowly():
    """Through ``cl.run``: with scale 0.01 the backbone moves about 100× less than under
    Naive (Adam's steps are ~lr each, so the ratio of the moves is the ratio of the rates)."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (48,), generator=g)
    x = torch.randn(48, 3, 10, 10, generator=g) + y.view(-1, 1, 1, 1).float()
    task = cl.data.benchmarks.Task(0, "t0", ("a", "b"), cl.data.benchmarks.TaskData(x, y, 0),
                                   cl.data.benchmarks.TaskData(x[:8], y[:8], 0))
    bench = cl.data.benchmarks.Benchmark("toy", "domain", (task,), 2, 1, (3, 10, 10))
    moves = {}
    for make in (lambda m: Naive(m, lr=1e-3), lambda m: SlowLearner(m, lr=1e-3)):
        torch.manual_seed(0)
        backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        model = ImageClassifier(backbone, 4, 2)
        start = copy.deepcopy(model.state_dict())
        strategy = make(model)
        cl.run(strategy, bench, epochs=2, batch_size=8, device="cpu", progress=False)
        end = model.state_dict()
        moves[type(strategy).__name__] = {
            part: sum(float((end[k] - start[k]).abs().sum()) for k in start if k.startswith(part))
            for part in ("backbone.", "heads.")}
    ratio = moves["SlowLearner"]["backbone."] / moves["Naive"]["backbone."]
    assert 0.003 < ratio < 0.03
    assert moves["SlowLearner"]["heads."] > 0.3 * moves["Naive"]["heads."]
