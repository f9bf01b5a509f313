"""Tests for labkit.grading.instance: a term's course, its students, records and status."""

import json
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest

from labkit.grading import CourseError, fill_solutions, lab_scores
from labkit.grading.instance import (
    course_status,
    init_course,
    read_record,
    read_students,
    record_path,
    write_record,
)
from tests.grading.conftest import make_toy_course, nbgrader_api, shared_build

REPO = Path(__file__).resolve().parents[2]
STUDENTS = (
    "id,first_name,last_name,email\n"
    "ann,Ann,Lee,ann@uni.example\n"
    "bob,Bob,Ng,\n"
    "\n"
    "cid,Cid,Ortiz,cid@uni.example\n"
    "dan,Dan,Roe,\n"
)


def _csv(folder: Path, text: str, name: str = "students.csv") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _students(root: Path) -> set[tuple]:
    """(id, last name, first name, email, LMS id) of each student, as nbgrader's gradebook
    (what `nbgrader db student list` prints) holds them."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {(s.id, s.last_name, s.first_name, s.email, s.lms_user_id) for s in gb.students}


def _init(work: Path) -> dict:
    """``init_course(work/course)`` from the toy kit ``work/kit``, with STUDENTS."""
    make_toy_course(work / "kit")
    return {
        "returned": str(
            init_course(work / "course", kit=work / "kit", students_csv=_csv(work, STUDENTS))
        )
    }


@pytest.fixture
def inited(tmp_path: Path, tmp_path_factory) -> Path:
    """A copy of the kit and the course ``_init`` made (once per run), for a test to change."""
    built, _ = shared_build(tmp_path_factory, "instance-course", _init)
    return Path(shutil.copytree(built, tmp_path / "work"))


def test_init_makes_a_course_that_nbgrader_knows(tmp_path_factory):
    """Does init copy the kit, release the lab, and leave a gradebook whose students and labs
    (nbgrader's Gradebook: what `nbgrader db student list` and `db assignment list` show)
    are the CSV's and the kit's?"""
    from nbgrader.api import Gradebook

    work, built = shared_build(tmp_path_factory, "instance-course", _init)
    dest, kit = work / "course", work / "kit"
    assert built["returned"] == str(dest)
    assert (dest / "nbgrader_config.py").read_bytes() == (kit / "nbgrader_config.py").read_bytes()
    assert (dest / "solutions/toy/toy.ipynb").read_bytes() == (
        kit / "solutions/toy/toy.ipynb"
    ).read_bytes()
    release = (dest / "labs/toy/toy.ipynb").read_text()
    assert "raise NotImplementedError" in release and "add_one(-5)" not in release
    assert (dest / "submitted").is_dir() and not any((dest / "submitted").iterdir())
    assert _students(dest) == {
        ("ann", "Lee", "Ann", "ann@uni.example", None),
        ("bob", "Ng", "Bob", None, None),
        ("cid", "Ortiz", "Cid", "cid@uni.example", None),
        ("dan", "Roe", "Dan", None, None),
    }
    with Gradebook(f"sqlite:///{dest / 'gradebook.db'}") as gb:
        assert [(a.name, a.duedate) for a in gb.assignments] == [("toy", None)]
    assert not (kit / "gradebook.db").exists(), "the kit got a gradebook"


def test_init_refuses_an_existing_course_unless_asked(inited):
    """Is a folder that is not empty refused, and does overwrite renew the kit's files and
    students while keeping the submissions?"""
    dest, kit = inited / "course", inited / "kit"
    submission = dest / "submitted/ann/toy/toy.ipynb"
    submission.parent.mkdir(parents=True)
    submission.write_text("{}")
    with pytest.raises(CourseError, match=r"is not empty .*--overwrite"):
        init_course(dest, kit=kit)
    source = kit / "solutions/toy/toy.ipynb"
    source.write_text(source.read_text().replace("Learning goals: add one.", "Goals: add 1."))
    init_course(
        dest,
        kit=kit,
        students_csv=_csv(inited, "id,last_name\neve,Roe\n", "more.csv"),
        overwrite=True,
    )
    assert "Goals: add 1." in (dest / "labs/toy/toy.ipynb").read_text()
    assert submission.read_text() == "{}"
    assert {s[0] for s in _students(dest)} == {"ann", "bob", "cid", "dan", "eve"}
    with pytest.raises(CourseError, match="is the kit itself"):
        init_course(kit, kit=kit, overwrite=True)


def test_init_checks_everything_before_writing(toy_course, tmp_path_factory):
    """Do a bad CSV, an unknown lab and a folder that is no kit fail before dest exists?"""
    tmp_path = tmp_path_factory.mktemp("elsewhere")
    dest = tmp_path / "course"
    with pytest.raises(CourseError, match="line 3: id 'a b' cannot be a folder name"):
        init_course(dest, kit=toy_course, students_csv=_csv(tmp_path, "id\nann\na b\n"))
    with pytest.raises(CourseError, match=r"unknown lab\(s\) \['nope'\]; expected .*\['toy'\]"):
        init_course(dest, kit=toy_course, labs=["nope"])
    with pytest.raises(CourseError, match="is not a lab kit"):
        init_course(dest, kit=tmp_path)
    assert not dest.exists()


def test_init_from_the_repository_takes_its_committed_release(tmp_path):
    """With the default kit (this repository), is a lab's labs/ notebook the committed one?"""
    lab = "lab04_weighted_loss"
    init_course(tmp_path / "course", labs=[lab])
    assert (tmp_path / "course/labs" / lab / f"{lab}.ipynb").read_bytes() == (
        REPO / "labs" / lab / f"{lab}.ipynb"
    ).read_bytes()
    assert sorted(os.listdir(tmp_path / "course/solutions")) == [lab]


def test_read_students_accepts_a_spreadsheet_export(tmp_path):
    """Are a byte-order mark, reordered or missing optional columns, spaces and blank lines
    fine?"""
    path = tmp_path / "s.csv"
    path.write_bytes("\ufeffemail, id\r\n a@x.org , s-01 \r\n\r\n,s.02\r\n".encode())
    assert read_students(path) == [{"email": "a@x.org", "id": "s-01"}, {"email": "", "id": "s.02"}]


def test_read_students_keeps_the_lms_user_id(tmp_path):
    """Is nbgrader's lms_user_id column (Canvas's user id, for the Canvas export) accepted?"""
    path = _csv(tmp_path, "id,lms_user_id\nann,4711\nbob,\n")
    assert read_students(path) == [
        {"id": "ann", "lms_user_id": "4711"},
        {"id": "bob", "lms_user_id": ""},
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("name,email\nann,a@x\n", r"line 1: header 'name,email'; expected columns id,"),
        ("id,age\nann,20\n", r"line 1: header 'id,age'"),
        ("id,id\nann,ann\n", r"line 1: .*each at most once"),
        ("id,email\nann\n", r"line 2: 1 fields, expected 2"),
        ("id\nann\nbob\nAnn\n", r"line 4: id 'Ann' is already on line 2"),
        (
            "id\n../etc\n.hidden\n-x\n",
            r"3 problem\(s\).*line 2: id '../etc'.*line 3: id '.hidden'"
            r".*line 4: id '-x'",
        ),
    ],
)
def test_read_students_names_the_line(tmp_path, text, message):
    """Is each kind of malformed students CSV refused with the line it is on?"""
    with pytest.raises(CourseError, match=message):
        read_students(_csv(tmp_path, text))


def test_records_round_trip_through_the_documented_format(tmp_path):
    """Does write_record write exactly the four documented keys, and read_record read them?"""
    finished = datetime(2025, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    path = write_record(
        tmp_path,
        "toy",
        "ann",
        status="failed",
        seconds=12.5,
        reason="timed out after 10 s",
        finished=finished,
    )
    assert path == tmp_path / "autograded/.labkit/toy/ann.json"
    assert json.loads(path.read_text()) == {
        "status": "failed",
        "reason": "timed out after 10 s",
        "seconds": 12.5,
        "finished": "2025-03-01T12:00:00+00:00",
    }
    record = read_record(tmp_path, "toy", "ann")
    assert (record.status, record.reason, record.seconds, record.finished) == (
        "failed",
        "timed out after 10 s",
        12.5,
        finished,
    )
    assert read_record(tmp_path, "toy", "bob") is None
    assert os.listdir(path.parent) == ["ann.json"], "a temporary file was left behind"


def test_a_failed_write_leaves_the_old_record(tmp_path, monkeypatch):
    """If the process dies before the rename, is the previous record still whole?"""
    write_record(tmp_path, "toy", "ann", status="graded", seconds=3)

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_record(tmp_path, "toy", "ann", status="failed", seconds=9, reason="x")
    monkeypatch.undo()
    assert read_record(tmp_path, "toy", "ann").status == "graded"


def test_records_refuse_what_is_not_one(tmp_path):
    """Are a bad status, a name that leaves the folder and a malformed file refused?"""
    with pytest.raises(CourseError, match="expected 'graded' or 'failed'"):
        write_record(tmp_path, "toy", "ann", status="ok", seconds=1)
    with pytest.raises(CourseError, match=r"'\.\./ann' is not a plain name"):
        record_path(tmp_path, "toy", "../ann")
    path = record_path(tmp_path, "toy", "bob")
    path.parent.mkdir(parents=True)
    path.write_text('{"status": "graded", "seconds": 1}')
    with pytest.raises(CourseError, match=r"bob.json is not a grading record \(KeyError"):
        read_record(tmp_path, "toy", "bob")
    path.write_text('{"status": "done", "reason": "", "seconds": 1, "finished": "2025-03-01"}')
    with pytest.raises(CourseError, match="status 'done' is neither"):
        read_record(tmp_path, "toy", "bob")


def test_status_agrees_with_nbgrader(inited):
    """After `nbgrader autograde` of one student, is each student's state, time and score
    what the gradebook, the submitted/ folder and the grading records say?"""
    root = inited / "course"
    release = nbformat.read(root / "labs/toy/toy.ipynb", as_version=4)
    good = fill_solutions(release, nbformat.read(root / "solutions/toy/toy.ipynb", as_version=4))
    for student, nb in {"ann": good, "bob": release, "cid": good}.items():
        (root / "submitted" / student / "toy").mkdir(parents=True)
        nbformat.write(nb, root / "submitted" / student / "toy/toy.ipynb")
    (root / "submitted/cid/toy/timestamp.txt").write_text("2025-03-01 12:00:00.000000 UTC")
    nbgrader_api(root, "autograde", "toy", "ann")  # nbgrader's autograde, in this process
    write_record(root, "toy", "bob", status="failed", seconds=600.0, reason="timed out | 600 s")
    rows = {r.student: r for r in course_status(root)}
    assert {s: r.state for s, r in rows.items()} == {
        "ann": "graded",
        "bob": "failed",
        "cid": "submitted",
        "dan": "missing",
    }
    assert (rows["ann"].score, rows["ann"].max_score) == (lab_scores(root, "toy")["ann"].auto, 2.0)
    assert rows["bob"].record.reason == "timed out | 600 s" and rows["bob"].score is None
    assert rows["cid"].submitted == datetime(2025, 3, 1, 12, tzinfo=timezone.utc)
    assert rows["dan"].submitted is None and rows["dan"].record is None
    mtime = (root / "submitted/ann/toy/toy.ipynb").stat().st_mtime
    assert rows["ann"].submitted.timestamp() == pytest.approx(mtime)


def test_status_survives_a_broken_record(inited, tmp_path):
    """Does an unreadable record show as a failure for its student only?"""
    root = inited / "course"
    path = record_path(root, "toy", "ann")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    rows = {r.student: r for r in course_status(root)}
    assert rows["ann"].state == "failed"
    assert rows["ann"].record.reason.startswith("unreadable grading record")
    assert rows["bob"].state == "missing"
    with pytest.raises(CourseError, match="has no gradebook.db"):
        course_status(tmp_path)
