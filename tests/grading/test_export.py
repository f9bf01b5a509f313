"""Tests for labkit.grading.export: grades.csv from nbgrader's gradebook.

The oracle is nbgrader itself: a toy course is released, four notebooks are handed in and
graded with nbgrader's own autograde, and the export is compared with ``nbgrader export``'s
own grades.csv of the same gradebook (both nbgrader's code, run in this process).
"""

import csv
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from labkit.grading import CourseError
from labkit.grading.export import CSV_COLUMNS, export_grades, grade_rows
from tests.grading.conftest import nbgrader_export


def _nbgrader_export(root: Path) -> dict[tuple[str, str], dict]:
    """nbgrader's own export of the course's gradebook, by student and lab."""
    with open(nbgrader_export(root)) as f:
        return {(r["student_id"], r["assignment"]): r for r in csv.DictReader(f)}


def _ours(path: Path) -> dict[tuple[str, str], dict]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_COLUMNS
        return {(r["student_id"], r["lab"]): r for r in reader}


def _agree(ours: dict, theirs: dict) -> None:
    assert ours.keys() == theirs.keys()
    for key, row in theirs.items():
        mine = ours[key]
        assert float(mine["total"]) == float(row["score"]), key
        assert float(mine["max_score"]) == float(row["max_score"]), key
        assert float(mine["late_penalty"]) == float(row["late_submission_penalty"]), key
        assert float(mine["auto_score"]) + float(mine["manual_score"] or 0) == float(
            row["raw_score"]
        ), key
        assert (mine["first_name"], mine["last_name"]) == (row["first_name"], row["last_name"])
        when = datetime.fromisoformat(mine["submitted"]) if mine["submitted"] else None
        theirs_when = (
            datetime.fromisoformat(row["timestamp"]).replace(tzinfo=timezone.utc)
            if row["timestamp"]
            else None
        )
        assert when == theirs_when, key


def test_export_agrees_with_nbgrader_export(graded_class):
    """Does grades.csv give every student (dee, who handed nothing in, too) nbgrader's own
    score, maximum, penalty and time, split into autograded and hand-graded points?"""
    path = export_grades(graded_class)
    assert path == graded_class / "grades.csv"
    ours = _ours(path)
    _agree(ours, _nbgrader_export(graded_class))
    split = {
        s: (
            r["status"],
            r["auto_score"],
            r["auto_max"],
            r["manual_score"],
            r["manual_max"],
            r["total"],
            r["needs_manual_grading"],
        )
        for (s, _), r in ours.items()
    }
    assert split == {
        "ann": ("submitted", "3.0", "3.0", "", "1.0", "3.0", "true"),  # answer awaits a grader
        "bob": ("submitted", "0.0", "3.0", "0.0", "1.0", "0.0", "false"),  # untouched: 0
        "cid": ("submitted", "2.0", "3.0", "", "1.0", "0.0", "true"),  # late: zeroed
        "dee": ("missing", "0.0", "3.0", "0.0", "1.0", "0.0", "false"),
        "eve": ("submitted", "0.0", "3.0", "", "1.0", "0.0", "true"),
    }
    assert ours["cid", "toy"]["late_penalty"] == "2.0"
    assert ours["dee", "toy"]["submitted"] == "" and ours["bob", "toy"]["submitted"] == ""
    rows = {r.student_id: r for r in grade_rows(graded_class)}
    assert rows["cid"].tests == {"test_add_one": (2.0, 2.0), "test_fractions": (0.0, 1.0)}
    assert rows["eve"].tests == {"test_add_one": (0.0, 2.0), "test_fractions": (0.0, 1.0)}
    assert rows["dee"].tests == {}


def _grade_by_hand(root: Path, student: str, cell: str, points: float) -> None:
    """What nbgrader's formgrader does when a grader types a score."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        grade = gb.find_grade(cell, "toy", "toy", student)
        grade.manual_score = points
        grade.needs_manual_grade = False
        gb.db.commit()


def test_hand_grading_fills_the_manual_score(graded_class, tmp_path):
    """Once a grader scores the written answers, do manual_score and total follow, as in
    nbgrader's export? cid is late under a zero-if-late policy: nbgrader fixed the penalty
    at autograde time on the autograded points; the export applies the same plugin to the
    hand-graded points too, so cid still scores 0."""
    _grade_by_hand(graded_class, "ann", "why", 1.0)
    _grade_by_hand(graded_class, "cid", "why", 0.5)
    ours = _ours(export_grades(graded_class, out=tmp_path / "out" / "grades.csv"))
    _agree(ours, _nbgrader_export(graded_class))
    assert (ours["ann", "toy"]["manual_score"], ours["ann", "toy"]["total"]) == ("1.0", "4.0")
    assert ours["ann", "toy"]["needs_manual_grading"] == "false"
    assert (ours["cid", "toy"]["manual_score"], ours["cid", "toy"]["total"]) == ("0.5", "0.0")
    assert ours["cid", "toy"]["late_penalty"] == "2.5"
    assert ours["eve", "toy"]["manual_score"] == ""  # still waiting for a grader


def test_a_failed_write_keeps_the_previous_export(graded_class, monkeypatch):
    """Does a write that dies before the rename leave the old grades.csv and no temp file?"""
    path = graded_class / "grades.csv"
    path.write_text("previous export\n")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        export_grades(graded_class)
    assert path.read_text() == "previous export\n"
    assert [p.name for p in graded_class.iterdir() if p.name.startswith(".grades.csv")] == []
    monkeypatch.undo()
    assert len(_ours(export_grades(graded_class))) == 5


def test_no_gradebook_says_what_to_do(tmp_path):
    """Is a folder without gradebook.db a CourseError naming the path, and left as it was?"""
    with pytest.raises(CourseError, match=r"no gradebook at .*gradebook\.db.*--root"):
        export_grades(tmp_path)
    assert list(tmp_path.iterdir()) == []
