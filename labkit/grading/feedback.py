"""``labkit course feedback``: an HTML page per student that never shows a hidden test.

nbgrader's ``generate_feedback`` renders the autograded notebook, in which every test cell
holds the instructor's full source, hidden tests included. :func:`write_feedback` runs the
same converter with :class:`HideTests` first: each test cell is cut back to its visible part,
as in the student's release. The outputs were already written by the judge
(:mod:`labkit.grading.judge`): a test cell shows what its visible checks printed and, when it
failed, one line with the error; answer cells show the student's own output and tracebacks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader import utils as nbutils
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from labkit.grading.course import check_lab
from labkit.grading.instance import read_record

__all__ = ["FeedbackReport", "HideTests", "write_feedback"]

log = logging.getLogger(__name__)


class HideTests(ClearHiddenTests):
    """nbgrader's ``ClearHiddenTests``, on test cells only and never raising.

    A student's own cell may say ``BEGIN HIDDEN TESTS`` to break the page; only the test
    cells, whose source is the instructor's, are cut.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "code" and nbutils.is_grade(cell) and not nbutils.is_solution(cell):
            try:
                self._remove_hidden_test_region(cell)
            except RuntimeError:  # malformed markers: show none of it
                cell.source = "# (this test's source is not shown)"
        return cell, resources


@dataclass(frozen=True)
class FeedbackReport:
    """What :func:`write_feedback` did.

    Attributes:
        written: the HTML files, one per student graded.
        failed: student → why no page was made (not graded, a converter error).
    """

    written: tuple[Path, ...]
    failed: dict[str, str]


def write_feedback(root: str | os.PathLike, lab: str, *,
                   students: list[str] | None = None) -> FeedbackReport:
    """Write ``feedback/<student>/<lab>/<lab>.html`` for each graded student.

    Args:
        root: the course directory; lab: the lab.
        students: whom for (default: everyone with an autograded notebook of the lab).

    Raises:
        CourseError: the lab is not in the course.
    """
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(root).resolve()
    check_lab(root, lab)
    graded = root / "autograded"
    chosen = list(students or [])
    if not chosen and graded.is_dir():
        chosen = sorted(p.name for p in graded.iterdir()
                        if (p / lab).is_dir() and not p.name.startswith("."))
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    # order matters: the hidden tests go before anything renders the cells
    config.GenerateFeedback.preprocessors = [HideTests, GetGrades, CSSHTMLHeaderPreprocessor]
    # nbgrader's apps log to the terminal through "traitlets" and reset its level themselves;
    # a filter keeps their chatter ("Unwritable directory" for the unused exchange) out.
    chatter = logging.getLogger("traitlets")
    silence = logging.Filter("labkit.silence")  # a name no record of theirs has
    chatter.addFilter(silence)
    try:
        return _write(root, lab, chosen, NbGraderAPI(config=config))
    finally:
        chatter.removeFilter(silence)


def _write(root: Path, lab: str, chosen: list[str], api) -> FeedbackReport:
    written, failed = [], {}
    for student in chosen:
        record = read_record(root, lab, student)
        if record is None or record.status != "graded":
            failed[student] = "not graded" + (f": {record.reason}" if record else " yet")
            continue
        result = api.generate_feedback(lab, student, force=True)
        page = root / "feedback" / student / lab / f"{lab}.html"
        if result.get("success") and page.is_file():
            written.append(page)
        else:
            text = (result.get("error") or result.get("log") or "no page written").strip()
            failed[student] = text.splitlines()[-1][:300]
    log.info("%s: %d feedback page(s), %d without", lab, len(written), len(failed))
    return FeedbackReport(tuple(written), failed)
