"""The scripts under ``benchmarks/``: they run, and what they compare is the same computation.

Nothing here is timed: ``trainer_speed`` runs with a tiny random BERT and a few steps, and
the checks are that both sides took the same steps on the same batches and gave finite
figures, and that one step of ours equals one step of ``transformers.Trainer`` from the same
weights on the same batch (same loss, same updated weights to 1e-5).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "trainer_speed.py"


@pytest.fixture(scope="module")
def speed():
    spec = importlib.util.spec_from_file_location("trainer_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
