"""Tests for labkit.grading.batch and the per-submission worker (labkit.grading.worker).

Grades come from nbgrader's own gradebook (``lab_scores``, ``attack_lab.submission_counts``
style queries), the oracle; the toy lab of ``conftest.write_toy_lab`` keeps each grading to
a few seconds. Each test grades a copy of one course ``init_course`` made (once per run),
with one job unless running several at once is what it checks: the suite itself already
keeps both cores busy.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from nbgrader.preprocessors import SaveAutoGrades

import labkit.grading.batch as autograde_module
from labkit.cli import main
from labkit.grading import (
    CourseError,
    fill_solutions,
    judge,
    lab_scores,
    read_record,
    refereed,
    sandbox,
)
from labkit.grading.batch import GradingUnavailable, autograde, submitted_students
from labkit.grading.cli import format_outcomes, format_status
from labkit.grading.instance import course_status, init_course
from labkit.grading.judge import JudgePreprocessor
from labkit.grading.sandbox import SandboxError
from labkit.grading.worker import grade
from tests.grading.conftest import REPO, nbgrader_api, shared_build, write_toy_lab

LAB = "toy"
FAST = {"timeout": 60, "memory_mb": 1500, "progress": False}


def _init(folder: Path) -> None:
    """A course with the toy lab released and no students: whoever hands in is graded."""
    kit = folder / "kit"
    write_toy_lab(kit)
    (kit / "nbgrader_config.py").write_text((REPO / "nbgrader_config.py").read_text())
    init_course(folder / "course", kit=kit, labs=[LAB])


@pytest.fixture
def course(tmp_path: Path, tmp_path_factory) -> Path:
    """A copy of the toy course (made once per run) for this test to grade."""
    built, _ = shared_build(tmp_path_factory, "autograde-course", _init)
    return Path(shutil.copytree(built / "course", tmp_path / "course"))


def _with_setup(root: Path, setup: str) -> Path:
    """``root`` with an instructor's setup cell before the answer (its imports load in the
    judge), released again (by nbgrader in this process)."""
    source = root / "solutions" / LAB / f"{LAB}.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell(setup))
    nbformat.write(nb, source)
    nbgrader_api(root, "generate_assignment", LAB)
    return root


def _hand_in(root: Path, student: str, kind: str) -> None:
    release = nbformat.read(root / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    source = nbformat.read(root / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    nb = {"right": lambda: fill_solutions(release, source), "blank": lambda: release}[kind]()
    if kind == "right" and student.endswith("3"):  # visible test passes, hidden one fails
        [answer] = [c for c in nb.cells if c.source.startswith("def add_one")]
        answer.source = "def add_one(x):\n    return 2 if x == 1 else 0\n"
    folder = root / "submitted" / student / LAB
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{LAB}.ipynb")


def _scores(root: Path) -> dict[str, float]:
    return {s: v.auto for s, v in lab_scores(root, LAB).items()}


def _submissions(root: Path) -> dict[str, int]:
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        ids = [s.student.id for s in gb.find_assignment(LAB).submissions]
    return {s: ids.count(s) for s in ids}


def test_parallel_grades_equal_serial_grades_and_resume_skips_the_graded(course):
    """Do four students graded with two jobs get the grades serial grading gave them, with
    one gradebook submission each after the regrade, and does --resume then skip a graded
    student and regrade one whose notebook changed?"""
    students = [f"s{i:02d}" for i in range(4)]  # s03: the visible test passes, hidden fails
    for i, student in enumerate(students):
        _hand_in(course, student, "right" if i % 2 == 0 or i == 3 else "blank")
    serial = autograde(course, LAB, jobs=1, **FAST)
    serial_scores = _scores(course)
    parallel = autograde(course, LAB, jobs=2, **FAST)
    assert [o.status for o in serial + parallel] == ["graded"] * 8
    assert _scores(course) == serial_scores
    assert {o.student: o.score for o in parallel} == {o.student: o.score for o in serial}
    assert set(serial_scores.values()) == {0.0, 2.0} and serial_scores["s03"] == 0.0
    assert set(_submissions(course).values()) == {1}
    time.sleep(0.01)
    _hand_in(course, "s01", "right")
    outcomes = {
        o.student: o for o in autograde(course, LAB, students=["s00", "s01"], resume=True, **FAST)
    }
    assert outcomes["s00"].status == "skipped"
    assert outcomes["s01"].status == "graded" and outcomes["s01"].score == 2.0


def test_the_referee_grades_the_class_as_the_runner_does(course, capsys):
    """Graded by the referee (the default: every test decided in the grader's process), two
    at a time from the command line, and then with --runner: do the right, the blank and the
    one that fails only the hidden test get the same scores?"""
    for student, kind in (("r0", "right"), ("r1", "blank"), ("r3", "right")):
        _hand_in(course, student, kind)
    autograde(course, LAB, jobs=2, referee=False, **FAST)
    by_runner = _scores(course)
    argv = ["course", "autograde", LAB, "--root", str(course), "--jobs", "2"]
    assert main([*argv, "--timeout", "60"]) == 0
    assert "3 graded, 0 failed" in capsys.readouterr().out
    assert _scores(course) == by_runner and by_runner == {"r0": 2.0, "r1": 0.0, "r3": 0.0}


def _workers(root: Path) -> list[int]:
    """The grading workers of the course ``root`` (the other xdist worker may grade too)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"labkit.grading.zygote" in cmdline and str(root).encode() in cmdline:
            found.append(int(pid))
    return found


def test_sigkill_then_rerun_grades_everyone_once(course, capsys):
    """After the grader is killed with SIGKILL mid-run, do its workers die, and does a rerun
    with --resume leave every student graded once, with the serial grades?"""
    students = [f"k{i}" for i in range(4)]
    for i, s in enumerate(students):
        _hand_in(course, s, "right" if i % 2 == 0 else "blank")
    args = ["course", "autograde", LAB, "--root", str(course), "--timeout", "60"]
    # two jobs: both running workers must die with the grader
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit", *args, "--jobs", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    records = course / "autograded" / ".labkit" / LAB
    deadline = time.monotonic() + 120
    # *.json: a record in place, not the temporary file it is written to first
    while not (records.is_dir() and any(records.glob("*.json"))) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(records.glob("*.json")))
    assert done_before < len(students), "the run finished before it could be killed"
    deadline = time.monotonic() + 15
    while _workers(course) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _workers(course), "a grading worker outlived the killed grader"
    assert main([*args, "--resume"]) == 0  # the rerun: the same command, in this process
    assert f"{done_before} up to date" in capsys.readouterr().out
    assert all(read_record(course, LAB, s).status == "graded" for s in students)
    assert _submissions(course) == {s: 1 for s in students}
    assert _scores(course) == {s: 2.0 if i % 2 == 0 else 0.0 for i, s in enumerate(students)}


def test_broken_submissions_are_reported_per_student(course):
    """Are invalid JSON, nbformat 3, a missing or misnamed notebook each a failed student
    with a reason, an extra notebook a note on a graded one, and the batch unharmed?"""
    names = ["good", "json", "v3", "none", "misnamed", "extra"]
    root = course
    _hand_in(root, "good", "right")
    _hand_in(root, "extra", "right")
    folder = {n: root / "submitted" / n / LAB for n in names}
    for n in ("json", "v3", "none", "misnamed"):
        folder[n].mkdir(parents=True)
    (folder["json"] / f"{LAB}.ipynb").write_text('{"cells": [', encoding="utf-8")
    (folder["v3"] / f"{LAB}.ipynb").write_text(
        json.dumps({"nbformat": 3, "cells": [], "worksheets": []})
    )
    (folder["none"] / "notes.txt").write_text("no notebook here")
    nbformat.write(nbformat.v4.new_notebook(), folder["misnamed"] / "Untitled.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), folder["extra"] / "scratch.ipynb")
    outcomes = {o.student: o for o in autograde(root, LAB, **FAST)}
    assert outcomes["good"].status == "graded" and outcomes["good"].score == 2.0
    assert outcomes["extra"].status == "graded" and "scratch.ipynb" in outcomes["extra"].reason
    expected = {
        "json": "invalid JSON",
        "v3": "nbformat 3",
        "none": "no notebook",
        "misnamed": "Untitled.ipynb",
    }
    for name, words in expected.items():
        assert outcomes[name].status == "failed" and words in outcomes[name].reason, outcomes[name]
        assert read_record(root, LAB, name).reason == outcomes[name].reason


def test_bad_requests_are_refused(course):
    """Are an unknown lab, an unknown student and jobs=0 refused before grading starts?"""
    root = course
    with pytest.raises(CourseError, match="lab 'nope'"):
        autograde(root, "nope")
    with pytest.raises(CourseError, match="no student 'zed'"):
        autograde(root, LAB, students=["zed"])
    with pytest.raises(CourseError, match="jobs >= 1"):
        autograde(root, LAB, jobs=0)
    assert submitted_students(root, LAB) == []


def test_cli_prints_the_table_and_fails_on_failures(course, capsys):
    """Does `labkit course autograde` print a row per student and the totals, exiting 1
    when a student failed?"""
    _hand_in(course, "ok", "right")
    (course / "submitted" / "broken" / LAB).mkdir(parents=True)
    # the command's own code in this process (`python -m labkit` starts in the SIGKILL test)
    assert main(["course", "autograde", LAB, "--root", str(course), "--timeout", "60"]) == 1
    out = capsys.readouterr().out
    assert "| ok | graded | 2 / 3 |" in out
    assert "| broken | failed |" in out
    assert "1 graded, 1 failed, 0 up to date" in out


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root grader drops the judge to another uid")
def test_limits_only_grades_where_the_sandbox_uid_cannot_reach_python(course, monkeypatch, caplog):
    """With limits only, where the sandbox's uid cannot reach the interpreter (a pyenv under
    root's 0700 home; forced where it can), is the solution graded full and the blank 0,
    with one loud warning saying the judges run as root?"""
    python = Path(os.path.realpath(sys.executable))
    real = sandbox.unreachable
    monkeypatch.setattr(
        sandbox,
        "unreachable",
        lambda path, uid, *rest: (
            real(path, uid, *rest) or ("forced by the test" if path == python else None)
        ),
    )
    monkeypatch.setattr(autograde_module, "_AS_ROOT_WARNED", [])
    root = course
    _hand_in(root, "ann", "right")
    _hand_in(root, "bob", "blank")
    with caplog.at_level("WARNING", logger="labkit.grading.batch"):
        outcomes = autograde(root, LAB, sandbox=False, **FAST)
        autograde(root, LAB, sandbox=False, students=["ann"], **FAST)  # no second warning
    assert [o.status for o in outcomes] == ["graded", "graded"], outcomes
    assert _scores(root) == {"ann": 2.0, "bob": 0.0}
    assert all("own user" in o.reason for o in outcomes)
    warned = [r.getMessage() for r in caplog.records if "RUNS AS ROOT" in r.getMessage()]
    assert len(warned) == 1 and "cannot reach" in warned[0]


def test_grading_from_inside_another_checkout_uses_the_graders_labkit(
    course, tmp_path, monkeypatch
):
    """Run from a folder holding another labkit (one that fails when imported), with it on
    PYTHONPATH too, do the worker and the judge import the grader's labkit and grade the
    solution full?"""
    other = tmp_path / "other"
    (other / "labkit").mkdir(parents=True)
    (other / "labkit" / "__init__.py").write_text("raise ImportError('the other labkit')\n")
    root = course
    _hand_in(root, "ann", "right")
    monkeypatch.chdir(other)
    monkeypatch.setenv("PYTHONPATH", str(other))
    [outcome] = autograde(root, LAB, **FAST)
    assert outcome.status == "graded" and outcome.score == 2.0, outcome
    assert _scores(root) == {"ann": 2.0}


def test_a_judge_that_cannot_start_fails_the_submission_and_is_regraded(course, capsys):
    """When the judge dies before any student code runs (here the lab's `import torch`
    passes the memory cap; an empty notebook does not), is each submission failed with that
    cause in the outcome, the record, the status and both CLI tables, never graded 0, and
    graded by the next --resume run?"""
    root = _with_setup(course, "import torch")
    _hand_in(root, "ann", "right")
    _hand_in(root, "bob", "blank")
    cause = "JudgeError: the judge did not start (memory limit of 150 MB exceeded)"
    code = main(
        ["course", "autograde", LAB, "--root", str(root), "--memory-mb", "150", "--timeout", "60"]
    )
    table = capsys.readouterr().out
    assert code == 1
    assert table.count("| failed |  | ") == 2 and table.count(cause) == 2, table
    for student in ("ann", "bob"):
        assert read_record(root, LAB, student).status == "failed"
        assert cause in read_record(root, LAB, student).reason
    rows = course_status(root, labs=[LAB])
    assert [(r.state, r.graded) for r in rows] == [("failed", False)] * 2
    assert main(["course", "status", "--root", str(root)]) == 0
    assert capsys.readouterr().out.count(cause) == 2
    assert format_status(rows).count(cause) == 2
    outcomes = autograde(root, LAB, resume=True, **FAST)
    assert [(o.status, o.score) for o in outcomes] == [("graded", 2.0), ("graded", 0.0)]
    assert _scores(root) == {"ann": 2.0, "bob": 0.0}
    assert cause not in format_outcomes(outcomes, 1.0)


def test_preflight_refuses_once_before_anyone_is_graded(course, monkeypatch, capsys):
    """When no judge can start here (forced: its command fails with an ImportError), does
    autograde raise one GradingUnavailable naming the cause before grading anyone, and the
    CLI print it as one line with exit code 2?"""
    root = course
    _hand_in(root, "ann", "right")
    _hand_in(root, "bob", "blank")
    crash = "import sys\nsys.exit('ImportError: forced by the test')"
    monkeypatch.setattr(judge, "module_argv", lambda *a, **k: [sys.executable, "-I", "-c", crash])
    with pytest.raises(GradingUnavailable, match="did not start .*ImportError: forced by the"):
        autograde(root, LAB, **FAST)
    assert [read_record(root, LAB, s) for s in ("ann", "bob")] == [None, None]
    assert main(["course", "autograde", LAB, "--root", str(root)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "cannot grade toy" in errors[0] and "forced by" in errors[0]
    assert _submissions(root) == {}


def test_nbgrader_failures_carry_the_deepest_cause(course, monkeypatch):
    """When the judge's sandbox refuses, or a later nbgrader step fails, is the reason the
    innermost exception's type and message, never nbgrader's "see the above traceback"?"""
    root = course
    _hand_in(root, "ann", "right")
    spec = {
        "root": str(root),
        "lab": LAB,
        "student": "ann",
        "timeout": 60.0,
        "cell_timeout": 30.0,
        "memory_mb": 1500,
        "sandbox": False,
        "uid": None,
        "data": "",
    }
    barred = "uid 65534 cannot reach /opt/py: /opt (mode drwx------, uid 0) bars the way"

    def refuse(*args, **kwargs):
        raise SandboxError(barred)

    for path in (judge, refereed):  # the runner's sandbox and the referee's student's
        monkeypatch.setattr(path, "run_sandboxed", refuse)
    monkeypatch.setattr(JudgePreprocessor, "failures", [])
    outcome = grade(spec)
    assert (outcome["status"], outcome["score"]) == ("failed", None)
    assert outcome["reason"] == f"nbgrader autograde failed: SandboxError: {barred}"

    def no_space(self, nb, resources):
        try:
            raise OSError(28, "No space left on device")
        except OSError as exc:
            raise RuntimeError("could not save the grades") from exc

    monkeypatch.undo()
    monkeypatch.setattr(SaveAutoGrades, "preprocess", no_space)
    monkeypatch.setattr(JudgePreprocessor, "failures", [])
    outcome = grade(spec)
    assert (
        outcome["reason"]
        == "nbgrader autograde failed: OSError: [Errno 28] No space left on device"
    )
    assert "see the" not in outcome["reason"]
