"""The course side of the kit: releasing labs with nbgrader, submissions, grades.

A term's course is made with :mod:`~labkit.grading.instance` (``init``, status, grading
records) from the kit :mod:`~labkit.grading.kit` finds, filled by
:mod:`~labkit.grading.collect`, and summed up by :mod:`~labkit.grading.export`
(``grades.csv``), :mod:`~labkit.grading.lms` (Canvas's and Moodle's gradebook imports) and
:mod:`~labkit.grading.report`.

:mod:`~labkit.grading.batch` (its :func:`autograde`, also ``labkit.grading.autograde``)
grades a lab for the class, each submission judged in a
sandbox (:mod:`~labkit.grading.judge`, :mod:`~labkit.grading.sandbox`);
:mod:`~labkit.grading.feedback` writes the students' pages.
:mod:`labkit.grading.course` drives nbgrader's own command line and reads its gradebook;
:mod:`labkit.grading.submissions` builds and alters submission notebooks (a solution handed
in as a student would, a deliberately wrong variant).
"""

import importlib

# Loaded on first use: the sandboxed judge (labkit.grading.judge_runner) lives in this package
# and must start without nbgrader and Jupyter, which take seconds to import.
_HOMES = {
    "collect": ["CollectReport", "collect_submissions"],
    "course": [
        "CourseError",
        "LabScore",
        "NbgraderError",
        "available_labs",
        "check_lab",
        "lab_scores",
        "nbgrader",
        "release_labs",
        "stale_labs",
    ],
    "export": ["export_grades", "grade_rows"],
    "instance": ["course_status", "init_course", "read_record", "write_record"],
    "kit": ["locate_kit"],
    "lms": ["export_lms"],
    "report": ["class_report", "lab_summaries"],
    "submissions": ["fill_solutions", "replace_in_cell"],
    "batch": ["Outcome", "autograde"],
    "feedback": ["FeedbackReport", "write_feedback"],
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'labkit.grading' has no attribute {name!r}")
    return getattr(importlib.import_module(f"labkit.grading.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
