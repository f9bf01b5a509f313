"""One term's course made from the kit, its students, and where each submission stands.

:func:`init_course` makes a course folder from the kit (its config and ``solutions/`` copied,
``labs/`` released from them by nbgrader, an empty ``submitted/``) with a gradebook of its own that
knows the labs and a CSV file's students; :func:`course_status` says, per student and lab, whether a
submission is there, whether the gradebook holds its autograded scores, and whether its last grading
failed.

Grading records, written by the autograde pipeline, one JSON object per student and lab in
``<root>/autograded/.labkit/<lab>/<student>.json`` (nbgrader skips dot folders)::

    {"status": "failed", "reason": "timed out after 600 s", "seconds": 600.2,
     "finished": "2025-03-01T12:00:00+00:00"}

``status`` is ``"graded"`` or ``"failed"``, ``reason`` why it failed (empty when graded),
``seconds`` the grading's wall time, ``finished`` when it ended (ISO 8601, UTC).
:func:`write_record` writes through a temporary file and ``os.replace``: a reader sees the old
record or the new one, never half of one.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from labkit.atomic import write_atomic
from labkit.grading.collect import submission_time
from labkit.grading.course import CourseError, available_labs, nbgrader, release_labs
from labkit.grading.deadlines import Lateness, lateness
from labkit.grading.kit import locate_kit
from labkit.grading.versions import versions

__all__ = [
    "STUDENT_COLUMNS",
    "GradingRecord",
    "StatusRow",
    "course_status",
    "init_course",
    "read_record",
    "read_students",
    "record_path",
    "write_record",
]

log = logging.getLogger(__name__)

#: The columns of a students CSV file; only ``id`` is required. ``lms_user_id`` is the student's
#: user id in the LMS (Canvas's ``ID``), which ``course export --format canvas`` writes.
STUDENT_COLUMNS = ("id", "first_name", "last_name", "email", "lms_user_id")
# Usable as a folder name on every file system nbgrader runs on; no leading dot or dash.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_IGNORE = shutil.ignore_patterns("runs", "__pycache__", ".ipynb_checkpoints", "feedback")


def read_students(path: str | os.PathLike) -> list[dict[str, str]]:
    """The students of a CSV file, checked line by line.

    Args:
        path (str | os.PathLike): a CSV file whose header names ``id`` and any of ``first_name``,
            ``last_name``, ``email``, ``lms_user_id`` (UTF-8, a spreadsheet's byte-order mark allowed; blank lines
            skipped).

    Returns:
        One dict per student, column name to stripped value, in file order.

    Raises:
        CourseError: every problem found, each with its line: a header without ``id`` or with
            other columns, a row of the wrong length, an id that cannot be a folder name, an
            id given twice (ignoring case).
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if (
            "id" not in header
            or not set(header) <= set(STUDENT_COLUMNS)
            or len(set(header)) < len(header)
        ):
            raise CourseError(
                f"{path}, line 1: header {','.join(header)!r}; expected columns "
                f"{','.join(STUDENT_COLUMNS)} (id required, each at most once)."
            )
        problems, first_line, students = [], {}, []
        for row in reader:
            line, student = reader.line_num, {k: v.strip() for k, v in zip(header, row)}
            sid = student.get("id", "")
            if not any(v.strip() for v in row):
                continue
            if len(row) != len(header):
                problems.append(f"line {line}: {len(row)} fields, expected {len(header)}")
            elif not _NAME.fullmatch(sid):
                problems.append(
                    f"line {line}: id {sid!r} cannot be a folder name; use 1-64 "
                    "letters, digits, '.', '_' or '-', not starting with '.' or '-'"
                )
            elif sid.lower() in first_line:
                problems.append(
                    f"line {line}: id {sid!r} is already on line "
                    f"{first_line[sid.lower()]} (ids are compared ignoring case)"
                )
            else:
                first_line[sid.lower()] = line
                students.append(student)
    if problems:
        raise CourseError(
            f"{path}: {len(problems)} problem(s); fix them and run again: " + "; ".join(problems)
        )
    return students


def init_course(
    dest: str | os.PathLike,
    *,
    kit: str | os.PathLike | None = None,
    students_csv: str | os.PathLike | None = None,
    labs: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Make a course directory for a term from the kit.

    Args:
        dest (str | os.PathLike): the new course directory (created; must be empty unless
            ``overwrite``).
        kit (str | os.PathLike | None): the kit holding ``nbgrader_config.py`` and ``solutions/``
            (default: found by :func:`~labkit.grading.kit.locate_kit`: ``$LABKIT_KIT``, else the
            source checkout labkit runs from).
        students_csv (str | os.PathLike | None): students to import (see :func:`read_students`);
            none when omitted.
        labs (Sequence[str] | None): the labs to take (default: every lab in the kit's
            ``solutions/``).
        overwrite (bool): in a folder that is not empty, replace the config and the chosen labs'
            ``solutions/`` and import the students again; submissions and grades are kept.

    Returns:
        ``dest``, its ``labs/`` released from its ``solutions/`` (the kit's ``labs/`` when
        that is up to date) and its ``gradebook.db`` knowing the labs and the students.

    Raises:
        CourseError: no kit, an unknown lab, a bad CSV, or ``dest`` not empty (no ``overwrite``).
    """
    dest, kit = Path(dest), locate_kit(kit)
    known = available_labs(kit)
    if unknown := sorted(set(labs or []) - set(known)):
        raise CourseError(
            f"unknown lab(s) {unknown}; expected names from {kit / 'solutions'}: {known}."
        )
    students = read_students(students_csv) if students_csv is not None else []
    if dest.resolve() == kit.resolve():
        raise CourseError(f"{dest} is the kit itself; give the term's course a folder of its own.")
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise CourseError(
            f"{dest} is not empty (it holds {sorted(os.listdir(dest))[:6]}); pick "
            "a new folder for the term, or pass --overwrite to renew the kit's "
            "files there (submissions and grades are kept)."
        )
    chosen = list(labs or known)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(kit / "nbgrader_config.py", dest / "nbgrader_config.py")
    for lab in chosen:
        shutil.rmtree(dest / "solutions" / lab, ignore_errors=True)
        shutil.copytree(kit / "solutions" / lab, dest / "solutions" / lab, ignore=_IGNORE)
    (dest / "submitted").mkdir(exist_ok=True)
    release_labs(dest, chosen)  # labs/<lab>, and the cells and checksums autograde needs
    if students:  # nbgrader imports a checked copy: the file as read, every column present
        with tempfile.TemporaryDirectory(prefix="labkit-students-") as tmp:
            with open(Path(tmp) / "students.csv", "w", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, fieldnames=STUDENT_COLUMNS, restval="").writerows(
                    [dict(zip(STUDENT_COLUMNS, STUDENT_COLUMNS)), *students]
                )
            nbgrader("db", "student", "import", f.name, root=dest)
    log.info("course %s: %d lab(s), %d student(s) imported", dest, len(chosen), len(students))
    return dest


@dataclass(frozen=True)
class GradingRecord:
    """How the last grading of one student's lab ended (the module docstring has the file).

    Attributes:
        status: ``"graded"`` or ``"failed"``; reason: why it failed (empty when graded).
        seconds: wall time of the grading; finished: when it ended (timezone-aware).
        lab, student: whose record it is (from the file's place, not stored in it).
    """

    status: str
    reason: str
    seconds: float
    finished: datetime
    lab: str = ""
    student: str = ""


def record_path(root: str | os.PathLike, lab: str, student: str) -> Path:
    """``<root>/autograded/.labkit/<lab>/<student>.json``; CourseError for unsafe names."""
    if bad := [name for name in (lab, student) if not _NAME.fullmatch(name)]:
        raise CourseError(
            f"{bad[0]!r} is not a plain name (letters, digits, '.', '_', '-'); "
            "expected a lab or student id from the gradebook."
        )
    return Path(root) / "autograded" / ".labkit" / lab / f"{student}.json"


def write_record(
    root: str | os.PathLike,
    lab: str,
    student: str,
    *,
    status: str,
    seconds: float,
    reason: str = "",
    finished: datetime | None = None,
) -> Path:
    """Write the grading record of ``student``'s ``lab`` atomically; returns its path.

    Args:
        root (str | os.PathLike): the course directory; lab: the lab; student: the student id.
        status (str): ``"graded"`` or ``"failed"``.
        seconds (float): wall time of the grading; reason: why it failed (empty when graded).
        finished (datetime | None): when it ended (default: now); naive times are local time.
    """
    if status not in ("graded", "failed"):
        raise CourseError(f"grading status {status!r}; expected 'graded' or 'failed'.")
    finished = (finished or datetime.now(timezone.utc)).astimezone(timezone.utc)
    path = record_path(root, lab, student)
    write_atomic(
        path,
        json.dumps(
            {
                "status": status,
                "reason": reason,
                "seconds": float(seconds),
                "finished": finished.isoformat(),
            }
        )
        + "\n",
    )
    return path


def read_record(root: str | os.PathLike, lab: str, student: str) -> GradingRecord | None:
    """The grading record of ``student``'s ``lab``, or ``None`` when it was never graded.

    Raises:
        CourseError: the file is not a record (names the file and what is wrong with it).
    """
    path = record_path(root, lab, student)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["status"] not in ("graded", "failed"):
            raise ValueError(f"status {data['status']!r} is neither 'graded' nor 'failed'")
        return GradingRecord(
            data["status"],
            str(data["reason"]),
            float(data["seconds"]),
            datetime.fromisoformat(data["finished"]),
            lab,
            student,
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise CourseError(
            f"{path} is not a grading record ({type(exc).__name__}: {exc}); "
            "expected JSON with status, reason, seconds, finished; delete it and "
            "grade the lab again."
        ) from exc


@dataclass(frozen=True)
class StatusRow:
    """Where one student's lab stands.

    Attributes:
        student: the student id; lab: the lab.
        submitted: when it was handed in (``timestamp.txt``, else the notebook's modification
            time; UTC), or ``None`` when nothing is in ``submitted/``.
        score, max_score: autograded points in the gradebook and the most they can be;
            ``None`` until the gradebook holds them. record: the last grading record, if any.
        versions: how many versions were handed in (the one in ``submitted/`` and the older
            ones in the history, :mod:`labkit.grading.versions`); first: when the first was.
        late: its due date, extension, lateness and penalty (:mod:`labkit.grading.deadlines`).
    """

    student: str
    lab: str
    submitted: datetime | None
    score: float | None
    max_score: float | None
    record: GradingRecord | None
    versions: int = 0
    first: datetime | None = None
    late: Lateness | None = None

    @property
    def graded(self) -> bool:
        """Whether the gradebook holds the submission with autograded scores."""
        return self.score is not None

    @property
    def state(self) -> str:
        """``"failed"`` (last grading failed), ``"graded"``, ``"submitted"`` or ``"missing"``."""
        failed = self.record is not None and self.record.status == "failed"
        return (
            "failed"
            if failed
            else "graded"
            if self.graded
            else "submitted"
            if self.submitted
            else "missing"
        )


def _record_or_failure(root: Path, lab: str, student: str) -> GradingRecord | None:
    try:
        return read_record(root, lab, student)
    except CourseError as exc:  # one broken file does not hide the whole course's status
        return GradingRecord(
            "failed",
            f"unreadable grading record: {exc}",
            0.0,
            datetime.now(timezone.utc),
            lab,
            student,
        )


def course_status(
    root: str | os.PathLike = ".", *, labs: Sequence[str] | None = None
) -> list[StatusRow]:
    """Per student and lab: submitted (and when), graded (score), failed (why).

    Args:
        root (str | os.PathLike): the course directory.
        labs (Sequence[str] | None): the labs to report (default: every lab in ``solutions/``).

    Returns:
        One row per student (the gradebook's and any in ``submitted/``) and lab, sorted.
    """
    from nbgrader.api import Gradebook

    root = Path(root).resolve()
    db, submitted = root / "gradebook.db", root / "submitted"
    if not db.is_file():
        raise CourseError(
            f"{root} has no gradebook.db; expected a course directory made by "
            "`labkit course init` (or pass --root)."
        )
    chosen = list(labs or available_labs(root))
    scores: dict[tuple[str, str], tuple[float, float]] = {}
    with Gradebook(f"sqlite:///{db}") as gb:
        students = {s.id for s in gb.students}
        for lab in set(chosen) & {a.name for a in gb.assignments}:
            for sub in gb.assignment_submissions(lab):
                tests = [g for nb in sub.notebooks for g in nb.grades if g.cell.cell_type == "code"]
                if any(g.auto_score is not None for g in tests):
                    scores[sub.student.id, lab] = (
                        sum(g.auto_score or 0.0 for g in tests),
                        sum(float(g.max_score) for g in tests),
                    )
    if submitted.is_dir():
        students |= {p.name for p in submitted.iterdir() if p.is_dir() and _NAME.fullmatch(p.name)}
    late = lateness(root, labs=chosen)
    return [
        replace(
            _row(root, student, lab, scores.get((student, lab), (None, None))),
            late=late.get((student, lab)),
        )
        for student in sorted(students)
        for lab in chosen
    ]


def _row(root: Path, student: str, lab: str, score: tuple[float | None, float | None]) -> StatusRow:
    """One student's lab: its submission and versions on disk, ``score`` from the gradebook."""
    folder = root / "submitted" / student / lab
    when = submission_time(folder, lab)
    current = (folder / f"{lab}.ipynb", when) if when is not None else None
    handed_in = versions(root, student, lab, current=current)
    first = handed_in[0].when if handed_in else None
    record = _record_or_failure(root, lab, student)
    return StatusRow(student, lab, when, *score, record, len(handed_in), first)
