"""The course side of the kit: releasing labs with nbgrader, submissions, grades.

:mod:`labkit.grading.course` drives nbgrader's own command line and reads its gradebook;
:mod:`labkit.grading.submissions` builds and alters submission notebooks (a solution handed
in as a student would, a deliberately wrong variant).
"""

from labkit.grading.course import (CourseError, LabScore, NbgraderError, available_labs, lab_scores,
                                   nbgrader, release_labs, stale_labs)
from labkit.grading.submissions import fill_solutions, replace_in_cell

__all__ = ["CourseError", "LabScore", "NbgraderError", "available_labs", "fill_solutions", "lab_scores",
           "nbgrader", "release_labs", "replace_in_cell", "stale_labs"]
