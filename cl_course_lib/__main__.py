"""Command line: ``python -m cl_course_lib {doctor,fetch-data,start-exercise,run} ...``."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ("split_mnist", "permuted_mnist", "rotated_mnist")



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
    options = {key: value for key, value in vars(args).items() if key != "func"}
    report = {"acc_matrix": result.acc_matrix.values.round(4).tolist(), **result.summary(),
              "settings": {**options, **result.settings}}
    if args.json:
        print(json.dumps(report))
    else:
        print(repr(bench))
        for key in ("acc", "bwt", "fwt", "forgetting", "train_seconds"):
            if key in report:
                print(f"{key:>14}: {report[key]:.4f}")
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
}
STEP_FLAGS = ("lr", "optimizer", "weight_decay", "precision", "clip_grad_norm", "schedule", "warmup")


def make_strategy(args, model):
    """The strategy named by ``--strategy`` (``strategies.STRATEGIES``), with the flags given."""
    from cl_course_lib.strategies import STRATEGIES
    from cl_course_lib.strategies.tuned import TUNED

    given = {kwarg: getattr(args, flag) for kwarg, flag in METHOD_FLAGS.get(args.strategy, {}).items()}
    given |= {flag: getattr(args, flag) for flag in STEP_FLAGS}
    kwargs = TUNED.get(args.strategy, {}).get(args.scenario, {}) | {k: v for k, v in given.items() if v is not None}
    return STRATEGIES[args.strategy](model, **kwargs)


def parser() -> argparse.ArgumentParser:
    from cl_course_lib.data.benchmarks import SCENARIOS
    from cl_course_lib.strategies import STRATEGIES
    from cl_course_lib.strategies.base import OPTIMIZERS, PRECISIONS, SCHEDULES

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
    r.add_argument("--strategy", choices=list(STRATEGIES), default="naive")
    r.add_argument("--epochs", type=int, default=4)
    r.add_argument("--batch-size", type=int, default=128)
    r.add_argument("--lr", type=float, default=None, help="default 1e-3 (gem: 0.01)")
    r.add_argument("--optimizer", choices=list(OPTIMIZERS), default=None, help="default adam (gem: sgd)")
    r.add_argument("--weight-decay", type=float, default=None, help="default 0")
    r.add_argument("--precision", choices=list(PRECISIONS), default=None, help="default fp32; bf16 or fp16 autocast")
    r.add_argument("--clip-grad-norm", type=float, default=None, help="clip the gradient norm to this (default: no)")
    r.add_argument("--schedule", choices=SCHEDULES, default=None, help="learning rate per task (default constant)")
    r.add_argument("--warmup", type=float, default=None, help="linear schedule: warm-up fraction of a task's steps")
    r.add_argument("--checkpoint-dir", default=None, help="checkpoint after every task here; rerun to resume")
    r.add_argument("--hidden", type=int, nargs="+", default=[400, 400], help="hidden layer widths")
    r.add_argument("--n-tasks", type=int, default=10, help="tasks of permuted_mnist")
    r.add_argument("--max-train-per-task", type=int, default=None)
    r.add_argument("--seed", type=int, default=0)
    reg = r.add_argument_group("regularisation (chapter 3); unset: the value tuned for the scenario "
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
    mem = r.add_argument_group("replay, GEM, A-GEM, LwF (chapter 4)")
    mem.add_argument("--mem-size", type=int, default=None, help="samples stored in all (replay, gem, agem; default 1000)")
    mem.add_argument("--buffer", choices=("reservoir", "class_balanced"), default="reservoir", help="replay's buffer")
    mem.add_argument("--gem-margin", type=float, default=None, help="GEM's memory strength γ (default 0.5)")
    mem.add_argument("--lwf-alpha", type=float, default=None, help="LwF's distillation weight (default 1)")
    mem.add_argument("--temperature", type=float, default=None, help="LwF's distillation temperature (default 2)")
    pnn = r.add_argument_group("progressive networks (task-incremental only)")
    pnn.add_argument("--pnn-adapter", choices=("mlp", "linear"), default="mlp",
                     help="lateral adapter: mlp (Rusu et al. eq. 2, default) or linear (eq. 1)")
    pnn.add_argument("--pnn-adapter-reduction", type=int, default=1,
                     help="the mlp adapter's V projects to ceil(width / this) units (default 1)")
    r.add_argument("--device", default=None, help="e.g. cpu or cuda (default: best available)")
    r.add_argument("--json", action="store_true", help="print one JSON line (no progress bar)")
    r.set_defaults(func=run_benchmark)
    # Listed for --help; main() hands its arguments to cl_course_lib.reproduce unparsed.
    sub.add_parser("reproduce", help="reproduce a published table: sweep | hsu2018 (see reproduce --help)")
    return top


def main(argv: list[str] | None = None) -> int:
    from cl_course_lib.data.sources import DataUnavailableError

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["reproduce"]:
        from cl_course_lib import reproduce

        reproduce.main(argv[1:])
        return 0
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, DataUnavailableError) as err:  # a user's mistake or missing data: one clear line
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
