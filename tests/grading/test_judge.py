"""Tests for labkit.grading.judge and the runner it starts (labkit.grading.judge_runner)."""

from __future__ import annotations

import ast
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from labkit.grading import judge, refereed
from labkit.grading.bwrap import bwrap_available, probe
from labkit.grading.judge import (
    WITHHELD,
    JudgeError,
    JudgePreprocessor,
    apply_verdicts,
    hidden_lines,
    instructor_prelude,
    judge_program,
    run_judge,
)
from labkit.grading.sandbox import Limits
from tests.grading.conftest import judge_uid

HIDDEN = "assert add(2, 2) == 4, 'hidden add check'"
UID = judge_uid(bwrap_available())  # as autograde runs its judges


def _test_cell(source: str, grade_id: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {
        "grade": True,
        "solution": False,
        "locked": True,
        "grade_id": grade_id,
        "points": 1,
        "schema_version": 3,
    }
    return cell


def _answer_cell(source: str, grade_id: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {
        "grade": False,
        "solution": True,
        "locked": False,
        "grade_id": grade_id,
        "schema_version": 3,
    }
    return cell


def _notebook(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        c if isinstance(c, nbformat.NotebookNode) else nbformat.v4.new_code_cell(c) for c in cells
    ]
    return nb


def _judge(nb, prelude="import numpy as np", **kw):
    program = judge_program(nb, prelude=prelude, modules=["numpy"], cell_timeout=20)
    return run_judge(program, limits=Limits(memory_mb=1500, wall_seconds=60), **{"uid": UID, **kw})


def _verdicts(nb, result, **kw) -> dict[str, str | None]:
    """grade_id → None (passed) or the error line nbgrader will score as a failure."""
    apply_verdicts(nb, result, **kw)
    out = {}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid and not cell.metadata["nbgrader"].get("solution"):
            errors = [o for o in cell.outputs if o.output_type == "error"]
            out[gid] = f"{errors[0].ename}: {errors[0].evalue}" if errors else None
    return out


def test_prelude_keeps_instructor_imports_but_not_answer_names():
    """Does the prelude hold the setup cell's imports, minus a name an answer defines, and
    the module list every import anywhere?"""
    source = _notebook(
        "%matplotlib inline\nimport numpy as np\nfrom math import sqrt, pi",
        _answer_cell("def sqrt(x):\n    return x ** 0.5", "sqrt"),
        _test_cell("import fractions\nassert sqrt(4) == 2", "test_sqrt"),
    )
    prelude, modules = instructor_prelude(source)
    assert "import numpy as np" in prelude and "from math import pi" in prelude
    assert "sqrt" not in prelude
    assert {"numpy", "math", "fractions"} <= set(modules)


def test_hidden_lines_are_the_hidden_tests():
    """Are the long lines between the hidden-test markers found, and no visible line?"""
    source = _notebook(
        _test_cell(
            "assert add(1, 1) == 2, 'visible'\n### BEGIN HIDDEN TESTS\n"
            f"{HIDDEN}\n# a comment that is long enough\n"
            "### END HIDDEN TESTS\n",
            "test_add",
        )
    )
    assert hidden_lines(source) == {HIDDEN}


def test_passing_and_failing_tests():
    """Does a right answer pass its test, a wrong one fail with its message, and a test
    after os._exit count as failed rather than vanish?"""
    nb = _notebook(
        "def add(a, b):\n    return a + b",
        _test_cell("assert add(1, 1) == 2", "t_ok"),
        _test_cell("assert add(1, 1) == 3, 'add(1, 1): expected 3'", "t_bad"),
        "import os\nos._exit(0)",
        _test_cell("assert True", "t_after"),
    )
    result = _judge(nb)
    assert result.started and not result.finished
    assert result.grader_failure() is None
    verdicts = _verdicts(nb, result)
    assert verdicts["t_ok"] is None
    assert verdicts["t_bad"] == "AssertionError: add(1, 1): expected 3"
    assert verdicts["t_after"].startswith("NotJudged")


def test_patched_library_is_restored_before_a_test():
    """Are np.isclose and a replaced sys.modules['numpy'] put back before the test runs?"""
    nb = _notebook(
        "np.isclose = lambda *a, **k: True",
        _test_cell("assert not np.isclose(1.0, 2.0)", "t_isclose"),
        "import sys, types\nsys.modules['numpy'] = types.ModuleType('numpy')\nnp = None",
        _test_cell("import numpy\nassert numpy.allclose([1], [1])", "t_module"),
    )
    verdicts = _verdicts(nb, _judge(nb))
    assert verdicts == {"t_isclose": None, "t_module": None}


def test_library_changed_during_a_test_fails_it():
    """Does a student function that patches np.allclose when called fail the test that
    calls it, while library code that rebinds its own attributes does not?"""
    nb = _notebook(
        "def sneaky():\n    np.allclose = lambda *a, **k: True\n    return 1",
        _test_cell("sneaky()\nassert np.allclose([1], [2])", "t_sneaky"),
        _test_cell("import tempfile\ntempfile.mkstemp()", "t_library"),
    )
    verdicts = _verdicts(nb, _judge(nb))
    assert "changed while the test ran" in verdicts["t_sneaky"]
    assert verdicts["t_library"] is None


def test_forged_verdicts_are_ignored():
    """Is a pass line the student writes into the results file (without the nonce)
    ignored, and a thread re-patching np.isclose powerless inside the test's fork?"""
    nb = _notebook(
        "import json, threading\n"
        "open('.judge-results', 'a').write('0' * 32 + ' ' + json.dumps("
        "{'index': 1, 'passed': True, 'output': '', 'error': None}) + '\\n')\n"
        "def _loop():\n    while True:\n        np.isclose = lambda *a, **k: True\n"
        "threading.Thread(target=_loop, daemon=True).start()",
        _test_cell("assert np.isclose(1.0, 2.0)", "t_forged"),
    )
    assert _verdicts(nb, _judge(nb)) == {"t_forged": "AssertionError: "}


def test_output_quoting_hidden_tests_is_withheld():
    """Is a printed hidden test line replaced, in answer cells and test cells alike?"""
    nb = _notebook(f"print({HIDDEN!r})", _test_cell(f"print({HIDDEN!r})\nassert False", "t"))
    apply_verdicts(nb, _judge(nb), hidden={HIDDEN})
    texts = [o.get("text", "") + o.get("evalue", "") for c in nb.cells for o in c.outputs]
    assert all(HIDDEN not in t for t in texts) and WITHHELD in texts[0]


def test_student_errors_keep_their_traceback():
    """Does an error in the student's own cell come with the line that raised it?"""
    nb = _notebook("def f():\n    raise ValueError('bad input')\nf()")
    apply_verdicts(nb, _judge(nb))
    [error] = [o for o in nb.cells[0].outputs if o.output_type == "error"]
    assert error.ename == "ValueError" and "raise ValueError" in "".join(error.traceback)


@pytest.mark.needs("bwrap")
def test_judge_cannot_reach_the_network_or_hidden_paths():
    """Inside the judge, is a hidden folder absent and the network unreachable?"""
    secret = Path(tempfile.mkdtemp(prefix="labkit-judge-course-", dir="/var/tmp"))  # not /tmp:
    (secret / "gradebook.db").write_text("secret")  # the sandbox has a /tmp of its own
    nb = _notebook(
        "import os, socket\nprint(os.path.exists(%r))\n"
        "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
        "    print('REACHED')\nexcept OSError as exc:\n    print('refused')" % str(secret)
    )
    try:
        apply_verdicts(nb, _judge(nb, hide=[str(secret)]))
    finally:
        shutil.rmtree(secret)
    assert nb.cells[0].outputs[0].text.split() == ["False", "refused"]


FILL = """
import errno
total = 0
try:
    for i in range(8):
        with open(f"fill{i}", "wb") as f:
            f.write(b"x" * 3 * 2**20)
        total += 3
except OSError as exc:
    print("stopped", total, errno.errorcode[exc.errno])
"""


@pytest.mark.needs("bwrap")
def test_the_judge_sees_no_kit_and_writes_a_capped_scratch():
    """Inside the judge, with torch and labkit imported, is there nothing of the checkout
    around labkit but the package (and the environment), no kit copied to an unrelated
    folder, and does filling the working directory stop at output_mb with the next test
    still judged?"""
    if not probe()[1]:
        pytest.skip("this bubblewrap takes no --size (it needs 0.7): its tmpfs have no cap")
    kit = Path(tempfile.mkdtemp(prefix="labkit-judge-kit-", dir="/var/tmp"))
    (kit / "solutions").mkdir()
    (kit / "solutions" / "lab.ipynb").write_text("### BEGIN HIDDEN TESTS")
    for path in (kit, kit / "solutions"):
        path.chmod(0o755)
    nb = _notebook(
        "import os, labkit, torch\n"
        "around = os.listdir(os.path.dirname(os.path.dirname(labkit.__file__)))\n"
        f"print(around, os.path.exists({str(kit / 'solutions')!r}), "
        "torch.ones(2).sum().item())",
        FILL,
        _test_cell("assert True", "t_after"),
    )
    program = judge_program(nb, prelude="", modules=["numpy"], cell_timeout=60)
    try:
        result = run_judge(
            program, limits=Limits(memory_mb=3000, wall_seconds=120, output_mb=16), uid=UID
        )
    finally:
        shutil.rmtree(kit)
    assert _verdicts(nb, result) == {"t_after": None}
    around, exists, two = nb.cells[0].outputs[0].text.rsplit(" ", 2)
    package = Path(judge.__file__).resolve().parents[1]
    expected = {"labkit"} | {
        Path(p).relative_to(package.parent).parts[0]
        for p in (sys.prefix, sys.base_prefix)
        if Path(p).is_relative_to(package.parent)
    }
    assert set(ast.literal_eval(around)) == expected, around
    assert [exists, two] == ["False", "2.0\n"]
    stopped, total, why = nb.cells[1].outputs[0].text.split()
    assert stopped == "stopped" and int(total) < 16 and why == "ENOSPC"


def test_a_cell_past_its_time_limit_is_stopped_and_the_notebook_goes_on():
    """Is a looping cell stopped at the per-cell limit, with later tests still judged?"""
    nb = _notebook("while True:\n    pass", _test_cell("assert 1 + 1 == 2", "t_after_loop"))
    program = judge_program(nb, prelude="", modules=[], cell_timeout=2)
    result = run_judge(program, limits=Limits(memory_mb=1500, wall_seconds=60), uid=UID)
    assert result.finished
    apply_verdicts(nb, result)
    [error] = [o for o in nb.cells[0].outputs if o.output_type == "error"]
    assert error.ename == "TimeoutError"
    assert _verdicts(nb, result) == {"t_after_loop": None}


def test_a_judge_that_never_starts_is_the_graders_failure(monkeypatch):
    """When the runner dies before its "started" record (a labkit that does not import),
    is that a JudgeError carrying the runner's last lines, never a notebook of failed tests?"""
    crash = (
        "import sys\nprint('loading labkit', flush=True)\n"
        "sys.exit('ImportError: cannot import name judge_program')"
    )
    for path in (judge, refereed):  # the runner, and the referee's student process
        monkeypatch.setattr(
            path, "module_argv", lambda *a, **k: [sys.executable, "-I", "-c", crash]
        )
    nb = _notebook("def add(a, b):\n    return a + b", _test_cell("assert add(1, 1) == 2", "t"))
    result = _judge(nb)
    assert not result.started and result.cells == {}
    why = result.grader_failure()
    assert "exited with status 1" in why
    assert why.endswith("loading labkit / ImportError: cannot import name judge_program")
    for referee in (False, True):
        monkeypatch.setattr(JudgePreprocessor, "failures", [])
        preprocessor = JudgePreprocessor(uid=UID, memory_mb=1500, timeout=60.0, referee=referee)
        with pytest.raises(JudgeError, match="cannot import name judge_program"):
            preprocessor.preprocess(nb, {})
        assert [type(e) for e in JudgePreprocessor.failures] == [JudgeError]
        assert all(not cell.get("outputs") for cell in nb.cells)  # nothing for nbgrader to score


def test_the_judge_binds_back_borrowed_site_packages(tmp_path, monkeypatch):
    """Does the judge bind a site-packages folder the grader imports from outside its prefix
    (a .pth line into a folder the sandbox does not show, say under /tmp), and never a plain
    sys.path folder such as an editable install's checkout, which it hides?"""
    borrowed = tmp_path / "lib" / "site-packages"
    checkout = tmp_path / "checkout"
    borrowed.mkdir(parents=True)
    checkout.mkdir()
    monkeypatch.setattr(sys, "path", [*sys.path, str(borrowed), str(checkout)])
    hide, readable = judge.kit_paths()
    assert os.path.realpath(borrowed) in readable
    assert os.path.realpath(checkout) not in readable
    package = Path(judge.__file__).resolve().parents[1]
    assert str(package) in readable
    assert hide == ([] if str(package.parent) in readable else [str(package.parent)])


def test_the_notebook_sees_the_graders_budget_and_nothing_else(monkeypatch):
    """Does a grader's LABKIT_BUDGET reach the notebook, and another of its variables not?"""
    monkeypatch.setenv("LABKIT_BUDGET", "smoke")
    monkeypatch.setenv("LABKIT_JUDGE_SECRET", "grader-only")
    nb = _notebook(
        "import os\nprint(os.environ.get('LABKIT_BUDGET'), os.environ.get('LABKIT_JUDGE_SECRET'))"
    )
    apply_verdicts(nb, _judge(nb))
    assert nb.cells[0].outputs[0].text.split() == ["smoke", "None"]
