"""Test cells run where student code never ran: the referee decides every verdict.

The referee is the grader's own process. It runs the instructor's imports (the prelude) and
then each test cell's code, hidden tests included, in a namespace of its own: Python's
builtins, the prelude's modules and what earlier test cells defined. A name the test reads
that is none of these is looked up in the student's notebook and arrives as plain data or as
a :class:`~labkit.grading.proxy.Proxy` (:mod:`labkit.grading.remote`): the student's
functions run in the student's process, on inputs the test chose, and only their results
come back. A test passes when its code raises nothing here, so no student code can decide
it, shadow ``len`` or ``check_close`` for it, or read its source: that never leaves this
process.

What a test shows: the output its visible parts printed, and on failure one line, the
exception's type and message. Output printed while a hidden part runs is never shown. A test
cell is split at nbgrader's ``### BEGIN/END HIDDEN TESTS`` markers when each part compiles
alone (they do whenever the markers sit at the cell's top level); otherwise all of it counts
as hidden.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import re
import time
import types
from dataclasses import dataclass, field

from labkit.checks import student_modules
from labkit.grading.proxy import Channel
from labkit.grading.student_side import GRACE
from labkit.grading.wire import WireError, read_frame

__all__ = ["Referee", "Session", "Verdict", "referee_session", "segments"]

_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) HIDDEN TESTS[ \t]*$", re.M)
OUTPUT_CHARS = 20_000  # a visible part's printed output kept per test
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class Verdict:
    """A test cell's result, decided by the referee.

    Attributes:
        passed: its code raised nothing.
        output: what its visible parts printed.
        message: on failure, ``"Type: message"`` in one line (``None`` when it passed).
    """

    passed: bool
    output: str
    message: str | None


def segments(source: str) -> list[tuple[str, bool]]:
    """A test cell's code as ``(code, hidden)`` parts, in order.

    Parts are cut at the hidden-test markers; each part keeps its lines' numbers (earlier
    lines become blank). When a part does not compile alone, the whole cell is one hidden
    part.
    """
    lines, parts, hidden, start = source.splitlines(True), [], False, 0
    cuts = [
        (source.count("\n", 0, m.start()), m.group(1) == "BEGIN") for m in _MARKERS.finditer(source)
    ]
    for line, begins in [*cuts, (len(lines), not hidden)]:
        if line > start:
            parts.append(("\n" * start + "".join(lines[start:line]), hidden))
        hidden, start = begins, line + 1
    try:
        for code, _ in parts:
            compile(code, "<test>", "exec")
    except SyntaxError:
        return [(source, True)]
    return [p for p in parts if p[0].strip()] or [(source, False)]


def _names(code: types.CodeType) -> set[str]:
    """Every name the code (and the functions and comprehensions in it) may read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


class _Capped(io.StringIO):
    def write(self, text: str) -> int:
        room = OUTPUT_CHARS - self.tell()
        return super().write(text[: max(room, 0)]) if room > 0 else len(text)


class Referee:
    """Runs one submission's test cells against its student process.

    Args:
        prelude (str): the instructor's import statements (:func:`~labkit.grading.judge.
            instructor_prelude`), run once here.
    """

    def __init__(self, prelude: str = ""):
        self.namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
        exec(compile(prelude, "<prelude>", "exec"), self.namespace)  # noqa: S102 - trusted
        self.own = set(self.namespace)

    def run(self, source: str, channel: Channel) -> Verdict:
        """Run one test cell, its student names taken through ``channel``; the verdict.

        The names borrowed from the student are dropped afterwards: the objects behind them
        belong to this test's student process, which ends with it.
        """
        borrowed, output, message = [], _Capped(), None
        try:
            parts = segments(source)
            wanted = set().union(*(_names(compile(c, "<test>", "exec")) for c, _ in parts))
            for name in sorted(wanted - set(self.namespace) - set(dir(builtins))):
                try:
                    self.namespace[name] = channel.lookup(name)
                    borrowed.append(name)
                except KeyError:
                    pass  # the test defines it, or it is an attribute's name
            for code, hidden in parts:
                sink = io.StringIO() if hidden else output
                with (
                    contextlib.redirect_stdout(sink),
                    contextlib.redirect_stderr(sink),
                    student_modules(channel.module),  # student_side(m): the student's m
                ):
                    exec(compile(code, "<test>", "exec"), self.namespace)  # noqa: S102
        except BaseException as exc:  # noqa: BLE001 - a test's failure, whatever it raised
            text = " ".join(f"{type(exc).__name__}: {exc}".split())
            message = text[:MESSAGE_CHARS] + ("..." if len(text) > MESSAGE_CHARS else "")
        finally:
            channel.done()
            for name in borrowed:
                self.namespace.pop(name, None)
        return Verdict(message is None, output.getvalue(), message)


@dataclass
class Session:
    """One submission judged: what its answer cells showed and each test's verdict.

    Attributes:
        cells: answer cell index → ``{"output": str, "error": dict | None}``.
        verdicts: test cell index → :class:`Verdict`; tests never reached are missing.
        started: the student's process finished its imports (before any student code).
        finished: it reached the end of the notebook.
        problem: why the session ended early (``None`` when it finished).
    """

    cells: dict[int, dict] = field(default_factory=dict)
    verdicts: dict[int, Verdict] = field(default_factory=dict)
    started: bool = False
    finished: bool = False
    problem: str | None = None


def _text(value: object, limit: int) -> str:
    return value[:limit] if type(value) is str else ""


def _cell_record(frame: dict) -> dict:
    """An answer cell's report, kept to plain strings of bounded size (the student wrote it)."""
    error = frame.get("error")
    if type(error) is dict:
        trace = error.get("traceback")
        error = {
            "ename": _text(error.get("ename"), 200) or "Error",
            "evalue": _text(error.get("evalue"), 2000),
            "traceback": [_text(t, 2000) for t in trace[:200]] if type(trace) is list else [],
        }
    return {
        "output": _text(frame.get("output"), 2 * OUTPUT_CHARS),
        "error": error if type(error) is dict else None,
    }


def referee_session(
    fd_in: int,
    fd_out: int,
    tests: dict[int, str],
    *,
    prelude: str,
    cell_timeout: float,
    start_timeout: float = 300.0,
) -> Session:
    """Follow a student's process through its notebook and decide each test it reaches.

    Args:
        fd_in, fd_out (int): the channel to the student's process (:mod:`labkit.grading.
            student_side`), read and written here.
        tests (dict[int, str]): test cell index → its source, hidden tests included (it stays here).
        prelude (str): the instructor's imports.
        cell_timeout (float): seconds each cell and each test has.
        start_timeout (float): seconds the process has for its imports.
    """
    session, referee = Session(), Referee(prelude)
    waiting = [i for i in sorted(tests)]
    wait = start_timeout
    while True:
        try:
            frame = read_frame(fd_in, timeout=wait)
        except (WireError, EOFError, OSError) as exc:
            session.problem = f"the student's process stopped answering: {exc}"
            return session
        if type(frame) is not dict:
            session.problem = "the student's process sent something that is not a report"
            return session
        wait = cell_timeout + GRACE
        if frame.get("started") is True:
            session.started = True
        elif frame.get("done") is True and session.started:
            session.finished = True
            return session
        elif type(frame.get("cell")) is int and session.started:
            session.cells[frame["cell"]] = _cell_record(frame)
        elif session.started and waiting and frame.get("test") == waiting[0]:
            index = waiting.pop(0)
            channel = Channel(fd_in, fd_out, timeout=cell_timeout)
            session.verdicts[index] = referee.run(tests[index], channel)
            over = channel.over is not None and channel.over.get("test_over") == index
            if not over and not _test_over(fd_in, index, cell_timeout + 2 * GRACE):
                session.problem = f"the student's process lost its way after test cell {index}"
                return session


def _test_over(fd_in: int, index: int, seconds: float) -> bool:
    """Skip what the test's run left on the channel until its ``test_over`` report."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = read_frame(fd_in, timeout=left)
        except (WireError, EOFError, OSError):
            return False
        if type(frame) is dict and frame.get("test_over") == index:
            return True
    return False
