"""Grades as an LMS gradebook imports them: Canvas's and Moodle's CSV formats.

The scores are :func:`~labkit.grading.export.grade_rows`' ``total`` (autograded plus
hand-graded points, less nbgrader's late penalty; 0 for a lab not handed in), one column per
lab; the students are the course's roster, the gradebook's student table that ``course init``
filled from ``students.csv``.

- **Canvas** (Grades → Import; the format of Canvas's own gradebook export,
  https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807,
  https://teaching.resources.osu.edu/toolsets/carmencanvas/guides/calculating-final-grades/import-csv-file-carmen-grades):
  the columns ``Student,ID,SIS User ID,SIS Login ID,Section`` then one per assignment, and a
  ``Points Possible`` row under the header. ``Student`` is ``Last, First``; ``ID`` is Canvas's
  own user id, the roster's ``lms_user_id`` (empty when unknown); ``SIS User ID`` and
  ``SIS Login ID`` are the labkit student id; ``Section`` is empty. An assignment column is
  the lab's name, or ``<lab> (<id>)`` when the lab's Canvas assignment id is given, which
  Canvas matches to that assignment whatever its title; a column Canvas does not know
  becomes a new assignment.
- **Moodle** (Grade administration → Import → CSV file,
  https://docs.moodle.org/en/Grade_import): an identifier column, then ``First name``,
  ``Last name`` and one column per lab. Map the identifier ``Email address`` to
  *useremail*, or ``ID number`` to *useridnumber* (the labkit student id, which must then be
  each user's ID number in Moodle), and each lab column to its grade item.

Files are written atomically (:func:`~labkit.atomic.write_atomic`), UTF-8, as ``grades.csv``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from labkit.atomic import write_atomic
from labkit.grading.course import CourseError
from labkit.grading.export import GradeRow, grade_rows, gradebook_path

__all__ = [
    "CANVAS_COLUMNS",
    "LMS_FORMATS",
    "MOODLE_IDENTIFIERS",
    "canvas_table",
    "export_lms",
    "moodle_table",
    "roster",
]

log = logging.getLogger(__name__)

#: The formats :func:`export_lms` writes.
LMS_FORMATS = ("canvas", "moodle")
#: The student columns that start a Canvas gradebook CSV, before the assignments.
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
#: Moodle's identifier choices: the CSV column and the roster field that fills it.
MOODLE_IDENTIFIERS = {"email": ("Email address", "email"), "idnumber": ("ID number", "id")}
_CANVAS_ID = re.compile(r"[0-9]+")


def roster(root: str | os.PathLike) -> dict[str, dict[str, str]]:
    """The course's students as ``course init`` stored them in the gradebook.

    Args:
        root (str | os.PathLike): the course directory (holds ``gradebook.db``).

    Returns:
        Student id to ``{"id", "first_name", "last_name", "email", "lms_user_id"}``, each
        value a string (empty when unset), sorted by id.

    Raises:
        CourseError: there is no gradebook in ``root``.
    """
    from nbgrader.api import Gradebook

    keys = ("id", "first_name", "last_name", "email", "lms_user_id")
    with Gradebook(f"sqlite:///{gradebook_path(root)}") as gb:
        people = [{k: (getattr(s, k) or "").strip() for k in keys} for s in gb.students]
    return {p["id"]: p for p in sorted(people, key=lambda p: p["id"])}


def _points(value: float) -> str:
    """A score as a spreadsheet reads it: ``3``, ``2.5``."""
    return f"{value:.10g}"


def _by_student(rows: list[GradeRow]) -> tuple[list[str], dict[tuple[str, str], GradeRow]]:
    """The labs in order, and each (student id, lab)'s row."""
    return sorted({r.lab for r in rows}), {(r.student_id, r.lab): r for r in rows}


def canvas_table(
    rows: list[GradeRow],
    students: Mapping[str, Mapping[str, str]],
    *,
    assignment_ids: Mapping[str, str] | None = None,
) -> list[list[str]]:
    """The cells of a Canvas gradebook import: header, ``Points Possible``, one row per student.

    Args:
        rows (list[GradeRow]): every student's grade on every lab (:func:`grade_rows`).
        students (Mapping[str, Mapping[str, str]]): the roster (:func:`roster`).
        assignment_ids (Mapping[str, str] | None): lab to its Canvas assignment id (digits,
            the number in the assignment's URL); a lab left out gets a column of its name.

    Returns:
        The table, row by row, every cell a string.

    Raises:
        CourseError: an id for a lab the gradebook does not have, or one that is not a number.
    """
    labs, grades = _by_student(rows)
    ids = dict(assignment_ids or {})
    if unknown := sorted(set(ids) - set(labs)):
        raise CourseError(
            f"Canvas assignment ids given for {unknown}, which the gradebook has no lab of; "
            f"expected labs from {labs}. Fix the lab names given to --canvas-id."
        )
    if bad := sorted(f"{lab}={v!r}" for lab, v in ids.items() if not _CANVAS_ID.fullmatch(v)):
        raise CourseError(
            f"Canvas assignment ids must be numbers (the digits after /assignments/ in the "
            f"assignment's URL); got {', '.join(bad)}. Pass them as --canvas-id LAB=NUMBER."
        )
    titles = [f"{lab} ({ids[lab]})" if lab in ids else lab for lab in labs]
    maxima = {r.lab: r.max_score for r in rows}
    table = [[*CANVAS_COLUMNS, *titles], ["Points Possible", "", "", "", ""]]
    table[1] += [_points(maxima[lab]) for lab in labs]
    for sid, who in students.items():
        name = ", ".join(n for n in (who["last_name"], who["first_name"]) if n) or sid
        table.append(
            [name, who["lms_user_id"], sid, sid, ""]
            + [_points(grades[sid, lab].total) for lab in labs]
        )
    return table


def moodle_table(
    rows: list[GradeRow],
    students: Mapping[str, Mapping[str, str]],
    *,
    identifier: str | None = None,
) -> list[list[str]]:
    """The cells of a Moodle CSV grade import: header, then one row per student.

    Args:
        rows (list[GradeRow]): every student's grade on every lab (:func:`grade_rows`).
        students (Mapping[str, Mapping[str, str]]): the roster (:func:`roster`).
        identifier (str | None): ``"email"`` (column ``Email address``) or ``"idnumber"``
            (column ``ID number``, the labkit student id); default: ``"email"`` when any
            student of the roster has an email, else ``"idnumber"``.

    Returns:
        The table, row by row, every cell a string.

    Raises:
        CourseError: an unknown identifier, or students without the email it needs.
    """
    if identifier is None:
        identifier = "email" if any(w["email"] for w in students.values()) else "idnumber"
    if identifier not in MOODLE_IDENTIFIERS:
        raise CourseError(
            f"unknown Moodle identifier {identifier!r}; expected one of "
            f"{sorted(MOODLE_IDENTIFIERS)}."
        )
    column, field = MOODLE_IDENTIFIERS[identifier]
    if missing := [sid for sid, who in students.items() if not who[field]]:
        raise CourseError(
            f"Moodle's import finds students by email here, but {len(missing)} student(s) "
            f"have none: {', '.join(missing)}. Add their email (as in Moodle) to the email "
            "column of students.csv and run `labkit course init DIR --students students.csv "
            "--overwrite`, or pass --moodle-id idnumber to match by ID number (the student id)."
        )
    labs, grades = _by_student(rows)
    table = [[column, "First name", "Last name", *labs]]
    for sid, who in students.items():
        table.append(
            [who[field], who["first_name"], who["last_name"]]
            + [_points(grades[sid, lab].total) for lab in labs]
        )
    return table


def export_lms(
    root: str | os.PathLike,
    *,
    lms: str,
    out: str | os.PathLike | None = None,
    assignment_ids: Mapping[str, str] | None = None,
    identifier: str | None = None,
) -> Path:
    """Write the course's grades as a CSV file the LMS's gradebook imports.

    Args:
        root (str | os.PathLike): the course directory (holds ``gradebook.db``).
        lms (str): ``"canvas"`` or ``"moodle"`` (the module docstring has both formats).
        out (str | os.PathLike | None): the CSV to write (default
            ``<root>/grades-<lms>.csv``); relative paths are taken from the current directory.
        assignment_ids (Mapping[str, str] | None): Canvas only: lab to Canvas assignment id.
        identifier (str | None): Moodle only: ``"email"`` or ``"idnumber"`` (see
            :func:`moodle_table`).

    Returns:
        The path written.

    Raises:
        CourseError: an unknown format, no gradebook in ``root``, no students in it, or
            roster data the format needs missing.
    """
    if lms not in LMS_FORMATS:
        raise CourseError(f"unknown LMS format {lms!r}; expected one of {list(LMS_FORMATS)}.")
    from labkit.grading.late import refresh_penalties

    refresh_penalties(root)  # points typed in the formgrader since autograde count too
    students, rows = roster(root), grade_rows(root)
    if not students:
        raise CourseError(
            f"no students in {Path(root).resolve()}'s gradebook to export; import them with "
            "`labkit course init DIR --students students.csv --overwrite`."
        )
    if lms == "canvas":
        table = canvas_table(rows, students, assignment_ids=assignment_ids)
    else:
        table = moodle_table(rows, students, identifier=identifier)
    if pending := sorted({r.student_id for r in rows if r.manual_score is None}):
        log.warning("%d student(s) still wait for hand grading: %s", len(pending), pending)
    path = Path(out) if out is not None else Path(root) / f"grades-{lms}.csv"
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerows(table)
    write_atomic(path, buf.getvalue().encode())
    log.info("wrote %s grades of %d students to %s", lms, len(students), path)
    return path
