"""labkit's own errors: a cause outside labkit's code, and what to do about it.

Every error labkit raises because of something its user gave it or has on disk (a dataset
that is not there, a config value out of range, a run folder that holds no run, a course that
is not one, a device the machine lacks) is a :class:`LabkitError`, and its message says what
was expected, what came and what to do. The ``labkit`` command prints such an error as one
line with exit code 2 (``-v``: with its traceback). Any other exception is a bug, of labkit
or of the code it ran: the command lets it through, traceback and exit code 1.

Each class also derives from the built-in error Python code expects for its case
(``ValueError`` for a bad value, ``FileNotFoundError`` for a missing file), so
``except ValueError`` around a labkit call keeps working.

:func:`innermost` finds the cause to name in a message: a wrapper (nbgrader's
``NbGraderException``, a ``RuntimeError`` raised ``from`` an ``OSError``) says little, the
exception at the bottom of its chain says what went wrong. The grading worker and
``labkit doctor`` report it.

This module imports nothing: the command catches these errors without loading torch.
"""

from __future__ import annotations

__all__ = ["LabkitError", "MissingPackageError", "UsageError", "innermost"]


class LabkitError(Exception):
    """An error its user can fix; the message says how."""


class UsageError(LabkitError, ValueError):
    """A value a user gave (an option, an argument, a file's contents) that labkit cannot use."""


class MissingPackageError(LabkitError, ModuleNotFoundError):
    """An optional package a feature needs is not installed; the message names the command
    that installs it."""


def innermost(exc: BaseException) -> BaseException:
    """The exception ``exc`` was raised from or during, followed to the bottom (``exc`` itself
    when it has neither ``__cause__`` nor ``__context__``); a cycle ends the walk."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc
