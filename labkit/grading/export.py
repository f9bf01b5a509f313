"""Grades per student and lab, read from nbgrader's gradebook and written to ``grades.csv``.

One row for every student in the gradebook and every lab (nbgrader *assignment*), the way
``nbgrader export`` counts: a student with no submission gets a row with score 0 and status
``missing`` (a gradebook row not yet autograded, which an extension makes, is missing too);
``total`` is nbgrader's score less its late-submission penalty, never below 0, and ``due``
the student's due date with any extension.
Unlike ``nbgrader export``, the row splits the score into what the autograder gave and what
is graded by hand:

- *autograded* cells are nbgrader's autograder tests: code grade cells that are not also
  answer cells. Their points are in ``auto_score`` (a grader's override counts, as in
  nbgrader's own totals); each test's autograder points are in :attr:`GradeRow.tests`.
- *hand-graded* cells are the rest: written answers, graded answer cells, task cells. Their
  points are in ``manual_score``, which stays empty while any of them still waits for a
  grader (nbgrader itself scores an untouched answer 0 without one).

The CSV is written to a temporary file beside the target and moved over it, so a reader
never sees half a file and a kill leaves the previous export in place.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from labkit.atomic import write_atomic
from labkit.grading.course import CourseError

__all__ = ["CSV_COLUMNS", "GradeRow", "export_grades", "grade_rows", "gradebook_path"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GradeRow:
    """One student's grade on one lab.

    Attributes:
        student_id: the student's id in the gradebook.
        first_name: as in the gradebook (``None`` when unset).
        last_name: as in the gradebook (``None`` when unset).
        email: as in the gradebook (``None`` when unset).
        lab: the nbgrader assignment name.
        status: ``"submitted"`` (autograded into the gradebook) or ``"missing"``.
        submitted: when it was handed in (UTC; ``None`` when missing or not recorded).
        auto_score: points of the autograded test cells.
        auto_max: the most those cells give.
        manual_score: points of the hand-graded cells; ``None`` while one still needs grading.
        manual_max: the most those cells give.
        late_penalty: points nbgrader takes off for lateness.
        total: ``max(0, every cell's points - late_penalty)``, nbgrader's exported score.
        max_score: the lab's maximum, ``auto_max + manual_max``.
        needs_manual_grading: some cell of the submission still waits for a grader.
        tests: per autograded test cell ``grade_id``: (autograder points, points possible);
            empty when missing. Not written to the CSV.
        due: the student's due date, extension included (UTC; ``None``: the lab has none);
            nbgrader's ``late_penalty`` counts from it (:mod:`labkit.grading.deadlines`).
    """

    student_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    lab: str
    status: str
    submitted: datetime | None
    auto_score: float
    auto_max: float
    manual_score: float | None
    manual_max: float
    late_penalty: float
    total: float
    max_score: float
    needs_manual_grading: bool
    tests: dict[str, tuple[float, float]] = field(default_factory=dict, compare=False)
    due: datetime | None = None


CSV_COLUMNS = [f.name for f in fields(GradeRow) if f.name != "tests"]


def gradebook_path(root: str | os.PathLike) -> Path:
    """The course's ``gradebook.db``, checked to exist (opening a missing one would create it).

    Raises:
        CourseError: there is no gradebook in ``root``.
    """
    path = Path(root).resolve() / "gradebook.db"
    if not path.is_file():
        raise CourseError(
            f"no gradebook at {path}: expected nbgrader's gradebook.db in the "
            "course directory. Release and autograde a lab first, or pass the "
            "course directory with --root."
        )
    return path


def _cells(gb) -> tuple[dict[str, tuple[str, str, bool, float]], dict[str, list[str]]]:
    """Master graded cells: id -> (lab, name, autograded?, max points); lab -> cell ids."""
    from nbgrader.api import Assignment, GradeCell, Notebook, SolutionCell, TaskCell

    answers = set(gb.db.query(SolutionCell.notebook_id, SolutionCell.name))
    cells, by_lab = {}, defaultdict(list)
    for model in (GradeCell, TaskCell):
        query = (
            gb.db.query(
                model.id,
                Assignment.name,
                model.notebook_id,
                model.name,
                model.cell_type,
                model.max_score,
            )
            .join(Notebook, model.notebook_id == Notebook.id)
            .join(Assignment, Notebook.assignment_id == Assignment.id)
        )
        for cid, lab, nb_id, name, cell_type, points in query:
            auto = model is GradeCell and cell_type == "code" and (nb_id, name) not in answers
            cells[cid] = (lab, name, auto, float(points))
            by_lab[lab].append(cid)
    return cells, by_lab


def grade_rows(root: str | os.PathLike) -> list[GradeRow]:
    """Every student's grade on every lab of the course's gradebook.

    Args:
        root (str | os.PathLike): the course directory (holds ``gradebook.db``).

    Returns:
        Rows sorted by lab, then student id: one per student and lab, submitted or not.

    Raises:
        CourseError: there is no gradebook in ``root``.
    """
    from nbgrader.api import Gradebook

    url = f"sqlite:///{gradebook_path(root)}"
    with Gradebook(url) as gb:
        cells, by_lab = _cells(gb)
        labs = sorted(a.name for a in gb.assignments)
        students = sorted((s.id, s.first_name, s.last_name, s.email) for s in gb.students)
        subs = _submissions(gb)
        grades = _grades(gb)
        dues = {a.name: _utc(a.duedate) for a in gb.assignments}

    rows = []
    for lab in labs:
        auto_max = sum(cells[c][3] for c in by_lab[lab] if cells[c][2])
        manual_max = sum(cells[c][3] for c in by_lab[lab] if not cells[c][2])
        for sid, first, last, email in students:
            sub_id, stamp, penalty, due = subs.get((lab, sid), ("", None, 0.0, dues.get(lab)))
            if not any(auto is not None for _, auto, _, _ in grades.get(sub_id, ())):
                rows.append(
                    GradeRow(
                        sid,
                        first,
                        last,
                        email,
                        lab,
                        "missing",
                        None,
                        0.0,
                        auto_max,
                        0.0,
                        manual_max,
                        0.0,
                        0.0,
                        auto_max + manual_max,
                        False,
                        due=due,
                    )
                )
                continue
            row = _submitted_row(
                (sid, first, last, email),
                lab,
                stamp,
                penalty,
                grades[sub_id],
                cells,
                auto_max,
                manual_max,
            )
            rows.append(replace(row, due=due))
    return rows


def _utc(when: datetime | None) -> datetime | None:
    return None if when is None else when.replace(tzinfo=timezone.utc)  # stored naive UTC


def _submissions(
    gb,
) -> dict[tuple[str, str], tuple[str, datetime | None, float, datetime | None]]:
    """(lab, student id) -> (submission id, when handed in, late penalty, due date with the
    extension) of every submission row."""
    from nbgrader.api import Assignment, Student, SubmittedAssignment

    return {
        (lab, sid): (
            sub_id,
            ts,
            float(penalty or 0.0),
            None if due is None else _utc(due + (extension or timedelta(0))),
        )
        for sub_id, lab, sid, ts, penalty, due, extension in gb.db.query(
            SubmittedAssignment.id,
            Assignment.name,
            Student.id,
            SubmittedAssignment.timestamp,
            SubmittedAssignment.late_submission_penalty,
            Assignment.duedate,
            SubmittedAssignment.extension,
        )
        .join(Assignment, SubmittedAssignment.assignment_id == Assignment.id)
        .join(Student, SubmittedAssignment.student_id == Student.id)
    }


def _grades(gb) -> defaultdict[str, list[tuple[str, float | None, float, bool]]]:
    """Submission id -> (cell id, autograder points, points, needs manual grading?) per grade."""
    from nbgrader.api import Grade, SubmittedNotebook

    grades = defaultdict(list)
    for sub_id, cid, auto, score, needs in gb.db.query(
        SubmittedNotebook.assignment_id,
        Grade.cell_id,
        Grade.auto_score,
        Grade.score,
        Grade.needs_manual_grade,
    ).join(SubmittedNotebook, Grade.notebook_id == SubmittedNotebook.id):
        grades[sub_id].append((cid, auto, float(score or 0.0), bool(needs)))
    return grades


def _submitted_row(
    student: tuple[str, str | None, str | None, str | None],
    lab: str,
    stamp: datetime | None,
    penalty: float,
    grades: list[tuple[str, float | None, float, bool]],
    cells: dict[str, tuple[str, str, bool, float]],
    auto_max: float,
    manual_max: float,
) -> GradeRow:
    """The row of a submitted lab: its grades summed into autograded and hand-graded points."""
    auto_score = manual = 0.0
    pending, needs_any, tests = False, False, {}
    for cid, auto, score, needs in grades:
        _, name, is_auto, points = cells[cid]
        needs_any |= needs
        if is_auto:
            auto_score += score
            tests[name] = (float(auto or 0.0), points)
        else:
            manual += score
            pending |= needs
    return GradeRow(
        *student,
        lab,
        "submitted",
        stamp.replace(tzinfo=timezone.utc) if stamp is not None else None,
        auto_score,
        auto_max,
        None if pending else manual,
        manual_max,
        penalty,
        max(0.0, auto_score + manual - penalty),
        auto_max + manual_max,
        needs_any,
        dict(sorted(tests.items())),
    )


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def export_grades(root: str | os.PathLike, *, out: str | os.PathLike | None = None) -> Path:
    """Write every student's grade on every lab to a CSV file, one row per student and lab.

    Args:
        root (str | os.PathLike): the course directory (holds ``gradebook.db``).
        out (str | os.PathLike | None): the CSV to write (default ``<root>/grades.csv``, where
            ``nbgrader export`` also writes); relative paths are taken from the current directory.

    Returns:
        The path written. Its columns are the fields of :class:`GradeRow` except ``tests``;
        empty cells mean ``None``, booleans are ``true``/``false``, times ISO 8601 in UTC.

    Raises:
        CourseError: there is no gradebook in ``root``.
    """
    from labkit.grading.late import refresh_penalties

    refresh_penalties(root)  # points typed in the formgrader since autograde count too
    rows = grade_rows(root)
    path = Path(out) if out is not None else Path(root) / "grades.csv"
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(_cell_text(getattr(row, c)) for c in CSV_COLUMNS)
    write_atomic(path, buf.getvalue().encode())
    log.info(
        "wrote %d grades (%d students x %d labs) to %s",
        len(rows),
        len({r.student_id for r in rows}),
        len({r.lab for r in rows}),
        path,
    )
    return path
