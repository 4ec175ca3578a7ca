"""closed_form.py against brute force: class means scored by cosine (SimpleCIL), random
projection + ridge (RanPAC) against an explicit solve and against numpy's least squares,
order invariance, chunking, ``fit_sequence`` and argument checks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cl_course_lib as cl
from cl_course_lib.closed_form import NearestClassMean, RandomProjectionRidge, fit_sequence
from cl_course_lib.data.benchmarks import Benchmark, Task, TaskData

D, K = 6, 5  # feature size, classes


def features(n, seed, classes=range(K)):
    """``n`` features (float32, as embed gives) with labels drawn from ``classes``; the
    class shifts the mean so that the classes can be told apart."""
    g = torch.Generator().manual_seed(seed)
    classes = torch.tensor(list(classes))
    y = classes[torch.randint(0, len(classes), (n,), generator=g)]
    centres = torch.randn(K, D, generator=torch.Generator().manual_seed(99)) * 2
    return (centres[y] + torch.randn(n, D, generator=g)).float(), y


def brute_force_means(h, y):
    """{class: mean feature} by a Python loop over the classes present."""
    h, y = h.double().numpy(), y.numpy()
    return {c: h[y == c].mean(axis=0) for c in np.unique(y)}


def feature_benchmark(task_classes=((0, 1), (2, 3), (4,)), n_train=40, n_test=25) -> Benchmark:
    """A class-incremental benchmark of features (N, D), labels global."""
    tasks = []
    for t, classes in enumerate(task_classes):
        x_tr, y_tr = features(n_train, 10 + t, classes)
        x_te, y_te = features(n_test, 20 + t, classes)
        tasks.append(Task(t, f"task{t}", tuple(map(str, classes)), TaskData(x_tr, y_tr, t), TaskData(x_te, y_te, t)))
    return Benchmark("toy_features", "class", tuple(tasks), K, 1, (D,))


# ----------------------------------------------------------------------------- NearestClassMean


def test_nearest_class_mean_prototypes_are_the_per_class_means():
    h, y = features(60, 0)
    ncm = NearestClassMean(D, K)
    ncm.update(h, y)
    means = brute_force_means(h, y)
    for c in range(K):
        np.testing.assert_allclose(ncm.prototypes()[c].numpy(), means[c], rtol=0, atol=1e-12)


def test_nearest_class_mean_scores_are_cosines_and_predictions_their_argmax():
    h, y = features(60, 0)
    query, _ = features(30, 1)
    ncm = NearestClassMean(D, K)
    ncm.update(h, y)
    means = brute_force_means(h, y)
    q = query.double().numpy()
    cosine = np.array([[q[i] @ means[c] / (np.linalg.norm(q[i]) * np.linalg.norm(means[c])) for c in range(K)]
                       for i in range(len(q))])
    scores = ncm(query)
    np.testing.assert_allclose(scores.numpy(), cosine, rtol=0, atol=1e-12)
    assert scores.argmax(dim=1).tolist() == cosine.argmax(axis=1).tolist()


def test_nearest_class_mean_never_predicts_an_unseen_class():
    h, y = features(40, 0, classes=(1, 3))
    ncm = NearestClassMean(D, K)
    ncm.update(h, y)
    # queries that lie right on the centres of the unseen classes still go to a seen one
    queries, query_labels = features(50, 5, classes=(0, 2, 4))
    scores = ncm(queries)
    assert torch.isneginf(scores[:, [0, 2, 4]]).all()
    assert torch.isfinite(scores[:, [1, 3]]).all()
    assert set(scores.argmax(dim=1).tolist()) <= {1, 3}


def test_nearest_class_mean_is_order_invariant_and_chunking_does_not_matter():
    parts = [features(30, s, classes) for s, classes in ((0, (0, 1)), (1, (2, 3)), (2, (4, 0)))]
    forward, backward, chunked = (NearestClassMean(D, K) for _ in range(3))
    for h, y in parts:
        forward.update(h, y)
    for h, y in reversed(parts):
        backward.update(h, y)
    h_all, y_all = torch.cat([h for h, _ in parts]), torch.cat([y for _, y in parts])
    once = NearestClassMean(D, K)
    once.update(h_all, y_all)
    for chunk in torch.arange(len(y_all)).split(7):
        chunked.update(h_all[chunk], y_all[chunk])
    for other in (backward, chunked, once):
        assert (forward.prototypes() - other.prototypes()).abs().max() <= 1e-9
        assert torch.equal(forward.counts, other.counts)


# ----------------------------------------------------------------------------- RandomProjectionRidge


def test_random_projection_ridge_equals_the_explicit_solve():
    h, y = features(80, 0)
    ridge = 0.7
    ranpac = RandomProjectionRidge(D, K, projection_dim=32, ridge=ridge, seed=3)
    ranpac.update(h, y)
    W = ranpac.projection
    assert W.shape == (D, 32)
    phi = (h.double() @ W).clamp_min(0)  # ReLU(hᵀW), by hand
    G = phi.T @ phi
    C = phi.T @ F.one_hot(y, K).double()
    expected = torch.linalg.solve(G + ridge * torch.eye(32, dtype=torch.float64), C)
    assert (ranpac.weights() - expected).abs().max() <= 1e-9 * expected.abs().max()
    query, _ = features(20, 1)
    q_phi = (query.double() @ W).clamp_min(0)
    assert torch.allclose(ranpac(query), q_phi @ expected, rtol=1e-9, atol=1e-12)


def test_random_projection_is_gaussian_fixed_by_the_seed():
    a = RandomProjectionRidge(D, K, projection_dim=400, seed=1)
    b = RandomProjectionRidge(D, K, projection_dim=400, seed=1)
    c = RandomProjectionRidge(D, K, projection_dim=400, seed=2)
    assert torch.equal(a.projection, b.projection) and not torch.equal(a.projection, c.projection)
    before = a.projection.clone()
    a.update(*features(30, 0))
    assert torch.equal(a.projection, before)  # the same W for every task
    w = a.projection.flatten()  # 2400 standard normal draws
    assert abs(w.mean().item()) < 0.1 and abs(w.std().item() - 1) < 0.1


def test_projection_dim_zero_is_ridge_regression_on_the_features():
    h, y = features(70, 0)
    ridge = 2.5
    probe = RandomProjectionRidge(D, K, projection_dim=0, ridge=ridge)
    probe.update(h, y)
    assert probe.projection is None
    # ridge as least squares on the augmented system [X; √λ I] w = [Y; 0]
    X = h.double().numpy()
    Y = np.eye(K)[y.numpy()]
    A = np.vstack([X, np.sqrt(ridge) * np.eye(D)])
    B = np.vstack([Y, np.zeros((D, K))])
    expected = np.linalg.lstsq(A, B, rcond=None)[0]
    np.testing.assert_allclose(probe.weights().numpy(), expected, rtol=0, atol=1e-10)
    query, _ = features(15, 1)
    np.testing.assert_allclose(probe(query).numpy(), query.double().numpy() @ expected, rtol=0, atol=1e-10)


def test_random_projection_ridge_is_order_invariant_and_chunking_does_not_matter():
    parts = [features(30, s, classes) for s, classes in ((0, (0, 1)), (1, (2, 3)), (2, (4,)))]
    forward, backward, chunked = (RandomProjectionRidge(D, K, projection_dim=48) for _ in range(3))
    for h, y in parts:
        forward.update(h, y)
    for h, y in (parts[2], parts[0], parts[1]):
        backward.update(h, y)
    h_all, y_all = torch.cat([h for h, _ in parts]), torch.cat([y for _, y in parts])
    for chunk in torch.arange(len(y_all)).split(11):
        chunked.update(h_all[chunk], y_all[chunk])
    for other in (backward, chunked):
        assert (forward.weights() - other.weights()).abs().max() <= 1e-9
        assert torch.equal(forward.counts, other.counts)


def test_random_projection_ridge_resolves_after_each_update_and_masks_unseen_classes():
    ranpac = RandomProjectionRidge(D, K, projection_dim=16)
    ranpac.update(*features(30, 0, classes=(0, 1)))
    query, _ = features(10, 3)
    first = ranpac(query)
    assert torch.isneginf(first[:, 2:]).all() and torch.isfinite(first[:, :2]).all()
    ranpac.update(*features(30, 1, classes=(2, 3)))  # the cached W_o must not be reused
    fresh = RandomProjectionRidge(D, K, projection_dim=16)
    fresh.update(*features(30, 0, classes=(0, 1)))
    fresh.update(*features(30, 1, classes=(2, 3)))
    second = ranpac(query)
    assert torch.isfinite(second[:, :4]).all() and torch.isneginf(second[:, 4]).all()
    assert torch.allclose(second, fresh(query), rtol=1e-12, atol=1e-12)


def test_random_projection_ridge_state_dict_round_trip_gives_the_same_scores():
    """A classifier restored from a checkpoint (state_dict) scores as the saved one, even if
    it had solved for W_o before being restored."""
    source = RandomProjectionRidge(D, K, projection_dim=16)
    source.update(*features(40, 0))
    query, _ = features(10, 3)
    target = RandomProjectionRidge(D, K, projection_dim=16)
    target.update(*features(40, 7, classes=(0,)))
    target(query)  # solved (and cached) on other data
    target.load_state_dict(source.state_dict())
    assert torch.allclose(target(query), source(query), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- fit_sequence


@pytest.mark.parametrize("make", [lambda: NearestClassMean(D, K),
                                  lambda: RandomProjectionRidge(D, K, projection_dim=32)],
                         ids=["ncm", "ranpac"])
def test_fit_sequence_rows_are_the_evaluations_after_each_task(make):
    bench = feature_benchmark()
    classifier = make()
    result = fit_sequence(classifier, bench)
    assert isinstance(result, cl.Result)
    values = result.acc_matrix.values
    assert values.shape == (bench.n_tasks + 1, bench.n_tasks)
    np.testing.assert_array_equal(values[-1], cl.evaluate(classifier, bench))
    assert result.name == type(classifier).__name__ and result.task_starts == [0] * bench.n_tasks
    assert result.settings["scenario"] == "class" and result.train_seconds >= 0
    # every row: a fresh classifier updated on the tasks so far, evaluated by brute force
    for t in range(1, bench.n_tasks + 1):
        reference = make()
        for task in bench.tasks[:t]:
            reference.update(task.train.x, task.train.y)
        by_hand = [(reference(task.test.x).argmax(dim=1) == task.test.y).double().mean().item()
                   for task in bench.tasks]
        np.testing.assert_allclose(values[t], by_hand, rtol=0, atol=1e-12)
        assert all(values[t, s] == 0 for s in range(t, bench.n_tasks))  # unseen classes: never predicted
    assert values[-1].mean() > 0.6  # the classes are separable: a broken classifier would not get here


def test_fit_sequence_takes_a_name():
    assert fit_sequence(NearestClassMean(D, K), feature_benchmark(), name="SimpleCIL").name == "SimpleCIL"


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("build, error, name", [
    (lambda: RandomProjectionRidge(D, K, projection_dim=-1), ValueError, "projection_dim"),
    (lambda: RandomProjectionRidge(D, K, projection_dim=2.5), TypeError, "projection_dim"),
    (lambda: RandomProjectionRidge(D, K, ridge=0), ValueError, "ridge"),
    (lambda: RandomProjectionRidge(D, K, ridge=-1.0), ValueError, "ridge"),
    (lambda: RandomProjectionRidge(D, K, ridge="1"), TypeError, "ridge"),
    (lambda: RandomProjectionRidge(D, K, seed=-3), ValueError, "seed"),
    (lambda: RandomProjectionRidge(0, K), ValueError, "n_features"),
    (lambda: NearestClassMean(D, 0), ValueError, "n_classes"),
    (lambda: NearestClassMean(D, 2.0), TypeError, "n_classes"),
])
def test_bad_arguments_name_the_parameter(build, error, name):
    with pytest.raises(error, match=name):
        build()


def test_fit_sequence_refuses_raw_token_inputs_and_other_classifiers():
    bench = feature_benchmark()
    tokens = {"input_ids": torch.randint(0, 100, (40, 8)), "attention_mask": torch.ones(40, 8, dtype=torch.long)}
    raw = Benchmark("tokens", "class", tuple(
        Task(t.id, t.name, t.classes, TaskData(tokens, t.train.y, t.id), t.test) for t in bench.tasks), K, 1, (8,))
    with pytest.raises(ValueError, match="embed_benchmark"):
        fit_sequence(NearestClassMean(D, K), raw)
    images = Benchmark("images", "class", tuple(
        Task(t.id, t.name, t.classes, TaskData(torch.rand(40, 1, 2, 3), t.train.y, t.id), t.test)
        for t in bench.tasks), K, 1, (1, 2, 3))
    with pytest.raises(ValueError, match="features"):
        fit_sequence(NearestClassMean(D, K), images)
    with pytest.raises(TypeError, match="classifier"):
        fit_sequence(torch.nn.Linear(D, K), bench)


# ----------------------------------------------------------------------------- ridge="gcv"

GCV_GRID = cl.closed_form.GCV_GRID


def brute_force_gcv(phi: torch.Tensor, y: torch.Tensor, lam: float) -> float:
    """``n ‖Y − AY‖² / (n − tr A)²`` with the hat matrix ``A = Φ(ΦᵀΦ + λI)⁻¹Φᵀ`` built
    explicitly (n × n, float64)."""
    n, m = phi.shape
    Y = F.one_hot(y, K).double()
    A = phi @ torch.linalg.inv(phi.T @ phi + lam * torch.eye(m, dtype=torch.float64)) @ phi.T
    return float(n * (Y - A @ Y).square().sum() / (n - torch.trace(A)) ** 2)


def expanded(h, projection):
    return h.double() if projection is None else (h.double() @ projection).clamp_min(0)


@pytest.mark.parametrize("projection_dim, n", [(0, 60), (24, 90)], ids=["features", "projection"])
def test_gcv_scores_equal_the_brute_force_hat_matrix_for_every_lambda(projection_dim, n):
    h, y = features(n, 4)
    ranpac = RandomProjectionRidge(D, K, projection_dim=projection_dim, ridge="gcv", seed=2)
    ranpac.update(h, y)
    lambdas, scores = ranpac.gcv_scores()
    phi = expanded(h, ranpac.projection)
    G = phi.T @ phi
    # the grid: GCV_GRID × the mean eigenvalue of G, i.e. × tr G / M
    torch.testing.assert_close(lambdas, GCV_GRID * torch.trace(G) / len(G), rtol=1e-10, atol=0)
    assert len(lambdas) == len(GCV_GRID) == 17 and GCV_GRID[0] == 1e-6 and GCV_GRID[-1] == pytest.approx(100.0)
    by_hand = torch.tensor([brute_force_gcv(phi, y, float(lam)) for lam in lambdas], dtype=torch.float64)
    torch.testing.assert_close(scores, by_hand, rtol=1e-7, atol=0)
    assert by_hand.max() / by_hand.min() > 1.01  # λ matters here: a constant score would not test the choice


def test_gcv_scores_with_fewer_samples_than_projected_features():
    """RanPAC's regime, n < M (G has rank n): the scores still follow the hat matrix, to
    rounding. The smallest λ of the grid lose digits to G's rounding-level eigenvalues (the
    scores there are differences of nearly equal sums), so they are compared at 1e-2 only."""
    h, y = features(30, 8)
    ranpac = RandomProjectionRidge(D, K, projection_dim=256, ridge="gcv", seed=1)
    ranpac.update(h, y)
    lambdas, scores = ranpac.gcv_scores()
    phi = expanded(h, ranpac.projection)
    by_hand = torch.tensor([brute_force_gcv(phi, y, float(lam)) for lam in lambdas], dtype=torch.float64)
    assert torch.isfinite(scores).all()
    torch.testing.assert_close(scores[:4], by_hand[:4], rtol=1e-2, atol=0)
    torch.testing.assert_close(scores[4:], by_hand[4:], rtol=1e-5, atol=0)
    ranpac.weights()
    assert ranpac.ridge_used == pytest.approx(float(lambdas[by_hand.argmin()]), rel=1e-10)


@pytest.mark.parametrize("projection_dim", [0, 24])
def test_gcv_chooses_the_grids_argmin_and_solves_at_it(projection_dim):
    h, y = features(90, 5)
    ranpac = RandomProjectionRidge(D, K, projection_dim=projection_dim, ridge="gcv", seed=2)
    assert ranpac.ridge_used is None
    ranpac.update(h, y)
    weights = ranpac.weights()
    phi = expanded(h, ranpac.projection)
    lambdas = GCV_GRID * torch.trace(phi.T @ phi) / phi.shape[1]
    by_hand = [brute_force_gcv(phi, y, float(lam)) for lam in lambdas]
    best = min(range(len(by_hand)), key=by_hand.__getitem__)
    assert ranpac.ridge_used == pytest.approx(float(lambdas[best]), rel=1e-10)
    m = phi.shape[1]
    explicit = torch.linalg.solve(phi.T @ phi + ranpac.ridge_used * torch.eye(m, dtype=torch.float64),
                                  phi.T @ F.one_hot(y, K).double())
    assert (weights - explicit).abs().max() <= 1e-8 * explicit.abs().max()
    query, _ = features(12, 6)
    torch.testing.assert_close(ranpac(query), expanded(query, ranpac.projection) @ explicit, rtol=1e-7, atol=1e-9)


def test_gcv_resolves_after_each_update():
    ranpac = RandomProjectionRidge(D, K, projection_dim=16, ridge="gcv")
    ranpac.update(*features(40, 0, classes=(0, 1)))
    ranpac(features(3, 9)[0])
    first = ranpac.ridge_used
    more = features(80, 1, classes=(2, 3, 4))
    ranpac.update(*more)
    fresh = RandomProjectionRidge(D, K, projection_dim=16, ridge="gcv")
    fresh.update(*features(40, 0, classes=(0, 1)))
    fresh.update(*more)
    query, _ = features(10, 3)
    assert torch.allclose(ranpac(query), fresh(query), rtol=1e-10, atol=1e-12)
    assert ranpac.ridge_used == fresh.ridge_used and first is not None


def test_gcv_is_order_invariant():
    parts = [features(40, s, classes) for s, classes in ((0, (0, 1)), (1, (2, 3)), (2, (4,)))]
    forward, backward = (RandomProjectionRidge(D, K, projection_dim=32, ridge="gcv") for _ in range(2))
    for h, y in parts:
        forward.update(h, y)
    for h, y in reversed(parts):
        backward.update(h, y)
    query, _ = features(30, 7)
    a, b = forward(query), backward(query)
    assert forward.ridge_used == pytest.approx(backward.ridge_used, rel=1e-9)
    assert (a - b).abs().max() <= 1e-8 * a.abs().max()
    assert torch.equal(a.argmax(dim=1), b.argmax(dim=1))


def test_gcv_scores_need_samples():
    with pytest.raises(ValueError, match="update"):
        RandomProjectionRidge(D, K, projection_dim=8, ridge="gcv").gcv_scores()


@pytest.mark.parametrize("ridge, error", [("auto", TypeError), ("GCV", TypeError), (-1, ValueError),
                                          (0.0, ValueError), (None, TypeError)])
def test_a_bad_ridge_is_explained(ridge, error):
    with pytest.raises(error, match="ridge") as caught:
        RandomProjectionRidge(D, K, ridge=ridge)
    assert "'gcv'" in str(caught.value)  # the message offers the automatic choice


@pytest.mark.parametrize("ridge", [0.25, 3])
def test_a_fixed_ridge_is_the_ridge_used(ridge):
    ranpac = RandomProjectionRidge(D, K, projection_dim=8, ridge=ridge)
    ranpac.update(*features(30, 0))
    ranpac.weights()
    assert ranpac.ridge_used == ridge and isinstance(ranpac.ridge_used, float)
