"""Judging a submission: its cells run in a sandboxed plain-Python process, verdicts trusted here.

nbgrader's autograde runs the notebook in a Jupyter kernel and reads the scores off the
outputs the kernel produced, so whatever the student's code does to that kernel (patching
``np.isclose``, blanking later cells through IPython's input transformers, a custom exception
handler) decides the score. :class:`JudgePreprocessor` takes the place of nbgrader's
``Execute`` in ``nbgrader autograde``: after nbgrader has put the instructor's test cells
(hidden tests included) back into the notebook, it hands the cells to
:mod:`labkit.grading.judge_runner` under :func:`~labkit.grading.sandbox.run_sandboxed`, and
writes the outputs nbgrader then scores from:

- a passing test cell gets its printed output; a failing one one error line (type and
  message, never the hidden source); a test cell the runner never reported is a failure;
- student cells get their output and tracebacks, as in a kernel;
- an output that quotes a line of the hidden tests is withheld.

``execute_result`` outputs, which nbgrader reads as partial credit, are never written.

A judge that never started (the runner reports ``started`` after its own imports, before any
student code) failed for a reason of the grader's: :class:`JudgePreprocessor` raises
:class:`JudgeError` with the sandbox's account and the runner's last lines of output, so
nbgrader stores no score and the submission is recorded as failed, to be graded again,
never as a 0. Every exception the preprocessor raises is kept in
``JudgePreprocessor.failures``: nbgrader's converter only logs it, and the grading worker
reports it as the cause.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader import utils as nbutils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Float, Integer, List, Unicode

from labkit.grading.bootstrap import module_argv
from labkit.grading.sandbox import NOBODY, Limits, SandboxResult, run_sandboxed

__all__ = [
    "JudgeError",
    "JudgePreprocessor",
    "JudgeResult",
    "apply_verdicts",
    "hidden_lines",
    "instructor_prelude",
    "judge_env",
    "judge_program",
    "kit_paths",
    "sandbox_options",
    "run_judge",
]

log = logging.getLogger(__name__)

_HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
_MAGIC = re.compile(r"^([ \t]*)%matplotlib\b.*$", re.M)  # plots go to Agg in the judge
WITHHELD = "[output withheld: it quotes the hidden tests]"
TAIL_LINES = 3  # of the runner's output, in the reason a judge that never started gives


class JudgeError(RuntimeError):
    """The judge could not judge: a failure of the grader or the machine, not of the student."""


def _is_test(cell) -> bool:
    return cell.cell_type == "code" and nbutils.is_grade(cell) and not nbutils.is_solution(cell)


def _python(source: str) -> str:
    """Cell source as plain Python: ``%matplotlib`` dropped, other IPython syntax translated."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(_MAGIC.sub(r"\1pass", source))
    except SyntaxError:  # the runner's compile() reports it against the cell
        return source


def _imports(tree: ast.AST) -> list[ast.stmt]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        and not (isinstance(n, ast.ImportFrom) and n.level)
    ]


def instructor_prelude(source: nbformat.NotebookNode) -> tuple[str, list[str]]:
    """The instructor's imports, to rebind before every test, and the modules tests use.

    Args:
        source (nbformat.NotebookNode): the lab's nbgrader source notebook
            (``solutions/<lab>/<lab>.ipynb``).

    Returns:
        ``(prelude, modules)``: the top-level import statements of the code cells that are
        neither answers nor tests, less any name an answer cell defines; and every module
        any code cell imports, for the runner to load before it snapshots the library.
    """
    prelude, modules, defined = [], set(), set()
    for cell in source.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(_python(cell.source))
        except SyntaxError:
            continue
        for node in _imports(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            )
            modules.update(names)
        if nbutils.is_solution(cell):
            defined.update(
                n.id
                for n in ast.walk(tree)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
            )
            defined.update(
                n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
            )
        elif not _is_test(cell):
            prelude += [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    kept = []
    for node in prelude:
        node.names = [a for a in node.names if (a.asname or a.name).split(".")[0] not in defined]
        kept += [ast.unparse(node)] if node.names else []
    return "\n".join(dict.fromkeys(kept)), sorted(modules)


def hidden_lines(source: nbformat.NotebookNode, *, min_chars: int = 12) -> set[str]:
    """The stripped lines of the source's hidden tests that are long enough to recognise."""
    lines = set()
    for cell in source.cells:
        for block in _HIDDEN.findall(cell.source if cell.cell_type == "code" else ""):
            lines.update(
                s
                for s in map(str.strip, block.splitlines())
                if len(s) >= min_chars and not s.startswith("#")
            )
    return lines


def judge_program(
    nb: nbformat.NotebookNode, *, prelude: str, modules: list[str], cell_timeout: float
) -> dict:
    """The runner's program for a sanitized submission (no nonce or results path yet)."""
    cells = [
        {"index": i, "test": _is_test(c), "source": _python(c.source)}
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
    ]
    return {"prelude": prelude, "modules": modules, "cell_timeout": cell_timeout, "cells": cells}


@dataclass(frozen=True)
class JudgeResult:
    """What the runner reported: one record per cell index, and how the sandbox ended.

    Attributes:
        cells: index → ``{"output", "error", "passed"?}`` (``passed`` for test cells).
        started: the runner got through its own imports; no student code ran before.
        finished: the runner reached the end of the notebook.
        sandbox: the sandbox's account of the run (limits hit, signals, its output tail).
    """

    cells: dict[int, dict]
    started: bool
    finished: bool
    sandbox: SandboxResult

    def grader_failure(self) -> str | None:
        """Why the judge never started (``None`` if it did), with its last lines of output."""
        if self.started:
            return None
        lines = [line.strip() for line in self.sandbox.output.splitlines() if line.strip()]
        tail = " / ".join(lines[-TAIL_LINES:]) or "no output"
        return (
            f"the judge did not start ({self.sandbox.reason or 'exited with status 0'}); "
            f"its output ended: {tail}"
        )


def kit_paths() -> tuple[list[str], list[str]]:
    """What the judge must see of the kit, and hide: ``(hide, readable)``.

    Readable: labkit's package folder (its files only, presets included), the environment
    (``sys.prefix``) and every site-packages folder this interpreter imports from; the
    sandbox adds the system and the interpreter's installation, and shows nothing else. The
    site-packages folders matter where an environment borrows installed packages from
    outside its prefix (a ``.pth`` line, ``--system-site-packages``). Hidden: the folder
    around the package where that is not a site-packages folder (an editable install's
    checkout, ``solutions/`` and all), should a bound tree hold it; the package is bound
    back over it.
    """
    package = Path(__file__).resolve().parents[1]
    sites = [
        os.path.realpath(p)
        for p in sys.path
        if os.path.basename(p) in ("site-packages", "dist-packages") and os.path.isdir(p)
    ]
    hide = [] if str(package.parent) in sites else [str(package.parent)]
    return hide, list(dict.fromkeys([str(package), os.path.realpath(sys.prefix), *sites]))


def run_judge(
    program: dict,
    *,
    limits: Limits,
    hide: list[str] = (),
    bwrap: bool | None = None,
    uid: int | None = NOBODY,
    data: str = "",
) -> JudgeResult:
    """Run ``program`` (from :func:`judge_program`) in a fresh scratch folder, sandboxed.

    Under bubblewrap the runner sees the system, the interpreter and its environment,
    labkit's package (not the checkout around an editable install), the dataset and
    nothing else (:func:`kit_paths`, :mod:`labkit.grading.bwrap`). Its working directory
    and ``HOME`` are a tmpfs of ``limits.output_mb``, as are ``/tmp`` and ``/dev/shm``; the
    one host file it can write is the results file, bound into that tmpfs and capped at
    ``limits.output_mb`` (``RLIMIT_FSIZE``): in all at most ``4 * output_mb`` (2 GiB by
    default), three quarters of it memory. With limits only, it writes to the host's
    scratch folder, each file capped but not their total.

    Args:
        program (dict): the cells and prelude.
        limits (Limits): memory, CPU, processes, output size and the notebook's wall clock.
        hide (list[str]): course paths the student must not see (the course root), covered should a
            bound tree hold them; the rest of the host is not there anyway.
        bwrap (bool | None): as for :func:`~labkit.grading.sandbox.run_sandboxed`.
        uid (int | None): whom a root grader runs the code as; judges running at the same time need
            different ones, since the process cap counts every process of a uid. ``None``:
            the grader's own user (see :func:`~labkit.grading.sandbox.run_sandboxed`).
        data (str): a Shapes set to read (read-only, as ``$LABKIT_DATA``) instead of drawing one.

    The notebook sees none of the grader's environment but ``$LABKIT_BUDGET``: a grader that
    sets ``LABKIT_BUDGET=smoke`` (a test of the course, a check of a new lab) has every
    training cell run one batch. The graded cells of the labs come before their training.

    Raises:
        SandboxError: the sandbox cannot run the judge as asked (bwrap required but
            unusable, the interpreter out of ``uid``'s reach).
    """
    scratch = Path(tempfile.mkdtemp(prefix="labkit-judge-"))
    try:
        os.chmod(scratch, 0o755)
        results = scratch / ".judge-results"
        results.touch()
        nonce = secrets.token_hex(16)
        payload = json.dumps(dict(program, nonce=nonce, results=str(results))).encode()
        ran = run_sandboxed(
            module_argv("labkit.grading.judge_runner"),
            scratch=scratch,
            limits=limits,
            bwrap=bwrap,
            stdin=payload,
            writable=[results],
            uid=uid,
            **sandbox_options(hide, data),
        )
        return JudgeResult(*_read_results(results, nonce), ran)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def sandbox_options(hide: list[str], data: str, *, package: str | None = None) -> dict:
    """What a judged notebook's sandbox shows and hides, and its environment.

    Args:
        hide (list[str]): course paths the student must not see.
        data (str): a Shapes set to bind readable as ``$LABKIT_DATA`` (when it is a folder).
        package (str | None): a labkit package folder to show instead of the grader's (a copy
            without the lab's references, :func:`labkit.grading.strip.stripped_package`): the
            grader's is hidden, the copy's folder bound readable.

    Returns:
        ``env``, ``hide`` and ``readable`` for :func:`~labkit.grading.sandbox.run_sandboxed`:
        :func:`judge_env`; ``hide``, the kit's paths (:func:`kit_paths`) and the grader's
        home; the package, the environment and the dataset.
    """
    kit_hide, readable = kit_paths()
    env = judge_env(data)
    if "LABKIT_DATA" in env:
        readable = [*readable, data]
    if package is not None:
        own = readable.pop(0)  # kit_paths() lists the grader's package first
        kit_hide, readable = [*kit_hide, own], [*readable, os.path.dirname(package)]
    return {"env": env, "hide": [*hide, *kit_hide, os.path.expanduser("~")], "readable": readable}


def judge_env(data: str) -> dict[str, str]:
    """The judge's whole environment: none of the grader's but ``PATH`` and
    ``$LABKIT_BUDGET``, and ``$LABKIT_DATA`` when ``data`` is a folder (the caller binds it
    readable then)."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NBGRADER_EXECUTION": "autograde",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if os.environ.get("LABKIT_BUDGET"):
        env["LABKIT_BUDGET"] = os.environ["LABKIT_BUDGET"]
    if data and os.path.isdir(data):
        env["LABKIT_DATA"] = data
    return env


def _read_results(results: Path, nonce: str) -> tuple[dict[int, dict], bool, bool]:
    """``(cells, started, finished)`` from the runner's results file, as :class:`JudgeResult`
    holds them: only lines tagged with ``nonce`` count, and a line that is not JSON is
    skipped."""
    cells, started, finished = {}, False, False
    for line in results.read_text(encoding="utf-8", errors="replace").splitlines():
        tag, _, body = line.partition(" ")
        if tag != nonce:
            continue
        try:
            record = json.loads(body)
        except ValueError:
            continue
        if record.get("started"):
            started = True
        elif record.get("done"):
            finished = True
        elif isinstance(record.get("index"), int) and record["index"] not in cells:
            cells[record["index"]] = record  # the first word on a cell is the runner's
    return cells, started, finished


def _stream(text: str) -> list:
    return [nbformat.v4.new_output("stream", name="stdout", text=text)] if text else []


def _error(ename: str, evalue: str, traceback: list[str]):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=traceback)


def apply_verdicts(
    nb: nbformat.NotebookNode, result: JudgeResult, *, hidden: set[str] = frozenset()
) -> nbformat.NotebookNode:
    """Write the judge's outputs into ``nb`` (in place) for nbgrader to score; returns it."""

    def clean(text: str) -> str:
        return WITHHELD if any(line in text for line in hidden) else text

    why = result.sandbox.reason or "the judge stopped early"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        record = result.cells.get(index)
        cell.outputs, cell.execution_count = [], None
        if record is None:
            if _is_test(cell):
                cell.outputs = [
                    _error(
                        "NotJudged",
                        f"this test never ran: {why}",
                        [f"NotJudged: this test never ran: {why}"],
                    )
                ]
            continue
        cell.execution_count = index + 1
        error = record.get("error")
        cell.outputs = _stream(clean(str(record.get("output", ""))))
        if _is_test(cell) and not (record.get("passed") is True and error is None):
            error = error or {"ename": "TestFailed", "evalue": "the test failed"}
            line = clean(f"{error.get('ename')}: {error.get('evalue')}")
            cell.outputs.append(
                _error(str(error.get("ename")), clean(str(error.get("evalue"))), [line])
            )
        elif error is not None:
            cell.outputs.append(
                _error(
                    str(error.get("ename")),
                    clean(str(error.get("evalue"))),
                    [clean(str(t)) for t in error.get("traceback", [])],
                )
            )
    return nb


class JudgePreprocessor(NbGraderPreprocessor):
    """nbgrader's ``Execute``, replaced: the cells run in the sandboxed judge."""

    prelude = Unicode("", help="The instructor's imports, rebound before every test.").tag(
        config=True
    )
    modules = List(Unicode(), help="Modules to load before the library snapshot.").tag(config=True)
    hidden = List(Unicode(), help="Lines of the hidden tests, withheld from outputs.").tag(
        config=True
    )
    hide = List(Unicode(), help="Paths the student's code must not see.").tag(config=True)
    cell_timeout = Float(300.0, help="Wall-clock seconds for one cell.").tag(config=True)
    timeout = Float(900.0, help="Wall-clock seconds for the whole notebook.").tag(config=True)
    memory_mb = Integer(6144, help="Memory (PSS) of the judge's processes, MiB.").tag(config=True)
    sandbox = Bool(True, help="Use bubblewrap where it works (False: limits only).").tag(
        config=True
    )
    uid = Integer(
        NOBODY, allow_none=True, help="Whom a root grader runs student code as (None: itself)."
    ).tag(config=True)
    data = Unicode("", help="A Shapes set for the judge to read ($LABKIT_DATA).").tag(config=True)
    referee = Bool(
        True,
        help="Decide the tests outside the student's process (labkit.grading.refereed); "
        "False: the sandboxed runner decides them (labkit.grading.judge_runner).",
    ).tag(config=True)
    reports: list[JudgeResult] = []  # every run's JudgeResult, for the grading worker to read
    failures: list[BaseException] = []  # what preprocess raised: nbgrader only logs it

    def preprocess(self, nb, resources):
        try:
            return self._judge(nb, resources)
        except BaseException as exc:
            JudgePreprocessor.failures.append(exc)
            raise

    def _judge(self, nb, resources):
        program = judge_program(
            nb, prelude=self.prelude, modules=list(self.modules), cell_timeout=self.cell_timeout
        )
        limits = Limits(
            memory_mb=self.memory_mb, wall_seconds=self.timeout, cpu_seconds=int(self.timeout) + 60
        )
        if self.referee:
            from labkit.grading.refereed import run_refereed  # it imports this module

            run = run_refereed
        else:
            run = run_judge
        result = run(
            program,
            limits=limits,
            hide=list(self.hide),
            bwrap=None if self.sandbox else False,
            uid=self.uid,
            data=self.data,
        )
        JudgePreprocessor.reports.append(result)
        if why := result.grader_failure():
            raise JudgeError(why)  # no score: nbgrader fails this submission, not the student
        self.log.info(
            "judge: %d of %d cells reported, finished=%s, %s",
            len(result.cells),
            len(program["cells"]),
            result.finished,
            result.sandbox.reason or "exit 0",
        )
        return apply_verdicts(nb, result, hidden=set(self.hidden)), resources
