"""models/vision.py, the image side of models/preprocessing.py and the image benchmarks of
chapter 8: the loaded MobileNetV2 weights against torchvision's file tensor by tensor (no
silently random "pretrained" CNN), the pooled features against torchvision's own forward
pass, the offline fallback said out loud, head routing, channels_last, and Split
Fashion-MNIST's tasks against the raw data.

Tiny images (32–64 px) and tiny modules keep it fast; only the weight checks load the real
MobileNetV2 (from the course's cache; skipped, saying so, when the cache lacks it)."""

import urllib.error

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from cl_course_lib.data import sources
from cl_course_lib.data.benchmarks import TaskData, split, split_fashion_mnist, split_mnist
from cl_course_lib.data.sources import DataUnavailableError
from cl_course_lib.data.vision import FASHION_MNIST_CLASSES, ImageData, load_fashion_mnist, load_mnist
from cl_course_lib.features import embed
from cl_course_lib.models import Backbone, ImageClassifier, ImageInput, Preprocessed, load_backbone
from cl_course_lib.models.vision import BACKBONES, _headless

REAL_RESNET18 = torchvision.models.resnet18


def images(n=3, size=32, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def tiny_backbone(seed=0) -> nn.Module:
    """(B, 3, H, W) → (B, 4): a convolution, global average pooling, flatten."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


# ----------------------------------------------------------------------------- the real MobileNetV2


@pytest.fixture(scope="module")
def mobilenet_file():
    if not sources.cache_status()["mobilenet_v2"]:
        pytest.skip("mobilenet_v2 weights not in the cache: run python -m cl_course_lib fetch-data")
    return torch.load(sources.MOBILENET_V2.cache_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def mobilenet(mobilenet_file) -> Backbone:
    return load_backbone("mobilenet_v2")


def test_the_loaded_mobilenet_weights_are_torchvisions_file(mobilenet_file, mobilenet):
    """Every tensor of the file except the removed ImageNet classifier is in the backbone
    and equal; the backbone holds nothing else. A random initialisation anywhere fails."""
    assert mobilenet.name == "mobilenet_v2" and mobilenet.n_features == 1280
    assert "IMAGENET1K_V1" in mobilenet.source and "fetch" not in mobilenet.source.lower()
    assert str(sources.MOBILENET_V2.cache_path()) in mobilenet.source
    model = mobilenet.model.state_dict()
    removed = {k for k in mobilenet_file if k.startswith("classifier.")}
    assert removed == {"classifier.1.weight", "classifier.1.bias"}
    assert len(mobilenet_file) - len(removed) == len(model) > 300
    for key, tensor in mobilenet_file.items():
        if key in removed:
            assert key not in model
            continue
        assert key in model, f"{key} of the file is not in the backbone"
        assert model[key].dtype == tensor.dtype and torch.equal(model[key], tensor), key
    assert isinstance(mobilenet.model.classifier, nn.Identity)
    assert mobilenet.n_parameters == sum(t.numel() for k, t in mobilenet_file.items()
                                         if k not in removed and "running" not in k and "num_batches" not in k)


def test_mobilenet_features_are_torchvisions_penultimate_output(mobilenet_file, mobilenet):
    """features → adaptive average pool → flatten of torchvision's own network, in eval mode;
    and its ImageNet classifier on those features gives torchvision's logits (so they are
    the penultimate output, not some other layer's)."""
    reference = torchvision.models.mobilenet_v2(weights=None)
    reference.load_state_dict(mobilenet_file)
    reference.eval()
    backbone = mobilenet.model.eval()
    x = images(3, 64)  # 64 px: a 2×2 map before the pooling, so that the pooling matters
    with torch.no_grad():
        maps = reference.features(x)
        assert maps.shape == (3, 1280, 2, 2)
        by_hand = F.adaptive_avg_pool2d(maps, 1).flatten(1)
        out = backbone(x)
        assert out.shape == (3, 1280)
        torch.testing.assert_close(out, by_hand, rtol=0, atol=1e-5)
        torch.testing.assert_close(reference.classifier(out), reference(x), rtol=0, atol=1e-4)


@pytest.mark.parametrize("error", [urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
                                   OSError("Network is unreachable")], ids=["URLError", "OSError"])
def test_resnet18_offline_falls_back_to_mobilenet_and_says_so(mobilenet_file, monkeypatch, error):
    asked = []

    def offline(*args, **kwargs):
        asked.append(kwargs.get("weights"))
        raise error
    monkeypatch.setattr(torchvision.models, "resnet18", offline)
    backbone = load_backbone("resnet18")
    assert asked == ["DEFAULT"]  # it did try torchvision's ImageNet weights first
    assert backbone.name == "mobilenet_v2" and backbone.n_features == 1280
    assert backbone.source.startswith("mobilenet_v2, torchvision's ImageNet weights")
    assert "resnet18's ImageNet weights could not be downloaded" in backbone.source
    assert str(error).splitlines()[0] in backbone.source
    state = backbone.model.state_dict()
    assert torch.equal(state["features.0.0.weight"], mobilenet_file["features.0.0.weight"])  # pretrained, not random


def test_resnet18_download_headless_replaces_fc_and_reports_512_features(monkeypatch):
    """A fake download (random weights, no network): ``fc`` becomes the identity and the
    backbone returns torchvision's pooled layer4 features."""
    asked = []

    def downloaded(*, weights=None):
        asked.append(weights)
        torch.manual_seed(0)
        return REAL_RESNET18(weights=None)
    monkeypatch.setattr(torchvision.models, "resnet18", downloaded)
    backbone = load_backbone("resnet18")
    assert asked == ["DEFAULT"]
    assert backbone.name == "resnet18" and backbone.n_features == 512
    assert isinstance(backbone.model.fc, nn.Identity)
    assert "resnet18, torchvision's ImageNet weights (IMAGENET1K_V1)" in backbone.source
    torch.manual_seed(0)
    reference = REAL_RESNET18(weights=None).eval()
    model = backbone.model.eval()
    x = images(2, 32)
    with torch.no_grad():
        r = reference
        maps = r.layer4(r.layer3(r.layer2(r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(x))))))))
        by_hand = F.adaptive_avg_pool2d(maps, 1).flatten(1)
        torch.testing.assert_close(model(x), by_hand, rtol=0, atol=1e-5)
        torch.testing.assert_close(reference.fc(by_hand), reference(x), rtol=0, atol=1e-5)


def test_headless_on_both_architectures():
    resnet = _headless(REAL_RESNET18(weights=None), "resnet18", "test")
    assert resnet.n_features == 512 and isinstance(resnet.model.fc, nn.Identity) and resnet.source == "test"
    mobile = _headless(torchvision.models.mobilenet_v2(weights=None), "mobilenet_v2", "test")
    assert mobile.n_features == 1280 and isinstance(mobile.model.classifier, nn.Identity)
    with torch.no_grad():
        assert resnet.model.eval()(images(2)).shape == (2, 512)
        assert mobile.model.eval()(images(2)).shape == (2, 1280)


@pytest.mark.parametrize("name, n_features", [("mobilenet_v2", 1280), ("resnet18", 512), ("resnet50", 2048)])
def test_pretrained_false_is_random_and_says_so(monkeypatch, name, n_features):
    def no_download(*args, **kwargs):
        raise AssertionError("pretrained=False must not fetch anything")
    monkeypatch.setattr(sources, "fetch", no_download)
    backbone = load_backbone(name, pretrained=False)
    assert backbone.name == name and backbone.n_features == n_features
    assert "random weights" in backbone.source and "pretrained=False" in backbone.source
    assert backbone.n_parameters == sum(p.numel() for p in backbone.model.parameters())


def test_a_bad_backbone_name_names_the_choices():
    with pytest.raises(ValueError, match="name") as caught:
        load_backbone("vgg16")
    assert all(name in str(caught.value) for name in BACKBONES)
    assert BACKBONES[-1] == "mobilenet_v2"  # the CLI's default: the offline one


# ----------------------------------------------------------------------------- ImageClassifier


def test_image_classifier_refuses_grey_images_and_points_to_image_input():
    model = ImageClassifier(tiny_backbone(), 4, 3)
    for bad in (torch.rand(2, 1, 16, 16), torch.rand(2, 16, 16), {"pixels": torch.rand(2, 3, 8, 8)}):
        with pytest.raises(ValueError, match=r"ImageInput") as caught:
            model(bad)
        assert "(B, 3, H, W)" in str(caught.value)
    assert "(2, 1, 16, 16)" in str(pytest.raises(ValueError, model, torch.rand(2, 1, 16, 16)).value)


def test_image_classifier_features_are_the_backbone_and_heads_route_per_task():
    backbone = tiny_backbone()
    model = ImageClassifier(backbone, 4, 2, heads=3).eval()
    assert (model.n_features, model.n_outputs, model.n_heads) == (4, 2, 3) and len(model.heads) == 3
    x = images(6, 16)
    with torch.no_grad():
        h = backbone(x)
        assert torch.equal(model.features(x), h)
        for t in range(3):
            by_hand = h @ model.heads[t].weight.T + model.heads[t].bias
            torch.testing.assert_close(model(x, t), by_hand, rtol=0, atol=1e-6)
        task = torch.tensor([2, 0, 1, 1, 0, 2])
        mixed = model(x, task)
        for i, t in enumerate(task.tolist()):
            torch.testing.assert_close(mixed[i], model(x[i:i + 1], t)[0], rtol=0, atol=1e-6)
        assert not torch.allclose(model(x, 0), model(x, 1))  # really different heads
    with pytest.raises(ValueError, match="task id"):
        model(x)
    single = ImageClassifier(tiny_backbone(), 4, 5)
    assert torch.equal(single(x), single(x, 2))  # one head ignores the task id


def test_an_int_task_trains_only_its_head():
    model = ImageClassifier(tiny_backbone(), 4, 2, heads=3)
    F.cross_entropy(model(images(4, 16), 1), torch.tensor([0, 1, 0, 1])).backward()
    assert model.heads[1].weight.grad is not None
    assert model.heads[0].weight.grad is None and model.heads[2].weight.grad is None
    assert model.backbone[0].weight.grad is not None


def test_image_classifier_checks_n_features():
    with pytest.raises(ValueError, match="n_features"):
        ImageClassifier(tiny_backbone(), 0, 2)


# ----------------------------------------------------------------------------- preprocessing: images


def test_channels_last_output_equals_the_default_in_value():
    for x in (torch.rand(4, 1, 28, 28), torch.rand(2, 3, 32, 32), torch.rand(2, 3, 64, 64)):
        plain, nhwc = ImageInput(32)(x), ImageInput(32, channels_last=True)(x)
        assert nhwc.is_contiguous(memory_format=torch.channels_last)
        assert plain.is_contiguous() and not plain.is_contiguous(memory_format=torch.channels_last)
        assert nhwc.shape == plain.shape == (len(x), 3, 32, 32)
        assert torch.equal(nhwc, plain)
    assert ImageInput(32).channels_last is False


def test_a_channels_last_model_gives_the_same_logits():
    torch.manual_seed(0)
    backbone = torchvision.models.mobilenet_v2(weights=None)
    backbone.classifier = nn.Identity()
    model = ImageClassifier(backbone, 1280, 3).eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        plain = Preprocessed(ImageInput(32), model)(x)
        model = model.to(memory_format=torch.channels_last)
        nhwc = Preprocessed(ImageInput(32, channels_last=True), model)(x)
    torch.testing.assert_close(nhwc, plain, rtol=1e-4, atol=1e-5)


def test_preprocessed_features_are_the_models_features_of_the_transformed_inputs():
    model = ImageClassifier(tiny_backbone(), 4, 2).eval()
    wrapped = Preprocessed(ImageInput(24), model)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(wrapped.features(x), model.features(ImageInput(24)(x)))
        assert wrapped.features(x).shape == (5, 4)
        torch.testing.assert_close(wrapped(x), model.heads(wrapped.features(x)), rtol=0, atol=1e-6)
    data = TaskData(torch.rand(7, 1, 28, 28), torch.zeros(7, dtype=torch.long), 0)
    embedded = embed(wrapped.features, wrapped, data, batch_size=3)  # what chapter 8 does with a CNN
    with torch.no_grad():
        assert torch.equal(embedded.x, model.features(ImageInput(24)(data.x)))


# ----------------------------------------------------------------------------- image benchmarks


@pytest.fixture(scope="module")
def fashion():
    try:
        return load_fashion_mnist()
    except DataUnavailableError as err:
        pytest.skip(f"Fashion-MNIST not available here: {str(err).splitlines()[0]}")


def expected_split(x, y, classes, max_n):
    """The samples of ``classes`` in data order, first ``max_n``, by a Python loop."""
    rows = []
    for i, label in enumerate(y.tolist()):
        if len(rows) == max_n:
            break
        if label in classes:
            rows.append(i)
    return x[rows], torch.tensor([classes.index(int(y[i])) for i in rows])


@pytest.mark.parametrize("scenario, heads, outputs", [("task", 5, 2), ("domain", 1, 2), ("class", 1, 10)])
def test_split_fashion_mnist_tasks_labels_and_class_names(fashion, scenario, heads, outputs):
    bench = split_fashion_mnist(scenario, max_train_per_task=40, max_test_per_task=12)
    assert bench.name == "split_fashion_mnist" and bench.scenario == scenario
    assert (bench.n_tasks, bench.n_heads, bench.n_outputs) == (5, heads, outputs)
    assert bench.input_shape == (1, 28, 28)
    for t, task in enumerate(bench.tasks):
        classes = [2 * t, 2 * t + 1]
        assert task.classes == (FASHION_MNIST_CLASSES[2 * t], FASHION_MNIST_CLASSES[2 * t + 1])
        assert task.name == "/".join(task.classes)
        assert len(task.train) == 40 and len(task.test) == 12
        offset = 2 * t if scenario == "class" else 0
        for part, x, y, n in ((task.train, fashion.x_train, fashion.y_train, 40),
                              (task.test, fashion.x_test, fashion.y_test, 12)):
            want_x, want_local = expected_split(x, y, classes, n)
            assert torch.equal(part.x, want_x) and torch.equal(part.y, want_local + offset)
            assert part.task == t
    assert bench.tasks[0].classes == ("T-shirt/top", "Trouser") and bench.tasks[4].classes == ("Bag", "Ankle boot")


def test_split_fashion_mnist_without_limits_and_other_task_sizes(fashion):
    whole = split_fashion_mnist("class")
    assert [len(t.train) for t in whole.tasks] == [12000] * 5 and [len(t.test) for t in whole.tasks] == [2000] * 5
    halves = split_fashion_mnist("task", classes_per_task=5, max_train_per_task=10, max_test_per_task=10)
    assert (halves.n_tasks, halves.n_heads, halves.n_outputs) == (2, 2, 5)
    assert halves.tasks[1].classes == FASHION_MNIST_CLASSES[5:]
    assert set(halves.tasks[1].train.y.tolist()) <= set(range(5))
    with pytest.raises(ValueError, match="classes_per_task"):
        split_fashion_mnist("class", classes_per_task=3)
    with pytest.raises(ValueError, match="max_test_per_task"):
        split_fashion_mnist("class", max_test_per_task=0)


def test_max_test_per_task_on_split_and_split_mnist():
    g = torch.Generator().manual_seed(0)
    y_train, y_test = torch.arange(4).repeat(10), torch.arange(4).repeat(6)
    data = ImageData(torch.rand(40, 1, 4, 4, generator=g), y_train,
                     torch.rand(24, 1, 4, 4, generator=g), y_test, tuple("abcd"), "toy")
    bench = split(data, [(0, 1), (2, 3)], scenario="class", max_test_per_task=5)
    assert [len(t.test) for t in bench.tasks] == [5, 5] and [len(t.train) for t in bench.tasks] == [20, 20]
    want_x, want_y = expected_split(data.x_test, data.y_test, [2, 3], 5)
    assert torch.equal(bench.tasks[1].test.x, want_x) and torch.equal(bench.tasks[1].test.y, want_y + 2)
    assert [len(t.test) for t in split(data, [(0, 1), (2, 3)], scenario="task").tasks] == [12, 12]  # default: all
    for bad, error in ((0, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="max_test_per_task"):
            split(data, [(0, 1)], scenario="class", max_test_per_task=bad)
    try:
        mnist = load_mnist()
    except DataUnavailableError as err:
        pytest.skip(f"MNIST not available: {str(err).splitlines()[0]}")
    small = split_mnist("domain", max_train_per_task=9, max_test_per_task=7)
    assert [(len(t.train), len(t.test)) for t in small.tasks] == [(9, 7)] * 5
    want_x, want_y = expected_split(mnist.x_test, mnist.y_test, [6, 7], 7)
    assert torch.equal(small.tasks[3].test.x, want_x) and torch.equal(small.tasks[3].test.y, want_y)
