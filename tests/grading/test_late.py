"""Tests for labkit.grading.late: labkit's late policy as nbgrader's plugin, the penalties
nbgrader's autograde takes with it, and their refresh when points or deadlines change.

The oracles: nbgrader's own autograde (its ``AssignLatePenalties`` step calls the plugin),
nbgrader's own CSV export of the same gradebook, and the policy worked out day by day here.
The course (conftest's ``late_class``) gets its due date and extensions through `labkit course due`
and `extend` (tests/grading/test_deadlines.py tests those further).
"""

from datetime import timedelta
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from labkit.cli import main
from labkit.grading.deadlines import parse_when
from labkit.grading.export import export_grades, grade_rows
from labkit.grading.late import LatePolicy, refresh_penalties
from tests.grading.conftest import DUE, EXTENSIONS, HANDED_IN, nbgrader_export


def reference_penalty(score: float, seconds_late: float, policy: LatePolicy) -> float:
    """The policy read literally: count the days begun since the due date one by one."""
    if seconds_late <= policy.grace_minutes * 60:
        return 0.0
    if policy.zero_after_days and seconds_late > policy.zero_after_days * 86400:
        return score
    days = 0
    while days * 86400 < seconds_late:
        days += 1
    return score * min(policy.max_percent, days * policy.percent_per_day) / 100


@pytest.mark.parametrize("grace", [0.0, 10.0])
@pytest.mark.parametrize(
    "seconds", [1, 60, 599, 601, 86399, 86400, 86401, 3 * 86400, 4.5 * 86400, 7 * 86400, 7e5]
)
def test_policy_matches_its_reading_day_by_day(seconds, grace):
    """Is the plugin's penalty the policy counted day by day, grace and cap included?"""
    policy = LatePolicy(grace_minutes=grace)
    got = policy.late_submission_penalty("x", 3.0, seconds) or 0.0
    assert got == pytest.approx(reference_penalty(3.0, seconds, policy))


def _expected(score: float, student: str) -> float:
    due = parse_when(DUE) + timedelta(days=EXTENSIONS.get(student, 0))
    late = max(0.0, (parse_when(HANDED_IN[student]) - due).total_seconds())
    return reference_penalty(score, late, LatePolicy())  # the kit's config: the defaults


def _nbgrader_rows(root: Path) -> dict[str, dict[str, str]]:
    import csv

    with open(nbgrader_export(root), newline="") as f:
        return {r["student_id"]: r for r in csv.DictReader(f)}


def test_nbgrader_autograde_takes_the_policys_penalty(late_class):
    """Does nbgrader's autograde, with the kit's config, store each student's penalty as the
    policy says, an extension granted before the hand-in included; do labkit's export and
    nbgrader's own agree; and is dee, extended but with nothing handed in, still missing?"""
    rows = {r.student_id: r for r in grade_rows(late_class)}
    theirs = _nbgrader_rows(late_class)
    for student in HANDED_IN:
        row = rows[student]
        assert row.auto_score == 3.0, student
        assert row.late_penalty == pytest.approx(_expected(3.0, student)), student
        assert float(theirs[student]["late_submission_penalty"]) == pytest.approx(row.late_penalty)
        assert float(theirs[student]["score"]) == pytest.approx(row.total)  # less the penalty
        assert row.total == pytest.approx(3.0 - row.late_penalty)
    assert [rows[s].late_penalty for s in ("ann", "eve")] == [0.0, 0.0]
    assert rows["cid"].late_penalty == pytest.approx(0.9)  # 3 started days: 30 %
    assert rows["fay"].late_penalty == 3.0 and rows["fay"].total == 0.0  # past 7 days
    assert rows["eve"].due == parse_when(DUE) + timedelta(days=2)
    assert rows["dee"].status == "missing" and rows["dee"].due == parse_when(DUE) + timedelta(1)
    assert refresh_penalties(late_class) == 0  # nbgrader's numbers stand as they are


def test_points_and_extensions_after_autograde_are_counted(late_class, capsys):
    """Are points typed after autograde (as the formgrader stores them) penalised too, an
    extension given afterwards lifting the penalty and its removal restoring it, with
    nbgrader's own export agreeing each time?"""
    with Gradebook(f"sqlite:///{late_class / 'gradebook.db'}") as gb:
        grade = gb.find_grade("why", "toy", "toy", "cid")
        grade.manual_score, grade.needs_manual_grade = 1.0, False
        gb.db.commit()
    export_grades(late_class)
    row = {r.student_id: r for r in grade_rows(late_class)}["cid"]
    assert row.late_penalty == pytest.approx(_expected(4.0, "cid")) == pytest.approx(1.2)
    assert row.total == pytest.approx(2.8)
    assert float(_nbgrader_rows(late_class)["cid"]["late_submission_penalty"]) == pytest.approx(1.2)

    assert main(["course", "extend", "cid", "toy", "--days", "3", "--root", str(late_class)]) == 0
    assert "cid/toy: extension of 3 day(s)" in capsys.readouterr().out
    assert {r.student_id: r for r in grade_rows(late_class)}["cid"].late_penalty == 0.0
    assert main(["course", "extend", "cid", "toy", "--clear", "--root", str(late_class)]) == 0
    assert "cid/toy: no extension" in capsys.readouterr().out
    assert {r.student_id: r for r in grade_rows(late_class)}["cid"].late_penalty == 1.2
