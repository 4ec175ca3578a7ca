"""``show_source``: print the library's own code in a notebook, so a chapter can show that
the function it just built by hand is the one the library uses."""

from __future__ import annotations

import inspect


def show_source(obj) -> "IPython.display.Code":  # noqa: F821 (IPython is imported lazily)
    """Return the syntax-highlighted source of a function, class or method."""
    from IPython.display import Code

    try:
        source = inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise ValueError(f"show_source needs a Python function, class or method; got {obj!r} ({err}).") from None
    return Code(source, language="python")
