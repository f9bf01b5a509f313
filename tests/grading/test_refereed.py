"""Tests for labkit.grading.refereed: a notebook judged with its tests decided outside the
sandboxed student process, through the channel the sandbox inherits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader import utils as nbutils

from labkit.grading.bwrap import bwrap_available
from labkit.grading.judge import instructor_prelude, judge_program, run_judge
from labkit.grading.refereed import NOT_RUN, run_refereed, split_program
from labkit.grading.sandbox import NOBODY, Limits
from tests.grading.conftest import judge_uid


def _referee(program: dict, *, memory_mb: int = 2000):
    """``program`` judged by the referee, under bubblewrap where it works."""
    use_bwrap = bwrap_available()
    limits = Limits(memory_mb=memory_mb, wall_seconds=120)
    return run_refereed(program, limits=limits, bwrap=use_bwrap, uid=judge_uid(use_bwrap))


SECRET = "zq_91f0"  # in the hidden test only
TEST = f"""
check_close(add(2, 2), 4, name="add(2, 2)")
### BEGIN HIDDEN TESTS
_secret = "{SECRET}"
check_close(add(-3, 10), 7, name="add on the hidden input")
### END HIDDEN TESTS
"""
PRELUDE = "from labkit.checks import check_close"


def _cell(source: str, grade_id: str, *, test: bool) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {
        "grade": test,
        "solution": not test,
        "locked": test,
        "grade_id": grade_id,
        "schema_version": 3,
        **({"points": 1} if test else {}),
    }
    return cell


def _program(answer: str, cell_timeout: float = 30) -> dict:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        _cell(answer, "answer", test=False),
        _cell(TEST, "test_add", test=True),
        nbformat.v4.new_code_cell("print('after the test')"),
    ]
    return judge_program(nb, prelude=PRELUDE, modules=["labkit.checks"], cell_timeout=cell_timeout)


def _judge(answer: str, use_bwrap: bool, cell_timeout: float = 30):
    if use_bwrap and not bwrap_available():
        pytest.skip("bubblewrap does not work on this machine")
    return run_refereed(
        _program(answer, cell_timeout),
        limits=Limits(memory_mb=1500, wall_seconds=120),
        bwrap=use_bwrap,
        uid=judge_uid(use_bwrap),
    )


def test_the_student_gets_no_test_source():
    """Does the student's part of the program hold the answer cells and only the index of
    each test cell, the referee's part the whole test?"""
    student, tests = split_program(_program("def add(a, b):\n    return a + b"))
    assert SECRET not in json.dumps(student) and "check_close" not in json.dumps(student)
    assert [c for c in student["cells"] if c.get("test")] == [{"index": 1, "test": True}]
    assert SECRET in tests[1]
    assert [c["index"] for c in student["cells"]] == [0, 1]  # nothing after the last test


@pytest.mark.parametrize("use_bwrap", [True, False], ids=["bwrap", "limits-only"])
def test_an_honest_answer_passes_and_a_wrong_one_fails(use_bwrap):
    """Through the sandbox: is the right add passed, a wrong one failed with the referee's
    one line, and the answer cells' output kept?"""
    honest = _judge("def add(a, b):\n    return a + b\nprint('defined')", use_bwrap)
    assert honest.started and honest.finished, honest.sandbox
    assert honest.cells[1]["passed"] is True and honest.cells[0]["output"] == "defined\n"
    assert honest.cells[2]["output"] == NOT_RUN  # after the last test: decides nothing
    wrong = _judge("def add(a, b):\n    return a + b if a > 0 else 0", use_bwrap)
    assert wrong.cells[1]["passed"] is False
    assert wrong.cells[1]["error"]["ename"] == "AssertionError"
    assert "hidden input" in wrong.cells[1]["error"]["evalue"]


WRONG_AND_PATCHED = """
def add(a, b):
    return 0
import labkit.checks
labkit.checks.check_close = lambda *a, **k: None
check_close = labkit.checks.check_close  # the name a kernel's test cell would use
"""
# ... and passing reports forged on every descriptor the student's process has
FORGED = """
from labkit.grading.wire import write_frame
for fd in range(3, 256):
    for frame in ({"ok": 4}, {"test": 1}, {"test_over": 1, "status": "exited"},
                  {"passed": True}, {"done": True}):
        try:
            write_frame(fd, frame)
        except Exception:
            pass
"""


def test_forged_reports_and_a_patched_check_do_not_pass_a_wrong_answer():
    """A student process that writes passing reports on every descriptor it has and replaces
    check_close in its own labkit: is its wrong add still failed (the referee's own
    check_close decides, and what the student's side sends is data)?"""
    # A kernel runs the prelude, the answer and the test in one namespace: there the wrong
    # answer passes (no forging needed). In a process of its own, since the answer patches
    # labkit.checks for the rest of the process it runs in.
    kernel = subprocess.run(
        [sys.executable, "-c", "\n".join((PRELUDE, WRONG_AND_PATCHED, TEST))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert kernel.returncode == 0, kernel.stderr
    result = _judge(WRONG_AND_PATCHED + FORGED, bwrap_available(), cell_timeout=5)
    assert result.cells.get(1, {}).get("passed") is not True, result.cells


ROOT = Path(__file__).resolve().parents[2]
LAB = "lab02_lr_schedules"


def _lab_program(*, blank: bool) -> tuple[dict, list[int]]:
    """Lab 02 as autograde judges it: the source's test cells (hidden tests included) and the
    solution's answers, or the release's empty ones; and the indices of the test cells."""
    source = nbformat.read(ROOT / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    if blank:
        release = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
        empty = {
            c.metadata["nbgrader"]["grade_id"]: c.source
            for c in release.cells
            if nbutils.is_solution(c)
        }
        for cell in source.cells:
            if nbutils.is_solution(cell):
                cell.source = empty[cell.metadata["nbgrader"]["grade_id"]]
    prelude, modules = instructor_prelude(source)
    program = judge_program(source, prelude=prelude, modules=modules, cell_timeout=120)
    return program, [c["index"] for c in program["cells"] if c["test"]]


def test_a_lab_is_graded_by_the_referee(monkeypatch):
    """Lab 02 (its schedulers step optimizers the tests make with student_side) through the
    sandbox and the referee: does the solution pass every test and the blank release none?"""
    monkeypatch.setenv("LABKIT_BUDGET", "smoke")  # the notebook's training: one batch
    use_bwrap = bwrap_available()
    limits = Limits(memory_mb=4000, wall_seconds=600)
    for blank in (False, True):
        program, tests = _lab_program(blank=blank)
        result = run_refereed(program, limits=limits, bwrap=use_bwrap, uid=judge_uid(use_bwrap))
        assert result.started and result.finished, (result.sandbox, result.cells)
        passed = {i: result.cells[i]["passed"] for i in tests}
        assert passed == {i: not blank for i in tests}, {i: result.cells[i]["error"] for i in tests}


# Values that lie: a wrong answer that compares equal in the process that made it.
TENSOR_TEST = """
x = torch.arange(6.0)
assert torch.allclose(double(x), 2 * x), "double(x): expected 2 * x"
"""
LYING_SUBCLASS = """
import torch
class Always(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.isclose, torch.equal, torch.Tensor.__eq__):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})
def double(x):
    return torch.zeros_like(x).as_subclass(Always)
"""
LYING_MODE = """
import torch
from torch.overrides import TorchFunctionMode
class Agree(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.isclose, torch.equal):
            return True
        return func(*args, **(kwargs or {}))
Agree().__enter__()  # left on for whatever runs next in this process
def double(x):
    return torch.zeros_like(x)
"""


@pytest.mark.parametrize("answer", [LYING_SUBCLASS, LYING_MODE], ids=["subclass", "mode"])
def test_values_that_lie_do_not_pass(answer):
    """A Tensor subclass whose torch functions say "equal", and a torch-function mode left
    on: each passes a wrong answer in a kernel (one process runs answer and test). Through the
    referee, which compares plain values in its own process, is the wrong answer failed?"""
    kernel = subprocess.run(
        [sys.executable, "-c", "\n".join(("import torch", answer, TENSOR_TEST))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert kernel.returncode == 0, kernel.stderr
    nb = nbformat.v4.new_notebook()
    nb.cells = [_cell(answer, "answer", test=False), _cell(TENSOR_TEST, "test", test=True)]
    program = judge_program(nb, prelude="import torch", modules=["torch"], cell_timeout=30)
    result = _referee(program)
    assert result.started and result.finished, result.sandbox
    assert result.cells[1]["passed"] is False, result.cells[1]


# Lab 01's exercises handed to fresh copies of labkit's own modules, loaded from their files:
# first from the grader's checkout or site-packages (where a student would find them from the
# editable finder or sys.prefix), else from the labkit this process imported.
DELEGATE = """
import importlib.util, os, labkit
def _fresh(name):
    parts = name.split(".")[1:]
    for home in ({home!r}, os.path.dirname(labkit.__file__)):
        path = os.path.join(home, *parts) + ".py"
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location(name + "_copy", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise ImportError(name)
_metrics, _fcn = _fresh("labkit.metrics"), _fresh("labkit.models.fcn")
_fcn.conv_bn_relu = _fresh("labkit.models.blocks").conv_bn_relu  # the fcn copy's own blocks
"""
DELEGATES = {
    "pixel_accuracy": "pixel_accuracy = _metrics.pixel_accuracy",
    "iou_per_class": "iou_per_class = _metrics.iou_per_class",
    "mean_iou": "mean_iou = _metrics.mean_iou",
    "BaselineFCN": "BaselineFCN = _fcn.BaselineFCN",
}


def _delegating_lab01() -> tuple[dict, list[int]]:
    """Lab 01's program with every answer a fresh copy of labkit's reference; test indices."""
    import labkit

    lab = "lab01_baseline_fcn"
    source = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    first = True
    for cell in source.cells:
        if nbutils.is_solution(cell) and cell.cell_type == "code":
            name = next(n for n in DELEGATES if f" {n}(" in cell.source.split("\n")[0])
            home = os.path.dirname(os.path.realpath(labkit.__file__))
            cell.source = (DELEGATE.format(home=home) if first else "") + DELEGATES[name]
            first = False
    prelude, modules = instructor_prelude(source)
    program = judge_program(source, prelude=prelude, modules=modules, cell_timeout=120)
    return program, [c["index"] for c in program["cells"] if c["test"]]


def test_a_fresh_copy_of_labkits_reference_does_not_pass(monkeypatch):
    """Lab 01 answered by fresh copies of labkit.metrics and labkit.models.fcn loaded from
    their files. The runner's forbid switches off the objects the tests name, not a second
    copy, so there it passes. Through the referee, whose student process has a labkit without
    the lab's references and sees no other copy, does every test fail?"""
    if not bwrap_available():
        pytest.skip("the grader's own labkit is hidden from the student only by bubblewrap")
    monkeypatch.setenv("LABKIT_BUDGET", "smoke")
    program, tests = _delegating_lab01()
    limits = Limits(memory_mb=4000, wall_seconds=600)
    runner = run_judge(program, limits=limits, bwrap=True, uid=NOBODY)
    assert all(runner.cells[i].get("passed") for i in tests), {
        i: runner.cells[i].get("error") for i in tests
    }
    refereed = run_refereed(program, limits=limits, bwrap=True, uid=NOBODY)
    assert refereed.started and refereed.finished, refereed.sandbox
    assert not any(refereed.cells[i]["passed"] for i in tests), refereed.cells
    errors = " ".join(str(refereed.cells[i]["error"]) for i in tests)
    assert "switched off while your work is graded" in errors, errors


FORBIDDING_TEST = """
def _own_helper(x):  # the test's own: nothing of it is in the student's process
    return x
x = torch.tensor([[2.0, 0.5, -1.0]])
with forbid(torch.nn.functional.log_softmax, _own_helper):
    check_close(log_probs(x), torch.log_softmax(x, 1), name="log_probs(x)")
"""
BORROWING = "import torch\ndef log_probs(x):\n    return torch.nn.functional.log_softmax(x, 1)\n"
OWN = "import torch\ndef log_probs(x):\n    return x - torch.logsumexp(x, 1, keepdim=True)\n"


@pytest.mark.parametrize(
    "answer, passes", [(OWN, True), (BORROWING, False)], ids=["own", "borrowed"]
)
def test_forbid_in_a_test_reaches_the_students_process(answer, passes):
    """A test that switches off torch's log_softmax (not labkit's, so not taken out of the
    student's process): is an answer that calls it failed with the referee's one line, and
    one written by hand passed, the test's own helper in the list doing no harm?"""
    nb = nbformat.v4.new_notebook()
    nb.cells = [_cell(answer, "answer", test=False), _cell(FORBIDDING_TEST, "test", test=True)]
    prelude = "import torch\nfrom labkit.checks import check_close, forbid"
    program = judge_program(
        nb, prelude=prelude, modules=["torch", "labkit.checks"], cell_timeout=30
    )
    result = _referee(program)
    assert result.cells[1]["passed"] is passes, result.cells[1]
    if not passes:
        assert result.cells[1]["error"]["ename"] == "ReferenceUsedError", result.cells[1]
