"""Tests for labkit.grading.feedback: pages with scores and errors, never hidden tests, and
no script of the student's (in a browser: tests/grading/test_feedback_browser.py)."""

from __future__ import annotations

import html
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from labkit.grading import lab_scores
from labkit.grading.batch import autograde
from labkit.grading.feedback import FeedbackReport, sanitize_fragment, write_feedback
from labkit.grading.judge import hidden_lines
from tests.grading.attack_lab import (
    LAB,
    MEAN_SOLUTION,
    SCALE_SOLUTION,
    answered,
    make_course,
    release,
    source_notebook,
    submit,
    write_kit,
)
from tests.grading.conftest import nbgrader_api, shared_build

STUDENTS = ["good", "wrong", "marker", "late"]


def build_feedback_course(work: Path) -> dict:
    """good, wrong and marker graded (late hands in nothing); the pages written."""
    write_kit(work / "kit")
    root = make_course(work / "course", work / "kit", STUDENTS)
    nb = release(root)
    right = {
        "mean": MEAN_SOLUTION.replace("### ", "# "),
        "scale": SCALE_SOLUTION.replace("### ", "# "),
    }
    submit(root, "good", answered(nb, **right))
    submit(
        root,
        "wrong",
        answered(
            nb,
            mean="def mean_of(x):\n    return -1.0\n",
            scale="def scale(x, k):\n    raise ValueError('no scale')\n",
        ),
    )
    submit(
        root,
        "marker",
        answered(nb, mean=right["mean"] + "\n### BEGIN HIDDEN TESTS\n", scale=right["scale"]),
    )
    autograde(
        root,
        LAB,
        students=["good", "wrong", "marker"],
        jobs=1,
        timeout=60,
        memory_mb=1500,
        progress=False,
    )
    report = write_feedback(root, LAB, students=STUDENTS)
    return {"written": [str(p) for p in report.written], "failed": report.failed}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The graded course (built once per run, only read here) and write_feedback's report."""
    work, report = shared_build(tmp_path_factory, "feedback-course", build_feedback_course)
    return work / "course", FeedbackReport(tuple(map(Path, report["written"])), report["failed"])


def _page(root, student) -> str:
    """The page's text: tags dropped, since highlighting splits code into spans."""
    page = (root / "feedback" / student / LAB / f"{LAB}.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_pages_show_the_gradebook_score(course):
    """Is there a page per graded student, showing the total nbgrader's gradebook holds?"""
    root, report = course
    assert {p.parts[-3] for p in report.written} == {"good", "wrong", "marker"}
    scores = lab_scores(root, LAB)
    for student in ("good", "wrong"):
        total = scores[student].auto
        assert re.search(
            rf"Score: {total:.1f} / {scores[student].auto_max + 1:.1f}", _page(root, student)
        ), student


def test_pages_never_show_hidden_tests(course):
    """Does no page hold a hidden test line or the hidden-test marker of a test cell?"""
    root, _ = course
    secret = hidden_lines(source_notebook(root))
    assert secret
    for student in ("good", "wrong"):
        page = _page(root, student)
        assert not [line for line in secret if line in page]
        assert "BEGIN HIDDEN TESTS" not in page


def test_pages_show_visible_output_and_the_students_errors(course):
    """Does the page show what the visible checks printed and the error the student's own
    code raised?"""
    root, _ = course
    assert "visible mean_of check passed" in _page(root, "good")
    wrong = _page(root, "wrong")
    assert "ValueError" in wrong and "no scale" in wrong
    assert "AssertionError" in wrong


def test_marker_in_a_student_cell_breaks_nothing(course):
    """Does a student who writes the hidden-test marker in an answer still get a page?"""
    root, report = course
    assert "marker" not in report.failed
    assert "def mean_of" in _page(root, "marker")


def test_ungraded_students_are_reported(course):
    """Is a student without a grading named in the report's failures, with no page?"""
    root, report = course
    assert report.failed == {"late": "not graded yet"}
    assert not (root / "feedback" / "late").exists()


def test_release_test_cells_match_the_feedback(course):
    """Is a test cell on the page its visible part, as the student's release shows it?"""
    root, _ = course
    visible = [
        c.source
        for c in release(root).cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    ]
    page = _page(root, "good")
    assert all(line in page for source in visible for line in source.splitlines() if line.strip())
    assert nbformat.read(root / "autograded" / "good" / LAB / f"{LAB}.ipynb", as_version=4)


# What a hostile student puts in markdown cells: each payload, if it ran, sets its marker
# window.__pwned_<name>. The links run only when clicked.
MARKDOWN_PAYLOADS = {
    "md_script": "<script>window.__pwned_md_script = 1</script>",
    "md_img": '<img src="x" onerror="window.__pwned_md_img = 1">',
    "md_svg": '<svg onload="window.__pwned_md_svg = 1"></svg>',
    "md_details": '<details open ontoggle="window.__pwned_md_details = 1"><summary>s</summary>'
    "</details>",
    "md_a_html": '<a href="javascript:void(window.__pwned_md_a_html = 1)">an html link</a>',
    "md_a_markdown": "[a markdown link](javascript:void(window.__pwned_md_a_markdown=1))",
    # nbconvert's strip_files_prefix turns files/javascript:... into javascript:...
    "md_a_files": "[a files link](files/javascript:void(window.__pwned_md_a_files=1))",
    # markdown's mermaid block is written out unescaped
    "md_mermaid": '```mermaid\n</pre><img src="x" onerror="window.__pwned_md_mermaid = 1">'
    "<pre>\n```",
}
# ... and what its code displays (as a student's code cell's outputs would hold it)
OUTPUT_PAYLOADS = {
    "out_html_script": {"text/html": "<script>window.__pwned_out_html_script = 1</script>"},
    "out_html_img": {"text/html": '<img src="x" onerror="window.__pwned_out_html_img = 1">'},
    "out_js": {"application/javascript": "window.__pwned_out_js = 1; alert('out_js');"},
    "out_markdown": {"text/markdown": '<img src="x" onerror="window.__pwned_out_markdown = 1">'},
}
STUDENT_TEXT = "Student text survives: **bold**, and a [safe link](https://example.org/)."
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAADCAIAAAA7ljmRAAAAFElEQVR4nGM8ISfHAANMDEgAhQMAJtoBCkAA"
    "Ow8AAAAASUVORK5CYII="
)  # 4 x 3 pixels


def _hostile(nb: nbformat.NotebookNode) -> None:
    """Append the payloads to an autograded notebook, with the student's text and a figure."""
    v4 = nbformat.v4
    nb.cells += [v4.new_markdown_cell(STUDENT_TEXT)]
    nb.cells += [
        v4.new_markdown_cell(f"{name}:\n\n{payload}") for name, payload in MARKDOWN_PAYLOADS.items()
    ]
    shown = v4.new_code_cell("show_everything()", execution_count=9)
    shown.outputs = [
        v4.new_output("display_data", data={**data, "text/plain": name})
        for name, data in OUTPUT_PAYLOADS.items()
    ]
    shown.outputs.append(
        v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})
    )
    nb.cells.append(shown)


# nbgrader's own feedback settings, which the kit's nbgrader_config.py replaces with labkit's
NBGRADER_FEEDBACK = """
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades", "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"
]
c.GenerateFeedback.exporter_class = "nbconvert.exporters.HTMLExporter"
"""


def build_hostile_pages(work: Path, tmp_path_factory) -> dict:
    """good's autograded notebook with the payloads added, as labkit's feedback page
    ("safe"), as plain nbgrader writes it with the kit's config (the formgrader's Generate
    Feedback button: "button") and with nbgrader's own settings ("unsafe": what labkit's
    was before pages were sanitised)."""
    graded, _ = shared_build(tmp_path_factory, "feedback-course", build_feedback_course)
    root = shutil.copytree(graded / "course", work / "course")
    path = root / "autograded" / "good" / LAB / f"{LAB}.ipynb"
    nb = nbformat.read(path, as_version=4)
    _hostile(nb)
    nbformat.write(nb, path)
    page = root / "feedback" / "good" / LAB / f"{LAB}.html"
    nbgrader_api(root, "generate_feedback", LAB, "good", force=True)
    button = page.rename(work / "formgrader-button-feedback.html")
    config = root / "nbgrader_config.py"
    kit_config = config.read_text()
    config.write_text(kit_config + NBGRADER_FEEDBACK)
    nbgrader_api(root, "generate_feedback", LAB, "good", force=True)
    unsafe = page.rename(work / "nbgrader-feedback.html")
    config.write_text(kit_config)
    [safe] = write_feedback(root, LAB, students=["good"]).written
    return {"safe": str(safe), "unsafe": str(unsafe), "button": str(button), "root": str(root)}


@pytest.fixture(scope="module")
def hostile_pages(tmp_path_factory) -> dict[str, Path]:
    """Feedback pages of a hostile submission: "safe" (labkit's) and "unsafe" (nbgrader's)."""
    _, pages = shared_build(
        tmp_path_factory,
        "feedback-hostile",
        lambda work: build_hostile_pages(work, tmp_path_factory),
    )
    return {k: Path(v) for k, v in pages.items()}


def test_the_formgraders_feedback_button_writes_labkits_page(hostile_pages):
    """Does plain nbgrader, with the kit's nbgrader_config.py (as the formgrader's Generate
    Feedback button runs it), write a page with no hidden test and nothing runnable, where
    nbgrader's own settings show a hidden line and every payload?"""
    secret = hidden_lines(source_notebook(hostile_pages["root"]))
    # tags dropped: highlighting splits code into spans
    unsafe, button = (
        html.unescape(re.sub(r"<[^>]+>", "", hostile_pages[kind].read_text()))
        for kind in ("unsafe", "button")
    )
    assert [line for line in secret if line in unsafe], "nbgrader's page shows no hidden test"
    assert not [line for line in secret if line in button]
    assert "BEGIN HIDDEN TESTS" not in button
    assert _risky(hostile_pages["button"]) == []
    assert "Score:" in button


class _Risky(HTMLParser):
    """What in a page can run script: event handlers, javascript: URLs, script and svg
    elements (listed with the marker they would set, if any)."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._script = False

    def handle_starttag(self, tag, attrs):
        self._script = tag == "script"
        for name, value in attrs:
            if name.startswith("on") or re.sub(r"\s", "", value or "").lower().startswith(
                "javascript:"
            ):
                self.found.append(f"{tag} {name}={value}")
        if tag in ("svg", "iframe", "object", "embed"):
            self.found.append(tag)

    def handle_data(self, data):
        if self._script and "__pwned" in data:
            self.found.append(f"script {data.strip()}")

    def handle_endtag(self, tag):
        self._script = False


def _risky(page: Path) -> list[str]:
    parser = _Risky()
    parser.feed(page.read_text())
    return parser.found


def test_a_hostile_submission_leaves_nothing_runnable_in_the_page(hostile_pages):
    """Has the feedback page of a submission with scripts in markdown and outputs no event
    handler, javascript: link, svg or payload script left, where nbgrader's page has one for
    every payload?"""
    unsafe = _risky(hostile_pages["unsafe"])
    for name in [*MARKDOWN_PAYLOADS, *OUTPUT_PAYLOADS]:
        assert any(f"__pwned_{name}" in item for item in unsafe), name
    assert _risky(hostile_pages["safe"]) == []


def test_a_hostile_page_still_shows_the_students_text_and_figure(hostile_pages):
    """Does the sanitised page keep the student's text (the payloads as visible text), links
    to the web, the PNG figure and the score?"""
    page = hostile_pages["safe"].read_text()
    assert "Student text survives: <strong>bold</strong>" in page
    assert '<a href="https://example.org/">safe link</a>' in page
    assert "&lt;script&gt;window.__pwned_md_script = 1&lt;/script&gt;" in page
    assert f'src="data:image/png;base64,{PNG}"' in page
    assert re.search(r"Score: \d+\.\d+ / \d+\.\d+", html.unescape(re.sub(r"<[^>]+>", "", page)))


@pytest.mark.parametrize(
    "dirty, clean",
    [
        ('<p onclick="x()">hi</p>', "<p>hi</p>"),
        ('<a href="jav&#x09;ascript:x()">a</a>', "<a>a</a>"),
        ('<a href="data:text/html,<script>x()</script>">a</a>', "<a>a</a>"),
        (
            '<img src="data:image/png;base64,AAAA" alt="f">',
            '<img src="data:image/png;base64,AAAA" alt="f">',
        ),
        ("<style>body{}</style>", "&lt;style&gt;body{}&lt;/style&gt;"),
        (
            '<table class="dataframe"><tr><td colspan="2">1</td></tr></table>',
            '<table class="dataframe"><tbody><tr><td colspan="2">1</td></tr></tbody></table>',
        ),
    ],
)
def test_sanitize_fragment_keeps_text_and_drops_what_runs(dirty, clean):
    """Does sanitize_fragment drop handlers, script and data URLs (but an image's) and keep
    structure?"""
    assert sanitize_fragment(dirty) == clean
