"""Explorers: every frame is drawn up front and switched by browser-side links, so the
embedded widget works on the static site; each has a static figure."""

import ipywidgets as widgets
import numpy as np
import pytest
from matplotlib.figure import Figure

from cl_course_lib.metrics import AccuracyMatrix
from cl_course_lib.widgets import AccuracyExplorer, FrameExplorer

MATRIX = AccuracyMatrix(np.array([[0.1, 0.2, 0.3], [0.9, 0.2, 0.3], [0.5, 0.9, 0.3], [0.4, 0.5, 0.9]]))


class Run:  # anything with an acc_matrix
    acc_matrix = MATRIX


def test_accuracy_explorer_precomputes_every_frame_and_links_the_slider():
    explorer = AccuracyExplorer({"a": Run(), "b": Run()})
    dropdown, slider = explorer.children[0].children
    book = explorer.children[1]
    assert dropdown.options == ("a", "b") and slider.options == ("1", "2", "3")
    assert len(book.children) == 2 and all(len(page.children) == 3 for page in book.children)
    # browser-side links: slider -> each run's frames, dropdown -> which run
    pairs = {(link.source[0], link.target[0]) for link in explorer.links}
    assert pairs == {(slider, book.children[0]), (slider, book.children[1]), (dropdown, book)}
    assert all(isinstance(link, widgets.widget_link.Link) for link in explorer.links)
    caption = book.children[0].children[2].children[1].value
    assert "after task 3" in caption and "BWT" in caption


def test_static_figure_is_the_final_state():
    fig = AccuracyExplorer({"a": Run()}).static_figure()
    assert isinstance(fig, Figure) and len(fig.axes) >= 2


def test_explorer_needs_runs_with_equal_task_counts():
    with pytest.raises(ValueError, match="at least one run"):
        AccuracyExplorer({})
    short = type("Short", (), {"acc_matrix": MATRIX.up_to(2)})()
    with pytest.raises(ValueError, match="same number of tasks"):
        AccuracyExplorer({"a": Run(), "b": short})


def test_frame_explorer_needs_something_to_show():
    with pytest.raises(ValueError):
        FrameExplorer(lambda c, i: None, [], ["1"])
