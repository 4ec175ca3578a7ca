"""validation.check: valid values come back unchanged; a bad one is refused with a message
that names the parameter, shows the value, states the rule and says how to fix the call."""

import numpy as np
import pytest

from cl_course_lib.validation import check


@pytest.mark.parametrize("value, rules", [
    (3, dict(integer=True, at_least=1)),
    (1, dict(integer=True, at_least=1)),  # the bound itself is allowed by at_least
    (0.5, dict(number=True, above=0, below=1)),
    (2, dict(number=True, at_most=2)),  # an int is a number
    (np.int64(4), dict(integer=True, at_least=1)),
    (np.float32(0.25), dict(number=True, above=0)),
    ("sgd", dict(one_of=("adam", "sgd"))),
    ("sgd", dict(one_of={"adam": 1, "sgd": 2})),  # a mapping's keys are the choices
    (None, dict(number=True, above=0, optional=True)),
    (None, dict(one_of=("a", "b"), optional=True)),
    (7, dict(at_least=1)),  # bounds alone need no type rule
])
def test_valid_values_are_returned_unchanged(value, rules):
    assert check("param", value, **rules) is value


def test_numpy_integers_pass_as_integers():
    for value in (np.int8(3), np.int32(3), np.int64(3), np.uint16(3)):
        assert check("n", value, integer=True, at_least=1, at_most=3) == 3


@pytest.mark.parametrize("value, rules, error, rule_text, fix_text", [
    ("a", dict(number=True), TypeError, "must be a number.", "Pass e.g. lr=0.001."),
    (2.5, dict(integer=True), TypeError, "must be an int.", "Pass e.g. lr=0.001."),
    (0, dict(integer=True, at_least=1), ValueError, "must be an int >= 1.", "Pass e.g. lr=0.001."),
    (0.0, dict(number=True, above=0), ValueError, "must be a number > 0.", "Pass e.g. lr=0.001."),
    (1.5, dict(number=True, at_most=1), ValueError, "must be a number <= 1.", "Pass e.g. lr=0.001."),
    (1, dict(number=True, at_least=0, below=1), ValueError, "must be a number >= 0 and < 1.", "Pass e.g. lr=0.001."),
    (None, dict(number=True, above=0), TypeError, "must be a number > 0.", "Pass e.g. lr=0.001."),
    (-1, dict(number=True, above=0, optional=True), ValueError, "must be a number > 0 (or None).",
     "Pass e.g. lr=0.001."),
    (float("nan"), dict(number=True, above=0), ValueError, "must be a number > 0.", "Pass e.g. lr=0.001."),
])
def test_each_rule_refuses_with_name_value_rule_and_example(value, rules, error, rule_text, fix_text):
    with pytest.raises(error) as caught:
        check("lr", value, example=1e-3, **rules)
    message = str(caught.value)
    assert message.startswith(f"lr={value!r} is not allowed: lr ")
    assert rule_text in message and message.endswith(fix_text)


def test_one_of_lists_the_choices_and_suggests_the_first():
    with pytest.raises(ValueError) as caught:
        check("kind", "c", one_of=("a", "b"))
    assert str(caught.value) == "kind='c' is not allowed: kind must be one of 'a', 'b'. Pass e.g. kind='a'."
    with pytest.raises(ValueError, match=r"one of 'a', 'b' \(or None\)"):
        check("kind", "c", one_of=("a", "b"), optional=True)
    with pytest.raises(ValueError, match="one of 'a', 'b'"):
        check("kind", None, one_of=("a", "b"))  # None only with optional


def test_the_fix_in_words_replaces_the_example():
    with pytest.raises(ValueError) as caught:
        check("kind", "x", one_of=("true", "empirical"), fix="Use 'true' or 'empirical'.")
    assert str(caught.value).endswith("must be one of 'true', 'empirical'. Use 'true' or 'empirical'.")
    with pytest.raises(ValueError) as caught:
        check("n", 0, integer=True, at_least=1, fix="Pass at least one.")
    assert str(caught.value) == "n=0 is not allowed: n must be an int >= 1. Pass at least one."


def test_without_example_or_fix_the_message_restates_the_rule():
    with pytest.raises(ValueError) as caught:
        check("n", -2, integer=True, at_least=0)
    assert str(caught.value) == "n=-2 is not allowed: n must be an int >= 0. Pass n as an int >= 0."


@pytest.mark.parametrize("rules", [dict(number=True), dict(integer=True), dict(number=True, at_least=0)])
@pytest.mark.parametrize("value", [True, False])
def test_bools_are_refused_as_numbers(value, rules):
    with pytest.raises(TypeError, match=f"^n={value!r} is not allowed"):
        check("n", value, **rules)
