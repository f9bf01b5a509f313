"""Does every lab's solution keep full marks under labkit's referee, the default grader?

The referee (labkit.grading.refereed) runs the solution's cells sandboxed up to the last
test, with a labkit from which the lab's references are taken out, and decides each test in
this process. A lab cell before the last test that needs a forbidden reference, or a test
that cannot reach the student's objects through the channel, shows up here as a failed test
of the solution. The blank release and planted mistakes are graded by plain nbgrader in the
per-lab modules, and through the referee by ``labkit course demo`` and
tests/grading/test_refereed.py.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from labkit.grading.bwrap import bwrap_available
from labkit.grading.judge import instructor_prelude, judge_program
from labkit.grading.refereed import run_refereed
from labkit.grading.sandbox import Limits
from tests.grading.conftest import judge_uid

ROOT = Path(__file__).resolve().parents[2]
LABS = sorted(p.name for p in (ROOT / "solutions").iterdir() if (p / f"{p.name}.ipynb").is_file())


@pytest.mark.parametrize("lab", LABS)
def test_the_solution_passes_every_test_through_the_referee(lab, monkeypatch):
    """Through the sandbox, one batch of training: does each test cell pass, and does the
    student's process get to the end without an error in any cell?"""
    monkeypatch.setenv("LABKIT_BUDGET", "smoke")
    source = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    prelude, modules = instructor_prelude(source)
    program = judge_program(source, prelude=prelude, modules=modules, cell_timeout=300)
    use_bwrap = bwrap_available()
    result = run_refereed(
        program,
        limits=Limits(memory_mb=6000, wall_seconds=900),
        bwrap=use_bwrap,
        uid=judge_uid(use_bwrap),
    )
    assert result.started and result.finished, result.sandbox
    tests = [c["index"] for c in program["cells"] if c["test"]]
    failed = {i: result.cells.get(i, {}).get("error") for i in tests}
    assert not {i: e for i, e in failed.items() if not result.cells.get(i, {}).get("passed")}
    errors = {i: c["error"] for i, c in result.cells.items() if c.get("error") and i not in tests}
    assert not errors, errors
