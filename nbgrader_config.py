"""nbgrader's configuration for the lab kit: sources in solutions/, releases in labs/.

Plain nbgrader reads this file; nothing in it needs labkit's own grading commands, only the
labkit package (installed wherever the labs run) for the late policy's plugin class.
"""

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "labs"
# Runs, data and checkpoints a notebook writes next to itself are not part of the lab.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    "runs",
    "*.pt",
    ".data",
]
# The quick profile runs each notebook in under 90 s; a cell stuck for 5 minutes is a bug.
c.ExecutePreprocessor.timeout = 300
# A graded kernel is stopped as soon as its notebook has run (its outputs are in): asked to
# exit, a kernel holding torch spends 0.6-3.5 s tearing its interpreter down, per student.
c.ExecutePreprocessor.shutdown_kernel = "immediate"
# Late work: nbgrader's late-penalty step with labkit's policy (labkit.grading.late). Due dates
# and extensions live in the gradebook: `labkit course due LAB WHEN`, `labkit course extend`.
c.AssignLatePenalties.plugin_class = "labkit.grading.late.LatePolicy"
c.LatePolicy.percent_per_day = 10  # of the points earned, per started day late
c.LatePolicy.max_percent = 50  # the most taken off by days
c.LatePolicy.zero_after_days = 7  # handed in later than this: 0 (0 turns it off)
c.LatePolicy.grace_minutes = 0  # late by at most this counts as on time
# Feedback pages, written by `labkit course feedback` or the formgrader's Generate Feedback
# button alike: hidden tests taken out, the student's HTML cleaned (labkit.grading.feedback).
c.GenerateFeedback.preprocessors = [
    "labkit.grading.feedback.HideTests",
    "nbgrader.preprocessors.GetGrades",
    "labkit.grading.feedback.SanitizeOutputs",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
c.GenerateFeedback.exporter_class = "labkit.grading.feedback.SafeFeedbackExporter"
