"""Tests for labkit.grading.autograde and the per-submission worker (_grade_one).

Grades come from nbgrader's own gradebook (``lab_scores``, ``attack_lab.submission_counts``
style queries), the oracle; the toy lab of ``conftest.write_toy_lab`` keeps each grading to
a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from labkit.grading import CourseError, fill_solutions, lab_scores, read_record
from labkit.grading._grade_one import check_submission
from labkit.grading.autograde import autograde, submitted_students
from labkit.grading.instance import init_course
from tests.grading.conftest import write_toy_lab

LAB = "toy"
FAST = {"timeout": 60, "memory_mb": 1500, "progress": False}


def _course(tmp_path: Path, students: list[str]) -> Path:
    kit = tmp_path / "kit"
    write_toy_lab(kit)
    (kit / "nbgrader_config.py").write_text(
        (Path(__file__).resolve().parents[2] / "nbgrader_config.py").read_text())
    table = tmp_path / "students.csv"
    table.write_text("id\n" + "".join(f"{s}\n" for s in students))
    return init_course(tmp_path / "course", kit=kit, students_csv=table, labs=[LAB])


def _hand_in(root: Path, student: str, kind: str) -> None:
    release = nbformat.read(root / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    source = nbformat.read(root / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    nb = {"right": lambda: fill_solutions(release, source), "blank": lambda: release}[kind]()
    if kind == "right" and student.endswith("3"):  # visible test passes, hidden one fails
        nb.cells[1].source = "def add_one(x):\n    return 2 if x == 1 else 0\n"
    folder = root / "submitted" / student / LAB
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{LAB}.ipynb")


def _scores(root: Path) -> dict[str, float]:
    return {s: v.auto for s, v in lab_scores(root, LAB).items()}


def _submissions(root: Path) -> dict[str, int]:
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        ids = [s.student.id for s in gb.find_assignment(LAB).submissions]
    return {s: ids.count(s) for s in ids}


@pytest.fixture(scope="module")
def class_of_20(tmp_path_factory):
    root = _course(tmp_path_factory.mktemp("twenty"), [f"s{i:02d}" for i in range(20)])
    for i in range(20):
        _hand_in(root, f"s{i:02d}", "right" if i % 2 == 0 else "blank")
    return root


def test_parallel_grades_equal_serial_grades(class_of_20):
    """Do 20 students graded with two jobs get the grades serial grading gave them, with one
    gradebook submission each after the regrade?"""
    serial = autograde(class_of_20, LAB, jobs=1, **FAST)
    serial_scores = _scores(class_of_20)
    parallel = autograde(class_of_20, LAB, jobs=2, **FAST)
    assert [o.status for o in serial + parallel] == ["graded"] * 40
    assert _scores(class_of_20) == serial_scores
    assert {o.student: o.score for o in parallel} == {o.student: o.score for o in serial}
    assert set(serial_scores.values()) == {0.0, 2.0} and serial_scores["s03"] == 0.0
    assert set(_submissions(class_of_20).values()) == {1}


def test_resume_skips_up_to_date_students(class_of_20):
    """Does --resume skip graded students, and regrade one whose notebook changed?"""
    autograde(class_of_20, LAB, students=["s00", "s01"], jobs=1, **FAST)
    time.sleep(0.01)
    _hand_in(class_of_20, "s01", "right")
    outcomes = {o.student: o for o in autograde(class_of_20, LAB, students=["s00", "s01"],
                                                resume=True, **FAST)}
    assert outcomes["s00"].status == "skipped"
    assert outcomes["s01"].status == "graded" and outcomes["s01"].score == 2.0


def _workers() -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"labkit.grading._grade_one" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def test_sigkill_then_rerun_grades_everyone_once(tmp_path):
    """After the grader is killed with SIGKILL mid-run, do its workers die, and does a rerun
    with --resume leave every student graded once, with the serial grades?"""
    students = [f"k{i}" for i in range(6)]
    root = _course(tmp_path, students)
    for i, s in enumerate(students):
        _hand_in(root, s, "right" if i % 2 == 0 else "blank")
    cmd = [sys.executable, "-m", "labkit", "course", "autograde", LAB, "--root", str(root),
           "--jobs", "2", "--timeout", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = root / "autograded" / ".labkit" / LAB
    deadline = time.monotonic() + 120
    while not (records.is_dir() and any(records.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(records.iterdir()))
    assert done_before < len(students), "the run finished before it could be killed"
    deadline = time.monotonic() + 15
    while _workers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _workers(), "a grading worker outlived the killed grader"
    rerun = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "up to date" in rerun.stdout
    assert all(read_record(root, LAB, s).status == "graded" for s in students)
    assert _submissions(root) == {s: 1 for s in students}
    assert _scores(root) == {s: 2.0 if i % 2 == 0 else 0.0 for i, s in enumerate(students)}


def test_broken_submissions_are_reported_per_student(tmp_path):
    """Are invalid JSON, nbformat 3, a missing or misnamed notebook each a failed student
    with a reason, an extra notebook a note on a graded one, and the batch unharmed?"""
    names = ["good", "json", "v3", "none", "misnamed", "extra"]
    root = _course(tmp_path, names)
    _hand_in(root, "good", "right")
    _hand_in(root, "extra", "right")
    folder = {n: root / "submitted" / n / LAB for n in names}
    for n in ("json", "v3", "none", "misnamed"):
        folder[n].mkdir(parents=True)
    (folder["json"] / f"{LAB}.ipynb").write_text('{"cells": [', encoding="utf-8")
    (folder["v3"] / f"{LAB}.ipynb").write_text(json.dumps({"nbformat": 3, "cells": [],
                                                           "worksheets": []}))
    (folder["none"] / "notes.txt").write_text("no notebook here")
    nbformat.write(nbformat.v4.new_notebook(), folder["misnamed"] / "Untitled.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), folder["extra"] / "scratch.ipynb")
    outcomes = {o.student: o for o in autograde(root, LAB, jobs=2, **FAST)}
    assert outcomes["good"].status == "graded" and outcomes["good"].score == 2.0
    assert outcomes["extra"].status == "graded" and "scratch.ipynb" in outcomes["extra"].reason
    expected = {"json": "invalid JSON", "v3": "nbformat 3", "none": "no notebook",
                "misnamed": "Untitled.ipynb"}
    for name, words in expected.items():
        assert outcomes[name].status == "failed" and words in outcomes[name].reason, \
            outcomes[name]
        assert read_record(root, LAB, name).reason == outcomes[name].reason


def test_check_submission(tmp_path):
    """Does check_submission name the folder when it is missing and accept a notebook?"""
    problem, _ = check_submission(tmp_path / "absent", LAB)
    assert "no submission" in problem and "absent" in problem
    (tmp_path / "ok").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "ok" / f"{LAB}.ipynb")
    assert check_submission(tmp_path / "ok", LAB) == (None, "")


def test_bad_requests_are_refused(tmp_path):
    """Are an unknown lab, an unknown student and jobs=0 refused before grading starts?"""
    root = _course(tmp_path, ["a"])
    with pytest.raises(CourseError, match="lab 'nope'"):
        autograde(root, "nope")
    with pytest.raises(CourseError, match="no student 'zed'"):
        autograde(root, LAB, students=["zed"])
    with pytest.raises(CourseError, match="jobs >= 1"):
        autograde(root, LAB, jobs=0)
    assert submitted_students(root, LAB) == []


def test_cli_prints_the_table_and_fails_on_failures(tmp_path):
    """Does `labkit course autograde` print a row per student and the totals, exiting 1
    when a student failed?"""
    root = _course(tmp_path, ["ok", "broken"])
    _hand_in(root, "ok", "right")
    (root / "submitted" / "broken" / LAB).mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "labkit", "course", "autograde", LAB,
                           "--root", str(root), "--timeout", "60"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "| ok | graded | 2 / 3 |" in proc.stdout
    assert "| broken | failed |" in proc.stdout
    assert "1 graded, 1 failed, 0 up to date" in proc.stdout
