"""Every strategy of the registry: a smoke run, and a state_dict round trip that continues
bit for bit. A strategy added to ``strategies.STRATEGIES`` without an entry in ``SMOKE``
fails ``test_every_strategy_has_a_smoke_test``."""

import io

import numpy as np
import pytest
import torch

import cl_course_lib as cl
from cl_course_lib.data.benchmarks import split
from cl_course_lib.data.loading import batches
from cl_course_lib.data.vision import load_digits
from cl_course_lib.models import MLP, ProgressiveNet
from cl_course_lib.strategies import STRATEGIES, Strategy

# Each strategy's settings for three small digits tasks (task-IL, 2 classes each).
SMOKE = {
    "naive": {}, "joint": {}, "cumulative": {},
    "l2": {"lam": 0.1},
    "ewc": {"lam": 100.0, "fisher_samples": 50},
    "online_ewc": {"lam": 100.0, "gamma": 0.9, "fisher_samples": 50},
    "si": {"c": 1.0},
    "mas": {"lam": 1.0, "samples": 50},
    "replay": {"mem_size": 60},
    "gem": {"mem_size": 60, "lr": 0.1},  # its default is SGD, lr 0.01 (Hsu et al.): too slow for 3 epochs here
    "agem": {"mem_size": 60, "ref_batch_size": 32},
    "lwf": {"alpha": 1.0},
    "pnn": {},
    "slow_learner": {"lr": 0.01, "backbone_lr_scale": 0.1},  # lr 1e-3 × 0.01: too slow for 3 epochs here
}


def digits():
    return split(load_digits(), [(0, 1), (2, 3), (4, 5)], scenario="task")


def build(key, bench, **extra):
    cl.seed_everything(0)
    if key == "pnn":
        model = ProgressiveNet(64, [16], bench.n_outputs, columns=bench.n_heads)
    else:
        model = MLP(64, [16], bench.n_outputs, heads=bench.n_heads)
    return STRATEGIES[key](model, **SMOKE[key], **extra)


def test_every_strategy_has_a_smoke_test():
    missing = sorted(set(STRATEGIES) - set(SMOKE))
    assert not missing, f"strategies without a smoke test here: {missing}"
    assert not set(SMOKE) - set(STRATEGIES), "a smoke test for a strategy that is not registered"


def test_the_registry_is_built_from_the_classes_and_read_by_the_cli_and_reproduce():
    from cl_course_lib import __main__ as cli
    from cl_course_lib import reproduce

    assert all(cls.key == key and issubclass(cls, Strategy) for key, cls in STRATEGIES.items())
    assert reproduce.STRATEGIES is STRATEGIES
    choices = next(a.choices for a in cli.parser()._subparsers._group_actions[0].choices["run"]._actions
                   if a.dest == "strategy")
    assert list(choices) == list(STRATEGIES)


def test_a_chapters_subclass_is_not_registered():
    class Experimental(STRATEGIES["lwf"]):
        pass
    from cl_course_lib.strategies import _methods

    assert Experimental not in _methods(Strategy)


@pytest.mark.parametrize("key", sorted(SMOKE))
def test_smoke(key):
    bench = digits()
    result = cl.run(build(key, bench), bench, epochs=3, batch_size=32, progress=False)
    assert result.acc_matrix.values.shape == (4, 3) and np.isfinite(result.losses).all()
    assert result.acc_matrix.values[1, 0] > 0.9, "the first task is not learned"


def _steps(strategy, bench, t, n):
    """``n`` steps on task ``t``'s first batches (fixed order)."""
    for i, (x, y, task) in enumerate(batches(bench.tasks[t].train, 32, device="cpu", shuffle=False)):
        if i == n:
            break
        strategy.observe(x, y, task)


def _through_bytes(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("key", sorted(SMOKE))
def test_state_dict_round_trip_continues_bit_for_bit(key):
    """Train task 0 and part of task 1, save (through torch.save, weights_only), load into a
    freshly built strategy, continue both with the same steps into task 2: identical weights."""
    bench = digits()
    original = build(key, bench, schedule="linear", warmup=0.2)
    original.setup(bench)
    for t, steps in ((0, 12), (1, 5)):
        original.before_task(bench.tasks[t])
        original.plan_steps(20)
        _steps(original, bench, t, steps)
        if t == 0:
            original.after_task(bench.tasks[0])
    state = _through_bytes(original.state_dict())
    restored = build(key, bench, schedule="linear", warmup=0.2)
    restored.setup(bench)
    restored.load_state_dict(state)
    rng = torch.get_rng_state()
    for strategy in (original, restored):
        torch.set_rng_state(rng)
        _steps(strategy, bench, 1, 8)
        strategy.after_task(bench.tasks[1])  # the state saved mid-task 1 now shapes task 2's steps
        strategy.before_task(bench.tasks[2])
        strategy.plan_steps(20)
        _steps(strategy, bench, 2, 4)
    for (name, a), b in zip(original.model.state_dict().items(), restored.model.state_dict().values()):
        assert torch.equal(a, b), f"{key}: {name} differs after resuming"
    assert original.optimizer.param_groups[0]["lr"] == restored.optimizer.param_groups[0]["lr"]
