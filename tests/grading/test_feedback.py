"""Tests for labkit.grading.feedback: pages with scores and errors, never hidden tests."""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
import pytest

from labkit.grading import lab_scores
from labkit.grading.autograde import autograde
from labkit.grading.feedback import FeedbackReport, write_feedback
from labkit.grading.judge import hidden_lines
from tests.grading.attack_lab import (LAB, MEAN_SOLUTION, SCALE_SOLUTION, answered, make_course,
                                      release, source_notebook, submit, write_kit)
from tests.grading.conftest import shared_build

STUDENTS = ["good", "wrong", "marker", "late"]


def _build(work: Path) -> dict:
    """good, wrong and marker graded (late hands in nothing); the pages written."""
    write_kit(work / "kit")
    root = make_course(work / "course", work / "kit", STUDENTS)
    nb = release(root)
    right = {"mean": MEAN_SOLUTION.replace("### ", "# "),
             "scale": SCALE_SOLUTION.replace("### ", "# ")}
    submit(root, "good", answered(nb, **right))
    submit(root, "wrong", answered(nb, mean="def mean_of(x):\n    return -1.0\n",
                                   scale="def scale(x, k):\n    raise ValueError('no scale')\n"))
    submit(root, "marker", answered(nb, mean=right["mean"] + "\n### BEGIN HIDDEN TESTS\n",
                                    scale=right["scale"]))
    autograde(root, LAB, students=["good", "wrong", "marker"], jobs=1, timeout=60,
              memory_mb=1500, progress=False)
    report = write_feedback(root, LAB, students=STUDENTS)
    return {"written": [str(p) for p in report.written], "failed": report.failed}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The graded course (built once per run, only read here) and write_feedback's report."""
    work, report = shared_build(tmp_path_factory, "feedback-course", _build)
    return work / "course", FeedbackReport(tuple(map(Path, report["written"])),
                                           report["failed"])


def _page(root, student) -> str:
    """The page's text: tags dropped, since highlighting splits code into spans."""
    page = (root / "feedback" / student / LAB / f"{LAB}.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_pages_show_the_gradebook_score(course):
    """Is there a page per graded student, showing the total nbgrader's gradebook holds?"""
    root, report = course
    assert {p.parts[-3] for p in report.written} == {"good", "wrong", "marker"}
    scores = lab_scores(root, LAB)
    for student in ("good", "wrong"):
        total = scores[student].auto
        assert re.search(rf"Score: {total:.1f} / {scores[student].auto_max + 1:.1f}",
                         _page(root, student)), student


def test_pages_never_show_hidden_tests(course):
    """Does no page hold a hidden test line or the hidden-test marker of a test cell?"""
    root, _ = course
    secret = hidden_lines(source_notebook(root))
    assert secret
    for student in ("good", "wrong"):
        page = _page(root, student)
        assert not [line for line in secret if line in page]
        assert "BEGIN HIDDEN TESTS" not in page


def test_pages_show_visible_output_and_the_students_errors(course):
    """Does the page show what the visible checks printed and the error the student's own
    code raised?"""
    root, _ = course
    assert "visible mean_of check passed" in _page(root, "good")
    wrong = _page(root, "wrong")
    assert "ValueError" in wrong and "no scale" in wrong
    assert "AssertionError" in wrong


def test_marker_in_a_student_cell_breaks_nothing(course):
    """Does a student who writes the hidden-test marker in an answer still get a page?"""
    root, report = course
    assert "marker" not in report.failed
    assert "def mean_of" in _page(root, "marker")


def test_ungraded_students_are_reported(course):
    """Is a student without a grading named in the report's failures, with no page?"""
    root, report = course
    assert report.failed == {"late": "not graded yet"}
    assert not (root / "feedback" / "late").exists()


def test_release_test_cells_match_the_feedback(course):
    """Is a test cell on the page its visible part, as the student's release shows it?"""
    root, _ = course
    visible = [c.source for c in release(root).cells if c.cell_type == "code"
               and c.metadata.get("nbgrader", {}).get("grade")]
    page = _page(root, "good")
    assert all(line in page for source in visible for line in source.splitlines()
               if line.strip())
    assert nbformat.read(root / "autograded" / "good" / LAB / f"{LAB}.ipynb", as_version=4)
