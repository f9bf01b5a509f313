"""The checks every lab's grading module runs on its ``graded`` fixture, imported by each
(pytest collects them there, with that module's class)."""

from tests.labs.conftest import SOLUTION


def test_source_passes_nbgrader_validate(graded):
    """Does nbgrader's validator pass the instructor's notebook?"""
    c, _ = graded
    assert c.validate_source() == {}


def test_cut_submissions_ran_every_graded_cell(graded):
    """Did the submissions cut after their last test keep and run every graded cell?"""
    c, scores = graded
    c.assert_cut_kept_every_test([s for s in scores if s != SOLUTION])
