"""Due dates and extensions, kept where nbgrader keeps them, and how late each hand-in is.

- A lab's **due date** is nbgrader's ``Assignment.duedate`` in the gradebook
  (:func:`set_due_date`, ``labkit course due LAB WHEN``); the formgrader's "Manage
  Assignments" page shows and edits the same field.
- A student's **extension** is nbgrader's ``SubmittedAssignment.extension``
  (:func:`grant_extension`, ``labkit course extend STUDENT LAB --days N`` or ``--csv``):
  nbgrader's ``duedate`` of that submission and its ``total_seconds_late`` include it.
  nbgrader keeps the extension on the submission's row, so one granted before the lab is
  handed in creates that row (empty until autograde fills it; the formgrader lists it then).
  nbgrader adds the extension to the lab's due date, so a lab with extensions keeps one.

How late a submission is comes from its time: ``timestamp.txt`` beside it (which ``labkit
course collect`` always writes: the LMS's time, else the file's), which nbgrader's autograde
reads into the gradebook. Each change here re-applies the late policy at once
(:func:`~labkit.grading.late.refresh_penalties`).
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from labkit.grading.course import CourseError
from labkit.grading.late import DAY, is_autograded, open_gradebook, refresh_penalties

__all__ = [
    "Lateness",
    "due_dates",
    "format_dues",
    "format_late",
    "grant_extension",
    "late_by",
    "lateness",
    "parse_when",
    "read_extensions",
    "set_due_date",
]


def parse_when(text: str) -> datetime:
    """A due date as an instructor types it (``2026-10-05 23:59``, ``2026-10-05T23:59+02:00``,
    ``... UTC``), as an aware UTC time; a time without a zone is UTC, as in nbgrader.

    Raises:
        CourseError: ``text`` is not a time.
    """
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(text).replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, TypeError) as exc:
        raise CourseError(
            f"due date {text!r} is not a time ({exc}); expected e.g. '2026-10-05 23:59' "
            "(UTC) or '2026-10-05T23:59+02:00'."
        ) from exc


def _aware(when: datetime | None) -> datetime | None:
    return None if when is None else when.replace(tzinfo=timezone.utc)


def _naive_utc(when: datetime) -> datetime:
    # the gradebook stores naive UTC times
    return when.astimezone(timezone.utc).replace(tzinfo=None) if when.tzinfo else when


def _assignment(gb, lab: str):
    from nbgrader.api import MissingEntry

    try:
        return gb.find_assignment(lab)
    except MissingEntry as exc:
        known = sorted(a.name for a in gb.assignments)
        raise CourseError(f"unknown lab {lab!r}; the gradebook has {known}.") from exc


def set_due_date(root: str | os.PathLike, lab: str, when: datetime | str | None) -> None:
    """Set (or with ``None`` clear) ``lab``'s due date in the gradebook, then refresh the
    lab's penalties.

    Raises:
        CourseError: no gradebook, an unknown lab, a time that does not parse.
    """
    when = parse_when(when) if isinstance(when, str) else when
    with open_gradebook(root) as gb:
        assignment = _assignment(gb, lab)
        extended = sorted(s.student.id for s in assignment.submissions if s.extension)
        if when is None and extended:  # nbgrader's duedate would add an extension to None
            raise CourseError(
                f"{lab} has extensions ({', '.join(extended)}), and nbgrader cannot grade an "
                f"extension without a due date; remove them first (`labkit course extend "
                f"STUDENT {lab} --clear`), or set a new due date instead."
            )
        assignment.duedate = None if when is None else _naive_utc(when)
        gb.db.commit()
    refresh_penalties(root, labs=[lab])


def due_dates(root: str | os.PathLike) -> dict[str, datetime | None]:
    """Every lab of the gradebook and its due date (aware UTC; ``None``: none set)."""
    with open_gradebook(root) as gb:
        return {a.name: _aware(a.duedate) for a in sorted(gb.assignments, key=lambda a: a.name)}


def format_dues(root: str | os.PathLike) -> str:
    """The labs' due dates in one line (``"none set"`` without any)."""
    dues = due_dates(root)
    return ", ".join(f"{lab} {d:%Y-%m-%d %H:%M} UTC" for lab, d in dues.items() if d) or "none set"


def grant_extension(
    root: str | os.PathLike, student: str, lab: str, *, days: float = 0, hours: float = 0
) -> timedelta | None:
    """Give ``student`` an extension on ``lab`` (replacing any earlier one; zero removes it),
    in nbgrader's gradebook, then refresh the lab's penalties.

    Returns:
        The extension now in force (``None``: none).

    Raises:
        CourseError: no gradebook, an unknown student or lab, a negative extension.
    """
    from nbgrader.api import MissingEntry

    extension = timedelta(days=days, hours=hours)
    if extension < timedelta(0):
        raise CourseError(f"an extension of {days} days {hours} hours; expected 0 or more.")
    with open_gradebook(root) as gb:
        if extension and _assignment(gb, lab).duedate is None:
            raise CourseError(
                f"{lab} has no due date to extend; set one first (`labkit course due {lab} "
                "'2026-10-05 23:59'`)."
            )
        _assignment(gb, lab)
        try:
            gb.find_student(student)
        except MissingEntry as exc:
            raise CourseError(
                f"unknown student {student!r}: not in the gradebook; add them with "
                "`labkit course init DIR --students CSV --overwrite`."
            ) from exc
        try:
            gb.find_submission(lab, student).extension = extension or None
            gb.db.commit()
        except MissingEntry:  # nbgrader keeps it on the submission's row: make that row
            if extension:
                with warnings.catch_warnings():  # nbgrader's own autoflush chatter, harmless
                    warnings.filterwarnings("ignore", message=r"Object of type <Submitted")
                    gb.add_submission(lab, student, extension=extension)
    refresh_penalties(root, labs=[lab])
    return extension or None


def read_extensions(path: str | os.PathLike) -> list[tuple[str, str, timedelta]]:
    """Extensions from a CSV file with columns ``student,lab,days`` (and optionally ``hours``).

    Raises:
        CourseError: every line that is not such a row, with its number.
    """
    rows, problems = [], []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        if not {"student", "lab", "days"} <= set(header) <= {"student", "lab", "days", "hours"}:
            raise CourseError(
                f"{path}, line 1: header {','.join(header)!r}; expected student,lab,days "
                "(and optionally hours)."
            )
        for row in reader:
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            try:
                delta = timedelta(days=float(row["days"] or 0), hours=float(row.get("hours") or 0))
            except ValueError as exc:
                problems.append(f"line {reader.line_num}: {exc}")
                continue
            if not row["student"] or not row["lab"] or delta < timedelta(0):
                problems.append(f"line {reader.line_num}: expected a student, a lab, days >= 0")
                continue
            rows.append((row["student"], row["lab"], delta))
    if problems:
        raise CourseError(f"{path}: {'; '.join(problems)}; fix them and run again.")
    return rows


@dataclass(frozen=True)
class Lateness:
    """How late one student's lab is.

    Attributes:
        student, lab: whose and which.
        due: the student's due date, extension included (aware UTC; ``None``: no due date).
        extension: the student's extension (``None``: none).
        submitted: when it was handed in (the gradebook's time once autograded, else the
            submission's ``timestamp.txt`` or file time; ``None``: not handed in).
        penalty: points the gradebook takes off (``None`` until autograded).
    """

    student: str
    lab: str
    due: datetime | None
    extension: timedelta | None
    submitted: datetime | None
    penalty: float | None

    @property
    def seconds_late(self) -> float:
        """Seconds after the due date it was handed in (0: on time, or no due date)."""
        return late_by(self.submitted, self.due)


def late_by(submitted: datetime | None, due: datetime | None) -> float:
    """Seconds ``submitted`` is after ``due`` (0 if either is missing or it is on time)."""
    if submitted is None or due is None:
        return 0.0
    return max(0.0, (submitted - due).total_seconds())


def lateness(
    root: str | os.PathLike, *, labs: Iterable[str] | None = None
) -> dict[tuple[str, str], Lateness]:
    """(student, lab) → :class:`Lateness`, for every student in the gradebook and lab."""
    from labkit.grading.collect import submission_time

    root = Path(root)
    out, wanted = {}, None if labs is None else set(labs)
    with open_gradebook(root) as gb:
        students = [s.id for s in gb.students]
        for assignment in gb.assignments:
            if wanted is not None and assignment.name not in wanted:
                continue
            lab, due = assignment.name, _aware(assignment.duedate)
            subs = {s.student.id: s for s in assignment.submissions}
            for student in students:
                sub = subs.get(student)
                ext = sub.extension if sub is not None else None
                graded = sub is not None and is_autograded(sub)
                # the submission in place (a newer one may wait for grading), else the gradebook's
                when = submission_time(root / "submitted" / student / lab, lab)
                when = when or (_aware(sub.timestamp) if graded and sub.timestamp else None)
                out[student, lab] = Lateness(
                    student,
                    lab,
                    None if due is None else due + (ext or timedelta(0)),
                    ext,
                    when,
                    float(sub.late_submission_penalty or 0.0) if graded else None,
                )
    return out


def format_late(item: Lateness) -> str:
    """``"1 d 3 h late, -4.5"`` (penalty once graded), ``"ext. 2 d"`` for an extension."""
    parts = []
    if (secs := item.seconds_late) > 0:
        days, rest = divmod(int(secs), int(DAY))
        parts.append(f"{days} d {rest // 3600} h late" if days else f"{rest // 3600} h late")
        if rest < 3600 and not days:
            parts[-1] = f"{max(1, rest // 60)} min late"
        if item.penalty:
            parts[-1] += f", -{item.penalty:g}"
    if item.extension:
        parts.append(f"ext. {item.extension.total_seconds() / DAY:g} d")
    return "; ".join(parts)
