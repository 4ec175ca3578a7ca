"""nbval, with printed numbers compared within a tolerance instead of as strings.

nbval compares a checked cell's new output with the stored one character by character, so
a last digit that another CPU rounds the other way fails a correct course. This plugin
compares the way pytest's doctest ``NUMBER`` option does, with an explicit tolerance:

- the text around the numbers must be the same (runs of white space count as one, so
  numpy's column padding, ``[0.65 ]`` against ``[0.646]``, does not matter);
- integers must be equal (counts, sizes, epochs);
- floats ``a`` (stored) and ``b`` (new) match when ``|a - b| <= max(abs, rel * |a|)``.

The default is ``DEFAULT`` below; a cell that needs more says so in its metadata (keys
``abs`` and ``rel``, each optional), in the MyST source as the code cell's option block::

    ---
    tags: [nbval-check-output]
    tolerance: {abs: 0.05}
    ---
 When a
new output matches within the tolerance, nbval is handed the stored text; otherwise nbval
reports its usual side-by-side difference.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# A float has a decimal point or an exponent; an integer has neither. Signs are part of
# the number; digits glued to letters (x_1, 2nd, cuda:0) are left as text.
NUMBER = re.compile(
    r"(?<![\w.])[-+]?(?:(?P<float>\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)"
    r"|(?P<int>\d+))(?![\w.])")
WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Tolerance:
    """``|stored - new| <= max(abs, rel * |stored|)`` for floats."""

    abs: float = 0.0
    rel: float = 0.0

    @classmethod
    def of_cell(cls, metadata: dict) -> "Tolerance":
        """The cell's ``tolerance`` metadata (``{abs: .., rel: ..}``), else ``DEFAULT``."""
        given = metadata.get("tolerance")
        if given is None:
            return DEFAULT
        unknown = set(given) - {"abs", "rel"}
        if unknown or not all(isinstance(v, (int, float)) and v >= 0 for v in given.values()):
            raise ValueError(f"cell metadata tolerance={given!r}: use non-negative numbers under "
                             "the keys 'abs' and 'rel', e.g. tolerance: {abs: 0.01}.")
        return cls(abs=float(given.get("abs", DEFAULT.abs)), rel=float(given.get("rel", DEFAULT.rel)))

    def accepts(self, stored: float, new: float) -> bool:
        if math.isnan(stored) or math.isnan(new):
            return math.isnan(stored) and math.isnan(new)
        return abs(stored - new) <= max(self.abs, self.rel * abs(stored))


# Outputs are rounded to 3 decimals, so one unit in the last place (1e-3) must pass; the
# rest of the margin covers rounding noise in sums on other CPUs. Training cells whose
# numbers move more on other hardware say so in their metadata.
DEFAULT = Tolerance(abs=2e-3, rel=1e-3)


def _split(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The text between the numbers (white space folded) and the numbers with their kind."""
    parts, numbers, end = [], [], 0
    for match in NUMBER.finditer(text):
        parts.append(text[end:match.start()])
        numbers.append(("float" if match["float"] else "int", match.group()))
        end = match.end()
    parts.append(text[end:])
    return [WHITESPACE.sub(" ", part).strip() for part in parts], numbers


def texts_match(stored: str, new: str, tolerance: Tolerance = DEFAULT) -> bool:
    """Whether ``new`` is ``stored`` up to white space and numbers within ``tolerance``."""
    stored_text, stored_numbers = _split(stored)
    new_text, new_numbers = _split(new)
    if stored_text != new_text or len(stored_numbers) != len(new_numbers):
        return False
    for (kind_a, a), (kind_b, b) in zip(stored_numbers, new_numbers):
        if kind_a == "int" and kind_b == "int":
            if int(a) != int(b):
                return False
        elif not tolerance.accepts(float(a), float(b)):
            return False
    return True


def _text_fields(output) -> list[tuple[dict, str]]:
    """The places in one output that hold text: (the dict, its key)."""
    if output.get("output_type") == "stream":
        return [(output, "text")]
    data = output.get("data", {})
    return [(data, "text/plain")] if "text/plain" in data else []


def align_outputs(new: list, stored: list, tolerance: Tolerance) -> None:
    """Where a new output's text matches the stored one within ``tolerance``, put the stored
    text in its place, so that nbval's exact comparison passes; leave the others."""
    if len(new) != len(stored):
        return
    for new_output, stored_output in zip(new, stored):
        if (new_output.get("output_type"), new_output.get("name")) != (
                stored_output.get("output_type"), stored_output.get("name")):
            continue
        for (new_holder, key), (stored_holder, stored_key) in zip(_text_fields(new_output), _text_fields(stored_output)):
            if key == stored_key and texts_match(stored_holder[key], new_holder[key], tolerance):
                new_holder[key] = stored_holder[key]


def pytest_collection_modifyitems(items):
    """Give every nbval cell the tolerant comparison (an instance attribute, nbval untouched)."""
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:
        return
    for item in items:
        if isinstance(item, IPyNbCell):
            item.compare_outputs = _tolerant(item, item.compare_outputs)


def _tolerant(item, compare_exactly):
    def compare_outputs(test, ref, skip_compare=None):
        align_outputs(test, ref, Tolerance.of_cell(item.cell.metadata))
        return compare_exactly(test, ref, skip_compare)
    return compare_outputs
