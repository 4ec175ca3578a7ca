"""Training images per second: this library's one optimisation step against a plain torchvision loop.

Both sides train **the same model** from the same weights, at the same batch and image size:

- **ours**: ``cl.strategies.Naive(model, lr=lr)`` (Adam) and its ``observe(x, y, 0)`` on the
  batches of ``cl_course_lib.data.loading.batches(task.train, batch_size, device=...,
  shuffle=True)``, ``task`` being task 0 of ``cl.benchmarks.split_fashion_mnist("class")``
  (28×28 grey images in memory, on the device), the model
  ``Preprocessed(ImageInput(size), ImageClassifier(backbone, 1280, n_outputs))`` with the
  backbone of ``cl.models.load_backbone("mobilenet_v2")``: ``ImageInput`` turns each batch
  into 3 channels, resizes it bilinearly and normalises it with ImageNet's statistics, on
  the device. ``make_optimizer`` builds a fused Adam where PyTorch has the kernel.
- **theirs**, what a torchvision user writes: a ``torch.utils.data.DataLoader``
  (``shuffle=True``, ``num_workers=--workers``) over a Dataset of the same images (the
  tensors of ``cl.vision.load_fashion_mnist()``, the first N of task 0's classes) whose
  ``__getitem__`` applies ``transforms.v2.Compose([Resize(size, antialias=True), RGB(),
  Normalize(IMAGENET_MEAN, IMAGENET_STD)])`` to one image, the batch moved to the device, then
  ``zero_grad(); cross_entropy(model(x), y).backward(); step()`` with
  ``torch.optim.Adam(lr=lr, fused=...)`` (fused exactly when ours is), the model a deep copy
  of the same torchvision MobileNetV2 with its classifier replaced by a copy of our linear
  head (``Linear(1280, n_outputs)``).

What is held equal: the initial weights, the images (the same tensors), the batch size, the
image size, the optimiser and learning rate, the precision (``--precision bf16``: ours
``Naive(precision="bf16")``, theirs ``torch.autocast``) and memory layout
(``--channels-last``: ours ``ImageInput(channels_last=True)``, theirs converts the batch;
both models converted), the step count. The sample order is shuffled on both sides, from
different draws (every batch costs the same).

Timing: the first ``warmup`` steps of each side are excluded; the clock then covers the
loop, fetching and transforming the batches included. The two sides alternate over
``rounds`` rounds, each from fresh copies of the initial weights; the table gives the
median images/s of each and the ratio ours / theirs (> 1: ours is faster), by the wall
clock and by the process's CPU time (``time.process_time``: less disturbed when other
programs share the cores, but blind to DataLoader worker processes: compare wall clock
with ``--workers`` > 0); the load average is reported with the figures.

Run::

    python benchmarks/vision_speed.py --batch-size 32 --image-size 32 --steps 20 --rounds 3 --threads 1 --json

``--check`` also runs :func:`one_step_equivalence`: one step of each side from the same
weights on the same batch (training mode, BatchNorm batch statistics included; MobileNetV2's
dropout sits in the replaced classifier, so there is none), compared end to end and with
theirs fed ours' input batch (the training steps alone).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers of trainer_speed.py

import cl_course_lib as cl  # noqa: E402
from cl_course_lib.data.benchmarks import TaskData  # noqa: E402
from cl_course_lib.data.loading import batches  # noqa: E402
from cl_course_lib.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from trainer_speed import _load_average, _sync, machine  # noqa: E402


# ----------------------------------------------------------------------------- the data


def reference_transform(size: int):
    """The per-sample transform of a torchvision user, equivalent to ``ImageInput(size)``."""
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize(size, antialias=True), v2.RGB(), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class FashionImages(torch.utils.data.Dataset):
    """A torchvision-style data set: ``(transform(image), label)`` of one ``(1, 28, 28)`` image."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), int(self.labels[i])


def load_data(n: int, size: int) -> tuple[TaskData, FashionImages, int]:
    """Task 0 of class-incremental Split Fashion-MNIST (its first ``n`` images) and, for
    theirs, the same images taken from ``load_fashion_mnist()``: ``(ours, theirs, n_outputs)``."""
    bench = cl.benchmarks.split_fashion_mnist("class", max_train_per_task=n)
    task = bench.tasks[0]
    if len(task.train) < n:
        raise ValueError(f"task 0 has {len(task.train)} training images; {n} are needed (fewer steps or a "
                         "smaller batch).")
    data = cl.vision.load_fashion_mnist()
    classes = torch.tensor([data.classes.index(name) for name in task.classes])
    index = torch.isin(data.y_train, classes).nonzero().flatten()[:n]  # the class scenario's task 0: no offset
    theirs = FashionImages(data.x_train[index], data.y_train[index], reference_transform(size))
    return task.train, theirs, bench.n_outputs


# ----------------------------------------------------------------------------- the models


def torchvision_copy(classifier: cl.models.ImageClassifier) -> nn.Module:
    """A deep copy of ``classifier``'s torchvision MobileNetV2 with its ``classifier`` set to a
    copy of the linear head: the same network and weights, called as ``model(x)``."""
    model = copy.deepcopy(classifier.backbone)
    model.classifier = copy.deepcopy(classifier.heads[0])
    return model


# ----------------------------------------------------------------------------- the two runs


def _timed(step, stream, *, steps: int, warmup: int, device: torch.device) -> dict:
    """``warmup + steps`` calls of ``step(x, y)`` (→ the loss) on the batches of ``stream``;
    the last ``steps`` timed, fetching the batches included."""
    images = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
        x, y = next(stream)
        loss = step(x, y)
        images += len(y) if i >= warmup else 0
    _sync(device)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {"images": images, "steps": steps, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "images_per_s": images / seconds if seconds > 0 else float("nan"),
            "images_per_cpu_s": images / cpu_seconds if cpu_seconds > 0 else float("nan"), "loss": float(loss)}


def _check_enough(n: int, batch_size: int, total_steps: int) -> None:
    """Both sides take their steps in one pass over the data, every batch full."""
    if n < total_steps * batch_size:
        raise ValueError(f"{total_steps} steps of {batch_size} images need {total_steps * batch_size}; "
                         f"the data has {n}.")


def run_ours(classifier: nn.Module, data: TaskData, *, size: int, batch_size: int, steps: int, warmup: int,
             lr: float, device: torch.device, seed: int, precision: str = "fp32", channels_last: bool = False,
             shuffle: bool = True) -> dict:
    """``warmup + steps`` calls of ``Naive.observe`` on a deep copy of ``classifier`` behind
    ``ImageInput(size)``; the figures of ``_timed``, the trained classifier and whether Adam is fused."""
    _check_enough(len(data), batch_size, warmup + steps)
    layout = torch.channels_last if channels_last else torch.preserve_format
    model = cl.models.Preprocessed(cl.models.ImageInput(size, channels_last=channels_last),
                                   copy.deepcopy(classifier)).to(device, memory_format=layout)
    strategy = cl.strategies.Naive(model, lr=lr, precision=precision)
    torch.manual_seed(seed)
    stream = ((x, y) for x, y, _ in batches(data.to(device), batch_size, device=device, shuffle=shuffle))
    result = _timed(lambda x, y: strategy.observe(x, y, 0)["loss"], stream, steps=steps, warmup=warmup,
                    device=device)
    return {**result, "model": model.model, "fused": bool(strategy.optimizer.defaults.get("fused"))}


def run_theirs(classifier: nn.Module, dataset: FashionImages, *, batch_size: int, steps: int, warmup: int,
               lr: float, device: torch.device, seed: int, fused: bool, precision: str = "fp32",
               channels_last: bool = False, workers: int = 0, shuffle: bool = True) -> dict:
    """The classic torchvision loop over a ``DataLoader`` of ``dataset`` on a
    ``torchvision_copy`` of ``classifier``; the figures of ``_timed`` and the trained model."""
    _check_enough(len(dataset), batch_size, warmup + steps)
    layout = torch.channels_last if channels_last else torch.preserve_format
    model = torchvision_copy(classifier).to(device, memory_format=layout)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=fused or None)  # None: torch's default, as ours
    dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]

    def step(x, y):
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                                         pin_memory=device.type == "cuda")
    stream = ((x.to(device, memory_format=layout, non_blocking=True), y.to(device, non_blocking=True))
              for x, y in loader)
    return {**_timed(step, stream, steps=steps, warmup=warmup, device=device), "model": model}


def one_step_equivalence(classifier: nn.Module, data: TaskData, dataset: FashionImages, *, size: int,
                         batch_size: int, lr: float, device: torch.device, **options) -> dict:
    """One step of ours and one of theirs from the same weights on the same batch (the first
    ``batch_size`` images, unshuffled), compared: the losses; the largest absolute difference
    between the input batches (``ImageInput`` on the batch against the per-sample transforms:
    rounding, ~1e-6); between the updated weights, end to end and with theirs fed ours' input
    batch (``same_input``: the training steps alone); between BatchNorm's updated running
    statistics; and how far the step moved the weights. End to end, Adam's first step,
    ``lr · g / (|g| + eps)``, turns the inputs' rounding into up to ``2 · lr`` for the weights
    whose gradient is ~0 and flips sign."""
    common = {"batch_size": batch_size, "steps": 1, "warmup": 0, "lr": lr, "device": device, "seed": 0,
              "shuffle": False, **options}
    ours = run_ours(classifier, data, size=size, **common)
    theirs = run_theirs(classifier, dataset, fused=ours["fused"], **common)
    ours_input = cl.models.ImageInput(size)(data.x[:batch_size].cpu())
    same = run_theirs(classifier, FashionImages(ours_input, dataset.labels[:batch_size], nn.Identity()),
                      fused=ours["fused"], **common)
    their_input = torch.stack([dataset[i][0] for i in range(batch_size)])
    return {"loss_ours": ours["loss"], "loss_theirs": theirs["loss"], "loss_theirs_same_input": same["loss"],
            "max_input_diff": float((ours_input - their_input).abs().max()),
            "max_weight_diff": _max_diff(ours["model"].parameters(), theirs["model"].parameters()),
            "max_weight_diff_same_input": _max_diff(ours["model"].parameters(), same["model"].parameters()),
            "max_batchnorm_stat_diff": _max_diff(ours["model"].buffers(), theirs["model"].buffers()),
            "max_weight_change": _max_diff(ours["model"].parameters(), classifier.parameters()),
            "fused": ours["fused"]}


def _max_diff(a, b) -> float:
    """The largest absolute difference between two lists of tensors of the same shapes (the
    parameters, or the buffers, of two copies of one network), integer ones left out."""
    pairs = zip(a, b, strict=True)
    return max(float((u.detach().float().cpu() - v.detach().float().cpu()).abs().max())
               for u, v in pairs if u.is_floating_point())


# ----------------------------------------------------------------------------- the benchmark


def benchmark(classifier: nn.Module, data: TaskData, dataset: FashionImages, *, size: int, rounds: int,
              seed: int = 0, workers: int = 0, **settings) -> dict:
    """``rounds`` alternating rounds of ours then theirs (``settings``: the keyword arguments
    both runs take); per side the per-round figures and the median images/s; ``ratio`` =
    median ours / median theirs."""
    per_round = {"ours": [], "theirs": []}
    for r in range(rounds):
        ours = run_ours(classifier, data, size=size, seed=seed + r, **settings)
        theirs = run_theirs(classifier, dataset, seed=seed + r, fused=ours["fused"], workers=workers, **settings)
        for name, res in (("ours", ours), ("theirs", theirs)):
            per_round[name].append({k: v for k, v in res.items() if k != "model"})
    out = {"fused": per_round["ours"][0]["fused"]}
    for name, runs in per_round.items():
        out[name] = {"median_images_per_s": statistics.median(r["images_per_s"] for r in runs),
                     "median_images_per_cpu_s": statistics.median(r["images_per_cpu_s"] for r in runs),
                     "rounds": runs}
    out["ratio"] = out["ours"]["median_images_per_s"] / out["theirs"]["median_images_per_s"]
    out["ratio_cpu"] = out["ours"]["median_images_per_cpu_s"] / out["theirs"]["median_images_per_cpu_s"]
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=32, help="side of the images the CNN sees (224: ImageNet's)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per side and round")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--device", default=str(cl.device()))
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes of theirs")
    p.add_argument("--random", dest="pretrained", action="store_false",
                   help="a randomly initialised MobileNetV2 (default: the offline ImageNet weights)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--channels-last", action="store_true", help="NHWC images and models on both sides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true", help="also compare one step of each side on the same batch")
    p.add_argument("--json", action="store_true", help="print one JSON line after the table")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Run the benchmark; print a table (and a JSON line with ``--json``); return the result."""
    import torchvision

    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data, dataset, n_outputs = load_data((args.warmup + args.steps) * args.batch_size, args.image_size)
    torch.manual_seed(args.seed)  # the head's initial weights (and the backbone's with --random)
    backbone = cl.models.load_backbone("mobilenet_v2", pretrained=args.pretrained)
    classifier = cl.models.ImageClassifier(backbone.model, backbone.n_features, n_outputs)
    options = {"precision": args.precision, "channels_last": args.channels_last}
    result = benchmark(classifier, data, dataset, size=args.image_size, rounds=args.rounds, seed=args.seed,
                       workers=args.workers, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                       lr=args.lr, device=device, **options)
    report = {"benchmark": "vision_speed", "machine": machine(), "torch": torch.__version__,
              "torchvision": torchvision.__version__, "threads": torch.get_num_threads(), "device": str(device),
              "settings": {"batch_size": args.batch_size, "image_size": args.image_size, "steps": args.steps,
                           "warmup": args.warmup, "rounds": args.rounds, "lr": args.lr, "workers": args.workers,
                           "seed": args.seed, **options},
              "model": backbone.source, "data": f"Split Fashion-MNIST task 0, {len(data)} images",
              "optimizer": f"Adam(fused={result['fused']}) on both sides",
              "ours_images_per_s": result["ours"]["median_images_per_s"],
              "theirs_images_per_s": result["theirs"]["median_images_per_s"],
              "ratio_ours_over_theirs": result["ratio"],
              "ours_images_per_cpu_s": result["ours"]["median_images_per_cpu_s"],
              "theirs_images_per_cpu_s": result["theirs"]["median_images_per_cpu_s"],
              "ratio_cpu_ours_over_theirs": result["ratio_cpu"], "load_average": _load_average(),
              "rounds": {k: [r["images_per_s"] for r in result[k]["rounds"]] for k in ("ours", "theirs")}}
    if args.check:
        report["check"] = one_step_equivalence(classifier, data, dataset, size=args.image_size,
                                               batch_size=args.batch_size, lr=args.lr, device=device, **options)
    print_table(report, result)
    if args.json:
        print(json.dumps(report))
    report["result"] = result
    return report


def print_table(report: dict, result: dict) -> None:
    """The human-readable summary of ``main``'s report."""
    s = report["settings"]
    print(f"{report['model']}; {report['data']}; device {report['device']}, {report['threads']} thread(s); "
          f"torch {report['torch']}, torchvision {report['torchvision']}")
    print(f"batch {s['batch_size']}, images {s['image_size']}×{s['image_size']}, {s['precision']}"
          f"{', channels-last' if s['channels_last'] else ''}, {s['steps']} timed steps after {s['warmup']} warm-up, "
          f"{s['rounds']} rounds; {report['optimizer']}; theirs: {s['workers']} DataLoader worker(s)")
    print(f"{'':8} {'median images/s':>16}  {'per round':<26} {'images/CPU-s':>12}")
    for name in ("ours", "theirs"):
        rounds = " ".join(f"{v:8.1f}" for v in report["rounds"][name])
        print(f"{name:8} {result[name]['median_images_per_s']:16.1f}  {rounds:<26} "
              f"{result[name]['median_images_per_cpu_s']:12.1f}")
    print(f"ratio ours/theirs: {result['ratio']:.3f} (wall clock), {result['ratio_cpu']:.3f} (CPU time); "
          f"load average {report['load_average']}")
    if "check" in report:
        c = report["check"]
        print(f"one-step check: loss {c['loss_ours']:.6f} vs {c['loss_theirs']:.6f}, max |Δinput| "
              f"{c['max_input_diff']:.2e}, max |Δweight| {c['max_weight_diff']:.2e} end to end, "
              f"{c['max_weight_diff_same_input']:.2e} on the same input batch (the step moved weights by up to "
              f"{c['max_weight_change']:.2e})")


if __name__ == "__main__":
    main()
