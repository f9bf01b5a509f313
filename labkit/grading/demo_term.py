"""The course demo's term: due dates, a late hand-in, an extension and a hand-graded answer.

:func:`course_demo <labkit.grading.demo.course_demo>` hands everything in on time but for
two submissions of the first lab, so that its cycle shows late work the way an instructor
meets it:

- every lab is due a week after the one before (:data:`FIRST_DUE` the first), set with
  :func:`~labkit.grading.deadlines.set_due_date`, and handed in 12 hours before;
- ``partial`` hands the first lab in 2 days 8 hours late: nbgrader's autograde takes the kit's
  late penalty (three started days) off its points;
- ``correct`` gets a 3-day extension on the first lab
  (:func:`~labkit.grading.deadlines.grant_extension`) and hands it in 2 days after the due date:
  no penalty;
- after autograde, ``correct``'s first written answer of the first lab is scored and commented
  the way the formgrader's grading page stores both (:func:`grade_by_hand`), so the feedback
  page, ``grades.csv`` and the Canvas file carry that score and comment.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
from nbgrader import utils as nbutils

from labkit.grading.course import CourseError

__all__ = ["COMMENT", "FIRST_DUE", "grade_by_hand", "schedule_term", "term_summary"]

#: When the demo's first lab is due; each later lab is due a week later.
FIRST_DUE = datetime(2026, 10, 5, 23, 59, tzinfo=timezone.utc)
#: The comment the demo's grader writes on ``correct``'s first written answer.
COMMENT = "Clear and complete: you name the effect and the evidence for it. Full marks."
_LATE = {"partial": timedelta(days=2, hours=8), "correct": timedelta(days=2)}
_EXTENSION = ("correct", 3.0)  # days, on the first lab


def _due(index: int) -> datetime:
    return FIRST_DUE + timedelta(weeks=index)


def schedule_term(root: Path, chosen: Sequence[str], class_of: dict[str, list[str]]) -> None:
    """Set the labs' due dates and the extension, and stamp every submission in
    ``submitted/`` with its hand-in time (``timestamp.txt``, read by nbgrader's autograde)."""
    from labkit.grading.deadlines import grant_extension, set_due_date

    for index, lab in enumerate(chosen):
        set_due_date(root, lab, _due(index))
        for student in class_of[lab]:
            late = _LATE.get(student) if index == 0 else None
            when = _due(index) + late if late else _due(index) - timedelta(hours=12)
            stamp = root / "submitted" / student / lab / "timestamp.txt"
            stamp.write_text(when.strftime("%Y-%m-%d %H:%M:%S.%f UTC"), encoding="utf-8")
            os.utime(stamp.with_name(f"{lab}.ipynb"), (when.timestamp(), when.timestamp()))
    student, days = _EXTENSION
    if student in class_of[chosen[0]]:
        grant_extension(root, student, chosen[0], days=days)


def _written_answer(root: Path, lab: str) -> tuple[str, float]:
    """The grade id and points of the lab's first written answer graded by hand."""
    source = nbformat.read(root / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    for cell in source.cells:
        if cell.cell_type == "markdown" and nbutils.is_grade(cell) and nbutils.is_solution(cell):
            return cell.metadata["nbgrader"]["grade_id"], float(cell.metadata["nbgrader"]["points"])
    raise CourseError(
        f"{lab} has no written answer graded by hand; expected a markdown cell with nbgrader "
        "metadata grade=true and solution=true."
    )


def grade_by_hand(
    root: Path, lab: str, student: str, *, comment: str = COMMENT
) -> tuple[str, float]:
    """Give ``student``'s first written answer of ``lab`` full points and ``comment``, as the
    formgrader's grade and comment handlers store them in the gradebook.

    Returns:
        The answer's grade id and the points given.
    """
    from nbgrader.api import Gradebook

    cell, points = _written_answer(root, lab)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        grade = gb.find_grade(cell, lab, lab, student)
        grade.manual_score = points
        grade.needs_manual_grade = False
        gb.find_comment(cell, lab, lab, student).manual_comment = comment
        gb.db.commit()
    return cell, points


def term_summary(root: Path, chosen: Sequence[str], graded: tuple[str, float] | None) -> list[str]:
    """The term as the demo's closing lines: due dates and policy, each late or extended
    submission of the first lab with its penalty (from the gradebook), the hand-graded
    answer."""
    from labkit.grading.deadlines import format_dues, format_late, lateness
    from labkit.grading.late import describe_policy

    lab = chosen[0]
    lines = [f"due: {format_dues(root)}", f"late policy: {describe_policy(root)}"]
    for (student, _), item in sorted(lateness(root, labs=[lab]).items()):
        if item.seconds_late > 0 or item.extension:
            text = format_late(item) or "on time"
            if item.extension and item.seconds_late == 0:
                text += f", handed in {(item.submitted - _due(0)) / timedelta(days=1):g} d "
                text += "after the due date: no penalty"
            lines.append(f"{student}/{lab}: {text}")
    if graded:
        cell, points = graded
        lines.append(
            f"correct/{lab}: written answer {cell} scored {points:g} by hand, with a comment "
            "(as the formgrader stores them; in grades.csv and the feedback page)"
        )
    return lines
