"""The exercise-check framework: pass, fail with a hint, not done yet, errors explained."""

from cl_course_lib.checks import Check, expect


def make_check(fn):
    check = Check("double")

    @check.case("doubles 2")
    def _():
        expect(fn(2) == 4, "Multiply by two.")

    @check.case("doubles -1")
    def _():
        expect(fn(-1) == -2, "Negative numbers too.")

    return check.run()


def test_all_pass():
    report = make_check(lambda x: 2 * x)
    assert report.passed
    assert "2 of 2 checks passed. Well done!" in repr(report)


def test_failure_shows_the_hint_and_counts():
    report = make_check(lambda x: abs(2 * x))
    assert not report.passed
    text = repr(report)
    assert "1 of 2 checks passed." in text and "Hint: Negative numbers too." in text


def test_not_implemented_is_not_done_yet():
    def stub(x):
        raise NotImplementedError

    report = make_check(stub)
    assert report.todo and not report.passed
    assert "not done yet" in repr(report) and "Traceback" not in repr(report)


def test_an_exception_is_explained_in_one_line_and_later_cases_skipped():
    report = make_check(lambda x: x / 0)
    text = repr(report)
    assert "ZeroDivisionError" in text and "not run" in text
    assert "Traceback" not in text


def test_html_view():
    html = make_check(lambda x: 2 * x)._repr_html_()
    assert "Well done!" in html and "<li" in html
