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

import functools
import json
import os
import select
import signal
import sys
import time
import types
import warnings

from labkit.grading.cells import error_output as _error
from labkit.grading.cells import load_modules
from labkit.grading.cells import run_cell as _run

__all__ = ["main"]

_MISSING = object()


def _snapshot() -> tuple[list, list, dict]:
    """Every loaded module's and Python class's attributes, and their functions' code."""
    with warnings.catch_warnings():  # deprecated aliases warn when merely looked at
        warnings.simplefilter("ignore")
        return _collect()


def _collect() -> tuple[list, list, dict]:
    owners, seen = [], set()
    for module in list(sys.modules.values()):
        if not isinstance(module, types.ModuleType) or module is sys.modules.get(__name__):
            continue
        owners.append(module)
        for value in list(vars(module).values()):
            if (
                isinstance(value, type) and id(value) not in seen and not value.__flags__ & (1 << 8)
            ):  # Py_TPFLAGS_IMMUTABLETYPE
                seen.add(id(value))
                owners.append(value)
    attrs = [(owner, dict(vars(owner))) for owner in owners]
    code = [
        (f, f.__code__, f.__defaults__, f.__kwdefaults__)
        for _, saved in attrs
        for f in saved.values()
        if isinstance(f, types.FunctionType)
    ]
    return attrs, code, dict(sys.modules)


def _foreign(value) -> bool:
    """Whether ``value`` was made by code that is not in a file: a student's cell, ``exec``.

    Libraries rebind some of their own attributes as they run (an optimizer class wraps its
    ``step`` once, handles count up): those values come from files and are left alone.
    """
    if isinstance(value, types.ModuleType):
        return (
            not os.path.isfile(getattr(value, "__file__", None) or "")
            and value.__name__ not in sys.builtin_module_names
        )
    code = getattr(value, "__code__", None)
    if isinstance(code, types.CodeType):
        return not os.path.isfile(code.co_filename)
    if isinstance(value, functools.partial):
        return _foreign(value.func)
    owner = value if isinstance(value, type) else type(value)
    return getattr(owner, "__module__", None) == "__main__"


def _changes(snapshot):
    """(where, owner, key, saved) for each library attribute that differs from the snapshot."""
    attrs, code, modules = snapshot
    for name, module in modules.items():
        if sys.modules.get(name) is not module:
            yield f"sys.modules[{name!r}]", sys.modules, name, module
    for owner, saved in attrs:
        current = vars(owner)
        for key, value in saved.items():
            if current.get(key, _MISSING) is not value:
                yield f"{getattr(owner, '__name__', owner)}.{key}", owner, key, value
    for f, c, d, k in code:
        if f.__code__ is not c or f.__defaults__ is not d or f.__kwdefaults__ is not k:
            yield f"the code of {f.__module__}.{f.__qualname__}", f, None, (c, d, k)


def _restore(snapshot) -> None:
    """Put back every function, class and module the library had; counters and caches stay."""
    for _, owner, key, saved in list(_changes(snapshot)):
        if key is None:
            owner.__code__, owner.__defaults__, owner.__kwdefaults__ = saved
        elif owner is sys.modules:
            sys.modules[key] = saved
        elif (
            callable(saved) or isinstance(saved, types.ModuleType) or _foreign(vars(owner).get(key))
        ):
            try:
                setattr(owner, key, saved)
            except (AttributeError, TypeError):
                pass


def _tampered(snapshot) -> str | None:
    """The first library attribute that student code replaced during a test, or ``None``."""
    for where, owner, key, _ in _changes(snapshot):
        now = (
            owner.__code__
            if key is None
            else sys.modules.get(key)
            if owner is sys.modules
            else vars(owner).get(key)
        )
        if (
            key is None
            and not os.path.isfile(now.co_filename)
            or key is not None
            and now is not None
            and _foreign(now)
        ):
            return where
    return None


def _test(cell: dict, namespace: dict, program: dict, snapshot) -> dict:
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
            _restore(snapshot)
            exec(compile(program["prelude"], "<prelude>", "exec"), namespace)  # noqa: S102
            output, error = _run(cell["source"], cell["index"], namespace, program["cell_timeout"])
            touched = _tampered(snapshot)
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
    # module through sys.modules and might replace _test or _restore.
    own_globals = globals()
    own = dict(own_globals)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    exec("from IPython.display import display", namespace)  # noqa: S102 - as in a kernel
    snapshot = _snapshot()
    results.write(f"{nonce} {json.dumps({'started': True})}\n")  # no student code ran yet
    results.flush()
    for cell in program["cells"]:
        own_globals.update(own)
        if cell["test"]:
            report(cell, _test(cell, namespace, program, snapshot))
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
