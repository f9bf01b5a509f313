"""The student's process, inside the sandbox: a submission's cells in plain Python.

Run by the judge (``python -I`` on the grader's own labkit) with its program on standard
input as JSON::

    {"channel": [fd_in, fd_out], "cell_timeout": seconds, "modules": [name, ...],
     "cells": [{"index": int, "test": false, "source": str} | {"index": int, "test": true}]}

Test cells come without their source: it never enters this process. The process imports
``modules``, says ``{"started": true}`` on the channel (:mod:`labkit.grading.wire`) before any
student code runs, and runs the cells in order in one namespace, as a kernel would but with no
IPython in it. After each answer cell it sends ``{"cell": index, "output": ..., "error": ...,
"seconds": ...}``. At a test cell it sends ``{"test": index}`` and forks: the fork answers the
referee's requests (:func:`labkit.grading.remote.serve`) on the notebook's objects until the
referee is done or the cell's time is up, with its output thrown away, and exits; then this
process sends ``{"test_over": index, "status": ...}`` and goes on with the state it had before
the test. At the end it sends ``{"done": true}``. The fork first puts the libraries back as
they were before student code ran (:mod:`labkit.grading.library_state`), so a reference that
a test switches off there (:func:`labkit.checks.forbid`, forwarded by the referee) is the
library's own and ``labkit.checks`` is labkit's.

Everything here is the student's to rewrite, and none of it matters: the referee reads these
frames as data and decides every test itself.
"""

import io
import json
import os
import signal
import sys
import time

from labkit.grading.cells import error_output, load_modules, run_cell
from labkit.grading.library_state import restore, snapshot
from labkit.grading.remote import serve
from labkit.grading.wire import write_frame

__all__ = ["FIRST", "GRACE", "main"]

GRACE = 5.0  # seconds a test's fork has past the cell's time before it is killed
FIRST = 1_000_000  # object numbers of the n-th test start at n * FIRST: none is reused


def _serve_test(channel: list, namespace: dict, first: int, seconds: float, saved) -> str:
    """Answer the referee's requests for one test in a fork that first puts the library back
    as it was before student code ran; how the fork ended."""
    try:
        pid = os.fork()
    except OSError as exc:  # the student's own processes hold its uid's process cap
        return f"the test could not start: fork failed ({exc})"
    if pid == 0:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            sys.stdout = sys.stderr = io.StringIO()  # a test's output is never shown
            restore(saved)
            serve(*channel, namespace, first=first)
        finally:
            os._exit(0)
    deadline = time.monotonic() + seconds + GRACE
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "exited" if os.WIFEXITED(status) else f"killed by signal {os.WTERMSIG(status)}"
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "ran past its time limit"


def main() -> None:
    """Read the program from stdin; run the student's cells, answering the referee's channel."""
    program = json.loads(sys.stdin.read())
    sys.stdin.close()
    channel = program["channel"]
    load_modules(program["modules"])

    def send(record: dict) -> None:
        write_frame(channel[1], record)

    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    exec("from IPython.display import display", namespace)  # noqa: S102 - as in a kernel
    saved = snapshot()
    send({"started": True})  # no student code ran yet
    tests = 0
    for cell in program["cells"]:
        if cell["test"]:
            tests += 1
            send({"test": cell["index"]})
            status = _serve_test(channel, namespace, tests * FIRST, program["cell_timeout"], saved)
            send({"test_over": cell["index"], "status": status})
            continue
        started = time.monotonic()
        output, error = run_cell(cell["source"], cell["index"], namespace, program["cell_timeout"])
        send(
            {
                "cell": cell["index"],
                "output": output,
                "seconds": time.monotonic() - started,
                "error": None if error is None else error_output(error),
            }
        )
    send({"done": True})
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)  # the interpreter's shutdown with torch loaded costs a second, for nothing


if __name__ == "__main__":
    main()
