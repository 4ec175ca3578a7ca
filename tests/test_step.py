"""The one optimisation step (``Strategy.observe``): its hooks and their order, mixed
precision, clipping, the optimisers and the learning-rate schedule, and the gradient
averaging across processes."""

import pytest
import torch
import torch.nn.functional as F

import cl_course_lib as cl
from cl_course_lib.data.benchmarks import split
from cl_course_lib.data.vision import load_digits
from cl_course_lib.gradients import average_across_processes
from cl_course_lib.models import MLP
from cl_course_lib.strategies import AGEM, GEM, STRATEGIES, LwF, Naive, Replay, Strategy
from cl_course_lib.strategies import base


def batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 64, generator=g), torch.randint(0, 2, (n,), generator=g), 0


def model(seed=0, heads=1):
    torch.manual_seed(seed)
    return MLP(64, [16], 2, heads=heads)


def test_no_method_writes_its_own_step():
    """Methods change the step through hooks only: none defines observe."""
    assert [key for key, cls in STRATEGIES.items() if "observe" in vars(cls)] == []


def test_the_hooks_run_in_order_around_one_update():
    calls = []

    class Recording(Strategy):
        def prepare_batch(self, x, y, task):
            calls.append("prepare_batch")
            return x, y, task

        def loss_terms(self, x, y, task, logits):
            calls.append("loss_terms")
            return super().loss_terms(x, y, task, logits)

        def penalty(self):
            calls.append("penalty")
            return 0.0

        def adjust_gradients(self):
            calls.append("adjust_gradients")
            assert all(p.grad is not None for p in self.model.parameters())

    strategy = Recording(model())
    strategy.optimizer.register_step_pre_hook(lambda *_: calls.append("optimizer.step"))
    strategy.observe(*batch())
    assert calls == ["prepare_batch", "loss_terms", "penalty", "adjust_gradients", "optimizer.step"]


@pytest.mark.parametrize("cls", [LwF, GEM, AGEM, Replay])
def test_a_penalty_counts_in_every_method(cls):
    """LwF, GEM and A-GEM used to leave penalty() out of their own copies of the step."""
    class Penalised(cls):
        def penalty(self):
            return 100.0 * sum(p.square().sum() for p in self.model.parameters())

    strategy = Penalised(model(), **({"lr": 1e-3, "optimizer": "adam"} if cls is GEM else {}))
    out = strategy.observe(*batch())
    expected = 100.0 * sum(p.square().sum() for p in model().parameters())  # the weights before the step
    assert out["penalty"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx(sum(v.item() for k, v in out.items() if k != "loss"), rel=1e-6)


def test_lwf_reports_its_distillation_term_and_the_total():
    bench = split(load_digits(), [(0, 1), (2, 3)], scenario="domain")
    lwf = LwF(MLP(64, [16], 2), alpha=2.0)
    lwf.setup(bench)
    lwf.after_task(bench.tasks[0])
    lwf.before_task(bench.tasks[1])
    out = lwf.observe(*batch())
    assert set(out) == {"loss", "cross_entropy", "distillation"}
    assert out["loss"].item() == pytest.approx(out["cross_entropy"].item() + out["distillation"].item(), rel=1e-6)


def test_fp16_gradients_are_unscaled_before_the_hooks_read_them():
    seen = {}

    class Reading(Strategy):
        def adjust_gradients(self):
            seen[self.precision] = torch.cat([p.grad.flatten() for p in self.model.parameters()])

    x, y, task = batch()
    for precision in ("fp32", "fp16"):
        Reading(model(), precision=precision, optimizer="sgd").observe(x, y, task)
    scale = (seen["fp16"].norm() / seen["fp32"].norm()).item()
    assert scale == pytest.approx(1.0, abs=0.05), f"the hook saw gradients scaled by {scale:.3g}"


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains(precision):
    cl.seed_everything(0)
    bench = split(load_digits(), [(0, 1), (2, 3)], scenario="task")
    net = MLP(64, [32], bench.n_outputs, heads=bench.n_heads)
    result = cl.run(Naive(net, precision=precision), bench, epochs=5, batch_size=32, progress=False)
    assert result.acc_matrix.values[1, 0] > 0.9 and result.acc_matrix.values[2, 1] > 0.9


def test_clipping_bounds_the_update():
    strategy = Naive(model(), lr=1.0, optimizer="sgd", clip_grad_norm=1e-3)
    before = torch.cat([p.detach().flatten() for p in strategy.model.parameters()])
    strategy.observe(*batch())
    after = torch.cat([p.detach().flatten() for p in strategy.model.parameters()])
    assert (after - before).norm().item() == pytest.approx(1e-3, rel=1e-4)  # lr · clipped norm


def test_linear_schedule_warms_up_then_decays_as_transformers_does():
    steps, warmup = 10, 0.3
    strategy = Naive(model(), lr=0.1, schedule="linear", warmup=warmup)
    lrs = []
    strategy.optimizer.register_step_pre_hook(lambda opt, *_: lrs.append(opt.param_groups[0]["lr"]))
    strategy.plan_steps(steps)
    for _ in range(steps):
        strategy.observe(*batch())
    warm = int(warmup * steps)  # transformers.get_linear_schedule_with_warmup's lr_lambda, written out
    want = [0.1 * (s / warm if s < warm else max(0.0, (steps - s) / (steps - warm))) for s in range(steps)]
    assert lrs == pytest.approx(want)


def test_fused_optimizer_where_available_and_the_same_updates_as_the_default():
    fused, default = Naive(model(), lr=1e-2), Naive(model(), lr=1e-2)
    default.optimizer = torch.optim.Adam(default.model.parameters(), lr=1e-2)
    assert fused.optimizer.defaults["fused"] is True
    for seed in range(20):
        for s in (fused, default):
            s.observe(*batch(seed=seed))
    for a, b in zip(fused.model.parameters(), default.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_falls_back_to_the_default_implementation_without_a_fused_kernel(monkeypatch):
    class NoFused(torch.optim.Adam):
        def __init__(self, params, fused=None, **kwargs):
            if fused:
                raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
            super().__init__(params, **kwargs)

    monkeypatch.setitem(base.OPTIMIZERS, "adam", NoFused)
    strategy = Naive(model())
    assert isinstance(strategy.optimizer, NoFused) and not strategy.optimizer.defaults.get("fused")


def test_adamw_decays_the_weights_decoupled_from_the_gradient():
    strategy = Naive(model(), lr=0.1, optimizer="adamw", weight_decay=0.5)
    strategy.loss = lambda logits, y: 0.0 * logits.sum()  # zero gradient: only the decay moves the weights
    before = [p.detach().clone() for p in strategy.model.parameters()]
    strategy.observe(*batch())
    for p, p0 in zip(strategy.model.parameters(), before):
        torch.testing.assert_close(p.detach(), p0 * (1 - 0.1 * 0.5))


def test_gradient_averaging_is_a_no_op_in_one_process():
    net = model()
    F.cross_entropy(net(batch()[0]), batch()[1]).backward()
    grads = [p.grad.clone() for p in net.parameters()]
    average_across_processes(net.parameters())
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, net.parameters()))


def _average_in_process(rank, world, store, results):
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.full((3,), float(rank + 1))
    average_across_processes([p])
    results[rank] = p.grad.tolist()
    torch.distributed.destroy_process_group()


def test_gradient_averaging_across_two_processes(tmp_path):
    """What torchrun would run: two processes, each with its own gradient, get the mean."""
    mp = torch.multiprocessing.get_context("spawn")
    with mp.Manager() as manager:
        results = manager.dict()
        procs = [mp.Process(target=_average_in_process, args=(r, 2, tmp_path / "store", results)) for r in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0]
        assert dict(results) == {0: [1.5] * 3, 1: [1.5] * 3}


def test_bad_step_settings_are_explained():
    for kwargs, message in ((dict(precision="fp8"), "precision='fp8' is not allowed: precision must be one of 'fp32'"),
                            (dict(schedule="cosine"), "schedule='cosine' is not allowed"),
                            (dict(warmup=1.0), "warmup=1.0 is not allowed: warmup must be a number >= 0 and < 1"),
                            (dict(clip_grad_norm=0), "clip_grad_norm=0 is not allowed"),
                            (dict(weight_decay=-1), "weight_decay=-1 is not allowed")):
        with pytest.raises(ValueError, match=message):
            Naive(model(), **kwargs)
