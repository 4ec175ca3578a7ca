"""Chapter 7's exercise checks: right answers pass, each usual mistake fails with its own hint,
a stub says "not done yet", and the checks leave the caller's random state alone."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cl_course_lib as cl
from check_helpers import failing, leaves_random_state_alone, not_done_yet, passing, stub
from cl_course_lib.checks import ch07


def heads_stub(model, bench, *, epochs, lr):
    """The learner's untouched train_heads (keyword arguments: check_helpers.stub takes none)."""
    raise NotImplementedError  # your code here


# ---- exercise 1: freeze the encoder, train a head per task


def freeze_encoder(model):
    encoder = model.encoder
    encoder.requires_grad_(False)
    encoder.eval()
    encoder.train = lambda mode=True: nn.Module.train(encoder, False)
    return model


def freeze_encoder_with_hook(model):  # another right answer: eval mode restored at every call
    model.encoder.requires_grad_(False)
    model.encoder.register_forward_pre_hook(lambda m, args, kwargs: m.eval() and None, with_kwargs=True)


def only_requires_grad(model):
    model.encoder.requires_grad_(False)


def eval_once(model):
    model.encoder.requires_grad_(False)
    model.encoder.eval()


def eval_forever_only(model):
    encoder = model.encoder
    encoder.eval()
    encoder.train = lambda mode=True: nn.Module.train(encoder, False)


def whole_model_frozen(model):
    model.requires_grad_(False)
    freeze_encoder(model)


def blocks_only(model):  # the Transformer blocks, not the embeddings or the pooler
    freeze_encoder(model)
    model.encoder.embeddings.requires_grad_(True)


def dropout_p_zero(model):
    model.encoder.requires_grad_(False)
    for m in model.encoder.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0


def whole_model_in_eval(model):
    model.encoder.requires_grad_(False)
    model.eval()
    model.train = lambda mode=True: nn.Module.train(model, False)


def heads_with(freeze=freeze_encoder, *, strategy=cl.strategies.Naive, use_lr=True, heads_only_optimiser=False,
               stale_gradients=False, batch_size=128, returns=True):
    """train_heads with one chosen mistake."""
    def train_heads(model, bench, *, epochs, lr):
        if freeze is not None:
            freeze(model)
        s = strategy(model, lr=lr) if use_lr else strategy(model)
        if heads_only_optimiser:
            s.optimizer = torch.optim.Adam(model.heads.parameters(), lr=lr)
        if stale_gradients:  # zero tensors instead of None: Adam's momentum keeps moving old heads
            zero_grad = s.optimizer.zero_grad
            s.optimizer.zero_grad = lambda set_to_none=True: zero_grad(set_to_none=False)
        result = cl.run(s, bench, epochs=epochs, batch_size=batch_size, progress=False)
        return result if returns else None
    return train_heads


# ---- exercise 2: LoRA with peft, and counting trainable parameters


def count_trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def lora_with(*, fixed_targets=None, fixed_rank=None, unfreeze=False, bias="none", init=True, inject=False):
    """add_lora with one chosen mistake."""
    def add_lora(encoder, rank, target_modules):
        from peft import LoraConfig, get_peft_model, inject_adapter_in_model
        config = LoraConfig(r=fixed_rank or rank, lora_alpha=16, target_modules=list(fixed_targets or target_modules),
                            bias=bias, init_lora_weights=init)
        model = inject_adapter_in_model(config, encoder) if inject else get_peft_model(encoder, config)
        if unfreeze:
            model.requires_grad_(True)
        return model
    return add_lora


# ---- exercise 3: nearest class mean


def class_means(features, labels, n_classes):
    sums = torch.zeros(n_classes, features.shape[1], dtype=features.dtype).index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=n_classes).clamp_min(1).to(features.dtype)
    return sums / counts.unsqueeze(1)


def class_means_by_mask(features, labels, n_classes):  # another right answer
    return torch.stack([features[labels == c].mean(0) if (labels == c).any() else features.new_zeros(features.shape[1])
                        for c in range(n_classes)])


def _sums(features, labels, n_classes):
    return torch.zeros(n_classes, features.shape[1]).index_add_(0, labels, features)


def running_average(features, labels, n_classes):
    means, seen = torch.zeros(n_classes, features.shape[1]), set()
    for h, c in zip(features, labels.tolist()):
        means[c] = h if c not in seen else (means[c] + h) / 2
        seen.add(c)
    return means


def by_appearance(features, labels, n_classes):
    means = torch.zeros(n_classes, features.shape[1])
    for row, c in enumerate(dict.fromkeys(labels.tolist())):
        means[row] = features[labels == c].mean(0)
    return means


def ncm_predict(features, means):
    return (F.normalize(features, dim=1) @ F.normalize(means, dim=1).T).argmax(dim=1)


def test_right_answers_pass():
    passing(ch07.check_freeze_encoder(freeze_encoder))
    passing(ch07.check_freeze_encoder(freeze_encoder_with_hook))
    passing(ch07.check_train_heads(heads_with()))
    passing(ch07.check_train_heads(heads_with(freeze_encoder_with_hook, batch_size=16)))
    passing(ch07.check_count_trainable(count_trainable))
    passing(ch07.check_add_lora(lora_with(), count_trainable))
    passing(ch07.check_add_lora(lora_with(inject=True), count_trainable))  # peft's other entry point
    passing(ch07.check_class_means(class_means))
    passing(ch07.check_class_means(class_means_by_mask))
    passing(ch07.check_ncm_predict(ncm_predict))
    passing(ch07.check_ncm_predict(lambda h, means: ch07.reference_ncm_predict(h, means)))


@pytest.mark.parametrize("call", [
    lambda: ch07.check_freeze_encoder(stub), lambda: ch07.check_train_heads(heads_stub),
    lambda: ch07.check_count_trainable(stub), lambda: ch07.check_add_lora(stub, count_trainable),
    lambda: ch07.check_add_lora(lora_with(), stub), lambda: ch07.check_class_means(stub),
    lambda: ch07.check_ncm_predict(stub),
])
def test_a_stub_is_not_done_yet(call):
    not_done_yet(call())


@pytest.mark.parametrize("wrong, hint", [
    (only_requires_grad, "requires_grad=False is not enough"),
    (eval_once, "undone by the next model.train()"),
    (eval_forever_only, "No encoder parameter was frozen"),
    (whole_model_frozen, "The heads were frozen too"),
    (blocks_only, "freeze all of model.encoder"),
    (dropout_p_zero, "setting dropout's p to 0"),
    (whole_model_in_eval, "no longer puts the heads in training mode"),
])
def test_freeze_encoder_mistakes(wrong, hint):
    failing(ch07.check_freeze_encoder(wrong), hint)


def test_eval_once_passes_the_flags_and_fails_the_how():
    text = failing(ch07.check_freeze_encoder(eval_once), "undone")
    assert "✓ every parameter of model.encoder" in text and "✗ how: after a later model.train()" in text


@pytest.mark.parametrize("wrong, hint", [
    (heads_with(freeze=None), "encoder parameters changed while the heads trained"),
    (heads_with(freeze=None, heads_only_optimiser=True), "The encoder's weights stayed, but a gradient reached"),
    (heads_with(eval_once), "ran in training mode while the heads trained"),
    (heads_with(strategy=cl.strategies.Joint), "one task at a time"),
    (heads_with(stale_gradients=True), "Head 0 changed while task 1 trained"),
    (heads_with(use_lr=False), "train with the epochs and lr you are given"),
    (heads_with(returns=False), "a missing `return`"),
])
def test_train_heads_mistakes(wrong, hint):
    failing(ch07.check_train_heads(wrong), hint)


def test_an_unfrozen_encoder_fails_the_how_case_not_the_result():
    text = failing(ch07.check_train_heads(heads_with(freeze=None)), "freeze_encoder(model)")
    assert "✓ returns cl.run's Result" in text and "✗ how: no encoder parameter changed" in text


@pytest.mark.parametrize("wrong, hint", [
    (lambda m: sum(p.numel() for p in m.parameters()), "You counted all"),
    (lambda m: sum(1 for p in m.parameters() if p.requires_grad), "You counted parameter tensors"),
    (lambda m: sum(p.numel() for p in m.parameters() if not p.requires_grad), "You counted the frozen parameters"),
    (lambda m: None, "a missing `return`"),
])
def test_count_trainable_mistakes(wrong, hint):
    failing(ch07.check_count_trainable(wrong), hint)


@pytest.mark.parametrize("wrong, hint", [
    (lora_with(fixed_targets=("query", "value")), "Pass target_modules to LoraConfig as given"),
    (lora_with(fixed_targets=("key",)), "not asked for"),
    (lora_with(fixed_rank=8), "use LoraConfig(r=rank"),
    (lora_with(unfreeze=True), "base parameters still have requires_grad=True"),
    (lora_with(inject=True, unfreeze=True), "do not set requires_grad back on"),
    (lora_with(bias="all"), "keep LoraConfig's bias='none'"),
    (lora_with(init=False), "B must start at zero"),
    (lambda encoder, rank, targets: encoder, "No LoRA matrices"),
    (lambda encoder, rank, targets: None, "a missing `return`"),
])
def test_add_lora_mistakes(wrong, hint):
    failing(ch07.check_add_lora(wrong, count_trainable), hint)


def test_counting_everything_fails_the_closed_form():
    text = failing(ch07.check_add_lora(lora_with(), lambda m: sum(p.numel() for p in m.parameters())),
                   "That is every parameter")
    assert "✓ the base is frozen" in text and "✗ count_trainable(add_lora(...))" in text


def test_random_b_passes_the_count_and_fails_the_how():
    text = failing(ch07.check_add_lora(lora_with(init=False), count_trainable), "B must start at zero")
    assert "✓ count_trainable(add_lora(...))" in text and "✗ how: before training" in text


@pytest.mark.parametrize("wrong, hint", [
    (lambda h, y, k: h.mean(0).expand(k, -1), "Every row is the mean of all samples"),
    (lambda h, y, k: _sums(h, y, k) / len(y), "by the number of all samples N"),
    (lambda h, y, k: _sums(h, y, k) / k, "You divided by the number of classes"),
    (_sums, "These are the sums"),
    (running_average, "That is not a mean"),
    (by_appearance, "your rows follow the order the classes first appear in"),
    (lambda h, y, k: _sums(h, y, k) / torch.bincount(y, minlength=k).unsqueeze(1), "gave NaN"),
    (lambda h, y, k: class_means(h, y, k).T, "shape (n_classes, d)"),
])
def test_class_means_mistakes(wrong, hint):
    failing(ch07.check_class_means(wrong), hint)


def test_rows_by_appearance_fail_the_order_invariance():
    text = failing(ch07.check_class_means(by_appearance), "order")
    assert "✗ how: order invariance" in text


@pytest.mark.parametrize("wrong, hint", [
    (lambda h, m: torch.cdist(h, m).argmin(dim=1), "Euclidean distance"),
    (lambda h, m: (h @ m.T).argmax(dim=1), "normalise the means"),
    (lambda h, m: (F.normalize(h, dim=1) @ F.normalize(m, dim=1).T).argmin(dim=1), "argmax of the cosine"),
    (lambda h, m: F.normalize(h, dim=1) @ F.normalize(m, dim=1).T, "You returned the similarity scores"),
    (lambda h, m: ncm_predict(h, m).float(), "Return integer labels"),
    (lambda h, m: None, "a missing `return`"),
])
def test_ncm_predict_mistakes(wrong, hint):
    failing(ch07.check_ncm_predict(wrong), hint)


def test_a_dot_product_fails_the_how_case():
    text = failing(ch07.check_ncm_predict(lambda h, m: (h @ m.T).argmax(dim=1)), "length")
    assert "✗ how: predictions ignore the length" in text


def test_the_closed_form_is_minilms_count():
    encoder = ch07.tiny_bert(0, hidden_size=384, layers=6, heads=12, intermediate=1536)
    assert ch07.lora_closed_form(encoder, 8, ("query", "value")) == 6 * 2 * 8 * (384 + 384) == 73_728


def test_checks_leave_the_global_random_state_alone():
    leaves_random_state_alone(lambda: ch07.check_freeze_encoder(freeze_encoder),
                              lambda: ch07.check_train_heads(heads_with()),
                              lambda: ch07.check_add_lora(lora_with(), count_trainable),
                              lambda: ch07.check_class_means(class_means), lambda: ch07.check_ncm_predict(ncm_predict))
