"""Per-test analytics for the class report: common mistakes, untouched submissions, and the
tests of the term that fail most.

Read from the autograded notebooks, ``<root>/autograded/<student>/<lab>/<notebook>.ipynb``,
and the released ones, ``<root>/labs/<lab>/<notebook>.ipynb``:

- *common mistakes*: per autograder test (a code grade cell that is not an answer cell, as
  :mod:`labkit.grading.export` counts them), the error each student's run of it raised, as
  one line ``ename: evalue`` (the first line of ``evalue``, cut to ``width`` characters).
  Messages are grouped by :func:`message_key`, which differs from the exact message only in
  long numbers (three or more decimals, or an exponent) and memory addresses, so that
  ``got 0.41237`` and ``got 0.40981`` count together; a group shows its most common wording.
- *untouched submissions*: students whose answer cells (nbgrader solution cells) all have the
  source of the release: a blank hand-in, or the release handed back.
- *fail rates*: per test of every lab, ``1 - passed / graded`` from the gradebook's pass
  rates (:class:`labkit.grading.report.PassRate`), the worst first, with a bar figure.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from labkit.tables import cell, markdown_table

if TYPE_CHECKING:
    from labkit.grading.report import LabSummary

__all__ = [
    "FailRate",
    "LabAnalytics",
    "Mistake",
    "error_message",
    "fail_rate_figure",
    "fail_rates",
    "fail_rates_markdown",
    "lab_analytics",
    "lab_analytics_markdown",
    "message_key",
]

log = logging.getLogger(__name__)
_LONG_NUMBER = re.compile(
    r"[-+]?(?:\d+\.\d{3,}(?:[eE][-+]?\d+)?|\d+(?:\.\d*)?[eE][-+]?\d+)|\b0x[0-9a-fA-F]+\b"
)


@dataclass(frozen=True)
class Mistake:
    """One failure message of a test and the students who got it.

    Attributes:
        test: the test cell's ``grade_id``.
        message: the group's most common wording (one line).
        students: who got a message of the group, sorted.
        variants: how many different wordings the group holds (1: all the same).
    """

    test: str
    message: str
    students: tuple[str, ...]
    variants: int = 1


@dataclass(frozen=True)
class LabAnalytics:
    """What the autograded notebooks of one lab say beyond the scores.

    Attributes:
        lab: the lab's name.
        mistakes: per failing test (``grade_id``, sorted), its most common messages, most
            students first (at most ``top``, see :func:`lab_analytics`).
        unchanged: students whose answer cells are all as released, sorted.
        students: students with an autograded notebook of the lab, sorted.
    """

    lab: str
    mistakes: dict[str, tuple[Mistake, ...]]
    unchanged: tuple[str, ...]
    students: tuple[str, ...]


@dataclass(frozen=True)
class FailRate:
    """How many graded submissions did not get full points on one test.

    Attributes:
        lab: the lab's name.
        test: the test cell's ``grade_id``.
        failed: submissions without full points on it.
        graded: submissions graded on it.
    """

    lab: str
    test: str
    failed: int
    graded: int

    @property
    def rate(self) -> float:
        """``failed / graded`` (0 when nothing was graded)."""
        return self.failed / max(self.graded, 1)


def message_key(message: str) -> str:
    """``message`` with long numbers (3+ decimals or an exponent) and ``0x`` addresses
    replaced by ``#``: the key :func:`lab_analytics` groups messages by.

    Args:
        message (str): a failure message.

    Returns:
        The message, those numbers replaced; short ones such as ``0.42`` or ``2`` are kept.
    """
    return _LONG_NUMBER.sub("#", message)


def error_message(code_cell, *, width: int = 120) -> str | None:
    """The first error a code cell's outputs hold, on one line: ``ename: evalue``.

    Args:
        code_cell (nbformat.NotebookNode): a code cell of an executed notebook.
        width (int): the most characters kept (an ellipsis marks a cut).

    Returns:
        ``ename`` and the first non-blank line of ``evalue`` (``ename`` alone when it is
        blank), or ``None`` when the cell raised nothing.
    """
    for out in code_cell.get("outputs", []):
        if out.get("output_type") == "error":
            lines = [ln.strip() for ln in str(out.get("evalue", "")).splitlines()]
            first, ename = next(filter(None, lines), ""), str(out.get("ename", "Error"))
            line = " ".join((f"{ename}: {first}" if first else ename).split())
            return line if len(line) <= width else line[:width] + "…"
    return None


def _is_test(c) -> bool:
    from nbgrader import utils as nbutils

    return c.cell_type == "code" and nbutils.is_grade(c) and not nbutils.is_solution(c)


def _answers(nb) -> dict[str, str]:
    from nbgrader import utils as nbutils

    return {
        c.metadata["nbgrader"].get("grade_id", ""): c.source.strip()
        for c in nb.cells
        if nbutils.is_solution(c)
    }


def _read(path: Path):
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds for a bad file
        log.warning("skipping notebook %s: %s", path, exc)
        return None


def _group(test: str, got: list[tuple[str, str]], top: int) -> tuple[Mistake, ...]:
    groups = defaultdict(list)  # key -> [(student, message)]
    for student, message in got:
        groups[message_key(message)].append((student, message))
    mistakes = []
    for members in groups.values():
        wordings = Counter(m for _, m in members)
        wording = min(wordings, key=lambda m: (-wordings[m], m))
        students = tuple(sorted({s for s, _ in members}))
        mistakes.append(Mistake(test, wording, students, len(wordings)))
    return tuple(sorted(mistakes, key=lambda m: (-len(m.students), m.message))[:top])


def lab_analytics(
    root: str | os.PathLike, lab: str, *, top: int = 5, width: int = 120
) -> LabAnalytics:
    """Common mistakes and untouched submissions of one lab, from its autograded notebooks.

    Args:
        root (str | os.PathLike): the course directory (``autograded/``, ``labs/``).
        lab (str): the lab's name.
        top (int): the most message groups kept per test.
        width (int): the most characters kept of a message.

    Returns:
        The lab's analytics; empty when nothing of it was autograded. A notebook that does
        not parse is skipped with a warning; without a release no one counts as unchanged.
    """
    root = Path(root)
    released = {p.name: _read(p) for p in sorted((root / "labs" / lab).glob("*.ipynb"))}
    answers = {name: _answers(nb) for name, nb in released.items() if nb is not None}
    errors, unchanged, students = defaultdict(list), [], []
    for folder in sorted((root / "autograded").glob(f"[!.]*/{lab}")):
        student, same = folder.parent.name, bool(answers)
        notebooks = [(p.name, _read(p)) for p in sorted(folder.glob("*.ipynb"))]
        if not any(nb is not None for _, nb in notebooks):
            continue
        students.append(student)
        for name, nb in notebooks:
            if nb is None:
                same = False
                continue
            same = same and _answers(nb) == answers.get(name)
            for c in filter(_is_test, nb.cells):
                if (message := error_message(c, width=width)) is not None:
                    errors[c.metadata["nbgrader"]["grade_id"]].append((student, message))
        if same:
            unchanged.append(student)
    mistakes = {test: _group(test, got, top) for test, got in sorted(errors.items())}
    return LabAnalytics(lab, mistakes, tuple(unchanged), tuple(students))


def fail_rates(summaries: Iterable[LabSummary]) -> list[FailRate]:
    """Every graded test of every lab with its fail rate, the worst first.

    Args:
        summaries (Iterable[LabSummary]): the labs, as :func:`labkit.grading.report.lab_summaries`
            gives them.

    Returns:
        One per test graded at least once, by fail rate (highest first), then lab and test.
    """
    rates = [
        FailRate(s.lab, p.test, p.graded - p.passed, p.graded)
        for s in summaries
        for p in s.pass_rates
        if p.graded
    ]
    return sorted(rates, key=lambda r: (-r.rate, r.lab, r.test))


def fail_rate_figure(rates: Iterable[FailRate], *, top: int = 20) -> Figure:
    """Horizontal bars of the ``top`` worst fail rates, the worst at the top (tests no
    submission failed are left out).

    Args:
        rates (Iterable[FailRate]): as :func:`fail_rates` gives them (worst first).
        top (int): the most bars drawn.

    Returns:
        The figure (not attached to pyplot); one bar per failed test, labelled ``lab: test``.
    """
    shown = [r for r in rates if r.failed][:top]
    fig = Figure(figsize=(9, 1.5 + 0.35 * max(len(shown), 1)), layout="constrained")
    ax = fig.subplots()
    ax.barh(
        [f"{r.lab}: {r.test}" for r in shown],
        [r.rate for r in shown],
        color="tab:red",
    )
    for i, r in enumerate(shown):
        ax.text(r.rate, i, f" {r.failed}/{r.graded}", va="center", fontsize=8)
    ax.invert_yaxis()  # the worst first, at the top
    ax.set(xlim=(0, 1.1), xlabel="fraction without full points", title="tests that fail most")
    if not shown:
        ax.text(0.5, 0.5, "no test failed", ha="center", transform=ax.transAxes)
    return fig


def fail_rates_markdown(
    rates: Iterable[FailRate], figure: str | None, *, top: int = 15
) -> list[str]:
    """The report's section on the tests of the term that fail most.

    Args:
        rates (Iterable[FailRate]): as :func:`fail_rates` gives them (worst first).
        figure (str | None): the figure's file name beside ``report.md`` (none: no image).
        top (int): the most rows of the table.

    Returns:
        Markdown lines: a heading, the figure, and a table of the tests any submission failed.
    """
    failing = [r for r in rates if r.failed][:top]
    out = ["## Tests that fail most", ""]
    if not failing:
        return out + ["No graded submission failed a test.", ""]
    out += [f"![tests that fail most]({figure})", ""] if figure else []
    rows = [[r.lab, cell(r.test), f"{r.rate:.0%}", f"{r.failed}/{r.graded}"] for r in failing]
    return out + markdown_table(["lab", "test", "fail rate", "students"], rows).splitlines() + [""]


def _variants(m: Mistake) -> str:
    return f" (+{m.variants - 1} similar)" if m.variants > 1 else ""


def lab_analytics_markdown(analytics: LabAnalytics) -> list[str]:
    """The lines a lab's section of the report adds: common mistakes, untouched submissions.

    Args:
        analytics (LabAnalytics): the lab's, from :func:`lab_analytics`.

    Returns:
        Markdown lines: a table of the messages of failing tests (long numbers grouped) and
        the students whose answers are as released.
    """
    rows = [
        [cell(m.test), cell(m.message) + _variants(m), len(m.students)]
        for ms in analytics.mistakes.values()
        for m in ms
    ]
    head = "Common mistakes (the errors of failing tests; long numbers grouped)"
    out = [f"{head}:" if rows else f"{head}: none", ""]
    if rows:
        table = markdown_table(["test", "message", "students"], rows)
        out += [*table.splitlines(), ""]
    same = ", ".join(analytics.unchanged) or "none"
    return out + [f"- Answers identical to the release: {same}", ""]
