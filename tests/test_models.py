"""The MLP: shapes, heads, gradient isolation between heads, input validation."""

import pytest
import torch

from cl_course_lib.models import MLP


def test_single_head_output_shape_and_flattening():
    model = MLP(784, [32, 16], 10)
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, 10)


def test_multi_head_needs_the_task_id():
    model = MLP(8, [4], 2, heads=3)
    with pytest.raises(ValueError, match="pass the task id"):
        model(torch.rand(2, 8))


def test_int_task_trains_only_its_head():
    model = MLP(8, [4], 2, heads=3)
    model(torch.rand(6, 8), 1).sum().backward()
    assert model.heads[1].weight.grad is not None
    assert model.heads[0].weight.grad is None and model.heads[2].weight.grad is None


def test_per_sample_task_ids_route_each_sample_to_its_head():
    torch.manual_seed(0)
    model = MLP(8, [4], 2, heads=3)
    x, task = torch.rand(6, 8), torch.tensor([0, 2, 1, 2, 0, 1])
    routed = model(x, task)
    for i in range(6):
        assert torch.allclose(routed[i], model(x[i:i + 1], int(task[i]))[0])


def test_wrong_input_size_is_explained():
    with pytest.raises(ValueError, match="in_features=16"):
        MLP(8, [4], 2)(torch.rand(3, 16))


@pytest.mark.parametrize("kwargs", [dict(in_features=0), dict(hidden=[0]), dict(n_outputs=-1), dict(heads=0)])
def test_bad_sizes_are_rejected(kwargs):
    args = dict(in_features=8, hidden=[4], n_outputs=2) | kwargs
    heads = args.pop("heads", 1)
    with pytest.raises(ValueError):
        MLP(args["in_features"], args["hidden"], args["n_outputs"], heads=heads)
