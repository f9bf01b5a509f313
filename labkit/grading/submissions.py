"""Submission notebooks made from a lab: the solution handed in, or a wrong variant of it.

The instructor's demo and the lab tests need submissions that behave like real ones: the
student's release notebook (locked cells, checksums and all) with code typed into its
answer cells. :func:`fill_solutions` types in the source notebook's solutions;
:func:`replace_in_cell` then plants a plausible mistake in one answer.
"""

from __future__ import annotations

import copy
import re

import nbformat
from nbgrader import utils as nbutils

__all__ = ["fill_solutions", "replace_in_cell"]

_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")  # nbgrader has no getter


def fill_solutions(
    release: nbformat.NotebookNode, source: nbformat.NotebookNode
) -> nbformat.NotebookNode:
    """The release notebook with every answer cell holding the source's solution.

    Args:
        release (nbformat.NotebookNode): the student version (``labs/<lab>/<lab>.ipynb``).
        source (nbformat.NotebookNode): the instructor version (``solutions/<lab>/<lab>.ipynb``).

    Returns:
        A copy of ``release`` whose ``solution`` cells hold the source cell's text with the
        ``### BEGIN/END SOLUTION`` marker lines removed.

    Raises:
        ValueError: an answer cell of the release has no counterpart in the source.
    """
    solutions = {_grade_id(c): c.source for c in source.cells if nbutils.is_solution(c)}
    out = copy.deepcopy(release)
    for cell in out.cells:
        if not nbutils.is_solution(cell):
            continue
        gid = _grade_id(cell)
        if gid not in solutions:
            raise ValueError(
                f"answer cell {gid!r} of the release is not in the source "
                f"notebook (it has {sorted(map(str, solutions))}); release again."
            )
        cell.source = _MARKERS.sub("", solutions[gid])
    return out


def replace_in_cell(
    nb: nbformat.NotebookNode, grade_id: str, old: str, new: str
) -> nbformat.NotebookNode:
    """A copy of ``nb`` with ``old`` replaced by ``new`` in the cell ``grade_id``.

    Raises:
        KeyError: no cell has that ``grade_id``.
        ValueError: ``old`` does not occur in that cell (the mutation would be a no-op).
    """
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if _grade_id(cell) == grade_id:
            if old not in cell.source:
                raise ValueError(
                    f"cell {grade_id!r} does not contain {old!r}; its text is:\n{cell.source}"
                )
            cell.source = cell.source.replace(old, new)
            return out
    raise KeyError(
        f"no cell with grade_id {grade_id!r}; expected one of "
        f"{[g for g in map(_grade_id, nb.cells) if g]}."
    )
