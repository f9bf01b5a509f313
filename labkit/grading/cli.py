"""``labkit course ...``: the instructor's commands.

``labkit course release [LAB ...] [--check]`` regenerates the student notebooks in ``labs/``
from the nbgrader sources in ``solutions/`` (or, with ``--check``, only says which are out
of date). Every command takes ``--root DIR``, the course directory (default: here).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_course_parser"]


def _cmd_release(args: argparse.Namespace) -> int:
    from labkit.grading.course import NbgraderError, release_labs, stale_labs

    try:
        if args.check:
            stale = stale_labs(args.root, args.labs or None)
            for lab in stale:
                print(f"{lab}: labs/{lab} is out of date with solutions/{lab}; run "
                      f"`labkit course release {lab}`")
            if not stale:
                print("labs/ is up to date with solutions/")
            return 1 if stale else 0
        for path in release_labs(args.root, args.labs or None):
            print(f"released {path}")
    except NbgraderError as exc:
        print(f"labkit course release: {exc}", file=sys.stderr)
        return 1
    return 0


def add_course_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``course`` and its actions to the ``labkit`` command's subparsers."""
    course = sub.add_parser("course", help="release labs and grade a course with nbgrader",
                            description="The instructor's side: nbgrader underneath.")
    actions = course.add_subparsers(dest="course_command", metavar="ACTION", required=True)
    release = actions.add_parser(
        "release", help="regenerate labs/ from solutions/ (nbgrader generate_assignment)",
        description="Write the student version of each lab into labs/<lab>/ with nbgrader: "
                    "solutions replaced by stubs, hidden tests removed, cells locked.")
    release.add_argument("labs", nargs="*", metavar="LAB",
                         help="labs to release (default: every lab in solutions/)")
    release.add_argument("--check", action="store_true",
                         help="change nothing; exit 1 if a lab in labs/ is out of date")
    release.add_argument("--root", type=Path, default=Path("."),
                         help="the course directory holding nbgrader_config.py (default: .)")
    release.set_defaults(func=_cmd_release)
