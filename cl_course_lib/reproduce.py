"""Reproducing Hsu et al. 2018, "Re-evaluating Continual Learning Scenarios" (Split MNIST,
regularisation, replay and distillation methods), with the library's one training loop.

Protocol (their Table 2): 5 tasks of 2 digits; MLP 784-400-400 (ReLU); Adam, lr 0.001;
batch 128; 4 epochs per task; task-IL with one head per task, domain-IL with 2 outputs,
class-IL with 10. The metric is the average test accuracy over the 5 tasks after the last.

    python -m cl_course_lib.reproduce sweep --out results/hsu2018_sweep.json
    python -m cl_course_lib.reproduce hsu2018 --seeds 0 1 2 --out results/hsu2018_regularization.json
    python -m cl_course_lib reproduce hsu2018 --methods naive joint replay gem agem lwf --seeds 0 1 2 \
        --out results/hsu2018_replay_distillation.json
    python -m cl_course_lib reproduce cost --scenario task --out results/cost_split_mnist_task.json  (idle machine)

Replay, GEM and A-GEM store 1100 samples, as Hsu et al.'s scripts (Naive_Rehearsal_1100,
GEM_1100; their Table 2 rows); GEM trains with SGD, lr 0.01 and margin 0.5 (``--reg_coef
0.5``) as in those scripts (``METHOD_PROTOCOL``). These methods are not tuned: their
settings are the paper's / Hsu et al.'s (``DEFAULTS``); LwF uses α = 1, T = 2 (Li & Hoiem).
A-GEM is not in Hsu et al.'s table; it gets the common protocol (Adam, lr 0.001).

``sweep`` tunes each method's strength on a validation split carved out of the training
data (never on the test set); ``reproduce`` trains on the full training set with the tuned
values (``strategies.tuned``) and reports test accuracy, mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from multiprocessing import get_context

import numpy as np
import torch
from tqdm.auto import tqdm

from . import config
from .data.benchmarks import SCENARIOS, Benchmark, TaskData, split_mnist
from .models import MLP, ProgressiveNet
from .strategies import STRATEGIES
from .strategies.tuned import TUNED
from .train import run
from .validation import check

# Average accuracy (%) on Split MNIST, Hsu et al. 2018, Table 2 (task-IL / domain-IL / class-IL).
PUBLISHED = {
    "naive": {"task": 93.46, "domain": 55.16, "class": 19.71},  # "Adam" in their table
    "ewc": {"task": 97.70, "domain": 58.85, "class": 19.80},
    "online_ewc": {"task": 98.04, "domain": 57.33, "class": 19.77},
    "si": {"task": 98.56, "domain": 64.76, "class": 19.67},
    "joint": {"task": 99.52, "domain": 98.59, "class": 97.53},  # "Offline" in their table
    "lwf": {"task": 99.60, "domain": 71.02, "class": 24.17},
    "replay": {"task": 99.40, "domain": 95.16, "class": 90.78},  # "Naive rehearsal"
    "gem": {"task": 98.42, "domain": 96.16, "class": 92.20},
}
PROTOCOL = {"hidden": [400, 400], "optimizer": "adam", "lr": 1e-3, "batch_size": 128, "epochs": 4}
# The methods of results/hsu2018_regularization.json, the default of ``reproduce``.
REGULARIZATION_TABLE = ("naive", "joint", "l2", "ewc", "online_ewc", "si", "mas")
# Methods that Hsu et al. ran with their own optimiser and learning rate (their scripts).
METHOD_PROTOCOL = {"gem": {"optimizer": "sgd", "lr": 0.01}}
# Settings of the untuned methods, the same in every scenario (see the module docstring).
DEFAULTS = {"replay": {"mem_size": 1100}, "gem": {"mem_size": 1100, "margin": 0.5},
            "agem": {"mem_size": 1100}, "lwf": {"alpha": 1.0, "temperature": 2.0}}
HYPERPARAMETERS = TUNED | {name: dict.fromkeys(SCENARIOS, kwargs) for name, kwargs in DEFAULTS.items()}
# Log-spaced grids of each method's strength (its other settings: the class defaults).
GRIDS = {
    "l2": {"lam": [1e-3, 1e-2, 1e-1, 1.0, 10.0]},
    "ewc": {"lam": [10.0, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8]},
    "online_ewc": {"lam": [10.0, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8], "gamma": [1.0, 0.9]},
    "si": {"c": [1.0, 10.0, 1e2, 1e3, 1e4]},
    "mas": {"lam": [1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4]},
}


def validation_split(bench: Benchmark, fraction: float = 0.1, seed: int = 0) -> Benchmark:
    """The benchmark with each task's test set replaced by a random ``fraction`` of its
    training set, and its training set by the rest: tuning on it never sees the test set."""
    generator = torch.Generator().manual_seed(seed)
    tasks = []
    for task in bench.tasks:
        order = torch.randperm(len(task.train), generator=generator)
        n_val = int(round(fraction * len(order)))

        def take(index, data=task.train):
            return TaskData(data.x[index], data.y[index], data.task)
        tasks.append(replace(task, train=take(order[n_val:]), test=take(order[:n_val])))
    return replace(bench, tasks=tuple(tasks))


def run_one(strategy: str, scenario: str, kwargs: dict, *, seed: int = 0, epochs: int = 4,
            max_train_per_task: int | None = None, validation_fraction: float | None = None) -> dict:
    """One run of the protocol; returns the average accuracy (%) and the training time."""
    config.apply_thread_setting()  # worker processes: honour CL_COURSE_THREADS
    bench = split_mnist(scenario, max_train_per_task=max_train_per_task)
    if validation_fraction:
        bench = validation_split(bench, validation_fraction, seed=seed)
    config.seed_everything(seed)
    model = (ProgressiveNet(784, PROTOCOL["hidden"], bench.n_outputs, columns=bench.n_heads) if strategy == "pnn"
             else MLP(784, PROTOCOL["hidden"], bench.n_outputs, heads=bench.n_heads))
    optimizer = {"lr": PROTOCOL["lr"], "optimizer": PROTOCOL["optimizer"]} | METHOD_PROTOCOL.get(strategy, {})
    learner = STRATEGIES[strategy](model, **optimizer, **kwargs)
    result = run(learner, bench, epochs=epochs, batch_size=PROTOCOL["batch_size"], progress=False)
    return {"strategy": strategy, "scenario": scenario, "kwargs": kwargs, "seed": seed,
            "acc": 100 * result.acc_matrix.acc, "train_seconds": result.train_seconds}


def _run_all(jobs: list[dict], workers: int, desc: str) -> list[dict]:
    """``run_one`` on every job (in ``workers`` processes), in the jobs' order."""
    if workers <= 1:
        return [run_one(**job) for job in tqdm(jobs, desc=desc, unit="run")]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_one, **job) for job in jobs]
        for _ in tqdm(as_completed(futures), total=len(jobs), desc=desc, unit="run"):
            pass
        return [f.result() for f in futures]


def _environment(workers: int) -> dict:
    threads = os.environ.get("CL_COURSE_THREADS") or torch.get_num_threads()
    return {"torch": torch.__version__, "threads_per_run": int(threads), "workers": workers,
            "device": str(config.device())}


def sweep(grids: dict = GRIDS, scenarios=SCENARIOS, *, seed: int = 0, epochs: int = 4,
          validation_fraction: float = 0.1, max_train_per_task: int | None = None, workers: int = 1) -> dict:
    """Every grid point × scenario, one seed; the best point per method and scenario is the
    one with the highest average accuracy on the validation split (first in grid order on ties)."""
    jobs = [{"strategy": name, "scenario": scenario, "kwargs": dict(zip(grid, values)), "seed": seed,
             "epochs": epochs, "max_train_per_task": max_train_per_task, "validation_fraction": validation_fraction}
            for name, grid in grids.items() for scenario in scenarios for values in itertools.product(*grid.values())]
    runs = _run_all(jobs, workers, "sweep")
    best = {name: {scenario: max((r for r in runs if (r["strategy"], r["scenario"]) == (name, scenario)),
                                 key=lambda r: r["acc"])["kwargs"] for scenario in scenarios} for name in grids}
    return {"paper": "Hsu et al. 2018", "protocol": {**PROTOCOL, "epochs": epochs}, "grids": grids,
            "selection": f"max validation average accuracy ({validation_fraction:.0%} of each task's training "
                         f"set held out; seed {seed})", "best": best,
            "runs": [{k: r[k] for k in ("strategy", "scenario", "kwargs", "acc", "train_seconds")} for r in runs],
            "train_seconds": sum(r["train_seconds"] for r in runs), **_environment(workers)}


def reproduce(names=REGULARIZATION_TABLE, scenarios=SCENARIOS, *, seeds=(0, 1, 2), epochs: int = 4,
              max_train_per_task: int | None = None, hyperparameters: dict | None = None, workers: int = 1) -> dict:
    """Every method × scenario × seed on the full protocol with the tuned hyperparameters
    (``hyperparameters[name][scenario]``, default ``HYPERPARAMETERS``: ``strategies.tuned.TUNED``
    and ``DEFAULTS``); test accuracy (%), mean and sample standard deviation over seeds."""
    hyperparameters = HYPERPARAMETERS if hyperparameters is None else hyperparameters
    jobs = [{"strategy": name, "scenario": scenario, "kwargs": hyperparameters.get(name, {}).get(scenario, {}),
             "seed": seed, "epochs": epochs, "max_train_per_task": max_train_per_task}
            for name in names for scenario in scenarios for seed in seeds]
    runs = iter(_run_all(jobs, workers, "reproduce"))
    results = {}
    for name in names:
        for scenario in scenarios:
            cell = [next(runs) for _ in seeds]
            accs = [r["acc"] for r in cell]
            results.setdefault(name, {})[scenario] = {
                "mean": float(np.mean(accs)), "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                "per_seed": accs,
                "kwargs": cell[0]["kwargs"], "published": PUBLISHED.get(name, {}).get(scenario),
                "train_seconds": sum(r["train_seconds"] for r in cell)}
    return {"paper": "Hsu et al. 2018", "protocol": {**PROTOCOL, "epochs": epochs},
            "method_protocol": {name: METHOD_PROTOCOL[name] for name in names if name in METHOD_PROTOCOL},
            "max_train_per_task": max_train_per_task, "seeds": list(seeds), "results": results,
            "train_seconds": sum(c["train_seconds"] for row in results.values() for c in row.values()),
            **_environment(workers)}


def cost(names=tuple(STRATEGIES), scenario: str = "task", *, seed: int = 0, epochs: int = 4,
         max_train_per_task: int | None = None, repeats: int = 3) -> dict:
    """Training time of each method on the full protocol and its ratio to naive fine-tuning's.

    Runs go one after the other in this process, never in parallel, ``repeats`` rounds
    through the list. The speed of a shared machine drifts over minutes, so each method is
    timed right after a run of naive and its ratio is taken to that run (paired); ``vs_naive``
    is the median of its ratios over the rounds and ``train_seconds`` its fastest round.
    ``train_seconds`` includes each method's per-task work (Fisher, memory updates, new
    columns); evaluation is not counted."""
    if "naive" not in names:
        raise ValueError("cost needs 'naive' among the methods: the ratios are to its time.")
    check("repeats", repeats, integer=True, at_least=1, example=3)

    def timed(name):
        return run_one(name, scenario, HYPERPARAMETERS.get(name, {}).get(scenario, {}), seed=seed, epochs=epochs,
                       max_train_per_task=max_train_per_task)
    run_one("naive", scenario, {}, seed=seed, epochs=1, max_train_per_task=max_train_per_task)  # warm-up, not timed:
    # the first run in a process pays one-off costs (thread pool, allocator) that would flatter every ratio
    runs = {name: [] for name in names}  # (the method's run, the naive run just before it) per round
    for _ in tqdm(range(repeats), desc="cost", unit="round"):
        for name in names:
            naive = timed("naive")
            runs[name].append((naive if name == "naive" else timed(name), naive))
    methods = {}
    for name, pairs in runs.items():
        best = min((run for run, _ in pairs), key=lambda run: run["train_seconds"])
        ratios = [run["train_seconds"] / naive["train_seconds"] for run, naive in pairs]
        methods[name] = {"train_seconds": best["train_seconds"], "vs_naive": float(np.median(ratios)),
                         "acc": best["acc"], "kwargs": best["kwargs"], "ratios": ratios,
                         "all_seconds": [run["train_seconds"] for run, _ in pairs]}
    return {"protocol": {**PROTOCOL, "epochs": epochs}, "scenario": scenario, "seed": seed, "repeats": repeats,
            "max_train_per_task": max_train_per_task, "methods": methods, **_environment(1)}


def format_table(results: dict) -> str:
    """Ours (mean ± std) vs published, and the difference, one row per method."""
    rows = results["results"]
    scenarios = list(next(iter(rows.values())))
    lines = ["method      " + "".join(f"{s + '-IL: ours':>18} {'theirs':>7} {'diff':>6}" for s in scenarios)]
    for name, row in rows.items():
        cells = []
        for s in scenarios:
            c, theirs = row[s], row[s]["published"]
            ours = f"{c['mean']:.2f} ± {c['std']:.2f}"
            cells.append(f"{ours:>18} " + (f"{theirs:7.2f} {c['mean'] - theirs:+6.2f}" if theirs is not None
                                           else f"{'—':>7} {'':>6}"))
        lines.append(f"{name:<12}" + "".join(cells))
    return "\n".join(lines)


def write_json(obj: dict, path: str) -> None:
    """Write ``obj`` as JSON atomically (a temporary file, then ``os.replace``)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.chmod(f.name, 0o644)  # NamedTemporaryFile creates 0600; results are meant to be shared
    os.replace(f.name, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cl_course_lib.reproduce", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("sweep", "hsu2018"):
        p = sub.add_parser(command)
        p.add_argument("--out", required=True, help="JSON file to write")
        p.add_argument("--epochs", type=int, default=4)
        p.add_argument("--max-train-per-task", type=int, default=None)
        p.add_argument("--workers", type=int, default=2, help="parallel processes (each CL_COURSE_THREADS threads)")
    sub.choices["sweep"].add_argument("--seed", type=int, default=0)
    sub.choices["hsu2018"].add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sub.choices["hsu2018"].add_argument("--methods", nargs="+", choices=list(STRATEGIES), default=list(REGULARIZATION_TABLE),
                                        help="methods to run (default: the regularisation table's)")
    c = sub.add_parser("cost", help="training time of each method against naive (run on an idle machine)")
    c.add_argument("--out", required=True, help="JSON file to write")
    c.add_argument("--scenario", choices=SCENARIOS, default="task")
    c.add_argument("--methods", nargs="+", choices=list(STRATEGIES), default=list(STRATEGIES))
    c.add_argument("--epochs", type=int, default=4)
    c.add_argument("--repeats", type=int, default=3, help="rounds through the methods; each keeps its fastest")
    args = parser.parse_args(argv)
    if args.command == "cost":
        out = cost(tuple(args.methods), args.scenario, epochs=args.epochs, repeats=args.repeats)
        for name, m in out["methods"].items():
            print(f"{name:11s} {m['train_seconds']:7.2f} s  {m['vs_naive']:5.2f}x naive  ACC {m['acc']:.2f}")
        write_json(out, args.out)
        return
    common = {"epochs": args.epochs, "max_train_per_task": args.max_train_per_task, "workers": args.workers}
    if args.command == "sweep":
        out = sweep(seed=args.seed, **common)
        print(json.dumps(out["best"], indent=1))
    else:
        out = reproduce(tuple(args.methods), seeds=tuple(args.seeds), **common)
        print(format_table(out))
    write_json(out, args.out)


if __name__ == "__main__":
    main()
