"""The innermost exception of a chain: what an error message should name as its cause.

A wrapper (nbgrader's ``NbGraderException``, a ``RuntimeError`` raised ``from`` an
``OSError``) says little; the exception at the bottom of ``__cause__`` / ``__context__``
says what really went wrong. The grading worker and ``labkit doctor`` both report it.
"""

from __future__ import annotations

__all__ = ["innermost"]


def innermost(exc: BaseException) -> BaseException:
    """The exception ``exc`` was raised from or during, followed to the bottom (``exc`` itself
    when it has neither ``__cause__`` nor ``__context__``); a cycle ends the walk."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc
