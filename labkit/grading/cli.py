"""``labkit course ...``: the instructor's commands.

``labkit course init DIR --students CSV [--kit KIT]`` makes a term's course directory from the
kit (:func:`~labkit.grading.instance.init_course`). ``labkit course collect --from PATH``
copies an LMS download (folder or zip) into ``submitted/``
(:func:`~labkit.grading.collect.collect_submissions`). ``labkit course status`` prints where
each student's lab stands (:func:`~labkit.grading.instance.course_status`); ``labkit course
export`` writes ``grades.csv`` (``--format canvas|moodle``: the LMS's gradebook import,
:mod:`labkit.grading.lms`) and ``labkit course report`` the class report
(:mod:`labkit.grading.export`, :mod:`labkit.grading.report`). ``labkit course
autograde LAB`` grades a lab for the class (:mod:`~labkit.grading.batch`) and ``labkit
course feedback LAB`` writes the students' pages (:mod:`~labkit.grading.feedback`); ``labkit
course similarity LAB`` compares the students' answers with each other and with labkit's own
references (:mod:`~labkit.grading.similarity`). ``labkit course release [LAB ...] [--check]``
regenerates the student notebooks in ``labs/`` from the nbgrader sources in ``solutions/`` (or,
with ``--check``, only says which are out of date). Every command takes ``--root DIR``, the
course directory (default: here). Errors the instructor can fix (a CourseError) end as one
line and exit code 2; a failing nbgrader command as its output and exit code 1.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from labkit.grading.deadlines_cli import add_deadline_parsers
from labkit.tables import markdown_table

if TYPE_CHECKING:
    from labkit.grading.instance import StatusRow

__all__ = ["add_course_parser", "format_outcomes", "format_status"]


def _reports_nbgrader(
    command: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """A failing nbgrader command ends as its message on stderr and exit code 1."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from labkit.grading.course import NbgraderError

        try:
            return command(args)
        except NbgraderError as exc:
            print(f"labkit course {args.course_command}: {exc}", file=sys.stderr)
            return 1

    return run


@_reports_nbgrader
def _cmd_release(args: argparse.Namespace) -> int:
    from labkit.grading.course import release_labs, stale_labs

    if args.check:
        stale = stale_labs(args.root, args.labs or None)
        for lab in stale:
            print(
                f"{lab}: labs/{lab} is out of date with solutions/{lab}; run "
                f"`labkit course release {lab}`"
            )
        if not stale:
            print("labs/ is up to date with solutions/")
        return 1 if stale else 0
    for path in release_labs(args.root, args.labs or None):
        print(f"released {path}")
    return 0


@_reports_nbgrader
def _cmd_init(args: argparse.Namespace) -> int:
    from labkit.grading.course import available_labs
    from labkit.grading.instance import course_status, init_course

    dest = init_course(
        args.dir or args.root,
        kit=args.kit,
        students_csv=args.students,
        labs=args.labs or None,
        overwrite=args.overwrite,
    )
    labs = available_labs(dest)
    students = sorted({row.student for row in course_status(dest)})
    print(
        f"course ready in {dest}: {len(labs)} lab(s) ({', '.join(labs)}), "
        f"{len(students)} student(s) in its gradebook.\nnext: labkit course collect "
        f"--from <LMS download> --root {dest}"
    )
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from labkit.grading.collect import collect_submissions

    report = collect_submissions(
        args.root, args.source, labs=args.labs or None, max_bytes=int(args.max_mb * 2**20)
    )
    for placed in report.placed:
        print(f"placed     {placed.student}/{placed.lab}  <- {placed.source}")
    _print_late(args.root, report.placed)
    for kept in report.kept:
        when = f"{kept.submitted:%Y-%m-%d %H:%M} UTC"
        print(f"kept       {kept.student}/{kept.lab} of {when}  <- {kept.source}")
    for kind, items in (("skipped", report.skipped), ("problem", report.problems)):
        for item in items:
            print(f"{kind:<10} {item.path}: {item.reason}")
    print(
        f"\n{len(report.placed)} placed, {len(report.unchanged)} unchanged, "
        f"{len(report.skipped)} skipped, {len(report.problems)} not placed (problems above); "
        f"{len(report.kept)} older version(s) newly kept in submitted_history/"
    )
    return 1 if report.problems else 0


def _print_late(root: Path, placed: Sequence) -> None:
    """One line per submission just placed that is late, and one for each the LMS marked
    late whose time says it is not (its time decides the penalty: check it)."""
    from labkit.grading.deadlines import format_late, lateness

    if not placed:
        return
    late = lateness(root, labs={p.lab for p in placed})
    for p in placed:
        item = late.get((p.student, p.lab))
        if item is not None and item.seconds_late > 0:
            print(f"late       {p.student}/{p.lab}: {format_late(item)}")
        elif p.lms_late:
            due = f"{item.due:%Y-%m-%d %H:%M} UTC" if item and item.due else "no due date set"
            when = item.submitted if item else None
            when = f"{when:%Y-%m-%d %H:%M} UTC" if when else "none"
            print(
                f"check      {p.student}/{p.lab}: the LMS marks it late, but its time "
                f"({when}) is not after its due date ({due}); the "
                "penalty follows the time: set the due date (`labkit course due`) or fix "
                f"submitted/{p.student}/{p.lab}/timestamp.txt"
            )


def format_status(rows: Sequence[StatusRow]) -> str:
    """The rows of :func:`~labkit.grading.instance.course_status` as a markdown table, then
    one line per lab counting its states.

    Args:
        rows (Sequence[StatusRow]): the status rows.

    Returns:
        The table (student, lab, state, submitted, versions handed in and when the first was,
        score, lateness and penalty, grading seconds, reason) and the counts, as text.
    """
    from labkit.grading.deadlines import format_late

    cells = []
    for r in rows:
        score = f"{r.score:g} / {r.max_score:g}" if r.graded else ""
        seconds = f"{r.record.seconds:.0f}" if r.record else ""
        reason = (r.record.reason if r.record and r.state == "failed" else "").replace("|", "/")
        when = f"{r.submitted:%Y-%m-%d %H:%M}" if r.submitted else ""
        versions = (
            f"{r.versions} (first {r.first:%Y-%m-%d %H:%M})"
            if r.versions > 1
            else str(r.versions or "")
        )
        reason = " ".join(reason.split())
        late = format_late(r.late) if r.late else ""
        cells.append([r.student, r.lab, r.state, when, versions, score, late, seconds, reason])
    header = ["student", "lab", "state", "submitted (UTC)", "versions", "score", "late"]
    header += ["grading s", "reason"]
    lines = markdown_table(header, cells, align="lllllrlrl").splitlines()
    counts: dict[str, Counter] = {}
    for r in rows:
        counts.setdefault(r.lab, Counter())[r.state] += 1
    lines.append("")
    for lab, c in counts.items():
        lines.append(
            f"{lab}: "
            + ", ".join(f"{c[s]} {s}" for s in ("graded", "failed", "submitted", "missing"))
        )
    return "\n".join(lines)


def _cmd_status(args: argparse.Namespace) -> int:
    from labkit.grading.deadlines import format_dues
    from labkit.grading.instance import course_status
    from labkit.grading.late import describe_policy, refresh_penalties
    from labkit.grading.similarity import read_flagged

    if (Path(args.root) / "gradebook.db").is_file():
        refresh_penalties(args.root)  # points typed in the formgrader since autograde count too
    rows = course_status(args.root, labs=args.labs or None)
    print(
        format_status(rows)
        if rows
        else f"no students in {args.root}'s gradebook yet; "
        "import them with `labkit course init DIR --students CSV --overwrite`"
    )
    if rows:
        print(f"late policy: {describe_policy(args.root)}; due: {format_dues(args.root)}")
    for lab in dict.fromkeys(r.lab for r in rows):
        if flagged := read_flagged(args.root, lab):
            print(
                f"{lab}: {len(flagged)} pair(s) flagged as alike by the last `labkit course "
                f"similarity {lab}` (similarity/{lab}.html)"
            )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from labkit.grading.course import CourseError
    from labkit.grading.export import export_grades
    from labkit.grading.lms import export_lms

    if args.format == "nbgrader":
        print(f"wrote {export_grades(args.root, out=args.out)}")
        return 0
    if bad := [p for p in args.canvas_ids or [] if p.count("=") != 1]:
        raise CourseError(f"--canvas-id takes LAB=NUMBER; got {', '.join(map(repr, bad))}.")
    ids = dict(p.split("=") for p in args.canvas_ids or [])
    path = export_lms(
        args.root, lms=args.format, out=args.out, assignment_ids=ids, identifier=args.moodle_id
    )
    print(f"wrote {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from labkit.grading.report import class_report

    files = class_report(args.root, out_dir=args.out or Path(args.root) / "report")
    for lab in files.labs:
        stats = lab.stats()
        mean = f"mean {stats['mean']:.2f} of {lab.max_score:g}" if stats else "no submissions"
        print(
            f"{lab.lab}: {len(lab.totals)} submitted, {len(lab.missing)} missing, {mean}, "
            f"{len(lab.failed)} failed to grade"
        )
    print(f"wrote {files.markdown} and {len(files.figures)} figures")
    return 0


def format_outcomes(outcomes: Sequence, seconds: float) -> str:
    """An autograde run as a markdown table and a line of totals with the throughput."""
    rows = [
        [
            o.student,
            o.status,
            f"{o.score:g} / {o.max_score:g}" if o.score is not None else "",
            f"{o.seconds:.0f}",
            " ".join(o.reason.replace("|", "/").split()),
        ]
        for o in outcomes
    ]
    lines = markdown_table(
        ["student", "status", "score", "seconds", "note"], rows, align="llrrl"
    ).splitlines()
    done = Counter(o.status for o in outcomes)
    rate = (done["graded"] + done["failed"]) / seconds * 60 if seconds > 0 else 0.0
    lines.append(
        f"\n{done['graded']} graded, {done['failed']} failed, {done['skipped']} "
        f"up to date in {seconds:.0f} s ({rate:.1f} submissions per minute)"
    )
    return "\n".join(lines)


@_reports_nbgrader
def _cmd_autograde(args: argparse.Namespace) -> int:
    import time

    from labkit.grading.batch import autograde

    started = time.monotonic()
    outcomes = autograde(
        args.root,
        args.lab,
        students=args.students,
        jobs=args.jobs,
        timeout=args.timeout,
        memory_mb=args.memory_mb,
        resume=args.resume,
        sandbox=not args.no_sandbox,
        referee=not args.runner,
    )
    print(format_outcomes(outcomes, time.monotonic() - started))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


@_reports_nbgrader
def _cmd_feedback(args: argparse.Namespace) -> int:
    from labkit.grading.feedback import write_feedback

    report = write_feedback(args.root, args.lab, students=args.students)
    for page in report.written:
        print(f"wrote {page}")
    for student, why in report.failed.items():
        print(f"no page for {student}: {why}")
    return 0


def _cmd_similarity(args: argparse.Namespace) -> int:
    from labkit.grading.similarity import similarity_report

    report = similarity_report(args.root, args.lab, threshold=args.threshold, top=args.top)
    for m in report.flagged:
        print(f"flagged {m.score:.2f}  {m.first}  ~  {m.second}")
    print(
        f"{len(report.flagged)} flagged at a threshold of {args.threshold:g}, "
        f"{len(report.pairs)} pairs compared; wrote {report.html} and {report.json}"
    )
    return 0


@_reports_nbgrader
def _cmd_demo(args: argparse.Namespace) -> int:
    from labkit.grading.demo import course_demo

    demo = course_demo(
        args.out,
        labs=args.labs or None,
        jobs=args.jobs,
        timeout=args.timeout,
        cheat_labs=args.cheat_labs,
        kit=args.kit,
    )
    print(demo.table(jobs=args.jobs))
    print(
        f"\ncourse in {demo.root}\ngrades: {demo.grades}\nCanvas import: {demo.canvas}\n"
        f"report: {demo.report}\n"
        f"feedback: {len(demo.feedback)} pages in {demo.root / 'feedback'}\n"
        f"similarity: {len(demo.similarity)} pages in {demo.root / 'similarity'}"
    )
    print("\nthe term:\n" + "\n".join(f"- {line}" for line in demo.term))
    for where, why in demo.feedback_missing.items():
        print(f"no feedback page for {where}: {why}")
    return 1 if any(r.status == "failed" for r in demo.rows) else 0


def _root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("."),
        help="the course directory holding nbgrader_config.py (default: .)",
    )


def _labs(parser: argparse.ArgumentParser, help_text: str) -> None:
    """Add the repeatable ``--lab LAB`` option, collected in ``args.labs``.

    Args:
        parser (argparse.ArgumentParser): the action's parser.
        help_text (str): what the option does for this action.
    """
    parser.add_argument("--lab", dest="labs", action="append", metavar="LAB", help=help_text)


def _students(parser: argparse.ArgumentParser, help_text: str) -> None:
    """Add the repeatable ``--student ID`` option, collected in ``args.students``.

    Args:
        parser (argparse.ArgumentParser): the action's parser.
        help_text (str): what the option does for this action.
    """
    parser.add_argument("--student", dest="students", action="append", metavar="ID", help=help_text)


def _kit(parser: argparse.ArgumentParser) -> None:
    """Add the ``--kit DIR`` option of ``init`` and ``demo``."""
    parser.add_argument(
        "--kit",
        type=Path,
        metavar="DIR",
        help="the kit: a labkit checkout holding nbgrader_config.py and solutions/ "
        "(default: $LABKIT_KIT, else the checkout labkit runs from)",
    )


def add_course_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``course`` and its actions to the ``labkit`` command's subparsers."""
    course = sub.add_parser(
        "course",
        help="set up, collect and grade a course with nbgrader",
        description="The instructor's side: nbgrader underneath.",
    )
    actions = course.add_subparsers(dest="course_command", metavar="ACTION", required=True)
    # the order here is the order `labkit course --help` lists the actions in
    _add_init(actions)
    _add_collect(actions)
    _add_status(actions)
    add_deadline_parsers(actions, _root)
    _add_release(actions)
    _add_autograde(actions)
    _add_feedback(actions)
    _add_similarity(actions)
    _add_export(actions)
    _add_report(actions)
    _add_demo(actions)


def _add_init(actions: argparse._SubParsersAction) -> None:
    """Add ``course init``: a term's course directory from the kit."""
    init = actions.add_parser(
        "init",
        help="make a term's course directory from the kit",
        description="Copy nbgrader_config.py and solutions/ from the kit, release labs/, start "
        "an empty submitted/ and a gradebook of the course's own that knows the "
        "labs and the students of a CSV file (columns id,first_name,last_name,"
        "email; only id required).",
    )
    init.add_argument(
        "dir",
        nargs="?",
        type=Path,
        metavar="DIR",
        help="the new course directory (default: --root)",
    )
    init.add_argument(
        "--students",
        type=Path,
        required=True,
        metavar="CSV",
        help="students to import: id[,first_name,last_name,email,lms_user_id]",
    )
    _kit(init)
    _labs(init, "take only this lab, repeatable (default: every lab of the kit)")
    init.add_argument(
        "--overwrite",
        action="store_true",
        help="in a folder that is not empty, renew the config and solutions and "
        "import the students again (submissions and grades are kept)",
    )
    _root(init)
    init.set_defaults(func=_cmd_init)


def _add_collect(actions: argparse._SubParsersAction) -> None:
    """Add ``course collect``: an LMS download into ``submitted/``."""
    collect = actions.add_parser(
        "collect",
        help="copy an LMS download of submissions into submitted/",
        description="Place each notebook of a folder or zip file as submitted/<student>/<lab>/"
        "<lab>.ipynb. Recognised: <student>/<lab>.ipynb, <student>/<lab>/<lab>"
        ".ipynb, Canvas names (lastfirst_<id>_<subid>_<lab>[-N].ipynb) and Moodle "
        "folders (Name_<id>_assignsubmission_file_/). A newer submission replaces "
        "an older one (kept in .labkit/replaced/), never the other way round; every older "
        "version is kept in submitted_history/<student>/<lab>/. "
        "Exit 1 when a file could not be placed.",
    )
    collect.add_argument(
        "--from",
        dest="source",
        type=Path,
        required=True,
        metavar="PATH",
        help="the LMS's download: a folder or a .zip file",
    )
    _labs(collect, "collect only this lab, repeatable (default: all)")
    collect.add_argument(
        "--max-mb",
        type=float,
        default=2048,
        help="refuse a zip file that unpacks to more MiB (default 2048)",
    )
    _root(collect)
    collect.set_defaults(func=_cmd_collect)


def _add_status(actions: argparse._SubParsersAction) -> None:
    """Add ``course status``: where each student's lab stands."""
    status = actions.add_parser(
        "status",
        help="per student and lab: submitted, graded, failed",
        description="Print one row per student and lab: missing, submitted (and when, and how "
        "many versions were handed in since the first), "
        "graded (autograded score in the gradebook) or failed (why, from the "
        "grading record), then counts per lab.",
    )
    _labs(status, "only this lab, repeatable (default: all)")
    _root(status)
    status.set_defaults(func=_cmd_status)


def _add_release(actions: argparse._SubParsersAction) -> None:
    """Add ``course release``: the student notebooks of ``labs/`` from ``solutions/``."""
    release = actions.add_parser(
        "release",
        help="regenerate labs/ from solutions/ (nbgrader generate_assignment)",
        description="Write the student version of each lab into labs/<lab>/ with nbgrader: "
        "solutions replaced by stubs, hidden tests removed, cells locked.",
    )
    release.add_argument(
        "labs", nargs="*", metavar="LAB", help="labs to release (default: every lab in solutions/)"
    )
    release.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 if a lab in labs/ is out of date",
    )
    _root(release)
    release.set_defaults(func=_cmd_release)


def _add_autograde(actions: argparse._SubParsersAction) -> None:
    """Add ``course autograde``: grade a lab for the class."""
    grade = actions.add_parser(
        "autograde",
        help="grade a lab for the class: sandboxed, in parallel, resumable",
        description="Grade each submission of LAB in a process of its own: nbgrader's "
        "autograde with student code judged in a bubblewrap sandbox (no network, "
        "course and other students hidden, memory, CPU, processes and output "
        "capped). Each student ends graded or failed (with the reason); a run "
        "stopped at any point can simply be run again. Exit 1 if any failed.",
    )
    grade.add_argument("lab", metavar="LAB", help="the lab to grade")
    _students(grade, "grade only this student, repeatable (default: all who submitted)")
    grade.add_argument("--jobs", type=int, default=1, help="submissions at once (default 1)")
    grade.add_argument(
        "--timeout",
        type=float,
        default=900,
        help="wall-clock seconds per notebook (default 900; a cell gets at most 300)",
    )
    grade.add_argument(
        "--memory-mb",
        type=int,
        default=6144,
        help="memory of one submission's processes in MiB (default 6144; lab07 peaks near 4 GB)",
    )
    grade.add_argument(
        "--resume", action="store_true", help="skip students graded after their last change"
    )
    grade.add_argument(
        "--no-sandbox",
        action="store_true",
        help="resource limits only, no bubblewrap (only for trusted code)",
    )
    grade.add_argument(
        "--runner",
        action="store_true",
        help="run the tests in the student's sandboxed process (the runner), not in the "
        "grader's (the referee, the default); weaker against a determined student, but it "
        "runs the cells after the last test too",
    )
    _root(grade)
    grade.set_defaults(func=_cmd_autograde)


def _add_feedback(actions: argparse._SubParsersAction) -> None:
    """Add ``course feedback``: an HTML page per graded student."""
    feedback = actions.add_parser(
        "feedback",
        help="write an HTML feedback page per graded student",
        description="feedback/<student>/<LAB>/<LAB>.html: scores, the output of the visible "
        "tests and the errors the student's code raised; never a hidden test.",
    )
    feedback.add_argument("lab", metavar="LAB", help="the lab")
    _students(feedback, "only this student, repeatable (default: all graded)")
    _root(feedback)
    feedback.set_defaults(func=_cmd_feedback)


def _add_similarity(actions: argparse._SubParsersAction) -> None:
    """Add ``course similarity``: which answers are alike, and which are labkit's own."""
    similarity = actions.add_parser(
        "similarity",
        help="flag answers alike between students or copied from labkit's references",
        description="Compare the answer cells of every submission of LAB (the release's "
        "starter code left out; renamed variables, comments and reordered statements "
        "ignored) with each other and with the labkit functions the lab's tests forbid. "
        "Print the flagged pairs; write similarity/LAB.html (the answers side by side) "
        "and similarity/LAB.json.",
    )
    similarity.add_argument("lab", metavar="LAB", help="the lab")
    similarity.add_argument(
        "--threshold",
        type=float,
        default=0.8,
        help="flag a pair at this score or more, in [0, 1] (default 0.8)",
    )
    similarity.add_argument(
        "--top",
        type=int,
        default=20,
        help="pairs shown side by side on the page besides the flagged ones (default 20)",
    )
    _root(similarity)
    similarity.set_defaults(func=_cmd_similarity)


def _add_export(actions: argparse._SubParsersAction) -> None:
    """Add ``course export``: ``grades.csv`` from the gradebook."""
    export = actions.add_parser(
        "export",
        help="write grades.csv from the gradebook, or a Canvas or Moodle gradebook import",
        description="Every student of the gradebook on every lab (no submission: score 0, "
        "status missing), the score split into autograded and hand-graded "
        "points; totals as `nbgrader export` computes them.",
    )
    export.add_argument(
        "--format",
        choices=("nbgrader", "canvas", "moodle"),
        default="nbgrader",
        help="nbgrader (default): grades.csv as above; canvas: Canvas's gradebook import "
        "(Student,ID,SIS User ID,SIS Login ID,Section, a column per lab, Points Possible), "
        "students matched by SIS User ID = student id or ID = the roster's lms_user_id; "
        "moodle: Moodle's CSV grade import, a column per lab, students identified by "
        "'Email address' when students.csv has emails, else by 'ID number' = student id",
    )
    export.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the CSV to write (default: ROOT/grades.csv, ROOT/grades-canvas.csv or "
        "ROOT/grades-moodle.csv)",
    )
    export.add_argument(
        "--canvas-id",
        dest="canvas_ids",
        action="append",
        metavar="LAB=NUMBER",
        help="canvas: the lab's Canvas assignment id (the number in its URL), repeatable; the "
        "column becomes 'LAB (NUMBER)', which Canvas matches to that assignment (default: a "
        "column titled LAB, a new assignment unless one has that name)",
    )
    export.add_argument(
        "--moodle-id",
        choices=("email", "idnumber"),
        default=None,
        help="moodle: identify students by 'Email address' (map to useremail) or "
        "'ID number' (map to useridnumber); default: email when students.csv has emails",
    )
    _root(export)
    export.set_defaults(func=_cmd_export)


def _add_report(actions: argparse._SubParsersAction) -> None:
    """Add ``course report``: the class report."""
    report = actions.add_parser(
        "report",
        help="write the class report: score plots, test pass rates, report.md",
        description="Per lab: score distribution, pass rate per autograded test, failed "
        "and slowest submissions (from autograded/.labkit/), as PNGs and "
        "report.md.",
    )
    report.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the folder for report.md and the figures (default: ROOT/report)",
    )
    _root(report)
    report.set_defaults(func=_cmd_report)


def _add_demo(actions: argparse._SubParsersAction) -> None:
    """Add ``course demo``: the whole cycle with a demo class."""
    demo = actions.add_parser(
        "demo",
        help="the whole cycle on the Shapes set with a demo class of six",
        description="Make a course in --out, hand in a correct, a blank, a partly wrong and "
        "three cheating notebooks, autograde, write feedback, grades.csv and the "
        "report, and print the autograded scores. An earlier demo in --out is "
        "replaced. Exit 1 if a grading failed.",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("runs/course-demo"),
        help="the demo's folder (default: runs/course-demo)",
    )
    _labs(demo, "only this lab, repeatable (default: every lab)")
    demo.add_argument(
        "--cheat-lab",
        dest="cheat_labs",
        action="append",
        metavar="LAB",
        help="the cheaters hand in this lab, repeatable (default: the first "
        "lab only, to keep the demo short)",
    )
    _kit(demo)
    demo.add_argument("--jobs", type=int, default=2, help="submissions at once (default 2)")
    demo.add_argument(
        "--timeout", type=float, default=600, help="wall-clock seconds per notebook (default 600)"
    )
    demo.set_defaults(func=_cmd_demo)
