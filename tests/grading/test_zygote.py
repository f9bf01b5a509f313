"""labkit.grading.zygote: a worker per submission forked from a warm process, and every way
one ends (graded, past its time, killed, its zygote gone) reported as the worker's own.

The courses are copies of the toy course of tests/grading/test_batch.py; the judges run
with limits only (no bubblewrap: what is tested is the worker around them, and it is faster).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import nbformat
import pytest

from labkit.grading.batch import _grade_as
from labkit.grading.zygote import Zygote
from tests.grading.conftest import shared_build
from tests.grading.test_batch import LAB, _hand_in, _init, _scores

HANG = "def add_one(x):\n    while True:\n        pass\n"


@pytest.fixture
def course(tmp_path: Path, tmp_path_factory) -> Path:
    """A copy of the toy course with ann (right) and hal (an answer that never returns)."""
    built, _ = shared_build(tmp_path_factory, "autograde-course", _init)
    root = Path(shutil.copytree(built / "course", tmp_path / "course"))
    _hand_in(root, "ann", "right")
    _hand_in(root, "hal", "right")
    path = root / "submitted" / "hal" / LAB / f"{LAB}.ipynb"
    nb = nbformat.read(path, as_version=4)
    [answer] = [c for c in nb.cells if c.source.startswith("def add_one")]
    answer.source = HANG
    nbformat.write(nb, path)
    return root


@pytest.fixture
def zygote(course, tmp_path):
    made = Zygote(course, tmp_path)
    yield made
    made.close()


def _spec(root: Path, student: str) -> dict:
    return {
        "root": str(root),
        "lab": LAB,
        "student": student,
        "timeout": 30.0,
        "cell_timeout": 30.0,
        "memory_mb": 1500,
        "sandbox": False,
        "uid": None,
        "data": "",
    }


def _children(parent: int) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(int(pid))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_each_submission_is_a_fresh_child_of_one_zygote(course, zygote):
    """Are two submissions graded by two different children of the same zygote, each
    printing its outcome, with nbgrader's gradebook holding the grades?"""
    outcomes, pids = [], []
    for student in ("ann", "ann"):
        status, out, _ = zygote.grade(_spec(course, student), 120)
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
        pids.append(zygote._proc.pid)
        assert status == 0
    assert [o["status"] for o in outcomes] == ["graded", "graded"]
    assert pids[0] == pids[1], "the zygote was started twice"
    assert _scores(course) == {"ann": 2.0}


def test_a_worker_past_its_time_is_killed_and_the_zygote_goes_on(course, zygote):
    """Is a worker still running at its deadline killed (reported as None) and the next
    submission graded by the same zygote?"""
    zygote.grade(_spec(course, "ann"), 120)  # the zygote is warm: the deadline is the child's
    status, _, _ = zygote.grade(_spec(course, "hal"), 4)
    assert status is None
    assert not _children(zygote._proc.pid), "the killed worker is still there"
    status, out, _ = zygote.grade(_spec(course, "ann"), 120)
    assert status == 0 and json.loads(out.strip().splitlines()[-1])["score"] == 2.0


def _kill_when_started(parent: int, which: str, hit: list) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        children = _children(parent)
        if children:
            os.kill(children[0] if which == "child" else parent, signal.SIGKILL)
            hit.append(children[0])
            return
        time.sleep(0.05)


def test_a_killed_worker_fails_its_student_with_the_signal(course, zygote):
    """A worker killed from outside (the kernel's OOM killer, an admin): is its student
    recorded failed with the status, and the batch's zygote still there?"""
    zygote.grade(_spec(course, "ann"), 120)
    hit: list[int] = []
    killer = threading.Thread(target=_kill_when_started, args=(zygote._proc.pid, "child", hit))
    killer.start()
    outcome = _grade_as(course, LAB, "hal", _spec(course, "hal"), 120, zygote)
    killer.join()
    assert hit and outcome.status == "failed"
    assert outcome.reason.startswith("the grading process ended with status -9"), outcome
    assert zygote._proc.poll() is None


def test_a_dead_zygote_fails_one_student_takes_its_worker_along_and_is_restarted(course, zygote):
    """When the zygote itself is killed mid-grading, is that student failed with the
    zygote's status, its worker's session killed, and the next student graded by a new
    zygote?"""
    zygote.grade(_spec(course, "ann"), 120)
    first = zygote._proc.pid
    hit: list[int] = []
    killer = threading.Thread(target=_kill_when_started, args=(first, "zygote", hit))
    killer.start()
    outcome = _grade_as(course, LAB, "hal", _spec(course, "hal"), 120, zygote)
    killer.join()
    assert hit and outcome.status == "failed"
    assert "ended with status -9" in outcome.reason, outcome
    deadline = time.monotonic() + 10
    while _alive(hit[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(hit[0]), "the worker outlived its zygote"
    again = _grade_as(course, LAB, "ann", _spec(course, "ann"), 120, zygote)
    assert again.status == "graded" and again.score == 2.0
    assert zygote._proc.pid != first
