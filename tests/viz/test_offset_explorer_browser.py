"""Does the offset explorer work for a student, in JupyterLab, in a real browser?

End to end: a student's finished lab 08 (the release notebook with the solution's code in its
answer cells) is opened in JupyterLab, served on loopback with a token, in headless Chromium
driven by Playwright. The test runs every cell, waits for the explorer, clicks a pixel on the
v1 panel and moves the row slider, and checks each time that the status names the new pixel
and that the drawn canvas changed. Screenshots go to the test's folder and to
``runs/screenshots/`` (the README's picture is one of them).

The notebook trains on ``LABKIT_BUDGET=smoke`` (one batch per model): what is tested is the
widget, not what the models learnt. For the README's picture, run this test with
``LABKIT_BUDGET=full``, whose offsets have moved away from the grid.

Needs Debian's ``chromium`` (``make test`` installs it where it can) and the ``playwright``
package (a dev dependency); without them the test skips and says which is missing, except
under CI (``LABKIT_CI=1``), where it fails (``tests/system_packages.py``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from tests.jupyter_lab import jupyter_lab
from tests.system_packages import CHROMIUM

ROOT = Path(__file__).resolve().parents[2]
LAB = "lab08_deformable_conv"
# Chromium as root, headless, and quiet on a machine with no way out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
log = logging.getLogger(__name__)

# Skips where chromium or playwright is missing; CI (LABKIT_CI=1) fails instead.
pytestmark = [pytest.mark.slow, pytest.mark.needs("chromium")]


def _student_notebook(dest: Path) -> Path:
    """The release notebook, answered as a student who wrote the solution's code would."""
    release = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    solution = nbformat.read(ROOT / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    answers = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in solution.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
    }
    filled = 0
    for cell in release.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and grade_id in answers:
            cell.source = re.sub(
                r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n", "", answers[grade_id], flags=re.M
            )
            filled += 1
    assert answers and filled == len(answers), (
        f"expected the release to have the solution's {len(answers)} answer cells; found {filled}"
    )
    path = dest / f"{LAB}.ipynb"
    nbformat.write(release, path)
    return path


_PROMPTS = "[...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent)"


def _accept_dialogs(page) -> None:
    """Have Playwright accept any dialog JupyterLab puts over the notebook (on a loaded
    machine, say, "Select Kernel" for a kernel that was slow to start) before every click
    it would take: checked before each action and each of its retries, not once, since such a
    dialog can come back or come late. What it said is logged; a failure later shows it in
    JupyterLab's log."""

    def accept(dialog) -> None:
        log.warning("JupyterLab showed a dialog: %s", dialog.inner_text()[:500])
        button = dialog.locator(".jp-Dialog-button.jp-mod-accept")
        if button.count():
            button.first.click()
        else:
            dialog.press("Escape")

    # no_wait_after: a dialog that follows the one just accepted (a kernel chosen, then
    # another message) is handled in turn instead of waited out until the click times out
    page.add_locator_handler(page.locator(".jp-Dialog").first, accept, no_wait_after=True)


def _run_all(page, *, timeout_s: float, log_path: Path) -> None:
    """Run every cell from the Run menu; wait until none is queued or running; fail with the
    traceback (or the cells left unrun) when a cell failed."""
    # Queued or running cells show "[*]:"; a failed cell clears the queue after it, so the
    # run has settled once no prompt is starred. The command is sent again if no cell has
    # started after a while: on a loaded machine a menu click can be lost.
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    started = f"() => {_PROMPTS}.some(t => t.includes('*'))"
    for attempt in range(3):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.wait_for_function(started, timeout=40_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                page.screenshot(path=str(log_path.with_name("run_all_not_started.png")))
                raise AssertionError(
                    f"Run All Cells did not start {LAB} in the browser (three tries); "
                    f"prompts {page.evaluate(f'() => {_PROMPTS}')}. JupyterLab's log ends:\n"
                    + log_path.read_text()[-2000:]
                ) from None
    try:
        page.wait_for_function(
            f"() => !{_PROMPTS}.some(t => t.includes('*'))", timeout=timeout_s * 1000, polling=1000
        )
    except Exception as err:  # playwright's TimeoutError: say where the notebook stood
        prompts = page.evaluate(f"() => {_PROMPTS}")
        running = [i for i, t in enumerate(prompts) if "*" in t]
        raise AssertionError(
            f"{LAB} did not finish within {timeout_s:.0f} s in the browser; code cells still "
            f"queued or running: {running} of {len(prompts)}. JupyterLab's log ends:\n"
            + log_path.read_text()[-2000:]
        ) from err
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
    assert not tracebacks, f"a cell of {LAB} failed in the browser:\n{tracebacks[0][:3000]}"
    prompts = page.evaluate(f"() => {_PROMPTS}")
    unrun = [i for i, t in enumerate(prompts) if not re.search(r"\[\d+\]", t)]
    # A kernel that died (killed for memory, say) leaves the cells after it unrun, with no
    # traceback in the page: JupyterLab's log says why.
    assert not unrun, (
        f"code cells {unrun} of {LAB} did not run (prompts {prompts}). "
        f"JupyterLab's log ends:\n{log_path.read_text()[-2000:]}"
    )


def _changed(page, locator, before: bytes, *, timeout_s: float = 30) -> bytes:
    """Wait until ``locator``'s screenshot differs from ``before``; return the new one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = locator.screenshot()
        if now != before:
            return now
        page.wait_for_timeout(250)
    raise AssertionError("the explorer's canvas did not change")


def test_click_and_slider_redraw_the_points_in_jupyterlab(tmp_path):
    """Does clicking a pixel (and moving a slider) in the browser redraw that pixel's points?"""
    from playwright.sync_api import sync_playwright

    notebook = _student_notebook(tmp_path)
    shots = ROOT / "runs" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    kernel_env = {
        "MPLBACKEND": "Agg",
        # One OpenMP thread: beside a busy test run, spinning thread pools on two cores can
        # slow the kernel's training many times over.
        "OMP_NUM_THREADS": "1",
        "LABKIT_BUDGET": os.environ.get("LABKIT_BUDGET") or "smoke",
    }
    with (
        jupyter_lab(tmp_path, tmp_path / ".jupyter", env=kernel_env) as lab,
        sync_playwright() as pw,
    ):
        base, token = lab.base, lab.token
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            _accept_dialogs(page)
            page.goto(f"{base}/lab/tree/{notebook.name}?token={token}")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
            page.wait_for_selector(
                ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000
            )
            _run_all(page, timeout_s=420, log_path=lab.log)

            explorer = page.locator(".labkit-offset-explorer")
            explorer.wait_for(timeout=60_000)
            explorer.scroll_into_view_if_needed()
            canvas = explorer.locator(".labkit-offset-canvas canvas").last
            canvas.wait_for(timeout=60_000)
            status = explorer.locator(".labkit-offset-status")
            page.wait_for_function(
                "s => s.textContent.includes('pixel (')",
                arg=status.element_handle(),
                timeout=60_000,
            )
            first_status = status.inner_text()
            before = canvas.screenshot()
            (tmp_path / "explorer_before.png").write_bytes(explorer.screenshot())

            # the middle (v1) panel, a third of the way down its image
            box = canvas.bounding_box()
            started = time.monotonic()
            page.mouse.click(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.3)
            page.wait_for_function(
                "([s, old]) => s.textContent !== old",
                arg=[status.element_handle(), first_status],
                timeout=60_000,
            )
            click_s = time.monotonic() - started
            clicked_status = status.inner_text()
            after_click = _changed(page, canvas, before)
            assert re.search(r"pixel \(\d+, \d+\)", clicked_status), clicked_status
            assert clicked_status.split("→")[0] != first_status.split("→")[0]
            explorer.screenshot(path=str(tmp_path / "explorer_clicked.png"))
            shutil.copy(tmp_path / "explorer_clicked.png", shots / "offset_explorer.png")

            # the row slider: focus its handle and step it with the keyboard
            handle = explorer.locator(".widget-slider .noUi-handle").nth(1)
            handle.focus()
            for _ in range(5):
                page.keyboard.press("ArrowUp")
            page.wait_for_function(
                "([s, old]) => s.textContent !== old",
                arg=[status.element_handle(), clicked_status],
                timeout=60_000,
            )
            _changed(page, canvas, after_click)
            moved = status.inner_text()
            row = lambda text: int(re.search(r"pixel \((\d+),", text).group(1))  # noqa: E731
            assert row(moved) != row(clicked_status), (clicked_status, moved)
            explorer.screenshot(path=str(tmp_path / "explorer_slider.png"))
            log.info(
                "click to status: %.2f s; statuses: %r, %r, %r",
                click_s,
                first_status,
                clicked_status,
                moved,
            )
            (shots / "offset_explorer.json").write_text(
                json.dumps(
                    {
                        "click_to_status_s": click_s,
                        "statuses": [first_status, clicked_status, moved],
                    },
                    indent=1,
                )
            )
        finally:
            browser.close()
