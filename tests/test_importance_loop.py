"""importance.py's per-sample loop: equal to the closed form and to vmap on an MLP, the
fallback of ``method="auto"`` on a Hugging Face BERT (which vmap cannot batch) against a
plain autograd loop, and EWC on a tiny BERT classifier over two tasks of token inputs."""

import math

import pytest
import torch
import torch.nn.functional as F
import transformers

import cl_course_lib as cl
from cl_course_lib import importance
from cl_course_lib.data.benchmarks import Benchmark, Task, TaskData
from cl_course_lib.importance import fisher_diagonal, output_sensitivity
from cl_course_lib.models import MLP, TextClassifier
from cl_course_lib.strategies import EWC


def max_relative_error(a, b):
    assert a.keys() == b.keys()
    return max(((a[n] - b[n]).norm() / b[n].norm().clamp_min(1e-30)).item() for n in b)


@pytest.fixture
def mlp_setup():
    torch.manual_seed(0)
    model = MLP(12, [10, 8], 3, heads=2)
    data = TaskData(torch.randn(37, 12), torch.randint(0, 3, (37,)), 1)  # 37: a last, partial batch
    return model, data


@pytest.mark.parametrize("measure", [
    lambda model, data, method: fisher_diagonal(model, data, kind="empirical", batch_size=8, method=method),
    lambda model, data, method: output_sensitivity(model, data, batch_size=8, method=method),
], ids=["empirical_fisher", "output_sensitivity"])
def test_loop_equals_vmap_and_the_linear_closed_form(mlp_setup, measure):
    model, data = mlp_setup
    loop, vmapped, linear = (measure(model, data, m) for m in ("loop", "vmap", "linear"))
    assert max_relative_error(loop, vmapped) <= 1e-5 and max_relative_error(loop, linear) <= 1e-5
    # task 1's head is the only one with importance, and the trunk has some
    assert torch.equal(loop["heads.0.weight"], torch.zeros_like(loop["heads.0.weight"]))
    assert loop["heads.1.weight"].abs().sum() > 0
    assert all(loop[n].abs().sum() > 0 for n in loop if not n.startswith("heads."))


def test_loop_leaves_no_gradients_and_restores_the_training_flag(mlp_setup):
    model, data = mlp_setup
    model.train()
    fisher_diagonal(model, data, kind="empirical", method="loop")
    assert model.training and all(p.grad is None for p in model.parameters())


def test_an_unknown_method_is_refused(mlp_setup):
    model, data = mlp_setup
    with pytest.raises(ValueError, match="method"):
        fisher_diagonal(model, data, kind="empirical", method="loops")


# ----------------------------------------------------------------------------- a tiny BERT


def tiny_bert_classifier(n_outputs=3, heads=1) -> TextClassifier:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32)
    return TextClassifier(transformers.BertModel(config), n_outputs, heads=heads)


def tokens(n, length=7, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, length + 1, (n,), generator=g)
    mask = (torch.arange(length) < lengths[:, None]).long()
    return {"input_ids": torch.randint(1, 100, (n, length), generator=g) * mask, "attention_mask": mask}


def loop_fisher(model, data):
    """Reference: per sample, autograd of log p(y_n | x_n), squared, averaged (eval mode)."""
    model.eval()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for i in range(len(data)):
        x = {k: v[i:i + 1] for k, v in data.x.items()}
        log_p = F.log_softmax(model(x, data.task), dim=1)[0, data.y[i]]
        for n, g in zip(params, torch.autograd.grad(log_p, list(params.values()), allow_unused=True)):
            if g is not None:
                total[n] += g.square()
    return {n: t / len(data) for n, t in total.items()}


def test_vmap_refuses_a_hugging_face_bert():
    model = tiny_bert_classifier()
    data = TaskData(tokens(4), torch.randint(0, 3, (4,)), 0)
    with pytest.raises(RuntimeError, match="vmap"):
        fisher_diagonal(model, data, kind="empirical", method="vmap")


def test_auto_falls_back_to_the_loop_on_bert_and_equals_a_per_sample_loop(monkeypatch):
    model = tiny_bert_classifier()
    data = TaskData(tokens(9), torch.randint(0, 3, (9,)), 0)
    calls = []
    loop = importance._loop_moment

    def counted(*args):
        calls.append(len(args[2]))  # the batch's labels
        return loop(*args)
    monkeypatch.setattr(importance, "_loop_moment", counted)
    auto = fisher_diagonal(model, data, kind="empirical", batch_size=4, method="auto")
    assert calls == [4, 4, 1]  # every batch went through the loop, after vmap refused it
    reference = loop_fisher(model, data)
    assert max_relative_error(auto, reference) <= 1e-5
    assert auto["encoder.embeddings.word_embeddings.weight"].abs().sum() > 0
    assert auto["encoder.encoder.layer.0.attention.self.query.weight"].abs().sum() > 0
    assert torch.equal(auto["encoder.pooler.dense.weight"], torch.zeros_like(auto["encoder.pooler.dense.weight"]))


def test_mas_on_bert_by_the_loop_equals_a_per_sample_loop():
    model = tiny_bert_classifier()
    data = TaskData(tokens(5), torch.randint(0, 3, (5,)), 0)
    fast = output_sensitivity(model, data, method="loop")
    model.eval()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for i in range(5):
        out = model({k: v[i:i + 1] for k, v in data.x.items()}, 0)[0]
        for n, g in zip(params, torch.autograd.grad(out.square().sum(), list(params.values()), allow_unused=True)):
            if g is not None:
                total[n] += g.abs()
    assert max_relative_error(fast, {n: t / 5 for n, t in total.items()}) <= 1e-5


def text_benchmark(n_train=12, n_test=6) -> Benchmark:
    tasks = []
    for t in range(2):
        g = torch.Generator().manual_seed(t)
        train = TaskData(tokens(n_train, seed=t), torch.randint(0, 3, (n_train,), generator=g), t)
        test = TaskData(tokens(n_test, seed=10 + t), torch.randint(0, 3, (n_test,), generator=g), t)
        tasks.append(Task(t, f"t{t}", ("a", "b", "c"), train, test))
    return Benchmark("toy_text", "task", tuple(tasks), 3, 2, (7,))


def penalty_value(strategy) -> float:
    penalty = strategy.penalty()
    return penalty.detach().item() if isinstance(penalty, torch.Tensor) else float(penalty)


def test_ewc_on_a_tiny_bert_protects_the_first_task_with_a_nonzero_penalty(monkeypatch):
    cl.seed_everything(0)
    model = tiny_bert_classifier(heads=2)
    lam = 1e3
    strategy = EWC(model, lam=lam, fisher_kind="empirical", fisher_samples=8, lr=1e-2)
    steps = []  # (task, reported loss terms, penalty after the step)
    observe = strategy.observe

    def recorded(x, y, task):
        out = observe(x, y, task)
        steps.append((task, out, penalty_value(strategy)))
        return out
    monkeypatch.setattr(strategy, "observe", recorded)
    result = cl.run(strategy, text_benchmark(), epochs=1, batch_size=4, device="cpu", progress=False)
    assert result.acc_matrix.values.shape == (3, 2) and all(math.isfinite(loss) for loss in result.losses)
    assert [t for t, _, _ in steps] == [0, 0, 0, 1, 1, 1]
    assert all(after == 0.0 for t, _, after in steps if t == 0)  # no past task yet
    first_of_task_1 = next(i for i, (t, _, _) in enumerate(steps) if t == 1)
    _, out, after = steps[first_of_task_1]
    assert out["penalty"].item() == pytest.approx(0.0, abs=1e-9)  # still at θ*_0: the quadratic is 0
    assert after > 0  # one step away from θ*_0 the penalty pulls back
    # the penalty is λ/2 Σ F (θ − θ*)² of the stored Fisher and anchor, by hand
    fisher, anchor = strategy.terms[0]
    params = dict(strategy.model.named_parameters())
    by_hand = lam / 2 * sum((fisher[n] * (params[n] - anchor[n]).square()).sum() for n in fisher)
    fisher_1, anchor_1 = strategy.terms[1]  # after task 1 both terms count
    by_hand += lam / 2 * sum((fisher_1[n] * (params[n] - anchor_1[n]).square()).sum() for n in fisher_1)
    assert penalty_value(strategy) == pytest.approx(by_hand.item(), rel=1e-4, abs=1e-8)
    assert len(strategy.terms) == 2
    encoder_fisher = fisher["encoder.encoder.layer.1.attention.self.query.weight"]
    assert encoder_fisher.abs().sum() > 0  # the Fisher reaches into the Transformer
    assert torch.equal(fisher["heads.1.weight"], torch.zeros_like(fisher["heads.1.weight"]))  # task 0: head 0 only
