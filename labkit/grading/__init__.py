"""The course side of the kit: releasing labs with nbgrader, submissions, grades.

A term's course is made with :mod:`~labkit.grading.instance` (``init``, status, grading
records), filled by :mod:`~labkit.grading.collect`, and summed up by
:mod:`~labkit.grading.export` (``grades.csv``) and :mod:`~labkit.grading.report`.

:mod:`labkit.grading.course` drives nbgrader's own command line and reads its gradebook;
:mod:`labkit.grading.submissions` builds and alters submission notebooks (a solution handed
in as a student would, a deliberately wrong variant).
"""

from labkit.grading.collect import CollectReport, collect_submissions
from labkit.grading.course import (CourseError, LabScore, NbgraderError, available_labs,
                                   lab_scores, nbgrader, release_labs, stale_labs)
from labkit.grading.export import export_grades, grade_rows
from labkit.grading.instance import course_status, init_course, read_record, write_record
from labkit.grading.report import class_report, lab_summaries
from labkit.grading.submissions import fill_solutions, replace_in_cell

__all__ = ["CollectReport", "CourseError", "LabScore", "NbgraderError", "available_labs",
           "class_report", "collect_submissions", "course_status", "export_grades",
           "fill_solutions", "grade_rows", "init_course", "lab_scores", "lab_summaries",
           "nbgrader", "read_record", "release_labs", "replace_in_cell", "stale_labs",
           "write_record"]
