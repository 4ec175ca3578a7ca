"""Checks for chapter 7's exercises: a frozen pretrained encoder with a head per task, LoRA
adapters with ``peft`` and their parameter count, and the nearest-class-mean classifier.

Every check builds its own tiny random ``BertModel`` (vocabulary 200, d = 32, 2 layers, 2
heads, dropout 0.1 as in BERT) and its own seeded data, so it runs in about a second and
leaves the caller's random state alone.

Exercise 1 tests *how* the encoder is frozen, not only a flag: after ``freeze_encoder`` and a
later ``model.train()`` two training-mode forwards must give the eval-mode features, and no
module of the encoder may be in training mode when it runs. ``train_heads`` is watched while
it trains: no encoder parameter may change or get a gradient, the encoder must be in eval
mode at every step, and head 0 must not move while task 1 trains.

Exercise 2 compares ``count_trainable(add_lora(...))`` with the closed form
``Σ r (d_in + d_out)`` over the adapted ``nn.Linear`` layers on a rank sweep, and tests *how*:
the base is frozen, exactly the named modules carry ``A`` (r × d_in) and ``B`` (d_out × r),
the adapted encoder answers as the original before training (B = 0), and a backward pass
reaches A and B only.

Exercise 3 compares ``class_means`` and ``ncm_predict`` with
``cl.closed_form.NearestClassMean``, recognises the usual mistakes by computing them
(Euclidean distance or a dot product instead of cosine similarity, one mean over all samples,
a wrong count, rows in order of appearance), and tests *how*: predictions ignore the length of
features and means, and means do not depend on the order the tasks came in.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..closed_form import NearestClassMean
from ..data.benchmarks import Benchmark, Task, TaskData
from ..models.text import TextClassifier
from ..train import Result, evaluate
from .core import Check, Report, expect


def _seeded(build, seed: int):
    """``build()`` under a fixed torch seed, without touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@contextmanager
def _quiet():
    """transformers' deprecation notices raised inside peft: not the learner's concern."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def tiny_bert(seed: int = 0, *, hidden_size: int = 32, layers: int = 2, heads: int = 2, intermediate: int = 64):
    """A small random ``BertModel`` with BERT's dropout (0.1 after embeddings, in attention, in MLPs)."""
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=200, hidden_size=hidden_size, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=intermediate)
    return _seeded(lambda: BertModel(config), seed)


def _tokens(seed: int, n: int, length: int = 8) -> dict[str, torch.Tensor]:
    """Random token ids (3..199) with an attention mask; some rows padded (id 0) at the end."""
    def build():
        ids = torch.randint(3, 200, (n, length))
        lengths = torch.randint(length - 3, length + 1, (n,))
        mask = (torch.arange(length) < lengths[:, None]).long()
        return {"input_ids": ids * mask, "attention_mask": mask}
    return _seeded(build, seed)


# --------------------------------------------------------------------------------------
# Exercise 1: freeze the encoder, train a head per task


def _classifier(seed: int) -> TextClassifier:
    """A task-incremental TextClassifier on a tiny BERT: 2 heads of 2 outputs."""
    encoder = tiny_bert(seed)
    return _seeded(lambda: TextClassifier(encoder, 2, heads=2), seed + 100)


def toy_benchmark(seed: int = 0, *, n_train: int = 48, n_test: int = 32, length: int = 8) -> Benchmark:
    """Two tokenised tasks (task-incremental, labels 0/1 in each): every class writes with its
    own band of 8 token ids, so frozen random features already separate the classes."""
    def part(t: int, n: int, salt: int) -> TaskData:
        g = torch.Generator().manual_seed(1000 * seed + 10 * t + salt)
        y = torch.randint(0, 2, (n,), generator=g)
        band = 10 + 8 * (2 * t + y)  # (n,): first token id of the sample's class band
        ids = band[:, None] + torch.randint(0, 8, (n, length), generator=g)
        lengths = torch.randint(length - 2, length + 1, (n,), generator=g)
        mask = (torch.arange(length) < lengths[:, None]).long()
        return TaskData({"input_ids": ids * mask, "attention_mask": mask}, y, t)
    tasks = tuple(Task(t, f"toy task {t}", (f"class {2 * t}", f"class {2 * t + 1}"), part(t, n_train, 1),
                       part(t, n_test, 2)) for t in range(2))
    return Benchmark("toy_tokens", "task", tasks, n_outputs=2, n_heads=2, input_shape=(length,))


def _heads_state(model) -> list[torch.Tensor]:
    return [torch.cat([p.detach().cpu().flatten() for p in head.parameters()]) for head in model.heads]


def _features_twice(model, x) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return model.features(x).clone(), model.features(x).clone()


_NOT_EVAL = ("requires_grad=False is not enough: BERT has dropout (p = 0.1, after the embeddings, in every attention "
             "and every MLP), which still drops units in training mode, so the head would train on noisy features "
             "and be tested on clean ones. Put the encoder in eval mode (model.encoder.eval()), and keep it there.")
_UNDONE = ("After model.train() the encoder's dropout is on again: one model.encoder.eval() is undone by the next "
           "model.train(), which cl.run's step calls at every step and which sets every submodule's mode. Keep the "
           "encoder in eval mode for good, e.g. encoder.train = lambda mode=True: nn.Module.train(encoder, False) "
           "(chapter 6's exercise 2), or a forward pre-hook that calls encoder.eval().")


def check_freeze_encoder(freeze_encoder) -> Report:
    """``freeze_encoder(model)``: no gradient reaches ``model.encoder`` and it stays in eval mode
    (dropout off) through later ``model.train()`` calls; the heads train as before."""
    check = Check("freeze_encoder")

    def frozen(seed):
        model = _classifier(seed)
        x = _tokens(seed, 6)
        with torch.no_grad():
            reference = model.eval().features(x).clone()  # the deterministic features
        model.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            freeze_encoder(model)
        return model, x, reference

    @check.case("every parameter of model.encoder has requires_grad=False; the heads' still have True")
    def _():
        model, _, _ = frozen(0)
        left = [n for n, p in model.encoder.named_parameters() if p.requires_grad]
        total = sum(1 for _ in model.encoder.parameters())
        expect(all(p.requires_grad for p in model.heads.parameters()),
               "The heads were frozen too: freeze model.encoder only (model.encoder.requires_grad_(False)); the "
               "heads are what trains.")
        expect(len(left) < total, "No encoder parameter was frozen: set requires_grad to False on every parameter "
               "of model.encoder (model.encoder.requires_grad_(False)).")
        expect(not left, f"{len(left)} of the encoder's {total} parameter tensors still have requires_grad=True "
               f"(e.g. {', '.join(left[:3])}): freeze all of model.encoder (token embeddings, every Transformer "
               "block, the pooler), not a part of it.")

    @check.case("a backward pass of the loss gives gradients to the head only")
    def _():
        model, x, _ = frozen(1)
        model.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            F.cross_entropy(model(x, 0), torch.zeros(len(x["input_ids"]), dtype=torch.long)).backward()
        reached = [n for n, p in model.encoder.named_parameters() if p.grad is not None]
        expect(not reached, f"A gradient reached {len(reached)} encoder parameters (e.g. {reached[0] if reached else ''}): "
               "set requires_grad to False on every parameter of model.encoder.")
        expect(all(p.grad is not None for p in model.heads[0].parameters()),
               "Head 0 got no gradient: freeze the encoder only, the heads must train.")

    @check.case("how: after a later model.train(), two training-mode forwards give the eval-mode features")
    def _():
        model, x, reference = frozen(2)
        first, second = _features_twice(model, x)  # right after freeze_encoder, still in train mode
        expect(torch.equal(first, second) and torch.allclose(first, reference, rtol=1e-5, atol=1e-6), _NOT_EVAL)
        model.eval()
        model.train()  # what every training step does
        first, second = _features_twice(model, x)
        expect(torch.equal(first, second), _UNDONE)
        expect(torch.allclose(first, reference, rtol=1e-5, atol=1e-6),
               "The features after model.train() are deterministic but not those of the encoder in eval mode: keep "
               "the encoder's weights and put it in eval mode, nothing else.")

    @check.case("how: when the encoder runs, every module in it is in eval mode; the heads switch to training mode")
    def _():
        model, x, _ = frozen(3)
        model.eval()
        model.train()
        seen = _watch_encoder_modes(model)
        with torch.random.fork_rng(devices=[]):
            model(x, 0)
        for handle in seen.pop("handles"):
            handle.remove()
        expect(not seen["training"], f"{len(seen['training'])} modules of the encoder ran in training mode (e.g. "
               f"{seen['training'][0] if seen['training'] else ''}): " + (
                   "setting dropout's p to 0 gives deterministic features here, but a module in training mode can "
                   "change more than dropout (a BatchNorm's statistics in a vision backbone). Keep the whole encoder "
                   "in eval mode." if _deterministic(model, x) else _UNDONE))
        expect(model.heads.training and all(head.training for head in model.heads),
               "model.train() no longer puts the heads in training mode: keep only the encoder in eval mode, not "
               "the whole model.")

    return check.run()


def _deterministic(model, x) -> bool:
    first, second = _features_twice(model, x)
    return torch.equal(first, second)


def _watch_encoder_modes(model) -> dict:
    """Forward pre-hooks on every module inside the encoder: which ran in training mode (with grad on).
    The encoder itself is left out: a learner's own pre-hook on it may switch it to eval mode
    when it is called, and only its submodules' modes change what it computes."""
    seen: dict = {"training": [], "handles": []}

    def hook(name):
        def record(module, args):
            if module.training and torch.is_grad_enabled() and name not in seen["training"]:
                seen["training"].append(name)
        return record
    for name, module in model.encoder.named_modules():
        if name:
            seen["handles"].append(module.register_forward_pre_hook(hook(name)))
    return seen


def _task_ids(task) -> set[int]:
    if isinstance(task, torch.Tensor):
        return set(task.unique().tolist())
    return {int(task)} if task is not None else set()


def check_train_heads(train_heads, *, epochs: int = 10, lr: float = 5e-2) -> Report:
    """``train_heads(model, bench, *, epochs, lr) -> Result``: the encoder frozen (``freeze_encoder``),
    one head per task trained with ``Naive`` through ``cl.run``."""
    check = Check("train_heads")
    state: dict = {}

    def trained():
        if state:
            return state
        model, bench = _classifier(10), toy_benchmark(0)
        encoder_before = {n: p.detach().clone() for n, p in model.encoder.named_parameters()}
        heads_before = _heads_state(model)
        steps: list[tuple[set[int], list[torch.Tensor]]] = []  # per training forward: its tasks, the heads then

        def record(module, args, kwargs):
            if torch.is_grad_enabled():
                task = args[1] if len(args) > 1 else kwargs.get("task")
                steps.append((_task_ids(task), _heads_state(module)))
        modes = _watch_encoder_modes(model)
        handle = model.register_forward_pre_hook(record, with_kwargs=True)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                result = train_heads(model, bench, epochs=epochs, lr=lr)
        finally:
            handle.remove()
            for h in modes.pop("handles"):
                h.remove()
        state.update(model=model, bench=bench, result=result, encoder_before=encoder_before,
                     heads_before=heads_before, steps=steps, training_modules=modes["training"])
        return state

    @check.case("returns cl.run's Result, its accuracy matrix covering both tasks")
    def _():
        result = trained()["result"]
        expect(result is not None, "Return what cl.run returns (a missing `return`?).")
        expect(isinstance(result, Result), f"Return cl.run's Result; got {type(result).__name__}. Train with "
               "cl.run(cl.strategies.Naive(model, lr=lr), bench, epochs=epochs, progress=False).")
        expect(result.acc_matrix.values.shape == (3, 2), "The Result should come from one cl.run over the whole "
               f"benchmark (an accuracy matrix of 3 × 2); got {result.acc_matrix.values.shape}.")

    @check.case("how: no encoder parameter changed (bit for bit) and none got a gradient (p.grad is None)")
    def _():
        s = trained()
        params = dict(s["model"].encoder.named_parameters())
        changed = [n for n, p in params.items() if not torch.equal(p.detach().cpu(), s["encoder_before"][n].cpu())]
        expect(not changed, f"{len(changed)} encoder parameters changed while the heads trained (e.g. {changed[0] if changed else ''}): "
               "call freeze_encoder(model) before building the strategy and running cl.run.")
        reached = [n for n, p in params.items() if p.grad is not None]
        expect(not reached, f"The encoder's weights stayed, but a gradient reached {len(reached)} of its parameters "
               f"(e.g. {reached[0] if reached else ''}): every step back-propagated through the whole encoder for "
               "nothing (an optimiser over the heads alone does that). Freeze it with requires_grad=False "
               "(freeze_encoder).")

    @check.case("how: in every training step the encoder ran in eval mode (dropout off)")
    def _():
        s = trained()
        expect(bool(s["steps"]), "No training step ran on the model passed in: train it with "
               "cl.run(cl.strategies.Naive(model, lr=lr), bench, epochs=epochs).")
        expect(not s["training_modules"], f"{len(s['training_modules'])} encoder modules ran in training mode while "
               "the heads trained (dropout on): " + _UNDONE)

    @check.case("how: each head changed only while its own task trained (head 0 unchanged by task 1's training)")
    def _():
        s = trained()
        steps = s["steps"]
        expect(bool(steps), "No training step ran on the model passed in: train it with cl.run.")
        order = [next(iter(ids)) if len(ids) == 1 else None for ids, _ in steps]
        expect(None not in order and order == sorted(order) and set(order) == {0, 1},
               "The training steps did not see task 0 and then task 1, one task at a time: train with "
               "cl.strategies.Naive (Joint or replay would train earlier tasks' heads again), on bench itself.")
        first_of_1 = order.index(1)
        heads_at_switch = steps[first_of_1][1]
        final = _heads_state(s["model"])
        expect(not torch.equal(heads_at_switch[0], s["heads_before"][0]), "Head 0 did not change while task 0 "
               "trained: the heads must train (freeze the encoder only).")
        expect(torch.equal(heads_at_switch[1], s["heads_before"][1]), "Head 1 changed while task 0 trained: "
               "each task trains its own head only (model(x, task) does the routing; do not add weight decay).")
        expect(torch.equal(final[0], heads_at_switch[0]), "Head 0 changed while task 1 trained: each task trains "
               "its own head only (the strategy's optimiser must skip parameters without a gradient: Naive's Adam "
               "does; weight decay or momentum on stale gradients does not).")
        expect(not torch.equal(final[1], heads_at_switch[1]), "Head 1 did not change while task 1 trained.")

    @check.case(f"task-IL accuracy on a separable toy is at least 0.9 on both tasks ({epochs} epochs, lr {lr})")
    def _():
        s = trained()
        accs = evaluate(s["model"], s["bench"])
        expect(min(accs) >= 0.9, f"Test accuracies {[round(a, 3) for a in accs]}: train with the epochs and lr "
               "you are given, cl.run(cl.strategies.Naive(model, lr=lr), bench, epochs=epochs).")

    return check.run()


# --------------------------------------------------------------------------------------
# Exercise 2: LoRA with peft, and counting trainable parameters


def lora_closed_form(encoder: nn.Module, rank: int, target_modules) -> int:
    """``Σ r (d_in + d_out)`` over the ``nn.Linear`` layers whose last name is in ``target_modules``."""
    return sum(rank * (m.in_features + m.out_features) for name, m in encoder.named_modules()
               if isinstance(m, nn.Linear) and name.split(".")[-1] in set(target_modules))


def _adapted_names(model: nn.Module) -> set[str]:
    """Names (in the original encoder) of the modules that carry LoRA matrices."""
    names = set()
    for name, _ in model.named_parameters():
        if ".lora_A." in name or ".lora_B." in name:
            base = name.split(".lora_")[0]
            names.add(base.removeprefix("base_model.model."))
    return names


def _lora_shapes(model: nn.Module) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    shapes: dict = {}
    for name, p in model.named_parameters():
        for part in ("lora_A", "lora_B"):
            if f".{part}." in name:
                base = name.split(".lora_")[0].removeprefix("base_model.model.")
                shapes.setdefault(base, {})[part] = tuple(p.shape)
    return shapes


def _count_hints(got, module: nn.Module, want: int) -> None:
    expect(got is not None, "Return the number (a missing `return`?).")
    expect(isinstance(got, int) or (isinstance(got, torch.Tensor) and got.numel() == 1),
           f"Return an int, the number of trainable numbers; got {type(got).__name__}.")
    got = int(got)
    params = list(module.parameters())
    if got == want:
        return
    expect(got != sum(p.numel() for p in params), f"You counted all {got:,} parameters: count only those with "
           "p.requires_grad (the frozen ones are not trained).")
    expect(got != sum(p.numel() for p in params if not p.requires_grad), "You counted the frozen parameters: "
           "count those with p.requires_grad True.")
    expect(got != sum(1 for p in params if p.requires_grad), "You counted parameter tensors: add up p.numel(), the "
           "number of entries of each trainable tensor.")
    expect(False, f"Got {got:,}, expected {want:,}: sum(p.numel() for p in module.parameters() if p.requires_grad).")


def check_count_trainable(count_trainable) -> Report:
    """``count_trainable(module) -> int``: entries of the parameters with ``requires_grad``."""
    check = Check("count_trainable")

    def net():
        model = _seeded(lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), 0)
        model[0].requires_grad_(False)  # 16 frozen; 4·2 + 2 = 10 trainable
        return model

    @check.case("a two-layer net with its first layer frozen: 10 trainable of 26")
    def _():
        model = net()
        _count_hints(count_trainable(model), model, 10)

    @check.case("a tiny BERT: every parameter trainable, then none after requires_grad_(False)")
    def _():
        encoder = tiny_bert(0)
        total = sum(p.numel() for p in encoder.parameters())
        _count_hints(count_trainable(encoder), encoder, total)
        encoder.requires_grad_(False)
        _count_hints(count_trainable(encoder), encoder, 0)

    return check.run()


def _adapt(add_lora, rank, targets, seed=0, **shape):
    """A fresh tiny BERT, the names and shapes of its linear layers (peft replaces them in place),
    and what ``add_lora`` made of it."""
    encoder = tiny_bert(seed, **shape)
    linears = {n: (m.in_features, m.out_features) for n, m in encoder.named_modules() if isinstance(m, nn.Linear)}
    with _quiet(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapted = add_lora(encoder, rank, list(targets))
    expect(adapted is not None, "Return the encoder wrapped by peft (a missing `return`?).")
    expect(isinstance(adapted, nn.Module), f"Return a torch module (get_peft_model's); got {type(adapted).__name__}.")
    return linears, adapted


def check_add_lora(add_lora, count_trainable) -> Report:
    """``add_lora(encoder, rank, target_modules)``: ``peft`` LoRA on exactly the named linear layers,
    base frozen, B = 0 at the start; ``count_trainable`` of it equals ``Σ r (d_in + d_out)``."""
    check = Check("add_lora")

    @check.case("the base is frozen: only LoRA's A and B matrices have requires_grad")
    def _():
        _, adapted = _adapt(add_lora, 2, ("query", "value"))
        names = [n for n, _ in adapted.named_parameters()]
        expect(any(".lora_A." in n for n in names), "No LoRA matrices (lora_A, lora_B) found in what you returned: "
               "wrap the encoder with peft, get_peft_model(encoder, LoraConfig(r=rank, target_modules=target_modules)).")
        trainable = [n for n, p in adapted.named_parameters() if p.requires_grad and ".lora_" not in n]
        biases = [n for n in trainable if n.endswith("bias")]
        expect(not trainable or len(biases) < len(trainable), f"{len(biases)} biases are trainable: LoRA trains only A "
               "and B; keep LoraConfig's bias='none' (the default).")
        expect(not trainable, f"{len(trainable)} base parameters still have requires_grad=True (e.g. {trainable[0] if trainable else ''}): "
               "the base must be frozen. get_peft_model does that for you; do not set requires_grad back on "
               "(no model.requires_grad_(True) afterwards).")
        frozen_lora = [n for n, p in adapted.named_parameters() if ".lora_" in n and not p.requires_grad]
        expect(not frozen_lora, f"LoRA matrices are frozen (e.g. {frozen_lora[0] if frozen_lora else ''}): they are what trains.")

    @check.case("exactly the target_modules carry adapters: A of shape (r, d_in), B of shape (d_out, r)")
    def _():
        for rank, targets in ((2, ("query", "value")), (3, ("key", "dense"))):
            linears, adapted = _adapt(add_lora, rank, targets, seed=1)
            want = {n for n in linears if n.split(".")[-1] in targets}
            got = _adapted_names(adapted)
            if got != want:
                missing, extra = sorted(want - got), sorted(got - want)
                expect(False, f"With target_modules={list(targets)} the adapted layers should be the {len(want)} "
                       f"nn.Linear layers named so; {'missing ' + ', '.join(missing[:3]) if missing else ''}"
                       f"{'; ' if missing and extra else ''}{'not asked for ' + ', '.join(extra[:3]) if extra else ''}. "
                       "Pass target_modules to LoraConfig as given, not a fixed list.")
            for name, shapes in _lora_shapes(adapted).items():
                d_in, d_out = linears[name]
                want_shapes = {"lora_A": (rank, d_in), "lora_B": (d_out, rank)}
                expect(shapes == want_shapes, f"{name}: A and B have shapes {shapes.get('lora_A')} and "
                       f"{shapes.get('lora_B')}, expected {want_shapes['lora_A']} and {want_shapes['lora_B']} for "
                       f"rank {rank}: use LoraConfig(r=rank, ...).")

    @check.case("count_trainable(add_lora(...)) = Σ r (d_in + d_out) for r = 1, 2, 4, 8 and for MiniLM's shape (73,728)")
    def _():
        for rank in (1, 2, 4, 8):
            want = lora_closed_form(tiny_bert(2), rank, ("query", "value"))
            _, adapted = _adapt(add_lora, rank, ("query", "value"), seed=2)
            got = count_trainable(adapted)
            expect(got is not None and int(got) == want,
                   f"Rank {rank} on query and value of a 2-layer encoder with d = 32: Σ r (d_in + d_out) = "
                   f"2 layers × 2 × {rank} × (32 + 32) = {want:,}; count_trainable gave {got}. "
                   + ("That is every parameter: is the base frozen, and does count_trainable count only "
                      "requires_grad? " if got is not None and int(got) == sum(p.numel() for p in adapted.parameters())
                      else "Check count_trainable first (its own check above), then rank and target_modules."))
        minilm = dict(hidden_size=384, layers=6, heads=12, intermediate=1536)
        _, adapted = _adapt(add_lora, 8, ("query", "value"), seed=3, **minilm)
        got = count_trainable(adapted)
        expect(got is not None and int(got) == 73_728, f"MiniLM's shape (6 layers, d = 384), r = 8 on query and "
               f"value: 6 × 2 × 8 × (384 + 384) = 73,728; count_trainable gave {got}.")

    @check.case("how: before training the adapted encoder gives the original's output (B = 0 at the start)")
    def _():
        encoder = tiny_bert(4)
        x = _tokens(4, 5)
        with torch.no_grad():
            want = encoder.eval()(**x).last_hidden_state.clone()
        with _quiet(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(4)
            adapted = add_lora(encoder, 4, ["query", "value"])
        with torch.no_grad():
            got = adapted.eval()(**x).last_hidden_state
        b_zero = all(p.abs().max() == 0 for n, p in adapted.named_parameters() if ".lora_B." in n)
        expect(torch.allclose(got, want, rtol=1e-5, atol=1e-6),
               "The adapted encoder's output differs from the original's before any training: "
               + ("B must start at zero so that W₀x + (α/r)·BAx = W₀x (keep peft's init_lora_weights=True, the "
                  "default)." if not b_zero else "with B = 0 nothing else should change the output; adapt only "
                  "target_modules and leave the base weights as they are."))

    @check.case("how: a backward pass reaches only A and B; B's gradient is non-zero, the base gets none")
    def _():
        _, adapted = _adapt(add_lora, 4, ("query", "value"), seed=5)
        x = _tokens(5, 5)
        adapted.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(5)
            adapted(**x).last_hidden_state.square().mean().backward()
        base = [n for n, p in adapted.named_parameters() if ".lora_" not in n and p.grad is not None]
        expect(not base, f"A gradient reached {len(base)} base parameters (e.g. {base[0] if base else ''}): freeze "
               "the base (get_peft_model does).")
        b_grads = [p.grad for n, p in adapted.named_parameters() if ".lora_B." in n]
        expect(b_grads and all(g is not None and g.abs().max() > 0 for g in b_grads),
               "LoRA's B matrices got no gradient: they must train (requires_grad True).")

    return check.run()


# --------------------------------------------------------------------------------------
# Exercise 3: nearest class mean on frozen features (SimpleCIL)


def _random_features(seed: int, n: int = 60, d: int = 8, n_classes: int = 4):
    """Features with class structure and very different norms per sample; labels with unequal counts."""
    def build():
        centres = torch.randn(n_classes, d) * torch.tensor([0.5, 1.0, 3.0, 6.0])[:n_classes, None]
        y = torch.cat([torch.arange(n_classes), torch.randint(0, n_classes, (n - n_classes,))])
        y = y[torch.randperm(n)]
        h = (centres[y] + torch.randn(n, d)) * torch.empty(n, 1).uniform_(0.2, 5.0)
        return h, y
    return _seeded(build, seed)


def _library_means(h: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    ncm = NearestClassMean(h.shape[1], n_classes)
    ncm.update(h, y)
    return ncm.prototypes()


def _mean_mistakes(h: torch.Tensor, y: torch.Tensor, n_classes: int) -> list[tuple[torch.Tensor, str]]:
    sums = torch.zeros(n_classes, h.shape[1], dtype=torch.float64).index_add_(0, y, h.double())
    counts = torch.bincount(y, minlength=n_classes).double()
    running = torch.zeros(n_classes, h.shape[1], dtype=torch.float64)
    seen = torch.zeros(n_classes, dtype=torch.bool)
    for h_n, y_n in zip(h.double(), y.tolist()):
        running[y_n] = h_n if not seen[y_n] else (running[y_n] + h_n) / 2
        seen[y_n] = True
    order = list(dict.fromkeys(y.tolist()))  # classes in order of first appearance
    by_appearance = torch.zeros_like(sums)
    for row, c in enumerate(order):
        by_appearance[row] = sums[c] / counts[c]
    return [
        (h.double().mean(0).expand(n_classes, -1), "Every row is the mean of all samples: average each class's "
         "features separately, μ_c = (1/N_c) Σ_{n: y_n = c} h_n."),
        (sums / len(y), "You divided each class's sum by the number of all samples N; divide by that class's own "
         "count N_c (torch.bincount(labels, minlength=n_classes))."),
        (sums / n_classes, "You divided by the number of classes; divide each class's sum by its own count N_c."),
        (sums, "These are the sums of each class's features: divide by the class's count N_c."),
        (running, "That is not a mean: (μ + h) / 2 after every sample weighs the last samples most (and depends on "
         "their order). Sum each class's features, then divide by its count."),
        (by_appearance, "Row c must be class c's mean; your rows follow the order the classes first appear in. "
         "Index the rows by the label itself (e.g. sums.index_add_(0, labels, features))."),
    ]


def _means_of(class_means, h, y, n_classes) -> torch.Tensor:
    got = class_means(h.clone(), y.clone(), n_classes)
    expect(got is not None, "Return the means (a missing `return`?).")
    expect(isinstance(got, torch.Tensor), f"Return a torch tensor; got {type(got).__name__}.")
    expect(tuple(got.shape) == (n_classes, h.shape[1]),
           f"Return one row per class, shape (n_classes, d) = {(n_classes, h.shape[1])}; got {tuple(got.shape)}.")
    return got.detach().double()


def check_class_means(class_means) -> Report:
    """``class_means(features, labels, n_classes) -> (n_classes, d)``: each class's mean feature."""
    check = Check("class_means")

    @check.case("random features: the prototypes of cl.closed_form.NearestClassMean")
    def _():
        h, y = _random_features(0)
        got = _means_of(class_means, h, y, 4)
        want = _library_means(h, y, 4)
        if not torch.allclose(got, want, rtol=1e-5, atol=1e-5):
            for wrong, hint in _mean_mistakes(h, y, 4):
                expect(not torch.allclose(got, wrong, rtol=1e-5, atol=1e-5), hint)
            expect(False, f"Your means differ from the classes' means (largest difference "
                   f"{(got - want).abs().max().item():.3g}): μ_c = (1/N_c) Σ_{{n: y_n = c}} h_n.")

    @check.case("a class with no samples yet gets a row of zeros (not NaN)")
    def _():
        h, y = _random_features(1, n_classes=3)
        got = _means_of(class_means, h, y, 5)  # classes 3 and 4 not seen
        expect(not torch.isnan(got).any(), "A class without samples gave NaN (0 / 0): divide by the count clamped "
               "at 1, counts.clamp_min(1).")
        expect(torch.equal(got[3:], torch.zeros_like(got[3:])), "A class without samples should get a row of zeros.")
        expect(torch.allclose(got[:3], _library_means(h, y, 3), rtol=1e-5, atol=1e-5),
               "The classes that do have samples should still get their means.")

    @check.case("how: order invariance, means of three tasks fed in two orders agree to 1e-6")
    def _():
        h, y = _random_features(2, n=90, n_classes=4)
        h = F.normalize(h, dim=1)  # unit length: float32 rounding stays far below 1e-6 in any order
        tasks = [(h[y < 2], y[y < 2]), (h[y == 2], y[y == 2]), (h[y == 3], y[y == 3])]  # disjoint classes
        first = _means_of(class_means, torch.cat([t[0] for t in tasks]), torch.cat([t[1] for t in tasks]), 4)
        order = (2, 0, 1)
        second = _means_of(class_means, torch.cat([tasks[i][0].flip(0) for i in order]),
                           torch.cat([tasks[i][1].flip(0) for i in order]), 4)
        expect((first - second).abs().max().item() < 1e-6,
               "The means changed with the order the tasks (and their samples) came in: a mean is a sum divided by "
               "a count, and neither depends on order. Index each row by its label, not by the order classes "
               "appear in, and do not update a running average sample by sample.")
        expect(torch.allclose(first, _library_means(h, y, 4), rtol=1e-5, atol=1e-5),
               "Order does not matter, but the means are not the classes' means: μ_c = (1/N_c) Σ_{n: y_n = c} h_n.")

    return check.run()


def reference_ncm_predict(h: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """argmax_c cos(h, μ_c) = argmax_c h·μ_c / (‖h‖ ‖μ_c‖)."""
    return (F.normalize(h.double(), dim=1) @ F.normalize(means.double(), dim=1).T).argmax(dim=1)


def _predict_mistakes(h: torch.Tensor, means: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    h, means = h.double(), means.double()
    return [
        (torch.cdist(h, means).argmin(dim=1), "These are the nearest means in Euclidean distance: on unnormalised "
         "features the length of h decides, not its direction. Use cosine similarity, h·μ_c / (‖h‖ ‖μ_c‖)."),
        ((h @ means.T).argmax(dim=1), "A plain dot product h·μ_c favours the longest mean: normalise the means "
         "(F.normalize(means, dim=1)) as well as the features."),
        ((F.normalize(h, dim=1) @ F.normalize(means, dim=1).T).argmin(dim=1),
         "You took the least similar class: argmax of the cosine similarity, not argmin."),
    ]


def _labels_of(ncm_predict, h, means) -> torch.Tensor:
    got = ncm_predict(h.clone(), means.clone())
    expect(got is not None, "Return the predicted labels (a missing `return`?).")
    expect(isinstance(got, torch.Tensor), f"Return a torch tensor of labels; got {type(got).__name__}.")
    if got.dim() == 2 and tuple(got.shape) == (len(h), len(means)):
        expect(False, "You returned the similarity scores (N, n_classes): return the label of the best class, "
                      "scores.argmax(dim=1).")
    expect(tuple(got.shape) == (len(h),), f"Return one label per sample, shape (N,) = ({len(h)},); got {tuple(got.shape)}.")
    expect(not got.is_floating_point(), "Return integer labels (argmax gives a LongTensor).")
    return got.long().cpu()


def _prediction_hints(got: torch.Tensor, h: torch.Tensor, means: torch.Tensor) -> None:
    want = reference_ncm_predict(h, means)
    if torch.equal(got, want):
        return
    for wrong, hint in _predict_mistakes(h, means):
        expect(not torch.equal(got, wrong), hint)
    expect(False, f"{(got != want).sum().item()} of {len(h)} labels differ from argmax_c cos(h, μ_c).")


def check_ncm_predict(ncm_predict) -> Report:
    """``ncm_predict(features, means) -> labels (N,)``: the class of highest cosine similarity."""
    check = Check("ncm_predict")

    @check.case("a sample in the direction of a short mean, close to a long one, goes to the short one (cosine)")
    def _():
        means = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
        h = torch.tensor([[10.0, 2.5], [0.3, 0.4], [2.0, 0.1]])  # cosine says 0, 1, 0; Euclidean 1, 0, 0
        _prediction_hints(_labels_of(ncm_predict, h, means), h, means)

    @check.case("random features and means: the predictions of cl.closed_form.NearestClassMean")
    def _():
        h, y = _random_features(3)
        ncm = NearestClassMean(h.shape[1], 4)
        ncm.update(h, y)
        test, _ = _random_features(4)
        got = _labels_of(ncm_predict, test, ncm.prototypes().float())
        _prediction_hints(got, test, ncm.prototypes())
        expect(torch.equal(got, ncm(test).argmax(dim=1)), "Your labels differ from NearestClassMean's.")

    @check.case("how: predictions ignore the length of every feature vector and of every mean")
    def _():
        h, y = _random_features(5)
        means = _library_means(h, y, 4).float()
        base = _labels_of(ncm_predict, h, means)
        scaled_h = h * _seeded(lambda: torch.empty(len(h), 1).uniform_(0.01, 100.0), 6)
        scaled_means = means * torch.tensor([[0.05], [20.0], [1.0], [300.0]])
        expect(torch.equal(_labels_of(ncm_predict, scaled_h, means), base),
               "Rescaling the features changed your predictions: cosine similarity depends only on the direction "
               "of h (normalise h, or use a score where ‖h‖ cancels).")
        expect(torch.equal(_labels_of(ncm_predict, h, scaled_means), base),
               "Rescaling a class mean changed your predictions: cosine similarity depends only on the direction "
               "of μ_c; normalise the means (F.normalize(means, dim=1)).")
        _prediction_hints(base, h, means)

    return check.run()
