"""The one argument check of the library: every message names the parameter, the value it
got, the rule it breaks and how to fix the call.

    check("lr", lr, number=True, above=0, example=1e-3)
    check("optimizer", name, one_of=OPTIMIZERS)
    check("mem_size", size, integer=True, at_least=1, optional=True)

raises, for ``lr=-1``::

    ValueError: lr=-1 is not allowed: lr must be a number > 0. Pass e.g. lr=0.001.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable


def check(name: str, value, *, number: bool = False, integer: bool = False, at_least=None, above=None,
          at_most=None, below=None, one_of: Iterable | None = None, optional: bool = False,
          example=None, fix: str | None = None):
    """Return ``value`` if it obeys every rule given, else raise ``ValueError`` (``TypeError``
    for a value of the wrong type) with a message that says what to pass instead.

    Rules: ``number`` (a real number, not a bool), ``integer`` (an int, not a bool), bounds
    ``at_least`` (≥), ``above`` (>), ``at_most`` (≤), ``below`` (<), ``one_of`` (a
    collection of allowed values); ``optional`` lets None through. ``example`` is shown
    as the fix (``Pass e.g. name=example``) unless ``fix`` says it in words.
    """
    if value is None and optional:
        return value
    rule = _rule(number, integer, at_least, above, at_most, below, optional)
    if one_of is not None:
        choices = list(one_of)
        if value not in choices:
            rule = f"one of {', '.join(map(repr, choices))}" + (" (or None)" if optional else "")
            raise ValueError(_message(name, value, rule, fix, choices[0]))
        return value
    bounded = any(b is not None for b in (at_least, above, at_most, below))
    wanted = numbers.Integral if integer else numbers.Real if number or bounded else object
    if (wanted is not object and isinstance(value, bool)) or not isinstance(value, wanted):
        raise TypeError(_message(name, value, rule, fix, example))
    bounds = ((at_least, lambda v, b: v >= b), (above, lambda v, b: v > b),
              (at_most, lambda v, b: v <= b), (below, lambda v, b: v < b))
    if any(bound is not None and not holds(value, bound) for bound, holds in bounds):
        raise ValueError(_message(name, value, rule, fix, example))
    return value


def _rule(number, integer, at_least, above, at_most, below, optional) -> str:
    bounded = any(b is not None for b in (at_least, above, at_most, below))
    parts = ["an int" if integer else "a number" if number or bounded else "a value"]
    parts += [f"{sign} {bound!r}" for sign, bound in ((">=", at_least), (">", above), ("<=", at_most), ("<", below))
              if bound is not None]
    return " ".join(parts[:1]) + (" " + " and ".join(parts[1:]) if parts[1:] else "") + (" (or None)" if optional else "")


def _message(name, value, rule, fix=None, example=None) -> str:
    if fix is None:
        fix = f"Pass e.g. {name}={example!r}." if example is not None else f"Pass {name} as {rule}."
    return f"{name}={value!r} is not allowed: {name} must be {rule}. {fix}"
