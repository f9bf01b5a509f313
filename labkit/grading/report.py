"""The class report: how each lab went, as PNG figures and a markdown summary.

Per lab, from the gradebook (:func:`~labkit.grading.export.grade_rows`): the distribution
of total scores over the submissions and, per autograded test cell, the pass rate (the
fraction of submissions with full points on it). From the grading records of the autograde
run, ``<root>/autograded/.labkit/<lab>/<student>.json`` (keys ``status`` ``"graded"`` or
``"failed"``, ``reason``, ``seconds``, ``finished``): failed submissions with the reason,
and the slowest. Without records (plain ``nbgrader autograde``) the rest is still reported.

Figures are :class:`matplotlib.figure.Figure` objects drawn with seaborn and saved as PNG
(Agg, no pyplot state); every file is written through a temporary file and ``os.replace``,
``report.md`` last, so a report folder with ``report.md`` is complete.
"""

from __future__ import annotations

import io
import logging
import os
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from labkit.atomic import write_atomic
from labkit.grading import analytics as an
from labkit.grading.course import CourseError
from labkit.grading.deadlines import format_dues, late_by
from labkit.grading.export import GradeRow, grade_rows
from labkit.grading.instance import GradingRecord, read_record
from labkit.grading.late import describe_policy, refresh_penalties
from labkit.tables import cell, markdown_table

__all__ = ["LabSummary", "PassRate", "ReportFiles", "class_report", "lab_summaries"]

log = logging.getLogger(__name__)
_STATS = ("mean", "median", "min", "max")


@dataclass(frozen=True)
class PassRate:
    """How many submissions got full points on one autograded test cell.

    Attributes:
        test: the test cell's ``grade_id``.
        passed: submissions with full points on it.
        graded: submissions graded on it.
    """

    test: str
    passed: int
    graded: int

    @property
    def rate(self) -> float:
        """``passed / graded`` (0 when nothing was graded)."""
        return self.passed / max(self.graded, 1)


@dataclass(frozen=True)
class LabSummary:
    """One lab across the class.

    Attributes:
        lab: the lab's name.
        max_score: the most points the lab gives.
        totals: per submitting student, the total score (as in ``grades.csv``).
        missing: students of the gradebook with no graded submission.
        pending: submissions still waiting for a grader.
        pass_rates: one per autograded test cell, by ``grade_id``.
        records: the lab's grading records, by student (empty without any).
        late: per submission handed in after its due date (extension included): the
            student, seconds late and the late penalty in points, by student.
    """

    lab: str
    max_score: float
    totals: dict[str, float]
    missing: tuple[str, ...]
    pending: int
    pass_rates: tuple[PassRate, ...]
    records: tuple[GradingRecord, ...]
    late: tuple[tuple[str, float, float], ...] = ()

    @property
    def failed(self) -> tuple[GradingRecord, ...]:
        """The records with status ``"failed"``, by student."""
        return tuple(r for r in self.records if r.status == "failed")

    @property
    def slowest(self) -> tuple[GradingRecord, ...]:
        """The five records that took longest, slowest first."""
        return tuple(
            sorted((r for r in self.records if r.seconds is not None), key=lambda r: -r.seconds)[:5]
        )

    def stats(self) -> dict[str, float] | None:
        """Mean, median, min and max of :attr:`totals`; ``None`` without submissions."""
        if not self.totals:
            return None
        values = list(self.totals.values())
        return dict(
            zip(
                _STATS,
                (statistics.fmean(values), statistics.median(values), min(values), max(values)),
                strict=True,
            )
        )


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`class_report` wrote.

    Attributes:
        markdown: ``report.md``.
        figures: per lab ``<lab>.png``; ``grading_seconds.png`` when there are records;
            ``fail_rates.png`` (key ``"fail_rates"``) when a test was failed.
        labs: the numbers the report shows.
        analytics: per lab, its common mistakes and untouched submissions.
        fail_rates: every graded test's fail rate, the worst first.
    """

    markdown: Path
    figures: dict[str, Path]
    labs: tuple[LabSummary, ...]
    analytics: tuple[an.LabAnalytics, ...] = ()
    fail_rates: tuple[an.FailRate, ...] = ()


def _read_records(root: Path) -> dict[str, list[GradingRecord]]:
    # Per lab; no folder means no records, and a record that does not parse is skipped.
    records = defaultdict(list)
    for path in sorted((root / "autograded" / ".labkit").glob("*/*.json")):
        try:
            record = read_record(root, path.parent.name, path.stem)
        except CourseError as exc:
            log.warning("skipping grading record %s: %s", path, exc)
            continue
        if record is not None:
            records[record.lab].append(record)
    return records


def _summary(lab: str, rows: list[GradeRow], records: list[GradingRecord]) -> LabSummary:
    done = [r for r in rows if r.status == "submitted"]
    tests = defaultdict(lambda: [0, 0])
    for row in done:
        for name, (points, possible) in row.tests.items():
            tests[name][0] += points >= possible
            tests[name][1] += 1
    return LabSummary(
        lab=lab,
        max_score=max((r.max_score for r in rows), default=0.0),
        totals={r.student_id: r.total for r in done},
        missing=tuple(r.student_id for r in rows if r.status == "missing"),
        pending=sum(r.needs_manual_grading for r in done),
        pass_rates=tuple(PassRate(t, p, n) for t, (p, n) in sorted(tests.items())),
        records=tuple(records),
        late=tuple(
            (r.student_id, secs, r.late_penalty)
            for r in done
            if (secs := late_by(r.submitted, r.due)) > 0
        ),
    )  # read in path order: by student


def lab_summaries(root: str | os.PathLike) -> list[LabSummary]:
    """Per lab, the class's scores, test pass rates and grading records.

    Args:
        root (str | os.PathLike): the course directory (holds ``gradebook.db``).

    Returns:
        One summary per lab of the gradebook or of the grading records, sorted by name.

    Raises:
        CourseError: there is no gradebook in ``root``.
    """
    rows = defaultdict(list)
    for row in grade_rows(root):
        rows[row.lab].append(row)
    records = _read_records(Path(root))
    return [
        _summary(lab, rows[lab], records.get(lab, [])) for lab in sorted(set(rows) | set(records))
    ]


def _lab_figure(summary: LabSummary) -> Figure:
    import seaborn as sns

    fig = Figure(figsize=(13, 3.6), layout="constrained")
    hist, strip, bars = fig.subplots(1, 3, width_ratios=[1, 1, 1.3])
    totals, top = list(summary.totals.values()), summary.max_score or 1.0
    w = top / min(40, max(1, round(top)))  # one bin per point, up to 40 bins
    if totals:
        sns.histplot(x=totals, ax=hist, bins=round(top / w) + 1, binrange=(-w / 2, top + w / 2))
        sns.stripplot(x=totals, ax=strip, jitter=0.25, alpha=0.7, size=6)
    for ax in (hist, strip):
        ax.set(xlim=(-w / 2, top + w / 2), xlabel=f"total score (of {summary.max_score:g})")
        ax.text(0.5, 0.5, "" if totals else "no submissions", ha="center", transform=ax.transAxes)
    hist.set(ylabel="students", title=f"{summary.lab}: {len(totals)} submissions")
    hist.yaxis.set_major_locator(MaxNLocator(integer=True))
    strip.set(title="one dot per submission")
    if rates := summary.pass_rates:
        sns.barplot(x=[p.rate for p in rates], y=[p.test for p in rates], ax=bars, orient="h")
    bars.text(0.5, 0.5, "" if rates else "no tests graded", ha="center", transform=bars.transAxes)
    bars.set(xlim=(0, 1), xlabel="fraction with full points", title="pass rate per test")
    return fig


def _seconds_figure(timed: list[GradingRecord]) -> Figure:
    import seaborn as sns

    labs = sorted({r.lab for r in timed})
    fig = Figure(figsize=(9, 1.5 + 0.5 * len(labs)), layout="constrained")
    ax = fig.subplots()
    sns.stripplot(
        x=[r.seconds for r in timed],
        y=[r.lab for r in timed],
        order=labs,
        hue=[r.status for r in timed],
        hue_order=["graded", "failed"],
        palette={"graded": "tab:blue", "failed": "tab:red"},
        ax=ax,
        jitter=0.2,
    )
    ax.set(xlabel="grading time (s)", ylabel="", title="grading time per submission")
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(buf := io.BytesIO(), format="png", dpi=110)
    return write_atomic(path, buf.getvalue())


def _num(x: float) -> str:
    return f"{round(x, 2):g}"


def _cell(text: str) -> str:
    return cell(text, limit=200)  # one line: tracebacks do not break the table


def _lab_markdown(s: LabSummary, figure: str) -> list[str]:
    out = [f"## {s.lab}", "", f"![{s.lab}]({figure})", ""]
    out.append(
        f"- Submissions: {len(s.totals)} of {len(s.totals) + len(s.missing)} students"
        + (f" (missing: {', '.join(s.missing)})" if s.missing else "")
    )
    if (st := s.stats()) is not None:
        out.append(
            f"- Total score (of {_num(s.max_score)}): mean {_num(st['mean'])}, median "
            f"{_num(st['median'])}, min {_num(st['min'])}, max {_num(st['max'])}"
        )
    late = ", ".join(f"{_cell(who)} ({secs / 86400:.1f} d, -{_num(p)})" for who, secs, p in s.late)
    out += [
        f"- Late: {len(s.late)}" + (f": {late}" if late else ""),
        f"- Waiting for manual grading: {s.pending}",
        "",
        *markdown_table(
            ["test", "passed", "pass rate"],
            [[_cell(p.test), f"{p.passed}/{p.graded}", f"{p.rate:.0%}"] for p in s.pass_rates],
        ).splitlines(),
    ]
    out += ["", "Failed submissions:" if s.failed else "Failed submissions: none", ""]
    out += [f"- {_cell(r.student)}: {_cell(r.reason) or 'no reason recorded'}" for r in s.failed]
    if s.slowest:
        out += [
            "",
            *markdown_table(
                ["slowest", "seconds", "status"],
                [[_cell(r.student), f"{r.seconds:.1f}", r.status] for r in s.slowest],
            ).splitlines(),
        ]
    return out + [""]


def class_report(root: str | os.PathLike, *, out_dir: str | os.PathLike) -> ReportFiles:
    """Write the class report: a figure per lab, one of grading times, one of the tests
    that fail most, and ``report.md`` (with each lab's common mistakes and untouched
    submissions, :mod:`labkit.grading.analytics`).

    Args:
        root (str | os.PathLike): the course directory (holds ``gradebook.db``; grading records,
            when there are any, in ``autograded/.labkit/``).
        out_dir (str | os.PathLike): the folder for ``report.md`` and the PNGs (created when
            missing; files of an earlier report are replaced).

    Returns:
        The files written and the numbers shown.

    Raises:
        CourseError: there is no gradebook in ``root``.
    """
    out = Path(out_dir)
    refresh_penalties(root)  # points typed in the formgrader since autograde count too
    summaries = lab_summaries(root)
    rates = an.fail_rates(summaries)
    figures = {s.lab: _save(_lab_figure(s), out / f"{s.lab}.png") for s in summaries}
    if timed := [r for s in summaries for r in s.records if r.seconds is not None]:
        figures["grading_seconds"] = _save(_seconds_figure(timed), out / "grading_seconds.png")
    if any(r.failed for r in rates):
        figures["fail_rates"] = _save(an.fail_rate_figure(rates), out / "fail_rates.png")
    analytics = [an.lab_analytics(root, s.lab) for s in summaries]
    head = ["lab", "submitted", "missing", *_STATS, "of", "failed"]
    rows = [
        [
            s.lab,
            len(s.totals),
            len(s.missing),
            *(_num((s.stats() or {})[k]) if s.totals else "-" for k in _STATS),
            _num(s.max_score),
            len(s.failed),
        ]
        for s in summaries
    ]
    lines = ["# Class report", "", *markdown_table(head, rows).splitlines()]
    lines += ["", f"Late policy: {describe_policy(root)}; due dates: {format_dues(root)}."]
    lines += ["", "![grading time](grading_seconds.png)", ""] if timed else [""]
    lines += an.fail_rates_markdown(rates, "fail_rates.png")
    for s, a in zip(summaries, analytics, strict=True):
        lines += _lab_markdown(s, figures[s.lab].name) + an.lab_analytics_markdown(a)
    markdown = write_atomic(out / "report.md", "\n".join(lines).encode())
    log.info("wrote the class report for %d labs to %s", len(summaries), markdown)
    return ReportFiles(markdown, figures, tuple(summaries), tuple(analytics), tuple(rates))
