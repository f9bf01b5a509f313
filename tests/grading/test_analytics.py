"""Tests for labkit.grading.analytics: common mistakes, untouched submissions, fail rates.

The toy class the report tests grade (built once per run) is read as nbgrader left it: ann
hands in the solution, bob the blank release, cid an int-only ``add_one`` and eve ``x + 2``,
so test_fractions fails with one message for cid and eve and another for bob. The expected
values come from the autograded notebooks read with nbformat, nbgrader's checksums and
nbgrader's gradebook, not from the code under test.
"""

import logging
from collections import defaultdict
from pathlib import Path

import nbformat
import pytest
from nbgrader import utils as nbutils

from labkit.grading.analytics import (
    error_message,
    fail_rate_figure,
    fail_rates,
    lab_analytics,
    message_key,
)
from labkit.grading.report import class_report, lab_summaries
from tests.grading.conftest import build_toy_class, shared_build


@pytest.fixture
def toy_class(tmp_path_factory) -> Path:
    """The graded toy class of the report tests (shared: read it, never change it)."""
    return shared_build(tmp_path_factory, "report-class", build_toy_class)[0]


def _errors_in_notebooks(root: Path, lab: str) -> dict[str, dict[str, set[str]]]:
    """Per test, per ``ename: evalue``: the students whose autograded notebook shows it."""
    found = defaultdict(lambda: defaultdict(set))
    for path in sorted(root.glob(f"autograded/*/{lab}/*.ipynb")):
        for c in nbformat.read(path, as_version=4).cells:
            if c.cell_type != "code" or not nbutils.is_grade(c) or nbutils.is_solution(c):
                continue
            for out in c.outputs:
                if out.output_type == "error":
                    text = f"{out.ename}: {out.evalue}" if out.evalue else out.ename
                    found[c.metadata.nbgrader["grade_id"]][text].add(path.parents[1].name)
                    break
    return {t: dict(m) for t, m in found.items()}


def test_mistakes_are_the_errors_of_the_autograded_notebooks(toy_class):
    """Are the grouped messages, and who got each, what the autograded notebooks' error
    outputs say, the message two students share first?"""
    got = lab_analytics(toy_class, "toy")
    expected = _errors_in_notebooks(toy_class, "toy")
    assert {
        t: {m.message: set(m.students) for m in ms} for t, ms in got.mistakes.items()
    } == expected
    assert got.students == ("ann", "bob", "cid", "eve")
    fractions = got.mistakes["test_fractions"]
    assert [len(m.students) for m in fractions] == [2, 1]  # cid and eve share one message
    assert fractions[0].students == tuple(sorted(max(expected["test_fractions"].values(), key=len)))
    assert all(m.variants == 1 for ms in got.mistakes.values() for m in ms)


def test_blank_submission_is_identical_to_the_release(toy_class):
    """Is a student listed exactly when every answer cell of theirs has the checksum
    nbgrader recorded for it in the release (bob, who handed the release back, only)?"""
    release = nbformat.read(toy_class / "labs/toy/toy.ipynb", as_version=4)
    sums = {
        c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader["checksum"]
        for c in release.cells
        if nbutils.is_solution(c)
    }
    untouched = set()
    for path in toy_class.glob("autograded/*/toy/toy.ipynb"):
        cells = [c for c in nbformat.read(path, as_version=4).cells if nbutils.is_solution(c)]
        if all(nbutils.compute_checksum(c) == sums[c.metadata.nbgrader["grade_id"]] for c in cells):
            untouched.add(path.parents[1].name)
    got = lab_analytics(toy_class, "toy").unchanged
    assert set(got) == untouched == {"bob"}
    assert "ann" not in got and "cid" not in got


def _gradebook_fail_rates(root: Path) -> dict[tuple[str, str], tuple[float, int]]:
    """(lab, test) -> (1 - passes / graded, graded), from nbgrader's Gradebook grades."""
    from nbgrader.api import Gradebook

    counts = defaultdict(lambda: [0, 0])
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for assignment in gb.assignments:
            for sub in gb.assignment_submissions(assignment.name):
                for nb in sub.notebooks:
                    answers = {s.name for s in nb.notebook.solution_cells}
                    for grade in nb.grades:
                        if grade.cell_type == "code" and grade.name not in answers:
                            key = (assignment.name, grade.name)
                            counts[key][0] += grade.score >= grade.max_score
                            counts[key][1] += 1
    return {k: (1 - passed / graded, graded) for k, (passed, graded) in counts.items()}


def test_fail_rates_match_the_gradebook(toy_class, tmp_path):
    """Is each test's fail rate 1 - passes / graded as nbgrader's gradebook grades count
    them, the worst first, and does the report's table and figure show them?"""
    rates = fail_rates(lab_summaries(toy_class))
    oracle = _gradebook_fail_rates(toy_class)
    assert {(r.lab, r.test): r.rate for r in rates} == pytest.approx(
        {k: rate for k, (rate, _) in oracle.items()}
    )
    assert {(r.lab, r.test): r.graded for r in rates} == {k: n for k, (_, n) in oracle.items()}
    assert [r.rate for r in rates] == sorted(oracle[(r.lab, r.test)][0] for r in rates)[::-1]

    files = class_report(toy_class, out_dir=tmp_path)
    assert files.fail_rates == tuple(rates)
    md = files.markdown.read_text().splitlines()
    for r in rates:
        rate, graded = oracle[(r.lab, r.test)]
        row = f"| {r.lab} | {r.test} | {rate:.0%} | {round(rate * graded)}/{graded} |"
        assert row in md
    assert "![tests that fail most](fail_rates.png)" in md
    assert files.figures["fail_rates"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    [ax] = fail_rate_figure(rates).axes
    assert [p.get_width() for p in ax.patches] == pytest.approx(
        [oracle[(r.lab, r.test)][0] for r in rates]
    )


def test_report_lists_mistakes_and_untouched_answers(toy_class, tmp_path):
    """Does report.md's lab section show each message with its student count, read from
    the notebooks, and the students whose answers are the release's?"""
    files = class_report(toy_class, out_dir=tmp_path)
    md = files.markdown.read_text().splitlines()
    for test, messages in _errors_in_notebooks(toy_class, "toy").items():
        for message, students in messages.items():
            assert f"| {test} | {message} | {len(students)} |" in md
    assert "- Answers identical to the release: bob" in md
    assert [a.lab for a in files.analytics] == ["toy"]


def _course_with_errors(root: Path, errors: dict[str, str]) -> Path:
    """``root/autograded/<student>/lab/lab.ipynb`` with one test cell raising ``errors[student]``
    (``"ename: evalue"``); no release."""
    for student, text in errors.items():
        ename, _, evalue = text.partition(": ")
        test = nbformat.v4.new_code_cell("assert False")
        test.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t", "points": 1}
        test.outputs = [nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[])]
        nb = nbformat.v4.new_notebook(cells=[test])
        (root / "autograded" / student / "lab").mkdir(parents=True)
        nbformat.write(nb, root / "autograded" / student / "lab" / "lab.ipynb")
    return root


def test_long_numbers_group_and_the_list_is_capped(tmp_path, caplog):
    """Do messages differing only in long numbers count as one (its most common wording
    shown), are only the top groups kept, long messages cut, and a broken notebook skipped?"""
    errors = {
        "a": "AssertionError: miou: expected 0.42, got 0.51234",
        "b": "AssertionError: miou: expected 0.42, got 0.51234",
        "c": "AssertionError: miou: expected 0.42, got 0.49871",
        "d": "AssertionError: miou: expected 0.43, got 0.5",  # short numbers: its own group
        **{f"e{i}": f"ValueError: case {i}\nsecond line" for i in range(5)},
        "long": "RuntimeError: " + "x" * 300,
    }
    root = _course_with_errors(tmp_path, errors)
    (root / "autograded/zed/lab").mkdir(parents=True)
    (root / "autograded/zed/lab/lab.ipynb").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="labkit.grading.analytics"):
        got = lab_analytics(root, "lab", top=3, width=60)
    assert "zed" in caplog.text and "zed" not in got.students
    first, *rest = got.mistakes["t"]
    assert (first.message, first.students, first.variants) == (errors["a"], ("a", "b", "c"), 2)
    assert len(rest) == 2  # capped at top=3 of the 8 groups
    assert got.unchanged == ()  # no release to compare with
    full = lab_analytics(root, "lab", top=100, width=60)
    messages = {m.message for m in full.mistakes["t"]}
    assert len(messages) == 8
    assert "ValueError: case 0" in messages  # the first line of evalue
    assert "RuntimeError: " + "x" * 46 + "…" in messages  # 60 characters and an ellipsis


def test_message_key_keeps_short_numbers():
    """Does the grouping key drop long decimals, exponents and addresses, but keep short
    numbers (an expected 0.42 is not an expected 0.43)?"""
    assert message_key("got 0.51234") == message_key("got 0.4987") == message_key("got 1e-05")
    assert message_key("<f at 0x7f3a>") == message_key("<f at 0x10b2>")
    assert message_key("expected 0.42") != message_key("expected 0.43")
    assert message_key("shape (2, 3)") == "shape (2, 3)"


def test_error_message_of_a_cell_without_error():
    """Is a cell whose outputs hold no error None, and a bare exception its name?"""
    ok = nbformat.v4.new_code_cell("1")
    ok.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    assert error_message(ok) is None
    bare = nbformat.v4.new_code_cell("raise KeyError")
    bare.outputs = [nbformat.v4.new_output("error", ename="KeyError", evalue="", traceback=[])]
    assert error_message(bare) == "KeyError"
