"""The judge's own process, inside the sandbox: a submission's cells in plain Python.

Run by :func:`labkit.grading.judge.run_judge` (``python -I`` on the grader's own labkit,
:func:`labkit.grading.bootstrap.module_argv`), which writes the program to its standard
input as JSON::

    {"nonce": str, "results": path, "cell_timeout": seconds, "modules": [name, ...],
     "prelude": source, "cells": [{"index": int, "test": bool, "source": str}, ...]}

The runner imports ``modules`` (everything the tests and the instructor's imports use), then
snapshots every loaded module's and class's attributes and the code of their functions. Cells
run in order in one namespace, as in a kernel but with no IPython in it: there are no input
transformers, custom exception handlers or ``showtraceback`` to subvert. Each test cell runs in
a fork of the process taken at that point: the fork restores the snapshot, re-runs the
prelude's imports so ``np``, ``torch``, ``check_close`` ... are the real ones again, runs the
test and exits 0 only if it raised nothing and the library is still intact afterwards. A fork
holds only the thread that made it, so nothing the student left running can touch the test.

One JSON line per cell goes to ``results``, prefixed by ``nonce``; lines without it are
ignored by the grader, and a test cell with no line is a failed test. Before that, once its
imports and the snapshot are done and before any student code runs, the runner writes
``{"started": true}``: a run without it failed for a reason of the grader's (a labkit that
does not import, limits too small for the imports), never of the student's, and is not
scored.
"""

import json
import os
import select
import signal
import sys
import time

from labkit.grading.cells import error_output as _error
from labkit.grading.cells import load_modules
from labkit.grading.cells import run_cell as _run
from labkit.grading.library_state import restore, snapshot, tampered

__all__ = ["main"]


def _test(cell: dict, namespace: dict, program: dict, saved) -> dict:
    """Run a test cell in a fork that restores the library first; the fork's verdict."""
    reader, writer = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:  # the student's own processes hold its uid's process cap
        os.close(reader)
        os.close(writer)
        why = f"the test could not start: fork failed ({exc})"
        return {
            "output": "",
            "passed": False,
            "error": {"ename": "TestFailed", "evalue": why, "traceback": [why]},
        }
    if pid == 0:
        os.close(reader)
        try:
            restore(saved)
            exec(compile(program["prelude"], "<prelude>", "exec"), namespace)  # noqa: S102
            output, error = _run(cell["source"], cell["index"], namespace, program["cell_timeout"])
            touched = tampered(saved)
            if error is None and touched:
                error = RuntimeError(f"{touched} was changed while the test ran")
            record = {
                "output": output,
                "passed": error is None,
                "error": None if error is None else _error(error, full=False),
            }
            os.write(writer, json.dumps(record).encode())
            os._exit(0 if error is None else 1)
        except BaseException:  # noqa: BLE001 - the fork must never go back to the parent's loop
            os._exit(2)
    os.close(writer)
    exited, pidfd = select.poll(), None  # ends the wait below when the fork exits
    try:  # a pidfd turns readable then (Linux >= 5.3); poll(), unlike select(), takes any fd
        pidfd = os.pidfd_open(pid)
        exited.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):
        pass  # poll() on no file sleeps its timeout
    # Until the fork exits: a process it started may hold the pipe open long after.
    data, status, readable = b"", None, True
    deadline = time.monotonic() + program["cell_timeout"] + 5
    while status is None and time.monotonic() < deadline:
        if readable and select.select([reader], [], [], 0.1)[0]:
            chunk = os.read(reader, 1 << 16)
            data, readable = data + chunk, bool(chunk)
        elif not readable:
            exited.poll(50)
        done, code = os.waitpid(pid, os.WNOHANG)
        status = code if done else None
    while readable and select.select([reader], [], [], 0)[0]:  # what it wrote before exiting
        chunk = os.read(reader, 1 << 16)
        data, readable = data + chunk, bool(chunk)
    os.close(reader)
    if pidfd is not None:
        os.close(pidfd)
    if status is None:  # over time
        os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
    try:
        record = json.loads(data)
    except ValueError:
        record = {"output": "", "passed": False}
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and record.get("passed")):
        record["passed"] = False
        if not record.get("error"):
            why = "the test did not finish (it timed out, crashed or ended the process)"
            record["error"] = {
                "ename": "TestFailed",
                "evalue": why,
                "traceback": [f"TestFailed: {why}"],
            }
    return record


def main() -> None:
    """Read the program from stdin, run its cells and write each result to its results file."""
    program = json.loads(sys.stdin.read())
    sys.stdin.close()
    load_modules(program["modules"])
    results = open(program["results"], "a", encoding="utf-8")
    nonce = program.pop("nonce")

    def report(cell: dict, record: dict) -> None:
        results.write(f"{nonce} {json.dumps(dict(record, index=cell['index']))}\n")
        results.flush()

    # The runner's own functions, put back before every cell: student code can reach this
    # module through sys.modules and might replace _test or restore.
    own_globals = globals()
    own = dict(own_globals)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    exec("from IPython.display import display", namespace)  # noqa: S102 - as in a kernel
    saved = snapshot()
    results.write(f"{nonce} {json.dumps({'started': True})}\n")  # no student code ran yet
    results.flush()
    for cell in program["cells"]:
        own_globals.update(own)
        if cell["test"]:
            report(cell, _test(cell, namespace, program, saved))
            continue
        started = time.monotonic()
        output, error = _run(cell["source"], cell["index"], namespace, program["cell_timeout"])
        report(
            cell,
            {
                "output": output,
                "seconds": time.monotonic() - started,
                "error": None if error is None else _error(error, full=True),
            },
        )
    own_globals.update(own)  # the last cell may have replaced _quit too
    results.write(f"{nonce} {json.dumps({'done': True})}\n")
    results.close()
    _quit()


def _quit() -> None:
    """End the process now that every verdict is written, skipping the interpreter's
    shutdown: with torch, matplotlib and the student's objects loaded it costs over a second
    of CPU per notebook, and nothing in it reaches the grader (the results file is closed;
    exit handlers or threads the student left behind have nothing left to report)."""
    for stream in (sys.stdout, sys.stderr):  # as the interpreter's own exit flushes them
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)


if __name__ == "__main__":
    main()
