"""nbgrader's configuration for the lab kit: sources in solutions/, releases in labs/.

Plain nbgrader reads this file; nothing in it needs labkit's own grading commands.
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
