"""Interactive explorers that also work on the static site.

Every explorer precomputes its figures and switches between them with widgets linked in
the browser (``jslink``), not with Python callbacks. So the same widget is interactive in
JupyterLab *and* on the published book, where no kernel runs: the embedded widget state
holds every frame. Each explorer also has ``static_figure()``, its default view as a
plain matplotlib figure, for printed handouts and readers without JavaScript.
"""

from __future__ import annotations

import io
from typing import Callable, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from . import plots



def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """Render ``fig`` to PNG bytes and close it (frames must not pile up as open figures)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


class FrameExplorer(widgets.VBox):
    """A dropdown of *choices* and a slider of *steps* over precomputed frames.

    ``draw(choice, step_index)`` returns ``(figure, caption_html)``. Every combination is
    drawn once, up front; the dropdown and slider only switch which frame is visible.
    """

    def __init__(
        self,
        draw: Callable[[str, int], tuple[Figure, str]],
        choices: Sequence[str],
        steps: Sequence[str],
        *,
        choice_label: str = "run",
        step_label: str = "step",
        start_step: int = -1,
    ):
        if not choices or not steps:
            raise ValueError("FrameExplorer needs at least one choice and one step to show. Pass non-empty "
                             "lists, e.g. choices=['run'], steps=['1', '2'].")
        self._draw = draw
        self.choices, self.steps = list(choices), list(steps)
        self.start_step = start_step % len(self.steps)
        slider = widgets.SelectionSlider(
            options=self.steps, index=self.start_step, description=step_label,
            continuous_update=True, layout=widgets.Layout(width="32em"),
            style={"description_width": "initial"},
        )
        pages, self.links = [], []
        for choice in self.choices:
            frames = []
            for i in range(len(self.steps)):
                fig, caption = draw(choice, i)
                frames.append(widgets.VBox([widgets.Image(value=figure_png(fig), format="png"),
                                            widgets.HTML(caption)]))
            page = widgets.Stack(frames, selected_index=self.start_step)
            self.links.append(widgets.jslink((slider, "index"), (page, "selected_index")))
            pages.append(page)
        controls = [slider]
        book = widgets.Stack(pages, selected_index=0)
        if len(self.choices) > 1:
            dropdown = widgets.Dropdown(options=self.choices, description=choice_label)
            self.links.append(widgets.jslink((dropdown, "index"), (book, "selected_index")))
            controls.insert(0, dropdown)
        super().__init__([widgets.HBox(controls), book])

    def static_figure(self, choice: str | None = None) -> Figure:
        """The default frame (first choice, start step) as a figure, for the static page."""
        fig, _ = self._draw(choice or self.choices[0], self.start_step)
        return fig


def _readout(matrix) -> str:
    """ACC/BWT/FWT/forgetting of a (partial) accuracy matrix as one line of HTML."""
    parts = [f"<b>{name.upper() if name != 'forgetting' else name}</b> {value:+.3f}"
             for name, value in matrix.summary().items()]
    return f"after task {matrix.n_tasks}: " + " &nbsp; ".join(parts)


class AccuracyExplorer(FrameExplorer):
    """Pick a run, slide through time: the accuracy matrix and per-task curves as they
    stood after each task, with ACC, BWT, FWT and forgetting so far.

    ``results`` maps a label to a ``Result`` (or anything with an ``acc_matrix``).
    """

    def __init__(self, results: dict):
        if not results:
            raise ValueError(f"AccuracyExplorer needs at least one run; got {results!r}. Pass a dict "
                             "{label: Result}, e.g. AccuracyExplorer({'finetune': result}).")
        self.results = dict(results)
        n_tasks = {plots.as_matrix(r).n_tasks for r in self.results.values()}
        if len(n_tasks) != 1:
            raise ValueError(f"all runs must have the same number of tasks to share a slider; got {sorted(n_tasks)}. "
                             "Pass runs of the same benchmark, or one explorer per benchmark.")
        steps = [str(k) for k in range(1, n_tasks.pop() + 1)]
        super().__init__(self._draw_frame, list(self.results), steps,
                         choice_label="run", step_label="after task")

    def _draw_frame(self, label: str, step: int) -> tuple[Figure, str]:
        result, k = self.results[label], step + 1
        fig, (left, right) = plt.subplots(1, 2, figsize=(9.4, 3.5), layout="constrained")
        plots.accuracy_matrix(result, ax=left, upto=k, title=f"{label}: accuracy matrix")
        plots.task_curves(result, ax=right, upto=k, title=f"{label}: accuracy per task")
        return fig, _readout(plots.as_matrix(result).up_to(k))
