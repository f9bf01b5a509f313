"""Tests for labkit.grading.demo_term: the course demo's term on the toy lab, checked in
nbgrader's gradebook after nbgrader's own autograde (the real labs' run is test_demo.py's)."""

from datetime import timedelta

import nbformat
import pytest
from nbgrader.api import Gradebook

from labkit.grading import CourseError, fill_solutions
from labkit.grading.demo_term import COMMENT, FIRST_DUE, grade_by_hand, schedule_term, term_summary
from labkit.grading.late import LatePolicy
from tests.grading.conftest import nbgrader_api
from tests.grading.test_late import reference_penalty

CLASS = {"toy": ["blank", "correct", "partial"]}


def test_the_term_reaches_the_gradebook(released_toy):
    """Does the term set the due date and correct's extension, stamp each hand-in (partial
    2 d 8 h late, the rest on time or within the extension), so that nbgrader's autograde
    penalises partial alone as the policy says; and does grading by hand store the written
    answer's full points and the comment where the formgrader would, and the summary say so?"""
    root = released_toy
    release = nbformat.read(root / "labs/toy/toy.ipynb", as_version=4)
    good = fill_solutions(release, nbformat.read(root / "solutions/toy/toy.ipynb", as_version=4))
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student in CLASS["toy"]:
            gb.update_or_create_student(student)
    for student, nb in {"blank": release, "correct": good, "partial": good}.items():
        folder = root / "submitted" / student / "toy"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / "toy.ipynb")
    schedule_term(root, ["toy"], CLASS)
    nbgrader_api(root, "autograde", "toy", "*")
    assert grade_by_hand(root, "toy", "correct") == ("why", 1.0)

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assert gb.find_assignment("toy").duedate == FIRST_DUE.replace(tzinfo=None)
        subs = {s: gb.find_submission("toy", s) for s in CLASS["toy"]}
        late = {s: sub.total_seconds_late for s, sub in subs.items()}
        penalty = {s: sub.late_submission_penalty or 0.0 for s, sub in subs.items()}
        assert subs["correct"].extension == timedelta(days=3)
        assert subs["correct"].timestamp == (FIRST_DUE + timedelta(days=2)).replace(tzinfo=None)
        assert gb.find_grade("why", "toy", "toy", "correct").manual_score == 1.0
        assert gb.find_comment("why", "toy", "toy", "correct").manual_comment == COMMENT
        score = subs["partial"].score
    assert late == {"blank": 0, "correct": 0, "partial": (2 * 24 + 8) * 3600}
    assert penalty["partial"] == pytest.approx(
        reference_penalty(score, late["partial"], LatePolicy())
    )
    assert penalty["partial"] > 0 and penalty["correct"] == penalty["blank"] == 0

    lines = term_summary(root, ["toy"], ("why", 1.0))
    assert lines[0] == f"due: toy {FIRST_DUE:%Y-%m-%d %H:%M} UTC"
    assert f"partial/toy: 2 d 8 h late, -{penalty['partial']:g}" in lines
    assert "correct/toy: ext. 3 d, handed in 2 d after the due date: no penalty" in lines
    assert lines[-1].startswith("correct/toy: written answer why scored 1 by hand")


def test_a_lab_without_a_written_answer_says_so(released_toy):
    """Is a lab with no markdown answer graded by hand a CourseError saying what is missing?"""
    path = released_toy / "solutions/toy/toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if c.cell_type != "markdown" or "nbgrader" not in c.metadata]
    nbformat.write(nb, path)
    with pytest.raises(CourseError, match="toy has no written answer graded by hand"):
        grade_by_hand(released_toy, "toy", "correct")
