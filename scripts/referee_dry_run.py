"""Which test cells of a lab pass through the referee, against the lab's own solution?

    python scripts/referee_dry_run.py lab01_baseline_fcn [lab02_lr_schedules ...]

The solution notebook's other cells run in this process, as a kernel would run them (training
at ``LABKIT_BUDGET=smoke``), up to its last test cell; each test cell then runs in a
:class:`labkit.grading.referee.Referee` whose student side
(:func:`labkit.grading.remote.serve`) answers from that namespace in a thread. A test the
solution fails here is one the referee cannot decide as written: it hands the student's code
an object that is not plain data, or reads the student's objects in a way a proxy does not
carry. One line per test cell; the exit status is the number that failed.

A development aid for moving test cells onto the referee: no sandbox, no second process, and
``forbid`` acts on this process's labkit, so what it says about forbidding means nothing.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import nbformat
from nbgrader import utils as nbutils

from labkit.grading.judge import _python, instructor_prelude
from labkit.grading.proxy import Channel
from labkit.grading.referee import Referee
from labkit.grading.remote import serve

ROOT = Path(__file__).resolve().parents[1]


def dry_run(lab: str) -> int:
    """Run one lab's test cells through a referee; the number that failed."""
    source = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    referee = Referee(instructor_prelude(source)[0])
    namespace: dict = {"__name__": "__main__"}
    exec("from IPython.display import display", namespace)  # noqa: S102
    cells = [c for c in source.cells if c.cell_type == "code"]
    tests = [i for i, c in enumerate(cells) if nbutils.is_grade(c) and not nbutils.is_solution(c)]
    failed, here = 0, os.getcwd()
    os.chdir(ROOT / "solutions" / lab)  # the notebook's own folder, as in a kernel
    try:
        for i, cell in enumerate(cells[: max(tests) + 1]):
            if i not in tests:
                try:
                    exec(compile(_python(cell.source), f"<cell {i}>", "exec"), namespace)  # noqa: S102
                except Exception as exc:  # noqa: BLE001 - shown, as a kernel would
                    print(f"  cell {i}: {type(exc).__name__}: {exc}"[:300])
                continue
            to_student, from_student = os.pipe(), os.pipe()
            thread = threading.Thread(
                target=serve, daemon=True, args=(to_student[0], from_student[1], namespace)
            )
            thread.start()
            started = time.monotonic()
            verdict = referee.run(cell.source, Channel(from_student[0], to_student[1], timeout=300))
            thread.join(timeout=10)
            for fd in (*to_student, *from_student):
                os.close(fd)
            failed += not verdict.passed
            print(
                f"{lab} {cell.metadata['nbgrader']['grade_id']:28s} "
                f"{'pass' if verdict.passed else 'FAIL'} {time.monotonic() - started:5.1f} s "
                f"{verdict.message or ''}"[:400]
            )
    finally:
        os.chdir(here)
    return failed


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("LABKIT_BUDGET", "smoke")
    sys.exit(sum(dry_run(lab) for lab in sys.argv[1:]))
