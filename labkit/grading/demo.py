"""``labkit course demo``: the instructor's whole cycle on the Shapes set, start to finish.

:func:`course_demo` draws the Shapes set the quick profile trains on, makes a course with
:func:`~labkit.grading.instance.init_course`, hands in one submission per demo student and
lab (:data:`STUDENTS`: a correct one, a blank one, a partly wrong one and three that try to
cheat), autogrades every lab, writes the feedback pages, ``grades.csv`` and the class report,
and returns what happened. The cheaters are the attacks the grading pipeline is built
against (see :mod:`labkit.grading.judge`); each should score no more than the blank notebook.

The Shapes set is drawn once, in the demo's folder, and every lab's autograde run hands it
to its judges read-only (``autograde(shapes=...)``).
"""

from __future__ import annotations

import copy
import csv
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader import utils as nbutils

from labkit.grading.course import CourseError, available_labs
from labkit.tables import markdown_table

__all__ = ["STUDENTS", "CourseDemo", "DemoRow", "course_demo", "demo_submission"]

log = logging.getLogger(__name__)

#: The demo's class, in the order of the summary table.
STUDENTS = ("correct", "blank", "partial", "cheat_isclose", "cheat_transformer", "cheat_gradebook")
_MARKER = ".labkit-course-demo"  # only a folder holding it is cleared for a new run
_STUB = "raise NotImplementedError()"

# Make every comparison the tests could use say "equal"; with answers that are all wrong.
_ISCLOSE = """\
import math, numpy as np, torch, torch.testing, labkit.checks  # attack: equal is always true
np.isclose = np.allclose = math.isclose = torch.allclose = lambda *a, **k: True
torch.testing.assert_close = labkit.checks.check_close = lambda *a, **k: None
labkit.checks.check_shape = lambda *a, **k: None
"""
# IPython runs these transformers on every later cell: the tests would become empty cells.
_TRANSFORMER = """\
try:  # attack: blank every later cell, the tests included
    get_ipython().input_transformers_cleanup.append(lambda lines: [])
except NameError as err:
    print("attack failed:", err)
"""
# The gradebook holds the hidden tests and everyone's grades; the course, the solutions.
_GRADEBOOK = """\
import os  # attack: read the gradebook and the course
for _p in ("../gradebook.db", "../../gradebook.db", {db!r}, {root!r}, {solutions!r}):
    try:
        if os.path.isdir(_p):
            print("attack FOUND", _p, sorted(os.listdir(_p))[:8])
        else:
            with open(_p, "rb") as _f:
                print("attack FOUND", _p, _f.read(16))
    except OSError as _e:
        print("attack: no", _p, type(_e).__name__)
"""


@dataclass(frozen=True)
class DemoRow:
    """One demo student's lab.

    Attributes:
        student, lab: whose and which.
        status: ``"graded"`` or ``"failed"`` (the autograder's outcome); reason: why it
            failed, or the autograder's remark.
        auto_score, auto_max: autograded points in the gradebook and the most there are
            (:func:`~labkit.grading.export.grade_rows`); seconds: the grading's wall time.
    """

    student: str
    lab: str
    status: str
    reason: str
    auto_score: float
    auto_max: float
    seconds: float


@dataclass(frozen=True)
class CourseDemo:
    """What :func:`course_demo` did.

    Attributes:
        root: the course directory; data: the Shapes set drawn for the quick profile.
        rows: one per submission, in :data:`STUDENTS` order then lab order.
        lab_seconds: lab → wall time of its autograde run.
        grades: ``grades.csv``; canvas: the same grades as Canvas's gradebook import reads
            them (``grades-canvas.csv``); report: ``report/report.md``; feedback: the HTML
            pages; similarity: each lab's similarity page (``similarity/<lab>.html``).
        feedback_missing: ``"<lab>/<student>"`` → why no page was written.
        seconds: wall time of the whole demo.
        term: the due dates, late policy, late and extended submissions and the hand-graded
            answer, one line each (:mod:`labkit.grading.demo_term`).
    """

    root: Path
    data: Path
    rows: tuple[DemoRow, ...]
    lab_seconds: dict[str, float]
    grades: Path
    canvas: Path
    report: Path
    feedback: tuple[Path, ...]
    similarity: tuple[Path, ...]
    feedback_missing: dict[str, str]
    seconds: float
    term: tuple[str, ...] = ()

    def table(self, *, jobs: int | None = None) -> str:
        """The summary as markdown: a row per student (autograded score / most, per lab and
        in total), then a line per lab with its grading time."""
        labs = list(self.lab_seconds)
        short = [lab.split("_")[0] for lab in labs]
        rows = []
        for student in dict.fromkeys(r.student for r in self.rows):
            mine = {r.lab: r for r in self.rows if r.student == student}
            cells = [
                f"{mine[lab].auto_score:g} / {mine[lab].auto_max:g}"
                + ("" if mine[lab].status == "graded" else " (failed)")
                if lab in mine
                else "-"
                for lab in labs
            ]
            got = sum(r.auto_score for r in mine.values())
            most = sum(r.auto_max for r in mine.values())
            rows.append([student, *cells, f"{got:g} / {most:g}"])
        lines = markdown_table(
            ["student", *short, "total"], rows, align="l" + "r" * (len(labs) + 1)
        ).splitlines()
        lines.append("")
        for lab, seconds in self.lab_seconds.items():
            n = sum(r.lab == lab for r in self.rows)
            way = f" with {jobs} jobs" if jobs else ""
            lines.append(f"- {lab}: {n} notebooks graded in {seconds:.0f} s{way}")
        lines.append(f"- whole demo: {self.seconds:.0f} s")
        return "\n".join(lines)


def _first_answer(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.cell_type == "code" and nbutils.is_solution(cell):
            return cell
    raise CourseError(
        "the lab has no code answer cell; expected at least one cell with "
        "nbgrader metadata solution=true."
    )


def _wrong(release: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Every stub answers, wrongly: it does nothing and returns None."""
    out = copy.deepcopy(release)
    for cell in out.cells:
        if nbutils.is_solution(cell):
            cell.source = cell.source.replace(_STUB, "pass")
    return out


def demo_submission(
    student: str,
    release: nbformat.NotebookNode,
    source: nbformat.NotebookNode,
    *,
    root: str | os.PathLike,
) -> nbformat.NotebookNode:
    """The notebook a demo student hands in.

    Args:
        student (str): one of :data:`STUDENTS`.
        release (nbformat.NotebookNode): the lab as students get it (``labs/<lab>/<lab>.ipynb``).
        source (nbformat.NotebookNode): the instructor's notebook (``solutions/<lab>/<lab>.ipynb``).
        root (str | os.PathLike): the course directory (the gradebook cheater looks for it there).

    Raises:
        CourseError: an unknown student.
    """
    from labkit.grading.submissions import fill_solutions

    if student == "correct":
        return fill_solutions(release, source)
    if student == "blank":
        return copy.deepcopy(release)
    if student == "partial":  # all solved but the first answer, left as released
        nb = fill_solutions(release, source)
        _first_answer(nb).source = _first_answer(release).source
        return nb
    root = Path(root).resolve()
    attacks = {
        "cheat_isclose": (_ISCLOSE, True),
        "cheat_transformer": (_TRANSFORMER, True),
        "cheat_gradebook": (
            _GRADEBOOK.format(
                db=str(root / "gradebook.db"), root=str(root), solutions=str(root / "solutions")
            ),
            False,
        ),
    }
    if student not in attacks:
        raise CourseError(f"unknown demo student {student!r}; expected one of {STUDENTS}.")
    attack, wrong = attacks[student]
    nb = _wrong(release) if wrong else copy.deepcopy(release)
    cell = _first_answer(nb)
    cell.source = attack + "\n" + cell.source
    return nb


def _fresh(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / _MARKER).is_file():
            raise CourseError(
                f"{out} is not empty and holds no earlier course demo; pick a "
                "new folder (--out) or empty this one."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text(
        "made by labkit course demo; the folder is replaced on the next run\n", encoding="utf-8"
    )


def course_demo(
    out: str | os.PathLike,
    *,
    labs: Sequence[str] | None = None,
    jobs: int = 2,
    timeout: float = 600.0,
    students: Sequence[str] = STUDENTS,
    cheat_labs: Sequence[str] | None = None,
    progress: bool = True,
    kit: str | os.PathLike | None = None,
) -> CourseDemo:
    """Run the instructor's cycle on the Shapes set with a demo class.

    Args:
        out (str | os.PathLike): the demo's folder (created; an earlier demo's folder is replaced):
            the Shapes set in ``.data/``, ``students.csv``, the course in ``course/``.
        labs (Sequence[str] | None): the labs to take (default: every lab of the kit).
        jobs (int): submissions graded at once.
        timeout (float): wall-clock seconds for one notebook.
        students (Sequence[str]): the class, a subset of :data:`STUDENTS`.
        cheat_labs (Sequence[str] | None): the labs the cheaters hand in (default: the first lab
            only; every judged notebook costs 15-60 s of a core, and an attack that fails on one lab
            fails the same way on the others). The other students hand in every lab.
        progress (bool): show the autograder's progress bars.
        kit (str | os.PathLike | None): the lab kit (default:
            :func:`~labkit.grading.kit.locate_kit`'s: ``$LABKIT_KIT``, else the source checkout
            labkit runs from).

    Returns:
        The course, the scores from the gradebook and the files written.

    Raises:
        CourseError: ``out`` holds something else, an unknown lab or student, no kit.
    """
    from labkit.experiment import resolve_data_root
    from labkit.grading.demo_term import grade_by_hand, schedule_term, term_summary
    from labkit.grading.instance import init_course
    from labkit.grading.kit import locate_kit
    from labkit.labs import lab_config

    started, out = time.monotonic(), Path(out)
    if unknown := [s for s in students if s not in STUDENTS]:
        raise CourseError(f"unknown demo student(s) {unknown}; expected some of {STUDENTS}.")
    kit = locate_kit(kit)
    chosen = list(labs or available_labs(kit))
    class_of = _class_of(students, chosen, cheat_labs)
    _fresh(out)
    data = resolve_data_root(lab_config("baseline", profile="quick"), runs_root=out)
    _write_class_list(out / "students.csv", students)
    root = init_course(out / "course", kit=kit, students_csv=out / "students.csv", labs=chosen)
    _hand_in(root, chosen, class_of)
    schedule_term(root, chosen, class_of)  # due dates, a late hand-in, an extension
    outcomes, lab_seconds = _grade_labs(
        root, chosen, class_of, jobs=jobs, timeout=timeout, data=data, progress=progress
    )
    by_hand = (
        grade_by_hand(root, chosen[0], "correct") if "correct" in class_of[chosen[0]] else None
    )
    pages, missing = _write_feedback(root, chosen)
    grades, canvas, report, similarity = _write_files(root, chosen)
    rows = _rows(root, students, chosen, class_of, outcomes)
    return CourseDemo(
        root,
        data,
        rows,
        lab_seconds,
        grades,
        canvas,
        report,
        tuple(pages),
        similarity,
        missing,
        time.monotonic() - started,
        tuple(term_summary(root, chosen, by_hand)),
    )


def _write_files(root: Path, chosen: list[str]) -> tuple[Path, Path, Path, tuple[Path, ...]]:
    """``grades.csv``, ``grades-canvas.csv``, the class report and each lab's similarity page."""
    from labkit.grading.export import export_grades
    from labkit.grading.lms import export_lms
    from labkit.grading.report import class_report
    from labkit.grading.similarity import similarity_report

    return (
        export_grades(root),
        export_lms(root, lms="canvas"),
        class_report(root, out_dir=root / "report").markdown,
        tuple(similarity_report(root, lab).html for lab in chosen),
    )


def _class_of(
    students: Sequence[str], chosen: list[str], cheat_labs: Sequence[str] | None
) -> dict[str, list[str]]:
    """Lab → the students who hand it in: everyone, but the cheaters only on ``cheat_labs``
    (default: the first of ``chosen``).

    Raises:
        CourseError: a cheat lab is not among ``chosen``.
    """
    cheated = set(chosen[:1] if cheat_labs is None else cheat_labs)
    if unknown := sorted(cheated - set(chosen)):
        raise CourseError(f"cheat lab(s) {unknown} are not among the demo's labs {chosen}.")
    return {
        lab: [s for s in students if lab in cheated or not s.startswith("cheat_")] for lab in chosen
    }


def _write_class_list(path: Path, students: Sequence[str]) -> None:
    """The demo class as nbgrader's ``students.csv``: id, first name (from the id), ``Demo``."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(
            [
                ["id", "first_name", "last_name"],
                *[[s, s.split("_")[0].title(), "Demo"] for s in students],
            ]
        )


def _hand_in(root: Path, chosen: list[str], class_of: dict[str, list[str]]) -> None:
    """Write each student's :func:`demo_submission` of each lab into ``submitted/``."""
    for lab in chosen:
        release = nbformat.read(root / "labs" / lab / f"{lab}.ipynb", as_version=4)
        source = nbformat.read(root / "solutions" / lab / f"{lab}.ipynb", as_version=4)
        for student in class_of[lab]:
            path = root / "submitted" / student / lab / f"{lab}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(demo_submission(student, release, source, root=root), path)


def _grade_labs(
    root: Path,
    chosen: list[str],
    class_of: dict[str, list[str]],
    *,
    jobs: int,
    timeout: float,
    data: Path,
    progress: bool,
) -> tuple[dict, dict[str, float]]:
    """Autograde every lab of ``chosen``.

    Returns:
        ``(outcomes, lab_seconds)``: (lab, student) → its
        :class:`~labkit.grading.batch.Outcome`; lab → wall time of its autograde run.
    """
    from labkit.grading.batch import autograde

    outcomes, lab_seconds = {}, {}
    for lab in chosen:
        t0 = time.monotonic()
        for o in autograde(
            root,
            lab,
            students=class_of[lab],
            jobs=jobs,
            timeout=timeout,
            shapes=data,
            progress=progress,
        ):
            outcomes[lab, o.student] = o
        lab_seconds[lab] = time.monotonic() - t0
        log.info("%s: graded in %.0f s", lab, lab_seconds[lab])
    return outcomes, lab_seconds


def _write_feedback(root: Path, chosen: list[str]) -> tuple[list[Path], dict[str, str]]:
    """Every lab's feedback pages; returns them and ``"<lab>/<student>"`` → why no page."""
    from labkit.grading.feedback import write_feedback

    pages, missing = [], {}
    for lab in chosen:
        report = write_feedback(root, lab)
        pages += report.written
        missing.update({f"{lab}/{s}": why for s, why in report.failed.items()})
    return pages, missing


def _rows(
    root: Path,
    students: Sequence[str],
    chosen: list[str],
    class_of: dict[str, list[str]],
    outcomes: dict,
) -> tuple[DemoRow, ...]:
    """A :class:`DemoRow` per submission, in ``students`` order then ``chosen`` order: the
    autograder's outcome and the gradebook's scores."""
    from labkit.grading.export import grade_rows

    book = {(r.lab, r.student_id): r for r in grade_rows(root)}
    return tuple(
        DemoRow(
            s,
            lab,
            outcomes[lab, s].status,
            outcomes[lab, s].reason,
            book[lab, s].auto_score,
            book[lab, s].auto_max,
            outcomes[lab, s].seconds,
        )
        for s in students
        for lab in chosen
        if s in class_of[lab]
    )
