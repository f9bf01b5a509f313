"""Late penalties the way nbgrader takes them, with labkit's policy.

The **policy** is an nbgrader late-submission plugin, chosen in the course's
``nbgrader_config.py``; the kit's chooses :class:`LatePolicy`::

    c.AssignLatePenalties.plugin_class = "labkit.grading.late.LatePolicy"
    c.LatePolicy.percent_per_day = 10   # of the points earned, per started day late
    c.LatePolicy.max_percent = 50       # the most taken off that way
    c.LatePolicy.zero_after_days = 7    # later than this scores 0 (0: never)
    c.LatePolicy.grace_minutes = 0      # late by at most this counts as on time

nbgrader's ``AssignLatePenalties`` applies the plugin when it autogrades, on the points
autograded so far, and stores the penalty in ``SubmittedNotebook.late_submission_penalty``.
Points typed in the formgrader later, an extension or a due date changed later
(:mod:`labkit.grading.deadlines`) are not seen by nbgrader until the next autograde;
:func:`refresh_penalties` applies the same plugin to the gradebook's current scores and
lateness, and ``export``, ``report``, ``feedback`` and ``status`` call it first. There is no
second record of anything: each number lives in its nbgrader column.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float

__all__ = [
    "DAY",
    "LatePolicy",
    "course_policy",
    "describe_policy",
    "is_autograded",
    "open_gradebook",
    "refresh_penalties",
]

DAY = 86400.0  #: seconds in a day


class LatePolicy(LateSubmissionPlugin):
    """A percentage of the points earned per started day late, capped, and 0 after a last day.

    ``late_submission_penalty`` is nbgrader's plugin method: nbgrader's autograde calls it
    with the notebook's points and how late the submission is (extension included).
    """

    percent_per_day = Float(
        10.0, help="Percent of the points earned taken off per started day late."
    ).tag(config=True)
    max_percent = Float(50.0, help="The most percent taken off by days (100: no cap).").tag(
        config=True
    )
    zero_after_days = Float(
        7.0, help="A submission later than this many days scores 0 (0: never)."
    ).tag(config=True)
    grace_minutes = Float(0.0, help="Late by at most this many minutes counts as on time.").tag(
        config=True
    )

    def late_submission_penalty(
        self, student_id: str, score: float, total_seconds_late: float
    ) -> float | None:
        """The points to take off ``score`` for a submission ``total_seconds_late`` late."""
        if total_seconds_late <= self.grace_minutes * 60:
            return None
        if self.zero_after_days > 0 and total_seconds_late > self.zero_after_days * DAY:
            return float(score)
        days = math.ceil(total_seconds_late / DAY)
        return float(score) * min(self.max_percent, self.percent_per_day * days) / 100.0

    def describe(self) -> str:
        """The policy in one line, for status and the report."""
        text = f"{self.percent_per_day:g} % of the points per started day late"
        if self.max_percent < 100:
            text += f", at most {self.max_percent:g} %"
        if self.zero_after_days > 0:
            text += f"; 0 after {self.zero_after_days:g} days"
        if self.grace_minutes > 0:
            text += f"; {self.grace_minutes:g} minutes' grace"
        return text


def course_policy(root: str | os.PathLike):
    """The late-submission plugin the course's ``nbgrader_config.py`` chooses, configured
    from it exactly as nbgrader's autograde builds it (nbgrader's own default when the file
    names none: no penalty)."""
    from nbgrader.preprocessors import AssignLatePenalties
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    has_config = (Path(root) / "nbgrader_config.py").is_file()
    config = (
        PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
        if has_config
        else Config()
    )
    assign = AssignLatePenalties(config=config)
    assign.init_plugin()
    return assign.plugin_inst


def describe_policy(root: str | os.PathLike) -> str:
    """The course's late policy in one line."""
    plugin = course_policy(root)
    if isinstance(plugin, LatePolicy):
        return plugin.describe()
    method = getattr(plugin, "penalty_method", None)
    return f"{type(plugin).__name__}" + (f" (penalty_method={method!r})" if method else "")


def open_gradebook(root: str | os.PathLike):
    """nbgrader's ``Gradebook`` of the course (a context manager).

    Raises:
        CourseError: ``root`` holds no ``gradebook.db`` (opening one would create it).
    """
    from nbgrader.api import Gradebook

    from labkit.grading.export import gradebook_path

    return Gradebook(f"sqlite:///{gradebook_path(root)}")


def is_autograded(submission) -> bool:
    """Whether nbgrader's autograde has scored this ``SubmittedAssignment`` (a row an
    extension made early has no score yet)."""
    return any(g.auto_score is not None for nb in submission.notebooks for g in nb.grades)


def refresh_penalties(root: str | os.PathLike, *, labs: Sequence[str] | None = None) -> int:
    """Apply the course's late plugin to every autograded submission's current points and
    lateness, as nbgrader's autograde does, and store the penalties in the gradebook.

    Args:
        root (str | os.PathLike): the course directory.
        labs (Sequence[str] | None): the labs to refresh (default: all).

    Returns:
        How many notebooks' penalties changed.
    """
    gradebook = open_gradebook(root)  # first: a folder without one is the error to report
    plugin = course_policy(root)
    changed = 0
    with gradebook as gb:
        for assignment in gb.assignments:
            if labs is not None and assignment.name not in labs:
                continue
            for sub in assignment.submissions:
                if not is_autograded(sub):
                    continue
                # nbgrader's duedate adds an extension to the lab's, which may have been
                # cleared since (the formgrader's assignment page can): then none is late
                late = sub.total_seconds_late if assignment.duedate is not None else 0.0
                for nb in sub.notebooks:
                    penalty = (
                        plugin.late_submission_penalty(sub.student.id, nb.score, late)
                        if late > 0
                        else None
                    )
                    if penalty is not None:  # nbgrader's bounds (AssignLatePenalties)
                        penalty = min(max(penalty, 0.0), nb.score)
                    if penalty != nb.late_submission_penalty:
                        nb.late_submission_penalty = penalty
                        changed += 1
        gb.db.commit()
    return changed
