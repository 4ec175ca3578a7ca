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
            raise ValueError("FrameExplorer needs at least one choice and one step to show.")
        self._draw = draw
        self.choices, self.steps = list(choices), list(steps)
        self.start_step = start_step % len(self.steps)
        slider = widgets.SelectionSlider(
            options=self.steps, index=self.start_step, description=step_label,
            continuous_update=True, layout=widgets.Layout(width="32em"),
            style={"description_width": "initial"},
        )
        pages = []
        for choice in self.choices:
            frames = []
            for i in range(len(self.steps)):
                fig, caption = draw(choice, i)
                frames.append(widgets.VBox([widgets.Image(value=figure_png(fig), format="png"),
                                            widgets.HTML(caption)]))
            page = widgets.Stack(frames, selected_index=self.start_step)
            widgets.jslink((slider, "index"), (page, "selected_index"))
            pages.append(page)
        controls = [slider]
        book = widgets.Stack(pages, selected_index=0)
        if len(self.choices) > 1:
            dropdown = widgets.Dropdown(options=self.choices, description=choice_label)
            widgets.jslink((dropdown, "index"), (book, "selected_index"))
            controls.insert(0, dropdown)
        super().__init__([widgets.HBox(controls), book])

    def static_figure(self, choice: str | None = None) -> Figure:
        """The default frame (first choice, start step) as a figure, for the static page."""
        fig, _ = self._draw(choice or self.choices[0], self.start_step)
        return fig
