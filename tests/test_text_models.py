"""models/text.py and models/adapters.py: pooling by hand, head routing, the loaded
MiniLM weights against the package's file tensor by tensor (no silently random
"pretrained" model), the offline fallback, and per-task LoRA's isolation.

Tiny random BERTs keep it fast; only the weight check and the fallback load the real
MiniLM (from the course's cache; skipped, saying so, when the cache lacks it)."""

import copy

import huggingface_hub.constants
import pytest
import torch
import torch.nn.functional as F
import transformers

from cl_course_lib.data import sources
from cl_course_lib.models import Heads, PerTaskLoRA, TextClassifier, load_text_encoder, parameter_counts
from cl_course_lib.strategies.base import Strategy

HIDDEN, LAYERS = 16, 2


def tiny_bert(seed=0) -> transformers.BertModel:
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                     num_attention_heads=2, intermediate_size=32)
    return transformers.BertModel(config)


def tokens(n, length=8, seed=0) -> dict:
    """Token ids with real lengths 2..length, padded with 0 and masked."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, length + 1, (n,), generator=g)
    mask = (torch.arange(length) < lengths[:, None]).long()
    return {"input_ids": torch.randint(1, 100, (n, length), generator=g) * mask, "attention_mask": mask}


def pad(x: dict, extra: int) -> dict:
    return {k: torch.cat([v, torch.zeros(len(v), extra, dtype=v.dtype)], dim=1) for k, v in x.items()}


# ----------------------------------------------------------------------------- TextClassifier


def test_mean_pooling_is_the_masked_average_of_the_last_hidden_states():
    model = TextClassifier(tiny_bert(), 3, pooling="mean").eval()
    x = tokens(5)
    with torch.no_grad():
        hidden = model.encoder(input_ids=x["input_ids"], attention_mask=x["attention_mask"]).last_hidden_state
        pooled = model.features(x)
    for i in range(5):
        real = [hidden[i, l] for l in range(x["input_ids"].shape[1]) if x["attention_mask"][i, l] == 1]
        assert torch.allclose(pooled[i], sum(real) / len(real), rtol=0, atol=1e-6)
    assert (x["attention_mask"] == 0).any()  # padding present: the mask mattered


def test_cls_pooling_is_position_zero():
    model = TextClassifier(tiny_bert(), 3, pooling="cls").eval()
    x = tokens(4)
    with torch.no_grad():
        hidden = model.encoder(input_ids=x["input_ids"], attention_mask=x["attention_mask"]).last_hidden_state
        assert torch.equal(model.features(x), hidden[:, 0])


def test_padding_tokens_do_not_change_mean_pooled_features():
    model = TextClassifier(tiny_bert(), 3).eval()
    x = tokens(6)
    with torch.no_grad():
        short, long = model.features(x), model.features(pad(x, 5))
        logits_short, logits_long = model(x), model(pad(x, 5))
    assert torch.allclose(short, long, rtol=0, atol=1e-5)
    assert torch.allclose(logits_short, logits_long, rtol=0, atol=1e-5)
    # without the mask, the padding would count: a pooling that ignored the mask would fail
    unmasked = {"input_ids": pad(x, 5)["input_ids"], "attention_mask": torch.ones(6, 13, dtype=torch.long)}
    with torch.no_grad():
        assert not torch.allclose(short, model.features(unmasked), atol=1e-3)


def test_multi_head_routing_by_int_and_by_tensor_matches_per_head_calls():
    model = TextClassifier(tiny_bert(), 4, heads=3).eval()
    x, task = tokens(6), torch.tensor([2, 0, 1, 2, 1, 0])
    with torch.no_grad():
        features = model.features(x)
        routed = model(x, task)
        for i in range(6):
            t = int(task[i])
            alone = model({k: v[i:i + 1] for k, v in x.items()}, t)[0]
            assert torch.allclose(routed[i], alone, rtol=0, atol=1e-6)
            assert torch.allclose(routed[i], features[i] @ model.heads[t].weight.T + model.heads[t].bias,
                                  rtol=0, atol=1e-6)
        assert torch.allclose(model.heads(features, task), routed, rtol=0, atol=1e-6)
        for t in range(3):
            assert torch.allclose(model(x, t), model.heads[t](features), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="pass the task id"):
        model(x)


def test_an_int_task_trains_only_its_head():
    model = TextClassifier(tiny_bert(), 4, heads=3)
    model(tokens(3), 1).sum().backward()
    assert model.heads[1].weight.grad is not None
    assert model.heads[0].weight.grad is None and model.heads[2].weight.grad is None


def test_heads_of_one_ignore_the_task_id():
    heads = Heads(5, 3, 1)
    h = torch.randn(4, 5)
    assert torch.equal(heads(h), heads(h, torch.tensor([0, 1, 2, 3])))


@pytest.mark.parametrize("bad", [torch.randint(0, 100, (2, 8)), {"input_ids": torch.zeros(2, 8, dtype=torch.long)}])
def test_a_non_dict_input_is_explained(bad):
    model = TextClassifier(tiny_bert(), 3)
    with pytest.raises(ValueError, match="tokenize"):
        model(bad)


def test_bad_pooling_names_the_parameter():
    with pytest.raises(ValueError, match="pooling"):
        TextClassifier(tiny_bert(), 3, pooling="max")


def test_parameter_counts_sum_to_the_total_and_follow_the_blocks():
    model = TextClassifier(tiny_bert(), 3, heads=2)
    counts = parameter_counts(model)
    assert sum(counts.values()) == sum(p.numel() for p in model.parameters())
    assert list(counts)[:2] == ["encoder.embeddings", "encoder.encoder"]
    assert counts["heads.0"] == counts["heads.1"] == HIDDEN * 3 + 3
    config = model.encoder.config
    tables = config.vocab_size + config.max_position_embeddings + config.type_vocab_size
    assert counts["encoder.embeddings"] == tables * HIDDEN + 2 * HIDDEN  # word, position, type tables + LayerNorm
    for block, n in counts.items():
        assert n == sum(p.numel() for name, p in model.named_parameters() if name.startswith(block + "."))


# ----------------------------------------------------------------------------- the real MiniLM


@pytest.fixture(scope="module")
def minilm_cached():
    if not sources.cache_status()["all-MiniLM-L6-v2"]:
        pytest.skip("all-MiniLM-L6-v2 not in the cache: run python -m cl_course_lib fetch-data")


def test_the_loaded_minilm_weights_are_the_packages_file(minilm_cached):
    """Every tensor of model.safetensors is in the loaded model and equal; the model has
    nothing the file lacks except two non-persistent constant buffers, checked by their
    closed form. A random initialisation anywhere would fail this."""
    import safetensors.torch

    encoder = load_text_encoder()
    assert "all-MiniLM-L6-v2" in encoder.source
    file = safetensors.torch.load_file(sources.fetch(sources.MINILM) / "model.safetensors")
    prefixes = {k.split(".")[0] for k in file}
    assert "bert" not in prefixes  # a "bert." prefix would need stripping before the comparison
    model = {**dict(encoder.model.named_parameters()), **dict(encoder.model.named_buffers())}
    assert len(file) > 100
    for key, tensor in file.items():
        assert key in model, f"{key} of the file is not in the model"
        assert model[key].dtype == tensor.dtype and torch.equal(model[key], tensor), key
    params = dict(encoder.model.named_parameters())
    assert set(params) <= set(file), sorted(set(params) - set(file))
    assert sum(p.numel() for p in params.values()) == encoder.n_parameters == 22_713_216
    # buffers the file need not hold: position ids 0..L−1 and token types all 0 (one segment)
    extra = set(model) - set(file)
    assert extra <= {"embeddings.token_type_ids"}, extra
    positions = encoder.model.config.max_position_embeddings
    assert torch.equal(model["embeddings.position_ids"], torch.arange(positions)[None])
    assert torch.equal(model["embeddings.token_type_ids"], torch.zeros(1, positions, dtype=torch.long))
    # and the tokenizer is MiniLM's own: [CLS] text [SEP] with its vocabulary's ids
    ids = encoder.tokenizer("hello world")["input_ids"]
    assert ids[0] == encoder.tokenizer.cls_token_id == 101 and ids[-1] == encoder.tokenizer.sep_token_id == 102


def test_bert_base_uncased_offline_falls_back_and_says_so(minilm_cached, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import
    if isinstance(huggingface_hub.try_to_load_from_cache("bert-base-uncased", "config.json"), str):
        pytest.skip("bert-base-uncased is in the Hugging Face cache: offline, it would load, not fall back")
    encoder = load_text_encoder("bert-base-uncased")
    assert encoder.source.startswith("all-MiniLM-L6-v2")
    assert "bert-base-uncased unavailable" in encoder.source
    assert encoder.model.config.hidden_size == 384  # MiniLM's, not BERT-base's 768


def test_an_unknown_encoder_name_is_refused():
    with pytest.raises(ValueError, match="name"):
        load_text_encoder("gpt2")


# ----------------------------------------------------------------------------- PerTaskLoRA


def lora_model(heads=3, rank=2, n_outputs=4):
    model = TextClassifier(tiny_bert(), n_outputs, heads=heads)
    base = copy.deepcopy(model).eval()
    torch.manual_seed(1)
    return PerTaskLoRA(model, rank=rank, alpha=4.0), base


def test_lora_at_init_equals_the_base_classifier():
    lora, base = lora_model()
    lora.eval()
    x = tokens(5)
    with torch.no_grad():
        for t in range(3):
            assert torch.allclose(lora(x, t), base(x, t), rtol=0, atol=1e-6)
    b = [p for n, p in lora.encoder.named_parameters() if "lora_B" in n]
    assert b and all(torch.equal(p, torch.zeros_like(p)) for p in b)


def test_training_task_one_changes_only_its_adapter_and_head():
    lora, _ = lora_model()
    before = {n: p.detach().clone() for n, p in lora.named_parameters()}
    strategy = Strategy(lora, lr=1e-2)
    x, y = tokens(8), torch.randint(0, 4, (8,))
    strategy.observe(x, y, 1)
    changed = {n for n, p in lora.named_parameters() if not torch.equal(p, before[n])}
    allowed = {n for n in before if ".task_1." in n or n.startswith("heads.1.")}
    assert changed <= allowed, sorted(changed - allowed)
    assert any("lora_B.task_1" in n for n in changed) and {"heads.1.weight", "heads.1.bias"} <= changed
    for n, p in lora.named_parameters():
        if ".task_0." in n or ".task_2." in n or n.startswith(("heads.0.", "heads.2.")):
            assert p.grad is None, n  # no gradient at all, not a zero one
        if "lora_" not in n and not n.startswith("heads."):
            assert not p.requires_grad, n  # the encoder stays frozen
    # a second step: now B ≠ 0, so A gets a gradient too, and still only task 1's
    strategy.observe(x, y, 1)
    changed = {n for n, p in lora.named_parameters() if not torch.equal(p, before[n])}
    assert changed <= allowed and any("lora_A.task_1" in n for n in changed)


def test_trainable_per_task_is_the_closed_form():
    rank, n_outputs = 2, 4
    lora, _ = lora_model(rank=rank, n_outputs=n_outputs)
    adapted = [m for name, m in lora.encoder.named_modules() if name.endswith(("query", "value"))
               and hasattr(m, "lora_A")]
    assert len(adapted) == 2 * LAYERS
    closed_form = sum(rank * (m.in_features + m.out_features) for m in adapted) + HIDDEN * n_outputs + n_outputs
    assert closed_form == 2 * LAYERS * rank * 2 * HIDDEN + HIDDEN * n_outputs + n_outputs
    assert lora.trainable_per_task() == closed_form


def trained_lora():
    """Every task's adapter and head moved by two steps, so the tasks compute different functions."""
    lora, _ = lora_model()
    strategy = Strategy(lora, lr=5e-2)
    for t in range(3):
        for seed in range(2):
            strategy.observe(tokens(6, seed=seed + 10 * t), torch.randint(0, 4, (6,)), t)
    return lora.eval()


def test_a_mixed_task_batch_equals_per_task_calls():
    lora = trained_lora()
    x, task = tokens(7, seed=5), torch.tensor([2, 0, 1, 2, 0, 1, 1])
    with torch.no_grad():
        mixed = lora(x, task)
        for i in range(7):
            alone = lora({k: v[i:i + 1] for k, v in x.items()}, int(task[i]))[0]
            assert torch.allclose(mixed[i], alone, rtol=0, atol=1e-5)
        # the adapters differ after training: routing to the wrong one would show
        assert not torch.allclose(lora._features(x, 0), lora._features(x, 1), atol=1e-4)


def test_a_mixed_task_batch_gives_every_tasks_adapter_its_gradient():
    """The gradient of a mixed batch's loss is the sum of the per-task batches' gradients,
    for every adapter in the batch (not only the last one routed)."""
    lora = trained_lora()
    x, task = tokens(6, seed=7), torch.tensor([0, 1, 2, 0, 1, 2])
    y = torch.randint(0, 4, (6,))
    adapters = {n: p for n, p in lora.named_parameters() if "lora_B" in n}

    def grads(loss):
        lora.zero_grad(set_to_none=True)
        loss.backward()
        return {n: torch.zeros_like(p) if p.grad is None else p.grad.clone() for n, p in adapters.items()}
    mixed = grads(F.cross_entropy(lora(x, task), y, reduction="sum"))
    separate = {n: torch.zeros_like(p) for n, p in adapters.items()}
    for t in range(3):
        rows = task == t
        for n, g in grads(F.cross_entropy(lora({k: v[rows] for k, v in x.items()}, t), y[rows],
                                          reduction="sum")).items():
            separate[n] += g
    for t in range(3):
        assert any(g.abs().sum() > 0 for n, g in separate.items() if f".task_{t}." in n)
    for n in adapters:
        assert torch.allclose(mixed[n], separate[n], rtol=1e-4, atol=1e-6), n


def test_lora_refuses_a_single_head_and_a_missing_task_id():
    with pytest.raises(ValueError, match="heads"):
        PerTaskLoRA(TextClassifier(tiny_bert(), 3, heads=1))
    lora, _ = lora_model()
    with pytest.raises(ValueError, match="task"):
        lora(tokens(2))


@pytest.mark.parametrize("kwargs, name", [({"rank": 0}, "rank"), ({"alpha": 0}, "alpha"), ({"dropout": 1.0}, "dropout")])
def test_lora_bad_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PerTaskLoRA(TextClassifier(tiny_bert(), 3, heads=2), **kwargs)
