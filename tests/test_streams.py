"""cl_course_lib.data.streams: shapes, drift shapes, determinism, validation."""

from __future__ import annotations

import pytest
import torch

from cl_course_lib.data.streams import DRIFTS, Stream, diabetes_stream, linear_stream


def test_stationary_stream_shapes_and_model():
    s = linear_stream(300, 4, noise=0.0, seed=0)
    assert isinstance(s, Stream) and len(s) == 300 and s.n_features == 4
    assert s.x.shape == (300, 4) and s.y.shape == (300,) and s.w_true.shape == (300, 4)
    assert s.x.dtype == s.y.dtype == s.w_true.dtype == torch.float64
    assert torch.equal(s.w_true, s.w_true[:1].expand(300, 4))  # one weight throughout
    assert torch.allclose(s.y, (s.x * s.w_true).sum(dim=1), atol=1e-12)  # noise=0: exact
    assert s.change_at is None and s.change_end is None


def test_noise_level():
    s = linear_stream(20000, 3, noise=0.3, seed=1)
    residual = s.y - (s.x * s.w_true).sum(dim=1)
    assert residual.std().item() == pytest.approx(0.3, rel=0.03)


def test_abrupt_drift_jumps_at_change_at():
    s = linear_stream(100, 3, drift="abrupt", change_at=30, seed=2)
    assert (s.change_at, s.change_end) == (30, 30)
    assert torch.equal(s.w_true[:30], s.w_true[:1].expand(30, 3))
    assert torch.equal(s.w_true[30:], s.w_true[-1:].expand(70, 3))
    assert (s.w_true[29] - s.w_true[30]).norm() > 0.1


def test_gradual_drift_moves_linearly():
    s = linear_stream(100, 2, drift="gradual", change_at=40, width=20, seed=3)
    assert (s.change_at, s.change_end) == (40, 60)
    w_a, w_b = s.w_true[0], s.w_true[-1]
    assert torch.equal(s.w_true[:40], w_a.expand(40, 2)) and torch.equal(s.w_true[59:], w_b.expand(41, 2))
    steps = torch.diff(s.w_true[39:60], dim=0)  # 20 equal steps from w_a to w_b
    assert torch.allclose(steps, ((w_b - w_a) / 20).expand(20, 2), atol=1e-12)


def test_defaults_for_change_at_and_width():
    assert linear_stream(1000, 2, drift="abrupt").change_at == 500
    s = linear_stream(1000, 2, drift="gradual")
    assert (s.change_at, s.change_end) == (500, 750)


def test_same_seed_same_inputs_for_every_drift():
    streams = [linear_stream(200, 3, drift=d, seed=5) for d in DRIFTS]
    for s in streams[1:]:
        assert torch.equal(s.x, streams[0].x)
        assert torch.equal(s.w_true[0], streams[0].w_true[0])
    assert torch.equal(linear_stream(50, 3, seed=7).y, linear_stream(50, 3, seed=7).y)
    assert not torch.equal(linear_stream(50, 3, seed=7).x, linear_stream(50, 3, seed=8).x)


def test_rademacher_features_have_constant_length():
    s = linear_stream(500, 2, feature_scales=(2.0, 0.5), feature_dist="rademacher", seed=0)
    assert torch.equal(s.x.abs(), torch.tensor([2.0, 0.5], dtype=torch.float64).expand(500, 2))
    assert torch.allclose((s.x**2).sum(dim=1), torch.full((500,), 4.25, dtype=torch.float64))
    g = linear_stream(20000, 2, feature_scales=(3.0, 1.0), seed=0)
    assert torch.allclose(g.x.std(dim=0), torch.tensor([3.0, 1.0], dtype=torch.float64), rtol=0.03)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((0, 3), {}, r"n_samples=0 is not allowed.*an int >= 1.*Pass e\.g\. n_samples="),
        ((True, 3), {}, "n_samples=True"),
        ((10, -1), {}, "n_features=-1"),
        ((10, 2.5), {}, "n_features=2.5"),
        ((10, 3), {"noise": -0.1}, "noise=-0.1"),
        ((10, 3), {"noise": float("inf")}, "noise=inf"),
        ((10, 3), {"drift": "sudden"}, r"drift='sudden'.*'none', 'abrupt', 'gradual'"),
        ((10, 3), {"change_at": 5}, "change_at=5 has no effect with drift='none'"),
        ((10, 3), {"drift": "abrupt", "change_at": 10}, r"change_at=10.*1 <= change_at < n_samples=10"),
        ((10, 3), {"drift": "abrupt", "change_at": 0}, "change_at=0"),
        ((10, 3), {"drift": "abrupt", "width": 2}, "width=2 has no effect with drift='abrupt'"),
        ((10, 3), {"drift": "gradual", "change_at": 8, "width": 5}, r"width=5.*<= n_samples - change_at = 2"),
        ((1, 3), {"drift": "abrupt"}, "too short for a drift"),
        ((10, 3), {"feature_scales": (1.0, 2.0)}, "feature_scales"),
        ((10, 3), {"feature_scales": -1.0}, "feature_scales"),
        ((10, 3), {"feature_dist": "uniform"}, r"feature_dist='uniform'.*gaussian"),
        ((10, 3), {"seed": -1}, "seed=-1"),
    ],
)
def test_linear_stream_validation(args, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):  # TypeError: a value of the wrong type
        linear_stream(*args, **kwargs)


def test_diabetes_stream():
    s = diabetes_stream(seed=0)
    assert s.x.shape == (442, 10) and s.y.shape == (442,) and s.w_true is None and s.name == "diabetes"
    assert torch.allclose(s.x.mean(dim=0), torch.zeros(10, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(s.x.std(dim=0, correction=0), torch.ones(10, dtype=torch.float64), atol=1e-12)
    assert abs(s.y.mean().item()) < 1e-12 and s.y.std(correction=0).item() == pytest.approx(1.0)
    other = diabetes_stream(seed=1)
    assert not torch.equal(s.y, other.y)  # another order ...
    assert torch.allclose(s.y.sort().values, other.y.sort().values)  # ... of the same patients
    assert torch.equal(diabetes_stream(seed=0).x, s.x)
    with pytest.raises(ValueError, match="seed=-2"):
        diabetes_stream(seed=-2)
