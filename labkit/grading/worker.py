"""Grade one student's lab: the module run with one argument, SPEC (a JSON object).

A process of its own per submission, forked by a zygote (:mod:`labkit.grading.zygote`)
that :func:`labkit.grading.batch.autograde` starts (``python -I`` on the grader's own
labkit, :func:`labkit.grading.bootstrap.module_argv`), so that a crash, a hang or a kill
ends one student's grading and nothing else (``python -m`` with SPEC runs one the same
way). It checks the submitted folder, then runs nbgrader's own autograde converter for the
student in this process, with :class:`~labkit.grading.judge.JudgePreprocessor` in place of
``Execute`` and missing grade cells added back. Its last line on stdout is the outcome as JSON:
``{"status": "graded" | "failed", "reason": str, "score": float | null, "max_score": ...}``.
When nbgrader fails, the reason is the deepest cause: the exception the judge raised (a
:class:`~labkit.grading.sandbox.SandboxError`, a :class:`~labkit.grading.judge.JudgeError`
for a judge that never started), else the first exception of the last traceback nbgrader
logged; never nbgrader's own "see the above traceback".
It exits when the pipe SPEC's ``lifeline`` names reaches its end: a grader killed with
SIGKILL takes its workers along.
"""

import json
import os
import re
import sys
import textwrap
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported only for a hint: grading imports it after the submission's check
    from traitlets.config import Config

__all__ = ["check_submission", "deepest", "grade", "nbgrader_cause", "preload", "run"]


def _orphaned(fd: int) -> None:
    while os.read(fd, 64):
        pass
    os._exit(3)


def check_submission(folder: Path, lab: str) -> tuple[str | None, str]:
    """``(problem, note)``: why the folder cannot be graded (or None), and a remark."""
    if not folder.is_dir():
        return f"no submission: expected the folder {folder}", ""
    found = sorted(p.name for p in folder.glob("*.ipynb"))
    if f"{lab}.ipynb" not in found:
        return (
            f"no notebook named {lab}.ipynb in {folder}; found "
            f"{', '.join(found) or 'no notebook at all'}. Rename the student's notebook "
            f"to {lab}.ipynb and grade again."
        ), ""
    path = folder / f"{lab}.ipynb"
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError) as exc:
        return f"{lab}.ipynb is not a notebook: invalid JSON ({exc})", ""
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return f"{lab}.ipynb is not a notebook: expected a JSON object with a list of cells", ""
    if data.get("nbformat") != 4:
        return (
            f"{lab}.ipynb has nbformat {data.get('nbformat')!r}; expected 4. Open and "
            "save it in Jupyter 4 or later, then grade again."
        ), ""
    extra = [name for name in found if name != f"{lab}.ipynb"]
    return None, f"ignored extra notebook(s): {', '.join(extra)}" if extra else ""


_LOGGED = "[ERROR] Traceback (most recent call last):"  # nbgrader logs format_exc() so,
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*: \S.*$", re.M)  # its lines after the first indented


def deepest(exc: BaseException) -> str:
    """``"Type: message"`` of the innermost exception ``exc`` was raised from or during."""
    from labkit.errors import innermost

    inner = innermost(exc)
    return f"{type(inner).__name__}: {inner}"


def nbgrader_cause(result: dict) -> str:
    """Why ``NbGraderAPI.autograde`` failed: the innermost exception the judge raised, else
    the first (innermost) exception of the last traceback nbgrader logged."""
    from labkit.grading.judge import JudgePreprocessor

    if JudgePreprocessor.failures:
        return deepest(JudgePreprocessor.failures[-1])
    log_text = result.get("log") or ""
    if _LOGGED in log_text:  # one record: up to the next "[LEVEL] ..." line
        chunk = textwrap.dedent(log_text.rsplit(_LOGGED, 1)[1].split("\n[", 1)[0])
        found = _EXCEPTION.search(chunk)  # frames stay indented; the first is the innermost
        if found:
            return found.group(0)
    return (
        "no exception in nbgrader's log; run `nbgrader autograde` for this student in "
        "the course folder to see it"
    )


def _drop_duplicate_ids():
    """nbgrader's ``DeduplicateIds``, whose demoted copies are left with an empty ``nbgrader``
    entry that ``CheckCellMetadata`` then rejects as old metadata, failing the student; the
    entry is removed instead, so the copy is an ordinary cell of the student's."""
    from nbgrader.preprocessors import DeduplicateIds

    class DropDuplicateIds(DeduplicateIds):
        def preprocess(self, nb, resources):
            nb, resources = super().preprocess(nb, resources)
            for cell in nb.cells:
                if cell.metadata.get("nbgrader") == {}:
                    del cell.metadata["nbgrader"]
            return nb, resources

    return DropDuplicateIds


def grade(spec: dict) -> dict:
    """Autograde ``spec["student"]``'s ``spec["lab"]`` in course ``spec["root"]``."""
    root, lab, student = Path(spec["root"]).resolve(), spec["lab"], spec["student"]
    # before nbgrader's imports (about a second): a submission that cannot be graded fails fast
    problem, note = check_submission(root / "submitted" / student / lab, lab)
    if problem:
        return {"status": "failed", "reason": problem, "score": None, "max_score": None}
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI

    from labkit.grading.export import gradebook_path
    from labkit.grading.judge import JudgePreprocessor

    config = _autograde_config(root, lab, spec)
    result = NbGraderAPI(config=config).autograde(lab, student, force=True, create=True)
    if not result.get("success"):
        return {
            "status": "failed",
            "reason": "nbgrader autograde failed: " + nbgrader_cause(result)[:500],
            "score": None,
            "max_score": None,
        }
    with Gradebook(f"sqlite:///{gradebook_path(root)}") as gb:
        sub = gb.find_submission(lab, student)
        score, max_score = float(sub.score), float(sub.max_score)
    judged = JudgePreprocessor.reports[-1] if JudgePreprocessor.reports else None
    notes = [note] if note else []
    if judged is not None and not judged.finished:
        notes.append(f"the judge stopped early: {judged.sandbox.reason or 'no reason given'}")
    if judged is not None and not judged.sandbox.sandboxed:
        notes.append(
            "judged with resource limits only (no bubblewrap)"
            + (" as the grader's own user" if spec["uid"] is None else "")
        )
    return {"status": "graded", "reason": "; ".join(notes), "score": score, "max_score": max_score}


def _autograde_config(root: Path, lab: str, spec: dict) -> "Config":
    """The course's nbgrader configuration for autograding ``lab``: nbgrader's preprocessors
    with the judge in place of ``Execute`` (set up from the lab's source notebook and
    ``spec``), the duplicate ids dropped and missing grade cells added back."""
    import nbformat
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        ClearOutput,
        IgnorePattern,
        LimitOutput,
        OverwriteCells,
        OverwriteKernelspec,
        SaveAutoGrades,
    )
    from traitlets.config.loader import PyFileConfigLoader

    from labkit.grading.judge import JudgePreprocessor, hidden_lines, instructor_prelude

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    source_dir = config.CourseDirectory.get("source_directory", "source")
    source = nbformat.read(root / source_dir / lab / f"{lab}.ipynb", as_version=4)
    prelude, modules = instructor_prelude(source)
    config.CourseDirectory.root = str(root)
    # nbgrader's order, with the judge where the kernel ran: outputs first, then the scores.
    config.Autograde.autograde_preprocessors = [
        JudgePreprocessor,
        IgnorePattern,
        ClearMetadataPreprocessor,
        LimitOutput,
        SaveAutoGrades,
        AssignLatePenalties,
        CheckCellMetadata,
    ]
    config.Autograde.sanitize_preprocessors = [  # nbgrader's, with the duplicates dropped
        ClearOutput,
        _drop_duplicate_ids(),
        OverwriteKernelspec,
        OverwriteCells,
        CheckCellMetadata,
    ]
    config.OverwriteCells.add_missing_cells = True
    config.JudgePreprocessor.update(
        prelude=prelude,
        modules=modules,
        hidden=sorted(hidden_lines(source)),
        hide=[str(root)],
        timeout=spec["timeout"],
        cell_timeout=spec["cell_timeout"],
        memory_mb=spec["memory_mb"],
        sandbox=spec["sandbox"],
        referee=spec.get("referee", True),
        uid=spec["uid"],
        data=spec.get("data", ""),
    )
    return config


def preload(referee: bool = False) -> None:
    """Import what :func:`grade` imports (nbgrader, nbconvert, the judge, and with
    ``referee`` the referee's side, torch included: about 2 s of a core): what a zygote
    (:mod:`labkit.grading.zygote`) does once, before it forks a worker per submission."""
    import nbconvert.preprocessors  # noqa: F401
    import nbformat  # noqa: F401
    import nbgrader.api  # noqa: F401
    import nbgrader.apps  # noqa: F401
    import nbgrader.preprocessors  # noqa: F401
    import traitlets.config.loader  # noqa: F401

    import labkit.errors  # noqa: F401
    import labkit.grading.export  # noqa: F401
    import labkit.grading.judge  # noqa: F401

    if referee:
        import labkit.grading.refereed  # noqa: F401


def run(spec: dict) -> None:
    """Grade as :func:`grade`, print the outcome as the last line of stdout and end the
    process; it ends sooner when the pipe ``spec["lifeline"]`` reaches its end."""
    threading.Thread(target=_orphaned, args=(spec["lifeline"],), daemon=True).start()
    try:
        outcome = grade(spec)
    except Exception as exc:  # noqa: BLE001 - one line for the instructor, never a traceback
        outcome = {
            "status": "failed",
            "reason": f"{type(exc).__name__}: {exc}"[:500],
            "score": None,
            "max_score": None,
        }
    sys.stdout.write("\n" + json.dumps(outcome) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    run(json.loads(sys.argv[1]))
