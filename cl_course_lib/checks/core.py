"""The exercise checker: friendly pass/fail lines with a hint, never a traceback wall.

A chapter's checks are written like this::

    def check_sgd_step(sgd_step) -> Report:
        check = Check("sgd_step")

        @check.case("one step on a small example matches the formula")
        def _():
            got = sgd_step(w, x, y, lr)
            expect(torch.allclose(got, want), "The gradient of ½(w·x − y)² is x (w·x − y).")

        return check.run()

``expect`` failures become a ✗ line with the hint. ``NotImplementedError`` from the
learner's function means "not done yet"; any other exception is caught and explained
in one line.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Callable

PASS, FAIL, ERROR, TODO, SKIPPED = "pass", "fail", "error", "todo", "skipped"
_MARK = {PASS: "✓", FAIL: "✗", ERROR: "✗", SKIPPED: "·"}
_COLOUR = {PASS: "#1a7f37", FAIL: "#cf222e", ERROR: "#cf222e", SKIPPED: "#6e7781"}


class CheckFailed(Exception):
    """Raised by :func:`expect`; its message is the hint shown to the learner."""


def expect(condition: bool, hint: str) -> None:
    """Fail the current case with ``hint`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(hint)


@dataclass
class Outcome:
    description: str
    status: str
    message: str = ""


@dataclass
class Report:
    """What a check found; shows as text or coloured HTML, and ``passed`` tells the total."""

    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    todo: bool = False

    @property
    def passed(self) -> bool:
        return not self.todo and all(o.status == PASS for o in self.outcomes)

    def headline(self) -> str:
        if self.todo:
            return (
                f"{self.name}: not done yet. Replace the `raise NotImplementedError` with your "
                "code, then run this cell again."
            )
        n_pass = sum(o.status == PASS for o in self.outcomes)
        verdict = " Well done!" if self.passed else ""
        return f"{self.name}: {n_pass} of {len(self.outcomes)} checks passed.{verdict}"

    def __repr__(self) -> str:
        lines = [self.headline()]
        if not self.todo:
            for o in self.outcomes:
                lines.append(f"  {_MARK[o.status]} {o.description}")
                if o.message:
                    lines.append(f"      {o.message}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else ("#9a6700" if self.todo else "#cf222e")
        rows = []
        if not self.todo:
            for o in self.outcomes:
                msg = f"<div style='margin-left:1.4em'>{html.escape(o.message)}</div>" if o.message else ""
                rows.append(
                    f"<li style='list-style:none;color:{_COLOUR[o.status]}'>{_MARK[o.status]} "
                    f"{html.escape(o.description)}{msg}</li>"
                )
        return (
            f"<div style='border-left:4px solid {colour};padding:0.3em 0.8em'>"
            f"<b style='color:{colour}'>{html.escape(self.headline())}</b>"
            f"<ul style='margin:0.2em 0;padding-left:0.5em'>{''.join(rows)}</ul></div>"
        )


class Check:
    """Collects the cases of one exercise and runs them in order."""

    def __init__(self, name: str):
        self.name = name
        self._cases: list[tuple[str, Callable[[], None]]] = []

    def case(self, description: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
        """Decorator: register a zero-argument function as one case."""

        def register(fn: Callable[[], None]) -> Callable[[], None]:
            self._cases.append((description, fn))
            return fn

        return register

    def run(self) -> Report:
        """Run every case; stop at "not done yet", skip the rest after an exception."""
        report = Report(self.name)
        broken = False
        for description, fn in self._cases:
            if broken:
                report.outcomes.append(Outcome(description, SKIPPED, "not run: fix the error above first"))
                continue
            try:
                fn()
            except NotImplementedError:
                return Report(self.name, todo=True)
            except CheckFailed as failure:
                report.outcomes.append(Outcome(description, FAIL, f"Hint: {failure}"))
            except Exception as err:  # the learner's code raised: explain in one line
                broken = True
                where = f" ({type(err).__name__}: {err})" if str(err) else f" ({type(err).__name__})"
                report.outcomes.append(
                    Outcome(description, ERROR, f"Your code raised an error{where}. Read it, fix it, run again.")
                )
            else:
                report.outcomes.append(Outcome(description, PASS))
        return report
