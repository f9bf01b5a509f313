"""Does a feedback page made from a hostile submission run none of its script, in a browser?

The submission (tests/grading/test_feedback.py's ``hostile_pages``: the graded ``good``
student's autograded notebook with payloads added) holds script in markdown cells (a
``<script>`` tag, ``<img onerror>``, ``<svg onload>``, ``<details ontoggle>``, a mermaid block
that closes its ``<pre>``, and three ``javascript:`` links: in HTML, in markdown, behind
nbconvert's ``files/`` prefix) and in outputs (``text/html`` with a script and with an
``onerror``, ``application/javascript`` that also calls ``alert``, ``text/markdown``). Each
payload that runs sets ``window.__pwned_<name>``. Both pages are opened from ``file://`` in
headless Chromium, every ``javascript:`` link is clicked, and the markers and dialogs are
read: nbgrader's own page runs every payload (so the test can fail), labkit's runs none and
still shows the student's text, the figure and the score.

Needs Debian's ``chromium`` and the ``playwright`` package; without them the test skips and
says which is missing, except under CI (``LABKIT_CI=1``), where it fails
(``tests/system_packages.py``).
"""

from __future__ import annotations

import pytest

from tests.grading.test_feedback import (  # noqa: F401  (a fixture, and names the docstring gives)
    MARKDOWN_PAYLOADS,
    OUTPUT_PAYLOADS,
    hostile_pages,
)
from tests.system_packages import CHROMIUM

# Chromium as root, headless, and quiet on a machine with no way out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

pytestmark = pytest.mark.needs("chromium")

# The classic template's application/javascript output starts with `$('#…')`: jQuery, which
# the page would load from a CDN where there is a network. A stub stands in for it, on both
# pages alike, so a payload runs here as it would for a reader online.
JQUERY_STUB = "window.$ = window.$ || function () { return null; };"
READ = """() => ({
    markers: Object.keys(window).filter(k => k.startsWith('__pwned_'))
                 .map(k => k.slice('__pwned_'.length)).sort(),
    text: document.body.innerText,
    png: Array.from(document.images).filter(i => i.src.startsWith('data:image/png'))
              .map(i => [i.naturalWidth, i.naturalHeight]),
})"""


@pytest.fixture(scope="module")
def opened(hostile_pages) -> dict[str, dict]:
    """Each page as the browser left it: markers set, dialogs opened, scripted links, text."""
    from playwright.sync_api import sync_playwright

    seen = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for kind in ("unsafe", "safe", "button"):
                path = hostile_pages[kind]
                page = browser.new_page()
                page.add_init_script(JQUERY_STUB)
                # nothing leaves the machine: MathJax and the like fail at once, not on a timeout
                page.route(
                    "**/*",
                    lambda route: (
                        route.continue_()
                        if route.request.url.startswith(("file:", "data:"))
                        else route.abort()
                    ),
                )
                dialogs: list[str] = []
                page.on(
                    "dialog", lambda d, dialogs=dialogs: (dialogs.append(d.message), d.dismiss())
                )
                page.goto(path.as_uri(), wait_until="load")
                links = page.evaluate("""() => {
                    const links = Array.from(document.links)
                                       .filter(a => a.protocol === 'javascript:');
                    links.forEach(a => a.click());
                    return links.map(a => a.textContent);
                }""")
                page.wait_for_timeout(300)  # clicks and ontoggle run after this task
                seen[kind] = {**page.evaluate(READ), "dialogs": dialogs, "links": links}
                page.close()
        finally:
            browser.close()
    return seen


def test_every_payload_runs_in_nbgrader_s_own_page(opened):
    """Does each payload run (its marker set, the alert shown) in the page plain nbgrader
    makes, so that a page where none runs shows sanitising, not payloads that cannot run?"""
    unsafe = opened["unsafe"]
    assert unsafe["markers"] == sorted([*MARKDOWN_PAYLOADS, *OUTPUT_PAYLOADS])
    assert unsafe["dialogs"] == ["out_js"]
    assert len(unsafe["links"]) == 3


@pytest.mark.parametrize("kind", ["safe", "button"])
def test_no_student_script_runs_in_the_feedback_page(opened, kind):
    """Does labkit's feedback page of the same submission, and the one the formgrader's
    Generate Feedback button writes with the kit's config, run no payload, open no dialog
    and hold no javascript: link?"""
    safe = opened[kind]
    assert (safe["markers"], safe["dialogs"], safe["links"]) == ([], [], [])


def test_the_feedback_page_still_shows_text_figure_and_score(opened):
    """Does the page still show the student's text, the payloads as text, the PNG figure,
    the score and what the visible tests printed?"""
    safe = opened["safe"]
    assert "Student text survives: bold, and a safe link." in safe["text"]
    assert "<script>window.__pwned_md_script = 1</script>" in safe["text"]
    assert safe["png"] == [[4, 3]]
    assert "Score:" in safe["text"] and "visible mean_of check passed" in safe["text"]
