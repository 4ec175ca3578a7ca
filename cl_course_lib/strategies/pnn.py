"""Progressive neural networks (Rusu et al. 2016): a new column per task, the old ones frozen."""

from __future__ import annotations

from ..data.benchmarks import Benchmark, Task, TaskData
from ..models.progressive import ProgressiveNet
from .base import Strategy


class PNN(Strategy):
    """Train column k of a :class:`~cl_course_lib.models.ProgressiveNet` (with its lateral
    adapters) on task k, every earlier column frozen (Rusu et al. 2016, §2: "when switching
    to a second task, the parameters Θ^(1) are frozen"). Nothing is retrained on old tasks
    and column j's output depends on columns ≤ j only, so forgetting is zero by
    construction; the price is a network that grows quadratically with the number of
    tasks (``ProgressiveNet.parameter_count``) and the need for the task id at test time.

    ``before_task`` brings the task's column into training: it freezes the earlier columns
    (``requires_grad`` off, eval mode) and builds a fresh optimiser over that column's
    parameters only, so frozen columns are not even in the optimiser (and a new column's
    Adam moments start at zero). Task-incremental only: ``training_set`` refuses a
    benchmark whose scenario gives no task id.

    Args:
        model: a ``ProgressiveNet`` with one column per task (``columns=bench.n_heads``).
        options: the step's settings (``Strategy``: lr, optimizer, ...), for each column's optimiser.
    """

    key = "pnn"
    state_attributes = ("column",)

    def __init__(self, model: ProgressiveNet, **options):
        if not isinstance(model, ProgressiveNet):
            raise TypeError(f"PNN trains a ProgressiveNet (models.ProgressiveNet(in_features, hidden, n_outputs, "
                            f"columns=bench.n_heads)); got {type(model).__name__}.")
        super().__init__(model, **options)
        self.column: int | None = None  # the column in training (None: before the first task)

    def before_task(self, task: Task) -> None:
        self._train_column(task.id)

    def _train_column(self, k: int) -> None:
        self.column = k
        self.model.freeze_columns(min(k, self.model.n_heads))
        self.optimizer = self.make_optimizer(self.model.column_parameters(k))

    def load_state_dict(self, state: dict) -> None:
        if state["method"]["column"] is not None:  # the saved optimiser is the saved column's
            self._train_column(state["method"]["column"])
        super().load_state_dict(state)

    def training_set(self, benchmark: Benchmark, t: int) -> TaskData | None:
        if benchmark.scenario != "task":
            raise ValueError(f"PNN needs task ids (the task id picks the column), but the benchmark's scenario is "
                             f"{benchmark.scenario!r}: use scenario=\"task\" (task-incremental).")
        return super().training_set(benchmark, t)
