"""``labkit course due`` and ``labkit course extend``: deadlines and extensions from the
command line (:mod:`labkit.grading.deadlines` keeps both in nbgrader's gradebook)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_deadline_parsers"]


def _cmd_due(args: argparse.Namespace) -> int:
    from labkit.grading.course import CourseError
    from labkit.grading.deadlines import format_dues, set_due_date
    from labkit.grading.late import describe_policy

    if args.lab is not None:
        if (args.when is None) == (not args.clear):
            raise CourseError(
                f"give {args.lab}'s due date (e.g. '2026-10-05 23:59') or --clear, not "
                f"{'both' if args.clear else 'neither'}."
            )
        set_due_date(args.root, args.lab, None if args.clear else args.when)
    print(f"due: {format_dues(args.root)}\nlate policy: {describe_policy(args.root)}")
    return 0


def _cmd_extend(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from labkit.grading.course import CourseError
    from labkit.grading.deadlines import grant_extension, read_extensions

    if args.csv is not None:
        if args.student or args.lab:
            raise CourseError("give either STUDENT LAB --days N or --csv FILE, not both.")
        wanted = read_extensions(args.csv)
    elif args.student and args.lab and (args.days or args.hours or args.clear):
        wanted = [(args.student, args.lab, timedelta(days=args.days, hours=args.hours))]
    else:
        raise CourseError(
            "expected STUDENT LAB with --days N (and/or --hours H, or --clear), or --csv FILE "
            "with columns student,lab,days[,hours]."
        )
    for student, lab, delta in wanted:
        given = grant_extension(args.root, student, lab, days=delta / timedelta(days=1))
        print(
            f"{student}/{lab}: "
            + (f"extension of {given / timedelta(days=1):g} day(s)" if given else "no extension")
        )
    return 0


def add_deadline_parsers(actions: argparse._SubParsersAction, root) -> None:
    """Add ``course due`` and ``course extend``; ``root`` adds the ``--root`` option."""
    due = actions.add_parser(
        "due",
        help="set or show the labs' due dates (nbgrader's, in the gradebook)",
        description="Set LAB's due date (a time without a zone is UTC), or clear it; without "
        "LAB, show every due date and the late policy (set in nbgrader_config.py: "
        "c.LatePolicy.*). nbgrader's autograde takes the late penalty off; export, "
        "report, feedback and status show it.",
    )
    due.add_argument("lab", nargs="?", metavar="LAB", help="the lab")
    due.add_argument("when", nargs="?", metavar="WHEN", help="e.g. '2026-10-05 23:59' (UTC)")
    due.add_argument("--clear", action="store_true", help="remove LAB's due date")
    root(due)
    due.set_defaults(func=_cmd_due)

    extend = actions.add_parser(
        "extend",
        help="give a student more time on a lab (nbgrader's extension, in the gradebook)",
        description="Move STUDENT's due date on LAB by --days/--hours (replacing an earlier "
        "extension; --clear removes it), or read many from --csv (columns student,lab,"
        "days[,hours]). Penalties already given are recomputed.",
    )
    extend.add_argument("student", nargs="?", metavar="STUDENT", help="the student id")
    extend.add_argument("lab", nargs="?", metavar="LAB", help="the lab")
    extend.add_argument("--days", type=float, default=0.0, help="days of extension")
    extend.add_argument("--hours", type=float, default=0.0, help="hours of extension")
    extend.add_argument("--clear", action="store_true", help="remove the extension")
    extend.add_argument("--csv", type=Path, metavar="FILE", help="many extensions from a CSV")
    root(extend)
    extend.set_defaults(func=_cmd_extend)
