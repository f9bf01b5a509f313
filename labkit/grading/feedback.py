"""``labkit course feedback``: an HTML page per student, with no hidden test and no script.

nbgrader's ``generate_feedback`` renders the autograded notebook, in which every test cell
holds the instructor's full source, hidden tests included. :func:`write_feedback` runs the
same converter with :class:`HideTests` first: each test cell is cut back to its visible part,
as in the student's release. The outputs were already written by the judge
(:mod:`labkit.grading.judge`): a test cell shows what its visible checks printed and, when it
failed, one line with the error; answer cells show the student's own output and tracebacks.

The page is opened by the instructor and the student, so nothing a student wrote may run in
it. What a student made that becomes HTML goes through :func:`sanitize_fragment` (``bleach``
with an allow-list: text, headings, lists, tables, images, links to ``http(s)``, ``mailto``
and anchors; a ``data:`` URL only as an image's source), in :class:`SafeFeedbackExporter`:
rendered markdown cells, after nbconvert's ``files/`` rewrite (which turns
``files/javascript:…`` into a script link), since nbgrader's template, unlike nbconvert's,
never sanitises markdown; and ``text/html`` and ``text/markdown`` outputs. Before that,
:class:`SanitizeOutputs` (nbconvert's ``SanitizeHTML``) keeps only output types safe to show
(text, PNG, JPEG, SVG as an image, LaTeX, JSON; HTML and markdown sanitised): no
``application/javascript``, no widgets. What is removed stays readable (a ``<script>`` tag
shows as text). Scores, figures, printed output and tracebacks show as before; math is
rendered by MathJax, which nbconvert loads with its ``Safe`` extension (no script links).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import bleach
from jinja2 import pass_context
from nbconvert.exporters import HTMLExporter
from nbconvert.filters import strip_files_prefix
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbconvert.preprocessors.sanitize import SanitizeHTML
from nbgrader import utils as nbutils
from nbgrader.preprocessors import ClearHiddenTests, GetGrades
from traitlets import Any, Bool, Set

from labkit.grading.course import check_lab
from labkit.grading.instance import read_record

__all__ = [
    "FeedbackReport",
    "HideTests",
    "SafeFeedbackExporter",
    "SanitizeOutputs",
    "sanitize_fragment",
    "write_feedback",
]

log = logging.getLogger(__name__)

# What a page may show of student-made HTML: text and its structure, tables, links, images.
# No script, style, form, frame, object or event handler; nbconvert's own clean_html filter
# allows too little of markdown (no paragraphs, headings or images) to be used for it.
TAGS = frozenset(
    {
        "a",
        "abbr",
        "acronym",
        "b",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "del",
        "details",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "figcaption",
        "figure",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "summary",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "tt",
        "u",
        "ul",
        "var",
    }
)
_ATTRIBUTES = {
    "*": {"class", "title"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
    "ol": {"start"},
    **{f"h{n}": {"id"} for n in range(1, 7)},
}  # heading anchors
# bleach's own view of a URL: entities decoded, blanks, controls and non-ASCII dropped
_URL_NOISE = re.compile(r"[`\x00-\x20\x7f-\xa0\s]+|[^\x00-\x7f]+")


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    if name not in _ATTRIBUTES["*"] | _ATTRIBUTES.get(tag, set()):
        return False
    if name in ("href", "src") and _URL_NOISE.sub("", value).lower().startswith("data:"):
        return (tag, name) == ("img", "src")  # an image's data URL: shown, never run
    return True  # other URLs: bleach allows http(s), mailto and relative ones only


def sanitize_fragment(html: str) -> str:
    """``html`` with only the allowed tags and attributes (:data:`TAGS`); others escaped, so a
    ``<script>`` shows as text, and comments dropped.

    Args:
        html (str): a fragment, e.g. a rendered markdown cell or a ``text/html`` output.
    """
    return bleach.clean(
        str(html),
        tags=TAGS,
        attributes=_allowed_attribute,
        protocols={"http", "https", "mailto", "data"},
        strip_comments=True,
    )


class SanitizeOutputs(SanitizeHTML):
    """nbconvert's ``SanitizeHTML`` on outputs and raw cells only, with :func:`sanitize_fragment`'s
    allow-list: output types outside ``safe_output_keys`` and ``sanitized_output_types`` are
    removed. Markdown cells are sanitised once rendered (by :class:`SafeFeedbackExporter`),
    where what markdown itself makes (links, mermaid blocks) is caught too."""

    tags = Set(TAGS)  # a List trait in nbconvert; bleach takes any set
    attributes = Any(_allowed_attribute)
    safe_output_keys = Set(
        {
            "metadata",
            "text/plain",
            "text/latex",
            "application/json",
            "image/png",
            "image/jpeg",
            "image/svg+xml",
        }
    )  # svg: as an <img>

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "markdown":
            return cell, resources
        return super().preprocess_cell(cell, resources, cell_index)


class SafeFeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter with ``sanitize_html`` on (no script outputs, widgets or
    widget state; HTML and markdown outputs cleaned) and its filters made safe for nbgrader's
    feedback template, which renders markdown cells without cleaning them: the rendered
    markdown and the ``files/`` rewrite after it are sanitised, and ``clean_html`` is
    :func:`sanitize_fragment`."""

    sanitize_html = Bool(True).tag(config=True)

    @pass_context
    def markdown2html(self, context, source):
        return sanitize_fragment(super().markdown2html(context, source))

    def default_filters(self):
        yield from super().default_filters()
        yield ("clean_html", sanitize_fragment)
        yield ("strip_files_prefix", lambda text: sanitize_fragment(strip_files_prefix(text)))


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


def write_feedback(
    root: str | os.PathLike, lab: str, *, students: list[str] | None = None
) -> FeedbackReport:
    """Write ``feedback/<student>/<lab>/<lab>.html`` for each graded student.

    Args:
        root (str | os.PathLike): the course directory; lab: the lab.
        students (list[str] | None): whom for (default: everyone with an autograded notebook of the
            lab).

    Raises:
        CourseError: the lab is not in the course.
    """
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    from labkit.grading.late import refresh_penalties

    root = Path(root).resolve()
    check_lab(root, lab)
    refresh_penalties(root, labs=[lab])  # the page shows the penalty on today's points
    graded = root / "autograded"
    chosen = list(students or [])
    if not chosen and graded.is_dir():
        chosen = sorted(
            p.name for p in graded.iterdir() if (p / lab).is_dir() and not p.name.startswith(".")
        )
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    # order matters: the hidden tests go before anything renders the cells
    config.GenerateFeedback.preprocessors = [
        HideTests,
        GetGrades,
        SanitizeOutputs,
        CSSHTMLHeaderPreprocessor,
    ]
    config.GenerateFeedback.exporter_class = SafeFeedbackExporter
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
