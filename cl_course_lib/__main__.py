"""Command line: ``python -m cl_course_lib {doctor,fetch-data,start-exercise,run,finetune-text,finetune-vision} ...``."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ("split_mnist", "permuted_mnist", "rotated_mnist")
TEXT_TASKS = ("bbc_news", "sentiment_domains")
IMAGE_TASKS = ("split_fashion_mnist", "split_mnist")



def doctor(_args) -> int:
    """Print versions, device, profile, threads and which data sets are cached."""
    import torch

    import cl_course_lib as cl
    from cl_course_lib.data import sources

    print(f"python      {platform.python_version()} ({sys.executable})")
    print(f"torch       {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(f"device      {cl.device()}   profile {cl.profile()}")
    print(f"data cache  {sources.cache_dir()}")
    for name, ok in sources.cache_status().items():
        print(f"  {'✓' if ok else '✗'} {name}{'' if ok else '   (run: python -m cl_course_lib fetch-data)'}")
    return 0


def fetch_data(_args) -> int:
    """Fetch every offline data set into the cache (idempotent; checks sha256)."""
    from cl_course_lib.data import sources

    sources.fetch_all()
    return 0


def start_exercise(args) -> int:
    """Copy exercise notebook NN into my_work/, never overwriting the learner's copy."""
    import nbformat

    matches = sorted((COURSE_ROOT / "exercises").glob(f"{args.number:02d}_*.ipynb"))
    if not matches:
        available = sorted(p.name[:2] for p in (COURSE_ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
        print(f"No exercise notebook {args.number:02d}; available: {', '.join(available) or 'none'}.", file=sys.stderr)
        return 2
    target = COURSE_ROOT / "my_work" / matches[0].name
    if target.exists():
        print(f"{target} already exists: your work is kept. Open it, or rename it to start afresh.", file=sys.stderr)
        return 1
    notebook = nbformat.read(matches[0], as_version=4)
    notebook.metadata.pop("jupytext", None)  # a plain notebook: no paired .md appears beside it
    target.parent.mkdir(exist_ok=True)
    nbformat.write(notebook, target)
    print(f"Your copy: {target.relative_to(COURSE_ROOT)}. Open it in JupyterLab and fill in the TODOs.")
    return 0


def run_benchmark(args) -> int:
    """Train one strategy on one benchmark and report the metrics."""
    import cl_course_lib as cl

    cl.seed_everything(args.seed)
    bench_kwargs = {"max_train_per_task": args.max_train_per_task}
    if args.benchmark == "permuted_mnist":
        bench_kwargs["n_tasks"] = args.n_tasks
    bench = getattr(cl.benchmarks, args.benchmark)(args.scenario, **bench_kwargs)
    model = make_model(args, bench)
    strategy = make_strategy(args, model)
    result = cl.run(strategy, bench, epochs=args.epochs, batch_size=args.batch_size, device=args.device,
                    checkpoint_dir=args.checkpoint_dir, progress=not args.json, name=args.strategy)
    return report(args, bench, result)


def finetune_text(args) -> int:
    """Fine-tune a pretrained Transformer on a sequence of text tasks and report the metrics."""
    import copy

    import cl_course_lib as cl
    from cl_course_lib.models.adapters import PerTaskLoRA
    from cl_course_lib.models.text import TextClassifier, load_text_encoder

    cl.seed_everything(args.seed)
    encoder = load_text_encoder(args.encoder)
    if not args.json:
        print(f"encoder: {encoder.source}")
    sizes = {"max_length": args.max_length, "max_train_per_task": args.max_train_per_task,
             "max_test_per_task": args.max_test_per_task}
    bench = getattr(cl.benchmarks, args.tasks)(encoder.tokenizer, args.scenario, **sizes)
    model = TextClassifier(copy.deepcopy(encoder.model), bench.n_outputs, heads=bench.n_heads, pooling=args.pooling)
    if args.freeze_embeddings:
        model.encoder.embeddings.word_embeddings.requires_grad_(False)
    if args.lora_rank:
        model = PerTaskLoRA(model, rank=args.lora_rank)
    model = cl.models.Preprocessed(cl.models.TrimPadding(), model)
    strategy = make_strategy(args, model, tuned=False)
    result = cl.run(strategy, bench, epochs=args.epochs, batch_size=args.batch_size, device=args.device,
                    checkpoint_dir=args.checkpoint_dir, progress=not args.json, name=args.strategy)
    return report(args, bench, result, encoder=encoder.source)


def finetune_vision(args) -> int:
    """Fine-tune a pretrained CNN on a sequence of image tasks and report the metrics."""
    import torch

    import cl_course_lib as cl

    cl.seed_everything(args.seed)
    backbone = cl.models.load_backbone(args.backbone)
    if not args.json:
        print(f"backbone: {backbone.source}")
    bench = getattr(cl.benchmarks, args.tasks)(args.scenario, max_train_per_task=args.max_train_per_task,
                                                max_test_per_task=args.max_test_per_task)
    model = cl.models.ImageClassifier(backbone.model, backbone.n_features, bench.n_outputs, heads=bench.n_heads)
    if args.freeze_batchnorm:
        cl.models.freeze_batchnorm(model)
    if args.freeze_backbone:
        model.backbone.requires_grad_(False)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = cl.models.Preprocessed(cl.models.ImageInput(args.image_size, channels_last=args.channels_last), model)
    strategy = make_strategy(args, model, tuned=False)
    result = cl.run(strategy, bench, epochs=args.epochs, batch_size=args.batch_size, device=args.device,
                    checkpoint_dir=args.checkpoint_dir, progress=not args.json, name=args.strategy)
    return report(args, bench, result, backbone=backbone.source)


def report(args, bench, result, **extra) -> int:
    """Print the run's metrics: one JSON line with ``--json``, else a few readable lines."""
    options = {key: value for key, value in vars(args).items() if key != "func"}
    numbers = {"acc_matrix": result.acc_matrix.values.round(4).tolist(), **result.summary(),
               "settings": {**options, **result.settings, **extra}}
    if args.json:
        print(json.dumps(numbers))
    else:
        print(repr(bench))
        for key in ("acc", "bwt", "fwt", "forgetting", "train_seconds"):
            if key in numbers:
                print(f"{key:>14}: {numbers[key]:.4f}")
    return 0


def make_model(args, bench):
    """The MLP of ``--hidden`` widths, or for ``--strategy pnn`` a ProgressiveNet of such columns."""
    import cl_course_lib as cl

    in_features = bench.tasks[0].train.x[0].numel()
    if args.strategy == "pnn":
        return cl.models.ProgressiveNet(in_features, args.hidden, bench.n_outputs, columns=bench.n_heads,
                                        adapter=args.pnn_adapter, adapter_reduction=args.pnn_adapter_reduction)
    return cl.models.MLP(in_features, args.hidden, bench.n_outputs, heads=bench.n_heads)


# The flags of each method's own keyword arguments (unset flags: the class default, or the
# value tuned for the scenario in strategies/tuned.py).
METHOD_FLAGS = {
    "l2": {"lam": "l2_lambda"},
    "ewc": {"lam": "ewc_lambda", "fisher_kind": "fisher_kind", "fisher_samples": "fisher_samples"},
    "online_ewc": {"lam": "online_ewc_lambda", "gamma": "online_ewc_gamma", "fisher_kind": "fisher_kind",
                   "fisher_samples": "fisher_samples"},
    "si": {"c": "si_c", "xi": "si_xi"},
    "mas": {"lam": "mas_lambda"},
    "replay": {"mem_size": "mem_size", "buffer": "buffer"},
    "gem": {"mem_size": "mem_size", "margin": "gem_margin"},
    "agem": {"mem_size": "mem_size"},
    "lwf": {"alpha": "lwf_alpha", "temperature": "temperature"},
    "slow_learner": {"backbone_lr_scale": "backbone_lr_scale"},
}
STEP_FLAGS = ("lr", "optimizer", "weight_decay", "precision", "clip_grad_norm", "schedule", "warmup")


def make_strategy(args, model, *, tuned: bool = True):
    """The strategy named by ``--strategy`` (``strategies.STRATEGIES``), with the flags given
    (unset ones: with ``tuned``, the values tuned for Split MNIST's scenario, else the defaults)."""
    from cl_course_lib.strategies import STRATEGIES
    from cl_course_lib.strategies.tuned import TUNED

    given = {kwarg: getattr(args, flag) for kwarg, flag in METHOD_FLAGS.get(args.strategy, {}).items()}
    given |= {flag: getattr(args, flag) for flag in STEP_FLAGS}
    kwargs = TUNED.get(args.strategy, {}).get(args.scenario, {}) if tuned else {}
    kwargs |= {k: v for k, v in given.items() if v is not None}
    return STRATEGIES[args.strategy](model, **kwargs)


def parser() -> argparse.ArgumentParser:
    from cl_course_lib.data.benchmarks import SCENARIOS
    from cl_course_lib.models.text import ENCODERS, POOLINGS
    from cl_course_lib.models.vision import BACKBONES

    top = argparse.ArgumentParser(prog="python -m cl_course_lib", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help=doctor.__doc__).set_defaults(func=doctor)
    sub.add_parser("fetch-data", help=fetch_data.__doc__).set_defaults(func=fetch_data)
    ex = sub.add_parser("start-exercise", help=start_exercise.__doc__)
    ex.add_argument("number", type=int, help="chapter number, e.g. 1")
    ex.set_defaults(func=start_exercise)
    r = sub.add_parser("run", help=run_benchmark.__doc__)
    r.add_argument("--benchmark", choices=BENCHMARKS, default="split_mnist")
    r.add_argument("--scenario", choices=SCENARIOS, default="class")
    r.add_argument("--hidden", type=int, nargs="+", default=[400, 400], help="hidden layer widths")
    r.add_argument("--n-tasks", type=int, default=10, help="tasks of permuted_mnist")
    r.add_argument("--max-train-per-task", type=int, default=None)
    add_training_flags(r, epochs=4, batch_size=128, lr="default 1e-3 (gem: 0.01)",
                       optimizer="default adam (gem: sgd)")
    pnn = r.add_argument_group("progressive networks (task-incremental only)")
    pnn.add_argument("--pnn-adapter", choices=("mlp", "linear"), default="mlp",
                     help="lateral adapter: mlp (Rusu et al. eq. 2, default) or linear (eq. 1)")
    pnn.add_argument("--pnn-adapter-reduction", type=int, default=1,
                     help="the mlp adapter's V projects to ceil(width / this) units (default 1)")
    r.set_defaults(func=run_benchmark)
    t = sub.add_parser("finetune-text", help=finetune_text.__doc__)
    t.add_argument("--tasks", choices=TEXT_TASKS, default="bbc_news",
                   help="bbc_news: 5 topics in 3 tasks; sentiment_domains: movies then medicine")
    t.add_argument("--scenario", choices=SCENARIOS, default="class")
    t.add_argument("--encoder", choices=ENCODERS, default=ENCODERS[0],
                   help="offline all-MiniLM-L6-v2 (default), or bert-base-uncased from the hub")
    t.add_argument("--pooling", choices=POOLINGS, default="mean")
    t.add_argument("--max-length", type=int, default=64, help="tokens per text (default 64)")
    t.add_argument("--max-train-per-task", type=int, default=None)
    t.add_argument("--max-test-per-task", type=int, default=None)
    t.add_argument("--freeze-embeddings", action="store_true", help="freeze the token-embedding table")
    t.add_argument("--lora-rank", type=int, default=0,
                   help="r > 0: a frozen encoder with one LoRA adapter per task (task scenario only)")
    add_training_flags(t, epochs=1, batch_size=16, lr="default 5e-5", optimizer="default adamw",
                       lr_default=5e-5, optimizer_default="adamw")
    t.set_defaults(func=finetune_text)
    v = sub.add_parser("finetune-vision", help=finetune_vision.__doc__)
    v.add_argument("--tasks", choices=IMAGE_TASKS, default="split_fashion_mnist", help="5 tasks of 2 classes each")
    v.add_argument("--scenario", choices=SCENARIOS, default="class")
    v.add_argument("--backbone", choices=BACKBONES, default=BACKBONES[-1],
                   help="mobilenet_v2 (offline, default), or resnet18/resnet50 with torchvision's download")
    v.add_argument("--image-size", type=int, default=32,
                   help="side in pixels the 28×28 grey images are resized to, per batch on the device "
                        "(default 32; 224 is the backbones' native size)")
    v.add_argument("--max-train-per-task", type=int, default=None)
    v.add_argument("--max-test-per-task", type=int, default=None)
    v.add_argument("--freeze-backbone", action="store_true", help="train the head(s) only (a linear probe)")
    v.add_argument("--freeze-batchnorm", action="store_true",
                   help="fixed BatchNorm statistics (torchvision's FrozenBatchNorm2d)")
    v.add_argument("--channels-last", action="store_true", help="NHWC memory order (faster convolutions on GPUs)")
    add_training_flags(v, epochs=1, batch_size=32, lr="default 1e-4", optimizer="default adam", lr_default=1e-4)
    v.set_defaults(func=finetune_vision)
    # Listed for --help; main() hands its arguments to cl_course_lib.reproduce unparsed.
    sub.add_parser("reproduce", help="reproduce a published table: sweep | hsu2018 (see reproduce --help)")
    return top


def add_training_flags(p, *, epochs: int, batch_size: int, lr: str, optimizer: str, lr_default=None,
                       optimizer_default=None) -> None:
    """The flags ``run``, ``finetune-text`` and ``finetune-vision`` share: the strategy, the
    step, each method's own."""
    from cl_course_lib.strategies import STRATEGIES
    from cl_course_lib.strategies.base import OPTIMIZERS, PRECISIONS, SCHEDULES

    p.add_argument("--strategy", choices=list(STRATEGIES), default="naive")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr_default, help=lr)
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default=optimizer_default, help=optimizer)
    p.add_argument("--weight-decay", type=float, default=None, help="default 0")
    p.add_argument("--precision", choices=list(PRECISIONS), default=None, help="default fp32; bf16 or fp16 autocast")
    p.add_argument("--clip-grad-norm", type=float, default=None, help="clip the gradient norm to this (default: no)")
    p.add_argument("--schedule", choices=SCHEDULES, default=None, help="learning rate per task (default constant)")
    p.add_argument("--warmup", type=float, default=None, help="linear schedule: warm-up fraction of a task's steps")
    p.add_argument("--checkpoint-dir", default=None, help="checkpoint after every task here; rerun to resume")
    p.add_argument("--seed", type=int, default=0)
    reg = p.add_argument_group("regularisation (chapter 3); unset: for run, the value tuned for the scenario "
                               "(cl_course_lib/strategies/tuned.py)")
    reg.add_argument("--l2-lambda", type=float, default=None)
    reg.add_argument("--ewc-lambda", type=float, default=None)
    reg.add_argument("--online-ewc-lambda", type=float, default=None)
    reg.add_argument("--online-ewc-gamma", type=float, default=None)
    reg.add_argument("--si-c", type=float, default=None)
    reg.add_argument("--si-xi", type=float, default=None)
    reg.add_argument("--mas-lambda", type=float, default=None)
    reg.add_argument("--fisher-kind", choices=("true", "empirical"), default=None)
    reg.add_argument("--fisher-samples", type=int, default=None)
    mem = p.add_argument_group("replay, GEM, A-GEM, LwF (chapter 4)")
    mem.add_argument("--mem-size", type=int, default=None, help="samples stored in all (replay, gem, agem; default 1000)")
    mem.add_argument("--buffer", choices=("reservoir", "class_balanced"), default="reservoir", help="replay's buffer")
    mem.add_argument("--gem-margin", type=float, default=None, help="GEM's memory strength γ (default 0.5)")
    mem.add_argument("--lwf-alpha", type=float, default=None, help="LwF's distillation weight (default 1)")
    mem.add_argument("--temperature", type=float, default=None, help="LwF's distillation temperature (default 2)")
    slow = p.add_argument_group("slow learner (chapter 8)")
    slow.add_argument("--backbone-lr-scale", type=float, default=None,
                      help="slow_learner: everything but the head trains at this × lr (default 0.01, SLCA)")
    p.add_argument("--device", default=None, help="e.g. cpu or cuda (default: best available)")
    p.add_argument("--json", action="store_true", help="print one JSON line (no progress bar)")


def main(argv: list[str] | None = None) -> int:
    from torch import OutOfMemoryError

    from cl_course_lib.data.sources import DataUnavailableError

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["reproduce"]:
        from cl_course_lib import reproduce

        reproduce.main(argv[1:])
        return 0
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, DataUnavailableError, OutOfMemoryError) as err:  # a mistake, missing data, memory: one line
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
