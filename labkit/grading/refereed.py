"""A submission judged by the referee: the student's cells sandboxed, every test decided here.

:func:`run_refereed` is :func:`labkit.grading.judge.run_judge` with the verdicts taken out of
the student's process. The sandbox runs :mod:`labkit.grading.student_side`, which gets the
answer cells' source and only the index of each test cell; the hidden tests' source stays in
this process. A thread here follows it through the channel (two pipes the sandbox inherits,
:mod:`labkit.grading.wire`) with :func:`labkit.grading.referee.referee_session`, which runs
each test against the student's objects and decides it. The result has the shape of the
runner's (:class:`~labkit.grading.judge.JudgeResult`), so nbgrader's side of the judge
(:func:`~labkit.grading.judge.apply_verdicts`) takes either.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from labkit.grading.bootstrap import module_argv
from labkit.grading.judge import JudgeResult, sandbox_options
from labkit.grading.referee import Session, referee_session
from labkit.grading.sandbox import NOBODY, Limits, run_sandboxed
from labkit.grading.strip import references_in, stripped_package

__all__ = ["run_refereed", "split_program"]


def split_program(program: dict) -> tuple[dict, dict[int, str]]:
    """The student's part of a judge program and the referee's.

    Args:
        program (dict): from :func:`labkit.grading.judge.judge_program`.

    Returns:
        ``(student, tests)``: the modules, time limit and cells for the student's process,
        each test cell's source taken out, and none of the cells after the last test (they
        decide nothing); and test cell index → its source (hidden tests included). The
        student's part holds no prelude either: the tests' imports are the referee's.
    """
    tests = {c["index"]: c["source"] for c in program["cells"] if c["test"]}
    last = max(tests, default=-1)
    cells = [
        {"index": c["index"], "test": True} if c["test"] else c
        for c in program["cells"]
        if c["index"] <= last
    ]
    student = {"modules": program["modules"], "cell_timeout": program["cell_timeout"]}
    return dict(student, cells=cells), tests


#: What a cell after the last test shows: the referee does not run it.
NOT_RUN = (
    "Not run while grading: no test follows this cell, so it decides nothing "
    "(labkit's referee stops after the last test).\n"
)


def _records(session: Session, program: dict) -> dict[int, dict]:
    """The session's cells as the runner's records: answer cells as reported, tests with the
    referee's verdict (its one-line message as the error), the cells after the last test with
    :data:`NOT_RUN`."""
    cells = {i: dict(record) for i, record in session.cells.items()}
    for index, verdict in session.verdicts.items():
        error = None
        if not verdict.passed:
            ename, _, evalue = (verdict.message or "TestFailed: the test failed").partition(": ")
            error = {"ename": ename, "evalue": evalue, "traceback": [verdict.message or ename]}
        cells[index] = {"output": verdict.output, "passed": verdict.passed, "error": error}
    if session.finished:
        last = max((c["index"] for c in program["cells"] if c["test"]), default=-1)
        for cell in program["cells"]:
            if cell["index"] > last:
                cells[cell["index"]] = {"output": NOT_RUN, "error": None}
    return cells


@contextlib.contextmanager
def _library(tests: dict[int, str], prelude: str) -> Iterator[Path | None]:
    """A labkit package without the references ``tests`` forbid, for the student's process
    (``None`` when they forbid none of labkit's); removed afterwards."""
    refs, _ = references_in(tests.values(), imports=[prelude])
    if not refs:
        yield None
        return
    copies = Path(tempfile.mkdtemp(prefix="labkit-lib-"))
    try:
        os.chmod(copies, 0o755)  # a root grader's student runs as another uid
        yield stripped_package(copies, refs)
    finally:
        shutil.rmtree(copies, ignore_errors=True)


def run_refereed(
    program: dict,
    *,
    limits: Limits,
    hide: list[str] = (),
    bwrap: bool | None = None,
    uid: int | None = NOBODY,
    data: str = "",
) -> JudgeResult:
    """Run ``program``'s answer cells sandboxed and decide its tests here.

    The sandbox is :func:`~labkit.grading.judge.run_judge`'s (the same paths, environment
    and limits); the student's process gets no results file, only its end of the channel.

    Args:
        program (dict): from :func:`labkit.grading.judge.judge_program`.
        limits (Limits): as for :func:`~labkit.grading.judge.run_judge`.
        hide (list[str]): course paths the student must not see.
        bwrap (bool | None): as for :func:`~labkit.grading.sandbox.run_sandboxed`.
        uid (int | None): whom a root grader runs the student's code as.
        data (str): a Shapes set to read (as ``$LABKIT_DATA``) instead of drawing one.

    Returns:
        Each cell's record (tests decided by the referee), whether the student's process
        started and finished, and how the sandbox ended.
    """
    student, tests = split_program(program)
    with _library(tests, program["prelude"]) as package:
        to_student, from_student = os.pipe(), os.pipe()
        theirs = (to_student[0], from_student[1])
        payload = json.dumps(dict(student, channel=list(theirs))).encode()
        sessions: list[Session] = []

        def follow() -> None:
            try:
                sessions.append(
                    referee_session(
                        from_student[0],
                        to_student[1],
                        tests,
                        prelude=program["prelude"],
                        cell_timeout=program["cell_timeout"],
                    )
                )
            finally:  # the student's next write fails: a process the referee left ends now
                os.close(from_student[0])
                os.close(to_student[1])

        referee = threading.Thread(target=follow, daemon=True)
        scratch = Path(tempfile.mkdtemp(prefix="labkit-judge-"))
        try:
            os.chmod(scratch, 0o755)
            referee.start()
            ran = run_sandboxed(
                module_argv("labkit.grading.student_side", home=package and str(package.parent)),
                scratch=scratch,
                limits=limits,
                bwrap=bwrap,
                stdin=payload,
                uid=uid,
                pass_fds=theirs,
                **sandbox_options(hide, data, package=package and str(package)),
            )
        finally:
            for fd in theirs:  # the student's ends: with them closed the referee sees its end
                os.close(fd)
            referee.join()
            shutil.rmtree(scratch, ignore_errors=True)
    session = sessions[0] if sessions else Session(problem="the referee did not finish")
    if session.problem and not (ran.timed_out or ran.memory_exceeded):
        # the referee's word first ("lost its way after test cell 3"), unless a limit the
        # sandbox enforced ended the process: then the channel's end is only its echo
        ran = dataclasses.replace(
            ran, reason="; ".join(filter(None, (session.problem, ran.reason)))
        )
    return JudgeResult(_records(session, program), session.started, session.finished, ran)
