"""Markdown tables and the numbers in them: one builder for every table labkit prints or
writes (scores, run comparisons, lab results, the doctor's checks, grading tables).

This module imports nothing of torch: ``labkit course`` commands use it too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["cell", "markdown_table", "percent"]


def markdown_table(
    header: Sequence[str], rows: Iterable[Sequence[object]], *, align: str = ""
) -> str:
    """A markdown (GitHub) table.

    Args:
        header (Sequence[str]): the column titles.
        rows (Iterable[Sequence[object]]): one sequence of cells per row, each written with ``str``;
            a cell that may hold ``|`` or a line break should go through :func:`cell` first.
        align (str): one letter per column, ``"l"`` (left) or ``"r"`` (right, for numbers);
            empty: every column left.

    Returns:
        The table's lines joined by newlines (no newline at the end).

    Raises:
        ValueError: ``align`` is not one ``l`` or ``r`` per column, or a row has another
            number of cells than the header.
    """
    align = align or "l" * len(header)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(
            f"expected align to be one 'l' or 'r' per column ({len(header)}); got {align!r}."
        )
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|",
    ]
    for row in rows:
        cells = [str(c) for c in row]
        if len(cells) != len(header):
            raise ValueError(
                f"expected {len(header)} cells per row ({list(header)}); got {len(cells)}: {cells}."
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cell(text: object, *, limit: int | None = None) -> str:
    """``text`` made safe for one table cell: on one line, ``|`` escaped, and cut to
    ``limit`` characters (with an ellipsis) when given."""
    line = " ".join(str(text).split())
    if limit is not None and len(line) > limit:
        line = line[:limit] + "…"
    return line.replace("|", "\\|")


def percent(x: float | None, *, digits: int = 1, sign: bool = False) -> str:
    """``x`` (a fraction) in percent with ``digits`` decimals and a ``%`` when ``sign``;
    ``"—"`` for ``None`` and NaN (a score that has no value: a class never seen)."""
    if x is None or math.isnan(x):
        return "—"
    return f"{100 * x:.{digits}f}" + (" %" if sign else "")
