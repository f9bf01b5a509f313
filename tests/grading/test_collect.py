"""Tests for labkit.grading.collect: LMS downloads into submitted/, as nbgrader finds them."""

import os
import shutil
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from labkit.grading import CourseError, fill_solutions, lab_scores, replace_in_cell
from labkit.grading.cli import format_status
from labkit.grading.collect import collect_submissions
from labkit.grading.instance import course_status, init_course
from tests.grading.conftest import make_toy_course, nbgrader_api, shared_build

STUDENTS = "id,first_name,last_name\nann,Ann,Lee\nbob,Bob,Ng\n1001,Lee,Ann\n2001,Dan,Roe\n"


def _init(work: Path) -> None:
    """A course made with init_course: labs toy and toy2, students ann, bob, 1001 (Canvas)
    and 2001 (Moodle)."""
    kit = make_toy_course(work / "kit")
    shutil.copytree(kit / "solutions/toy", kit / "solutions/toy2")
    os.rename(kit / "solutions/toy2/toy.ipynb", kit / "solutions/toy2/toy2.ipynb")
    (work / "students.csv").write_text(STUDENTS)
    init_course(work / "course", kit=kit, students_csv=work / "students.csv")


@pytest.fixture
def course(tmp_path_factory) -> Path:
    """A copy of the course ``_init`` made (once per run) for each test."""
    built, _ = shared_build(tmp_path_factory, "collect-course", _init)
    root = tmp_path_factory.mktemp("course") / "course"
    shutil.copytree(built / "course", root)
    return root


def _notebooks(root: Path) -> dict[str, bytes]:
    """The solution, the blank release and a wrong answer of the toy lab, as files."""
    release = nbformat.read(root / "labs/toy/toy.ipynb", as_version=4)
    good = fill_solutions(release, nbformat.read(root / "solutions/toy/toy.ipynb", as_version=4))
    wrong = replace_in_cell(good, "add_one", "x + 1", "x + 2")
    return {
        k: nbformat.writes(nb).encode()
        for k, nb in {"good": good, "blank": release, "wrong": wrong}.items()
    }


def _files(folder: Path, files: dict[str, bytes | str]) -> Path:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return folder


def _zip(path: Path, files: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _submitted(root: Path, *, stamps: bool = False) -> dict[str, bytes]:
    """The files in ``submitted/`` (the ``timestamp.txt`` collect writes beside every
    notebook only with ``stamps``)."""
    base = root / "submitted"
    return {
        p.relative_to(base).as_posix(): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and (stamps or p.name != "timestamp.txt")
    }


def test_every_layout_lands_where_nbgrader_autograde_grades_it(course, tmp_path):
    """Do nbgrader's, the plain, Canvas and Moodle layouts end up in submitted/ so that
    `nbgrader autograde` grades each student, with the LMS's time in the gradebook, or the
    file's where the LMS gives none (each written to timestamp.txt, where nbgrader reads it)?"""
    nb = _notebooks(course)
    source = _files(
        tmp_path / "download",
        {
            "ann/toy.ipynb": nb["good"],
            "bob/toy/toy.ipynb": nb["blank"],
            "bob/toy/timestamp.txt": "2025-03-01 09:30:00 UTC",
            "leeann_1001_70001_toy.ipynb": nb["good"],
            "Dan Roe_2001_assignsubmission_file_/toy.ipynb": nb["wrong"],
            "ann/.ipynb_checkpoints/toy-checkpoint.ipynb": nb["blank"],
            "__MACOSX/ann/._toy.ipynb": "junk",
        },
    )
    report = collect_submissions(course, source)
    assert report.problems == [] and report.skipped == []
    assert sorted((p.student, p.lab) for p in report.placed) == [
        ("1001", "toy"),
        ("2001", "toy"),
        ("ann", "toy"),
        ("bob", "toy"),
    ]
    mtime = {  # the file's time, where the download has no timestamp.txt
        who: datetime.fromtimestamp((source / name).stat().st_mtime, timezone.utc)
        for who, name in [
            ("ann", "ann/toy.ipynb"),
            ("1001", "leeann_1001_70001_toy.ipynb"),
            ("2001", "Dan Roe_2001_assignsubmission_file_/toy.ipynb"),
        ]
    }
    assert _submitted(course, stamps=True) == {
        "1001/toy/toy.ipynb": nb["good"],
        "2001/toy/toy.ipynb": nb["wrong"],
        "ann/toy/toy.ipynb": nb["good"],
        "bob/toy/toy.ipynb": nb["blank"],
        "bob/toy/timestamp.txt": b"2025-03-01 09:30:00.000000 UTC",
        **{
            f"{who}/toy/timestamp.txt": f"{t:%Y-%m-%d %H:%M:%S.%f} UTC".encode()
            for who, t in mtime.items()
        },
    }
    nbgrader_api(course, "autograde", "toy", "*")  # nbgrader's autograde, in this process
    assert {s: v.auto for s, v in lab_scores(course, "toy").items()} == {
        "ann": 2.0,
        "bob": 0.0,
        "1001": 2.0,
        "2001": 0.0,
    }
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert gb.find_submission("toy", "bob").timestamp == datetime(2025, 3, 1, 9, 30)
        for who, t in mtime.items():
            assert gb.find_submission("toy", who).timestamp == t.replace(tzinfo=None), who
    assert (source / "ann/toy.ipynb").read_bytes() == nb["good"], "the source was changed"


def test_canvas_resubmissions_keep_the_newest(course, tmp_path):
    """From a Canvas zip with -1/-2 resubmissions, is only the newest placed, the others
    reported as older, and two labs told apart by name?"""
    nb = _notebooks(course)
    archive = _zip(
        tmp_path / "canvas.zip",
        {
            "leeann_1001_70001_toy.ipynb": nb["blank"],
            "leeann_late_1001_70107_toy-2.ipynb": nb["good"],
            "leeann_1001_70050_toy-1.ipynb": nb["wrong"],
            "leeann_1001_70200_toy2.ipynb": nb["wrong"],
            "leeann_1001_70201_report.pdf": b"%PDF",
        },
    )
    report = collect_submissions(course, archive)
    assert {(p.lab, p.source) for p in report.placed} == {
        ("toy", f"{archive}:leeann_late_1001_70107_toy-2.ipynb"),
        ("toy2", f"{archive}:leeann_1001_70200_toy2.ipynb"),
    }
    assert _submitted(course) == {
        "1001/toy/toy.ipynb": nb["good"],
        "1001/toy2/toy2.ipynb": nb["wrong"],
    }
    assert sorted(p.path.rsplit(":", 1)[1] for p in report.skipped) == [
        "leeann_1001_70001_toy.ipynb",
        "leeann_1001_70050_toy-1.ipynb",
    ]
    assert all("older than" in p.reason for p in report.skipped)
    assert [(p.path.rsplit(":", 1)[1], p.reason) for p in report.problems] == [
        ("leeann_1001_70201_report.pdf", "not a notebook (expected <lab>.ipynb)")
    ]


@pytest.mark.parametrize(
    "evil",
    [
        "../escape.ipynb",
        "/tmp/abs/toy.ipynb",
        "ann/../../escape.ipynb",
        "C:\\temp\\toy.ipynb",
        "ann\\..\\..\\escape.ipynb",
    ],
)
def test_a_zip_that_leaves_its_folder_is_refused_whole(course, tmp_path, evil):
    """Is an archive with an absolute or '..' entry refused before anything is placed?"""
    archive = _zip(tmp_path / "lms.zip", {"ann/toy.ipynb": _notebooks(course)["good"], evil: "x"})
    with pytest.raises(CourseError, match="leaves the archive .*refusing all of it"):
        collect_submissions(course, archive)
    assert _submitted(course) == {}
    assert not any(
        p.name == "escape.ipynb" for d in (course.parent, tmp_path.parent) for p in d.iterdir()
    )


def test_a_zip_over_the_size_cap_is_refused(course, tmp_path):
    """Is a small archive that unpacks to more than max_bytes (a zip bomb) refused?"""
    archive = _zip(tmp_path / "bomb.zip", {"ann/toy.ipynb": b"0" * 5_000_000})
    assert archive.stat().st_size < 50_000
    with pytest.raises(CourseError, match=r"unpacks to 5,000,000 bytes, over max_bytes=1,000,000"):
        collect_submissions(course, archive, max_bytes=1_000_000)
    report = collect_submissions(course, archive, max_file_bytes=1_000_000)
    assert [p.reason for p in report.problems] == [
        "5,000,000 bytes, more than max_file_bytes=1,000,000"
    ]
    assert _submitted(course) == {}


def test_what_cannot_be_placed_is_reported_with_why(course, tmp_path):
    """Are an unknown student, an unknown lab, a non-notebook, a notebook with no student,
    two different candidates and a link each reported, and nothing of them placed?"""
    nb = _notebooks(course)
    source = _files(
        tmp_path / "download",
        {
            "zed/toy.ipynb": nb["good"],
            "ann/lab99.ipynb": nb["good"],
            "ann/notes.txt": "hi",
            "toy.ipynb": nb["good"],
            "bob/toy.ipynb": nb["good"],
            "bob/toy/toy.ipynb": nb["wrong"],
        },
    )
    os.symlink(course / "gradebook.db", source / "ann/toy.ipynb")
    report = collect_submissions(course, source)
    reasons = {Path(p.path).relative_to(source).as_posix(): p.reason for p in report.problems}
    assert reasons.keys() == {
        "zed/toy.ipynb",
        "ann/lab99.ipynb",
        "ann/notes.txt",
        "toy.ipynb",
        "bob/toy.ipynb",
        "bob/toy/toy.ipynb",
        "ann/toy.ipynb",
    }
    assert reasons["zed/toy.ipynb"].startswith("unknown student 'zed': not in the gradebook")
    assert reasons["ann/lab99.ipynb"].startswith("unknown lab 'lab99'")
    assert reasons["ann/notes.txt"].startswith("not a notebook")
    assert reasons["toy.ipynb"].startswith("no student folder")
    assert reasons["bob/toy.ipynb"].startswith("two candidates for bob/toy")
    assert str(source / "bob/toy/toy.ipynb") in reasons["bob/toy.ipynb"]
    assert reasons["ann/toy.ipynb"].startswith("a link")
    assert report.placed == [] and _submitted(course) == {}


def test_an_older_submission_never_replaces_a_newer_one(course, tmp_path):
    """Does a later download with an older time leave the submission in place, a newer one
    replace it (the old one kept aside), and the same one change nothing?"""
    nb = _notebooks(course)

    def download(name: str, body: bytes, when: str) -> Path:
        return _files(tmp_path / name, {"ann/toy/toy.ipynb": body, "ann/toy/timestamp.txt": when})

    first = collect_submissions(course, download("a", nb["wrong"], "2025-03-02 10:00:00 UTC"))
    assert len(first.placed) == 1
    older = collect_submissions(course, download("b", nb["blank"], "2025-03-01 10:00:00 UTC"))
    assert older.placed == [] and "older than the submission in place" in older.skipped[0].reason
    assert _submitted(course)["ann/toy/toy.ipynb"] == nb["wrong"]
    newer = collect_submissions(course, download("c", nb["good"], "2025-03-03 10:00:00+01:00"))
    assert [p.submitted for p in newer.placed] == [datetime(2025, 3, 3, 9, tzinfo=timezone.utc)]
    assert _submitted(course)["ann/toy/toy.ipynb"] == nb["good"]
    [kept] = (course / ".labkit/replaced/ann/toy").iterdir()
    assert (kept / "toy.ipynb").read_bytes() == nb["wrong"]
    again = collect_submissions(course, tmp_path / "c")
    assert again.placed == [] and [p.student for p in again.unchanged] == ["ann"]
    assert not list((course / "submitted/ann").glob(".*")), "a temporary folder was left"


def test_without_lms_times_the_file_times_decide(course, tmp_path):
    """Without timestamp.txt, is a zip entry older than the file in place passed over, and is
    the file's time the one written for nbgrader?"""
    nb = _notebooks(course)
    first = _files(tmp_path / "a", {"ann/toy.ipynb": nb["good"]}) / "ann/toy.ipynb"
    collect_submissions(course, first.parents[1])
    when = datetime.fromtimestamp(first.stat().st_mtime, timezone.utc)
    old = tmp_path / "old.zip"
    with zipfile.ZipFile(old, "w") as zf:
        zf.writestr(zipfile.ZipInfo("ann/toy.ipynb", date_time=(2020, 1, 1, 0, 0, 0)), nb["wrong"])
    assert collect_submissions(course, old).skipped[0].reason.startswith("older than")
    assert _submitted(course)["ann/toy/toy.ipynb"] == nb["good"]
    assert (
        _submitted(course, stamps=True)["ann/toy/timestamp.txt"]
        == f"{when:%Y-%m-%d %H:%M:%S.%f} UTC".encode()
    )


def test_labs_not_asked_for_are_left(course, tmp_path):
    """With labs=['toy2'], are toy notebooks passed over and toy2 placed?"""
    nb = _notebooks(course)
    source = _files(tmp_path / "d", {"ann/toy.ipynb": nb["good"], "ann/toy2.ipynb": nb["good"]})
    report = collect_submissions(course, source, labs=["toy2"])
    assert [(p.student, p.lab) for p in report.placed] == [("ann", "toy2")]
    assert [p.reason for p in report.skipped] == ["lab toy was not asked for"]
    with pytest.raises(CourseError, match=r"unknown lab\(s\) \['toy3'\]"):
        collect_submissions(course, source, labs=["toy3"])


def test_collect_needs_a_course_and_a_download(course, tmp_path):
    """Are a folder without a gradebook and a source that is neither folder nor zip refused?"""
    with pytest.raises(CourseError, match="has no gradebook.db; make the course with"):
        collect_submissions(tmp_path, tmp_path)
    (tmp_path / "notes.txt").write_text("not a zip")
    with pytest.raises(CourseError, match="neither a folder nor a zip file"):
        collect_submissions(course, tmp_path / "notes.txt")


MOODLE_DAN = "Dan Roe_2001_assignsubmission_file_"


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
@pytest.mark.parametrize(
    "path, owner",
    [
        ("ann/bob/toy.ipynb", "ann"),
        ("ann/bob/toy/toy.ipynb", "ann"),
        (f"ann/{MOODLE_DAN}/toy.ipynb", "ann"),
        (f"{MOODLE_DAN}/bob/toy.ipynb", "2001"),
        ("ann/bob/deeper/still/toy.ipynb", "ann"),
    ],
)
def test_a_folder_named_for_a_classmate_files_under_its_owner(
    course, tmp_path, path, owner, as_zip
):
    """Is a notebook in a folder named for another student, inside a student's own folder,
    filed under the owner of the top-level folder, never under the one it names? (The
    earlier collect took the innermost folder: ann's upload went to bob or 2001.)"""
    nb = _notebooks(course)
    files = {path: nb["wrong"], "leeann_1001_70001_toy.ipynb": nb["good"]}  # and a bystander
    source = _zip(tmp_path / "lms.zip", files) if as_zip else _files(tmp_path / "download", files)
    report = collect_submissions(course, source)
    assert report.problems == [] and report.skipped == []
    assert _submitted(course) == {
        f"{owner}/toy/toy.ipynb": nb["wrong"],
        "1001/toy/toy.ipynb": nb["good"],
    }


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_a_canvas_name_inside_a_students_folder_names_no_one(course, tmp_path, as_zip):
    """Is a Canvas-shaped file name in ann's folder, naming student 1001 and a newer
    submission id, an unknown lab of ann's, not 1001's newest submission? (The earlier collect
    placed it over 1001's own.)"""
    nb = _notebooks(course)
    files = {
        "leeann_1001_70001_toy.ipynb": nb["good"],
        "ann/leeann_1001_79999_toy.ipynb": nb["wrong"],
    }
    source = _zip(tmp_path / "lms.zip", files) if as_zip else _files(tmp_path / "download", files)
    report = collect_submissions(course, source)
    assert _submitted(course) == {"1001/toy/toy.ipynb": nb["good"]}
    assert [p.reason.split(":")[0] for p in report.problems] == [
        "unknown lab 'leeann_1001_79999_toy'"
    ]


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
@pytest.mark.parametrize(
    "path, owner",
    [
        ("ann/bob/toy.ipynb", "ann"),  # ann alone in the download: a student, not a wrapper
        (f"{MOODLE_DAN}/bob/toy.ipynb", "2001"),
        ("submissions/ann/toy.ipynb", "ann"),  # a zip of a folder: the wrapper is stepped into
        ("submissions/ann/bob/toy.ipynb", "ann"),
        (f"submissions/{MOODLE_DAN}/bob/toy.ipynb", "2001"),
        ("submissions/leeann_1001_70001_toy.ipynb", "1001"),
        ("submissions/inner/ann/toy.ipynb", None),  # stepped into once: 'inner' is no student
    ],
)
def test_a_single_folder_is_a_wrapper_unless_it_is_a_students(
    course, tmp_path, path, owner, as_zip
):
    """Is a download that is one folder stepped into once (macOS's __MACOSX beside it left
    alone), unless the folder is a gradebook student's or a Moodle submission?"""
    nb = _notebooks(course)
    files = {path: nb["wrong"], f"__MACOSX/{path.split('/')[0]}/._toy.ipynb": "junk"}
    source = _zip(tmp_path / "lms.zip", files) if as_zip else _files(tmp_path / "download", files)
    report = collect_submissions(course, source)
    if owner is None:
        assert _submitted(course) == {}
        assert [p.reason.split(":")[0] for p in report.problems] == ["unknown student 'inner'"]
    else:
        assert report.problems == []
        assert _submitted(course) == {f"{owner}/toy/toy.ipynb": nb["wrong"]}


def _history(root: Path) -> dict[str, tuple[datetime, bytes]]:
    """The history's files (student/lab/name) with their modification times and contents."""
    base = root / "submitted_history"
    return {
        p.relative_to(base).as_posix(): (
            datetime.fromtimestamp(p.stat().st_mtime, timezone.utc),
            p.read_bytes(),
        )
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


def _timed(folder: Path, files: dict[str, tuple[bytes, datetime]]) -> Path:
    """A download whose files carry the given modification times (no LMS timestamps)."""
    _files(folder, {name: body for name, (body, _) in files.items()})
    for name, (_, when) in files.items():
        os.utime(folder / name, (when.timestamp(), when.timestamp()))
    return folder


def test_every_resubmission_is_kept_and_counted(course, tmp_path):
    """With three versions of ann's lab and one of bob's, is the newest placed, the two older
    kept in the history with their times, status counting 3 and 1; does the same download
    again change nothing, and a fourth version move the previous newest into the history?"""
    nb = _notebooks(course)
    good = nbformat.reads(nb["good"].decode(), as_version=4)
    fourth = nbformat.writes(replace_in_cell(good, "add_one", "x + 1", "x + 3")).encode()
    t = [
        datetime(2026, 12, 1, 10, 2, tzinfo=timezone.utc) + i * timedelta(hours=5) for i in range(4)
    ]
    versions = {
        "ann/toy.ipynb": (nb["blank"], t[0]),
        "ann/toy-1.ipynb": (nb["wrong"], t[1]),
        "ann/toy-2.ipynb": (nb["good"], t[2]),
        "bob/toy.ipynb": (nb["wrong"], t[1]),
    }
    first = collect_submissions(course, _timed(tmp_path / "a", versions))
    assert sorted(p.student for p in first.placed) == ["ann", "bob"]
    assert _submitted(course) == {"ann/toy/toy.ipynb": nb["good"], "bob/toy/toy.ipynb": nb["wrong"]}
    history = _history(course)
    assert sorted(history.values()) == [(t[0], nb["blank"]), (t[1], nb["wrong"])]
    assert sorted(history)[0].startswith("ann/toy/20261201T100200")
    assert sorted(p.path.name for p in first.kept) == sorted(n.split("/")[-1] for n in history)

    rows = {r.student: r for r in course_status(course, labs=["toy"])}
    assert (rows["ann"].versions, rows["ann"].first, rows["ann"].submitted) == (3, t[0], t[2])
    assert (rows["bob"].versions, rows["bob"].first) == (1, t[1])
    assert (rows["1001"].versions, rows["1001"].first) == (0, None)
    table = format_status(rows.values())
    assert "| 3 (first 2026-12-01 10:02) |" in table and "| 1 |" in table

    again = collect_submissions(course, tmp_path / "a")
    assert again.placed == [] and again.kept == [] and len(again.unchanged) == 2
    assert _history(course) == history

    later = collect_submissions(course, _timed(tmp_path / "b", {"ann/toy-3.ipynb": (fourth, t[3])}))
    assert [p.student for p in later.placed] == ["ann"]
    assert _submitted(course)["ann/toy/toy.ipynb"] == fourth
    assert sorted(_history(course).values()) == [
        (t[0], nb["blank"]),
        (t[1], nb["wrong"]),
        (t[2], nb["good"]),
    ]
    [ann] = [r for r in course_status(course, labs=["toy"]) if r.student == "ann"]
    assert (ann.versions, ann.first, ann.submitted) == (4, t[0], t[3])
