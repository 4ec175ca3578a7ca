"""The scripts under ``benchmarks/``: they run, and what they compare is the same computation.

Nothing here is timed: ``trainer_speed`` runs with a tiny random BERT and a few steps, and
the checks are that both sides took the same steps on the same batches and gave finite
figures, and that one step of ours equals one step of ``transformers.Trainer`` from the same
weights on the same batch (same loss, same updated weights to 1e-5). ``vision_speed`` runs a
random MobileNetV2 on a few 32×32 Fashion-MNIST batches: the torchvision side sees the same
images, transformed per sample as ``ImageInput`` transforms a batch, and one step of each
side from the same weights gives the same loss and the same weights.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str):
    """The module of ``benchmarks/<name>.py``."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def speed():
    pytest.importorskip("transformers")
    return load_script("trainer_speed")


@pytest.fixture(scope="module")
def vision():
    pytest.importorskip("torchvision")
    return load_script("vision_speed")


def tiny_tokenizer(words):
    """A word-level fast tokenizer over ``words`` with BERT's special tokens, built in code."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {w: i for i, w in enumerate([*specials, *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", model_input_names=["input_ids", "attention_mask"])


def tiny_bert(dropout: float = 0.1):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, hidden_dropout_prob=dropout,
                                attention_probs_dropout_prob=dropout))


def test_trainer_speed_runs_both_sides_on_the_same_batches(speed):
    tokenizer = tiny_tokenizer(speed.WORDS)
    report = speed.main(["--batch-size", "4", "--max-length", "64", "--steps", "3", "--warmup", "1",
                         "--rounds", "2", "--data", "synthetic", "--device", "cpu", "--json"],
                        encoder=tiny_bert(), tokenizer=tokenizer, record=True)
    result = report["result"]
    for name in ("ours", "theirs"):
        assert len(result[name]["rounds"]) == 2
        for r in result[name]["rounds"]:
            assert (r["steps"], r["samples"], r["total_steps"]) == (3, 12, 4)
            assert math.isfinite(r["samples_per_s"]) and r["samples_per_s"] > 0
            assert math.isfinite(r["loss"])
    assert math.isfinite(report["ratio_ours_over_theirs"]) and report["ratio_ours_over_theirs"] > 0
    ours, theirs = result["records"]["ours"], result["records"]["theirs"]
    assert len(ours) == len(theirs) == 2 * 4
    assert ours == theirs  # same shapes (dynamic padding alike), tokens, lengths and labels, step by step
    assert len({shape for shape, *_ in ours}) > 1  # the synthetic sentences do vary in length


def test_one_step_of_ours_equals_one_step_of_trainer(speed):
    import cl_course_lib as cl

    tokenizer = tiny_tokenizer(speed.WORDS)
    texts, y = speed.synthetic_texts(8)
    data = cl.data.benchmarks.TaskData(cl.data.text.tokenize(tokenizer, texts, max_length=32), y, 0)
    torch.manual_seed(1)
    classifier = cl.models.TextClassifier(tiny_bert(dropout=0.0), 5)
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    check = speed.one_step_equivalence(classifier, data, tokenizer, batch_size=8, lr=1e-2,
                                       device=torch.device("cpu"))
    assert all(torch.equal(before[k], v) for k, v in classifier.state_dict().items())  # both trained copies
    assert check["optim"] == ("adamw_torch_fused" if check["ours_fused"] else "adamw_torch")
    assert check["loss_ours"] == pytest.approx(check["loss_theirs"], abs=1e-6)
    assert check["max_weight_change"] > 1e-3  # the step did move the weights (lr 1e-2: Adam moves ~lr)
    assert check["max_weight_diff"] < 1e-5


def test_vision_reference_transform_equals_image_input(vision):
    import cl_course_lib as cl

    images = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for size in (16, 28, 32, 64):  # shrinking (antialiased on both sides), as is, enlarging
        transform = vision.reference_transform(size)
        theirs = torch.stack([transform(image) for image in images])
        assert theirs.shape == (6, 3, size, size)
        assert (theirs - cl.models.ImageInput(size)(images)).abs().max() < 1e-5


def test_vision_torchvision_copy_starts_from_our_weights(vision):
    import cl_course_lib as cl

    backbone = cl.models.load_backbone("mobilenet_v2", pretrained=False)
    classifier = cl.models.ImageClassifier(backbone.model, backbone.n_features, 10)
    theirs = vision.torchvision_copy(classifier)
    assert type(theirs.classifier) is torch.nn.Linear and theirs.classifier.out_features == 10
    ours, copied = classifier.state_dict(), theirs.state_dict()
    assert len(ours) == len(copied)
    assert all(torch.equal(a, b) for a, b in zip(ours.values(), copied.values()))
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(classifier.parameters(), theirs.parameters()))


def fashion_mnist_or_skip():
    import cl_course_lib as cl
    from cl_course_lib.data.sources import DataUnavailableError

    try:
        cl.vision.load_fashion_mnist()
    except DataUnavailableError:
        pytest.skip("Fashion-MNIST is not installed: sudo apt-get install dataset-fashion-mnist")


def test_vision_speed_both_sides_see_the_same_images(vision):
    fashion_mnist_or_skip()
    ours, theirs, n_outputs = vision.load_data(40, 32)
    assert n_outputs == 10 and len(theirs) == len(ours) == 40
    assert torch.equal(theirs.images, ours.x) and torch.equal(theirs.labels, ours.y)


def test_vision_speed_runs_and_both_sides_take_the_same_step(vision, capsys):
    fashion_mnist_or_skip()
    lr = 1e-4
    report = vision.main(["--batch-size", "4", "--image-size", "32", "--steps", "2", "--warmup", "1",
                          "--rounds", "2", "--device", "cpu", "--random", "--lr", str(lr), "--check", "--json"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("machine", "torch", "torchvision", "threads", "device", "settings", "load_average", "check",
                "ours_images_per_s", "theirs_images_per_s", "ratio_ours_over_theirs", "ours_images_per_cpu_s",
                "theirs_images_per_cpu_s", "ratio_cpu_ours_over_theirs", "rounds"):
        assert key in printed, key
    assert printed["settings"]["image_size"] == 32 and len(printed["rounds"]["ours"]) == 2
    for name in ("ours", "theirs"):
        for r in report["result"][name]["rounds"]:
            assert (r["steps"], r["images"]) == (2, 8)
            assert math.isfinite(r["images_per_s"]) and r["images_per_s"] > 0 and math.isfinite(r["loss"])
    assert math.isfinite(printed["ratio_ours_over_theirs"]) and printed["ratio_ours_over_theirs"] > 0
    check = printed["check"]
    assert check["max_input_diff"] < 1e-5  # ImageInput on a batch = the per-sample transforms, to rounding
    assert check["max_weight_change"] > 0.9 * lr  # the step moved the weights (Adam's first step: ~lr)
    # On the same input batch the two steps are the same computation (equal to the last bit here).
    assert check["loss_theirs_same_input"] == pytest.approx(check["loss_ours"], abs=1e-6)
    assert check["max_weight_diff_same_input"] < 1e-6
    # End to end the inputs differ by rounding, which a random network amplifies to ~3e-5 in the loss.
    assert check["loss_theirs"] == pytest.approx(check["loss_ours"], abs=1e-4)
    # End to end, Adam's first step is lr * g / (|g| + eps): the inputs' rounding moves a weight
    # whose gradient is ~0 and flips sign by at most 2 lr, no more.
    assert check["max_weight_diff"] <= 2 * lr * (1 + 1e-3)
