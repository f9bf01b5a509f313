"""Tests for labkit.grading.lms: Canvas's and Moodle's gradebook import CSVs.

Two oracles: the formats as the LMSs document them (headers written out literally below,
from the pages cited), and nbgrader's gradebook read with ``nbgrader.api.Gradebook`` for the
scores. The course is the toy class of ``conftest.build_graded_class`` (ann 3 of 4 on time,
cid zeroed for lateness, bob and eve 0, dee handed in nothing), graded once per run.
"""

import csv
from pathlib import Path

import pytest

from labkit.cli import main
from labkit.grading import CourseError
from labkit.grading.export import GradeRow
from labkit.grading.lms import canvas_table, export_lms

# https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807
# and https://teaching.resources.osu.edu/toolsets/carmencanvas/guides/calculating-final-grades/import-csv-file-carmen-grades
# (the gradebook export's layout, which the import reads): the student columns, then one per
# assignment titled "Name (id)", and a "Points Possible" row under the header
CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
# https://docs.moodle.org/en/Grade_import: map "Email address" to useremail or "ID number" to
# useridnumber; the column names are those of Moodle's own grade export
MOODLE_EMAIL, MOODLE_IDNUMBER = "Email address", "ID number"


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def _gradebook(root: Path) -> tuple[dict[str, float], float]:
    """nbgrader's score per student on the toy lab (less its late penalty, 0 when not handed
    in, as ``nbgrader export`` counts), and the lab's maximum."""
    from nbgrader.api import Gradebook, MissingEntry

    scores = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student in gb.students:
            try:
                sub = gb.find_submission("toy", student.id)
                scores[student.id] = max(0.0, sub.score - sub.late_submission_penalty)
            except MissingEntry:
                scores[student.id] = 0.0
        return scores, gb.find_assignment("toy").max_score


def _set_students(root: Path, **fields: dict[str, str]) -> None:
    """What `nbgrader db student import` does with these students.csv columns."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for sid, values in fields.items():
            gb.update_or_create_student(sid, **values)


def test_canvas_export_is_canvas_import_format_with_gradebook_scores(graded_class):
    """Does grades-canvas.csv have Canvas's header, the Points Possible row, ann's row with her
    Canvas ID and SIS ids, and every student's nbgrader score in the lab's column?"""
    _set_students(
        graded_class, ann={"first_name": "Ann", "last_name": "Lee", "lms_user_id": "4711"}
    )
    path = export_lms(graded_class, lms="canvas", assignment_ids={"toy": "123"})
    assert path == graded_class / "grades-canvas.csv"
    table = _read(path)
    scores, max_score = _gradebook(graded_class)
    assert table[0] == [*CANVAS_HEADER, "toy (123)"]
    assert table[1][:5] == ["Points Possible", "", "", "", ""]
    assert float(table[1][5]) == max_score == 4.0
    assert table[2] == ["Lee, Ann", "4711", "ann", "ann", "", "3"]
    assert {r[2]: float(r[5]) for r in table[2:]} == scores
    assert scores == {"ann": 3.0, "bob": 0.0, "cid": 0.0, "dee": 0.0, "eve": 0.0}
    assert table[3][:4] == ["bob", "", "bob", "bob"]  # no name: the id; no Canvas ID: empty
    assert ["Dale, Dee", "", "dee", "dee", "", "0"] in table
    # without an id the column is the lab's name, a title Canvas matches or creates
    assert _read(export_lms(graded_class, lms="canvas"))[0] == [*CANVAS_HEADER, "toy"]


def test_moodle_export_identifies_by_email_or_id_number(graded_class, tmp_path):
    """With no emails in the roster, is the identifier Moodle's "ID number" (the student id);
    once every student has one, "Email address"; and are the scores nbgrader's?"""
    scores, _ = _gradebook(graded_class)
    table = _read(export_lms(graded_class, lms="moodle"))
    assert table[0] == [MOODLE_IDNUMBER, "First name", "Last name", "toy"]
    assert {r[0]: float(r[3]) for r in table[1:]} == scores
    assert ["dee", "Dee", "Dale", "0"] in table
    _set_students(graded_class, **{s: {"email": f"{s}@uni.example"} for s in scores})
    path = export_lms(graded_class, lms="moodle", out=tmp_path / "m.csv")
    table = _read(path)
    assert table[0] == [MOODLE_EMAIL, "First name", "Last name", "toy"]
    assert table[1] == ["ann@uni.example", "", "", "3"]
    assert {r[0].split("@")[0]: float(r[3]) for r in table[1:]} == scores
    forced = _read(export_lms(graded_class, lms="moodle", identifier="idnumber"))
    assert forced[0][0] == MOODLE_IDNUMBER and forced[1][0] == "ann"


def test_moodle_by_email_names_students_without_one(graded_class):
    """When only some students have an email, is the export one CourseError that names the
    others and says to add them to students.csv, and is no file written?"""
    _set_students(graded_class, ann={"email": "ann@uni.example"}, bob={"email": "b@uni.example"})
    with pytest.raises(
        CourseError, match=r"3 student\(s\) have none: cid, dee, eve\. .*students\.csv"
    ):
        export_lms(graded_class, lms="moodle")
    assert not (graded_class / "grades-moodle.csv").exists()


def test_cli_writes_the_canvas_csv(graded_class, tmp_path, capsys):
    """Does `labkit course export --format canvas --canvas-id toy=123` write the Canvas CSV,
    and is a malformed --canvas-id an exit code 2 with what to pass?"""
    root = ["--root", str(graded_class)]
    assert main(["course", "export", "--format", "canvas", "--canvas-id", "toy=123", *root]) == 0
    assert f"wrote {graded_class / 'grades-canvas.csv'}" in capsys.readouterr().out
    assert _read(graded_class / "grades-canvas.csv")[0][-1] == "toy (123)"
    assert main(["course", "export", "--format", "canvas", "--canvas-id", "toy", *root]) == 2
    assert "LAB=NUMBER" in capsys.readouterr().err
    out = tmp_path / "moodle.csv"
    assert main(["course", "export", "--format", "moodle", "--out", str(out), *root]) == 0
    assert _read(out)[0][0] == MOODLE_IDNUMBER


def _row(sid: str, lab: str, total: float) -> GradeRow:
    return GradeRow(
        sid, None, None, None, lab, "submitted", None, total, 4, 0, 0, 0, total, 4, False
    )


@pytest.mark.parametrize(
    "ids, message",
    [
        ({"lab02": "5"}, r"ids given for \['lab02'\].*expected labs from \['lab01'\]"),
        ({"lab01": "https://x/assignments/5"}, r"must be numbers.*lab01='https://x/assignments/5'"),
    ],
)
def test_canvas_assignment_ids_are_checked(ids, message):
    """Is an id for an unknown lab, or one that is not a number, a CourseError saying which?"""
    roster = {"ann": {"first_name": "", "last_name": "", "email": "", "lms_user_id": ""}}
    assert canvas_table([_row("ann", "lab01", 2.5)], roster)[2][-1] == "2.5"
    with pytest.raises(CourseError, match=message):
        canvas_table([_row("ann", "lab01", 2.5)], roster, assignment_ids=ids)


def test_unknown_format_and_empty_roster(graded_class, tmp_path):
    """Are an unknown format and a course without students CourseErrors saying what to do?"""
    with pytest.raises(CourseError, match=r"unknown LMS format 'blackboard'; expected one of"):
        export_lms(graded_class, lms="blackboard")
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}"):
        pass  # a gradebook with no students
    with pytest.raises(CourseError, match=r"no students in .*--students students\.csv"):
        export_lms(tmp_path, lms="canvas")
