"""Progressive networks: the parameter count's closed form, the adapters' equations, frozen
columns (no gradient, eval mode), zero forgetting bit for bit, and the errors."""

import numpy as np
import pytest
import torch

import cl_course_lib as cl
from cl_course_lib.data.benchmarks import split
from cl_course_lib.data.vision import load_digits
from cl_course_lib.models import MLP, ProgressiveNet
from cl_course_lib.strategies import PNN


def digits(scenario, n_tasks=3):
    return split(load_digits(), [(0, 1), (2, 3), (4, 5)][:n_tasks], scenario=scenario)


class RecordingPNN(PNN):
    """PNN that keeps, after each task, every trained column's logits on fixed inputs."""

    def __init__(self, model, probe, **kwargs):
        super().__init__(model, **kwargs)
        self.probe, self.logits = probe, []

    def after_task(self, task):
        super().after_task(task)
        with torch.no_grad():
            self.logits.append([self.model.eval()(self.probe, j).clone() for j in range(task.id + 1)])


def train_three_tasks(adapter, dropout=0.0):
    bench = digits("task")
    cl.seed_everything(0)
    model = ProgressiveNet(64, [32, 16], bench.n_outputs, columns=bench.n_heads, adapter=adapter, dropout=dropout)
    strategy = RecordingPNN(model, torch.rand(20, 64), lr=1e-2)
    return strategy, cl.run(strategy, bench, epochs=2, batch_size=32, progress=False)


@pytest.mark.parametrize("adapter", ["mlp", "linear"])
def test_pnn_learns_every_task_and_forgets_nothing(adapter):
    strategy, result = train_three_tasks(adapter, dropout=0.2)
    assert np.isfinite(result.losses).all()
    values = result.acc_matrix.values
    assert result.acc_matrix.bwt == 0.0 and (values[-1] > 0.9).all()
    for j in range(3):  # column j's accuracy is frozen from the row after its task on
        assert (values[j + 1:, j] == values[j + 1, j]).all()
    # and so are its logits, bit for bit, however many later columns were trained
    for j, after_own_task in enumerate(strategy.logits):
        assert torch.equal(after_own_task[j], strategy.logits[-1][j])


def test_the_optimizer_holds_only_the_current_column_and_earlier_columns_are_frozen():
    strategy, _ = train_three_tasks("mlp")
    model = strategy.model
    in_optimizer = {id(p) for group in strategy.optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in model.columns[2].parameters()}
    assert model.n_frozen == 2 and not any(p.requires_grad for p in model.columns[:2].parameters())
    alphas = [model.columns[2].laterals[i].alpha for i in range(2)]
    assert all(alpha.shape == (2,) for alpha in alphas)  # one α per earlier column


def test_a_frozen_column_receives_no_gradient():
    model = ProgressiveNet(8, [6, 5], 3, columns=3)
    model.freeze_columns(2)
    model(torch.rand(4, 8), 2).sum().backward()
    assert all(p.grad is None for p in model.columns[:2].parameters())
    assert all(p.grad is not None for p in model.columns[2].parameters())


def test_frozen_columns_stay_in_eval_mode_when_the_model_trains():
    torch.manual_seed(0)
    model = ProgressiveNet(8, [64], 3, columns=2, dropout=0.5)
    model.freeze_columns(1)
    x = torch.rand(16, 8)
    reference = model.eval()(x, 0)
    model.train()
    assert not model.columns[0].training and model.columns[1].training
    assert torch.equal(model(x, 0), reference)  # column 0's dropout is off
    assert not torch.equal(model(x, 1), model(x, 1))  # column 1's is on


def test_adapters_follow_the_papers_equations():
    """One hidden layer, two columns: the output layer of column 1 by hand, eq. 1 and eq. 2."""
    torch.manual_seed(0)
    x = torch.rand(5, 4)
    for adapter in ("linear", "mlp"):
        model = ProgressiveNet(4, [6], 3, columns=2, adapter=adapter, adapter_reduction=2)
        (w1_0, w2_0), (w1_1, w2_1) = (column.layers for column in model.columns)
        h_0, h_1 = torch.relu(w1_0(x)), torch.relu(w1_1(x))  # h_1^{(0)}, h_1^{(1)}
        lateral = model.columns[1].laterals[0]
        if adapter == "linear":  # U h_1^{(0)}
            expected = w2_1(h_1) + h_0 @ lateral.weight.T
        else:  # U σ(V α h_1^{(0)}), V of ⌈6/2⌉ = 3 units
            assert lateral.V.weight.shape == (3, 6)
            expected = w2_1(h_1) + torch.relu(lateral.alpha * h_0 @ lateral.V.weight.T) @ lateral.U.weight.T
        assert torch.allclose(model(x, 1), expected, atol=1e-6)
        assert torch.allclose(model(x, 0), w2_0(h_0))


def test_per_sample_task_ids_route_each_sample_to_its_column():
    torch.manual_seed(0)
    model = ProgressiveNet(8, [6, 5], 3, columns=3)
    x, task = torch.rand(6, 8), torch.tensor([0, 2, 1, 2, 0, 1])
    routed = model(x, task)
    for t in range(3):
        assert torch.equal(routed[task == t], model(x, t)[task == t])


@pytest.mark.parametrize("adapter", ["mlp", "linear"])
@pytest.mark.parametrize("hidden,reduction", [([], 1), ([7], 1), ([7, 5], 2), ([9, 4, 6], 3)])
def test_parameter_count_matches_the_closed_form(adapter, hidden, reduction):
    counts = []
    for k in range(1, 6):
        model = ProgressiveNet(10, hidden, 3, columns=k, adapter=adapter, adapter_reduction=reduction)
        counts.append(ProgressiveNet.parameter_count(10, hidden, 3, columns=k, adapter=adapter,
                                                     adapter_reduction=reduction))
        assert counts[-1] == sum(p.numel() for p in model.parameters())
    second_differences = np.diff(counts, n=2)  # quadratic in k: a constant second difference
    assert (second_differences == second_differences[0]).all() and (second_differences[0] > 0) == bool(hidden)


@pytest.mark.parametrize("scenario", ["domain", "class"])
@pytest.mark.parametrize("n_tasks", [1, 2])
def test_scenarios_without_task_ids_are_refused(scenario, n_tasks):
    """One task: PNN.training_set sees the scenario; several: the first evaluation asks the
    one-column net (columns=bench.n_heads=1) for task 1, before any hook runs."""
    bench = digits(scenario, n_tasks)
    model = ProgressiveNet(64, [8], bench.n_outputs, columns=bench.n_heads)
    with pytest.raises(ValueError, match=r'PNN needs task ids.*scenario="task"'):
        cl.run(PNN(model), bench, progress=False)


def test_task_ids_must_name_a_built_column():
    model = ProgressiveNet(8, [4], 2, columns=2)
    x = torch.rand(3, 8)
    with pytest.raises(ValueError, match="task id 2 is beyond the 2 column"):
        model(x, 2)
    with pytest.raises(ValueError, match="task id -1 is beyond"):
        model(x, torch.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match="pass the task id"):
        model(x)
    with pytest.raises(ValueError, match="task id 2 is beyond"):
        PNN(model).before_task(digits("task").tasks[2])
    with pytest.raises(ValueError, match="in_features=16"):
        model(torch.rand(3, 16), 0)


@pytest.mark.parametrize("kwargs,message", [(dict(columns=0), "columns=0 is not allowed"),
                                            (dict(adapter="conv"), "adapter='conv' is not allowed.*'mlp'"),
                                            (dict(adapter_reduction=0), "adapter_reduction=0 is not allowed"),
                                            (dict(dropout=1.0), "dropout"),
                                            (dict(hidden=[0]), r"hidden\[0\]=0 is not allowed")])
def test_bad_arguments_are_rejected(kwargs, message):
    args = dict(in_features=8, hidden=[4], n_outputs=2, columns=2) | kwargs
    with pytest.raises(ValueError, match=message):
        ProgressiveNet(args.pop("in_features"), args.pop("hidden"), args.pop("n_outputs"), **args)


def test_pnn_needs_a_progressive_net():
    with pytest.raises(TypeError, match="PNN trains a ProgressiveNet"):
        PNN(MLP(8, [4], 2, heads=2))
