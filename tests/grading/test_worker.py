"""Tests for labkit.grading.worker: one submission's grading process (the class's grading,
which starts it, is tested in test_batch.py)."""

from __future__ import annotations

import io
import logging
import traceback

import nbformat

from labkit.grading.judge import JudgePreprocessor
from labkit.grading.worker import check_submission, deepest, nbgrader_cause

LAB = "lab01_baseline_fcn"


def test_check_submission(tmp_path):
    """Does check_submission name the folder when it is missing and accept a notebook?"""
    problem, _ = check_submission(tmp_path / "absent", LAB)
    assert "no submission" in problem and "absent" in problem
    (tmp_path / "ok").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "ok" / f"{LAB}.ipynb")
    assert check_submission(tmp_path / "ok", LAB) == (None, "")


def _chained() -> RuntimeError:
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as exc:
            raise KeyError("gradebook") from exc
    except KeyError:
        try:
            raise RuntimeError("could not save the grades")
        except RuntimeError as outer:
            return outer


def _innermost_by_hand(exc: BaseException) -> BaseException:
    while exc.__cause__ or exc.__context__:
        exc = exc.__cause__ or exc.__context__
    return exc


def test_deepest_is_the_innermost_of_the_chain():
    """Is deepest() the type and message of the exception at the bottom of both the
    ``raise from`` and the ``during handling`` links?"""
    exc = _chained()
    inner = _innermost_by_hand(exc)
    assert deepest(exc) == f"{type(inner).__name__}: {inner}"
    assert deepest(ValueError("alone")) == "ValueError: alone"


def test_nbgrader_cause_reads_the_innermost_exception_of_the_logged_traceback(monkeypatch):
    """From a log written as nbgrader's API captures it ("[LEVEL] message", the traceback
    from format_exc), is the cause the first exception line of the last traceback (the
    innermost), and the judge's own failure first when it has one?"""
    monkeypatch.setattr(JudgePreprocessor, "failures", [])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    log = logging.getLogger("test_worker.nbgrader")
    log.addHandler(handler)
    log.propagate = False
    log.info("Grading ann")
    try:
        raise _chained()
    except RuntimeError:
        log.error(traceback.format_exc())
    log.error("There was an error processing assignment: lab01")
    inner = _innermost_by_hand(_chained())
    assert nbgrader_cause({"log": stream.getvalue()}) == f"{type(inner).__name__}: {inner}"
    assert "nbgrader autograde" in nbgrader_cause({"log": "[INFO] nothing failed"})
    monkeypatch.setattr(JudgePreprocessor, "failures", [ValueError("the judge's own")])
    assert nbgrader_cause({"log": stream.getvalue()}) == "ValueError: the judge's own"
