"""Which students' answers to a lab are alike, and which are labkit's own reference code.

Only the answer cells count (nbgrader's code ``solution`` cells), less the starter code the
release puts in them: fingerprints (:mod:`labkit.grading.fingerprint`) of a student's cell
that the release's same cell also has are dropped, as MOSS drops a base file's. Two students
score the Jaccard similarity of what is left. Each student is also compared with the
library's version of the exercise, the labkit functions and classes the lab's tests forbid
(:func:`~labkit.grading.strip.forbidden_references`): a student scores, per reference, the
share of its fingerprints found in the answer, so pasting ``labkit.metrics.pixel_accuracy``
with renamed variables is caught like copying a classmate.

:func:`similarity_report` writes ``similarity/<lab>.html`` (the top pairs, the two answers side
by side, all student text escaped) and ``similarity/<lab>.json``.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import json
import os
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from nbgrader import utils as nbutils

from labkit.atomic import write_atomic
from labkit.grading.course import CourseError, check_lab
from labkit.grading.fingerprint import WINDOW, K, containment, fingerprints, jaccard
from labkit.grading.similarity_page import similarity_page
from labkit.grading.strip import forbidden_references

__all__ = ["Match", "SimilarityReport", "answer_cells", "read_flagged", "similarity_report"]


@dataclass(frozen=True)
class Match:
    """Two answers found alike.

    Attributes:
        first: a student id.
        second: another student id, or the dotted name of a labkit reference.
        score: the similarity in [0, 1] (Jaccard for two students, the share of the
            reference's fingerprints in the answer for a reference).
        flagged: the score is at least the report's threshold.
    """

    first: str
    second: str
    score: float
    flagged: bool


@dataclass(frozen=True)
class SimilarityReport:
    """What :func:`similarity_report` found and wrote.

    Attributes:
        pairs: every pair of students, the most alike first.
        references: per student, the labkit reference most of which is in the answer, the
            highest score first (empty when the lab's tests forbid none).
        html: the page written.
        json: the JSON file written.
    """

    pairs: list[Match]
    references: list[Match]
    html: Path
    json: Path

    @property
    def flagged(self) -> list[Match]:
        """The pairs and references at or above the threshold, the most alike first."""
        both = [m for m in [*self.pairs, *self.references] if m.flagged]
        return sorted(both, key=lambda m: -m.score)


def answer_cells(nb: nbformat.NotebookNode) -> dict[str, str]:
    """The text of each code answer cell (nbgrader ``solution``), by its ``grade_id``."""
    return {
        cell.metadata["nbgrader"].get("grade_id", f"cell-{i}"): cell.source
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and nbutils.is_solution(cell)
    }


def _own(cells: dict[str, str], starter: dict[str, str], *, k: int, window: int) -> set[int]:
    """The fingerprints of the answer cells that the same release cell does not have."""
    out: set[int] = set()
    for gid, text in cells.items():
        out |= fingerprints(text, k=k, window=window) - fingerprints(
            starter.get(gid, ""), k=k, window=window
        )
    return out


def _references(source: nbformat.NotebookNode) -> dict[str, str]:
    """The source code of each labkit reference the lab's tests forbid, by dotted name."""
    refs, _ = forbidden_references(source)
    out = {}
    for module, qualname in sorted(refs):
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        try:
            out[f"{module}.{qualname}"] = textwrap.dedent(inspect.getsource(obj))
        except (OSError, TypeError):
            continue  # no source to compare with (a built or generated object)
    return out


def _read(path: Path) -> nbformat.NotebookNode:
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - a student's file can be anything
        raise CourseError(f"cannot read {path} as a notebook: {exc}") from exc


def _submissions(root: Path, lab: str) -> dict[str, dict[str, str]]:
    """Per student with a readable ``submitted/<student>/<lab>/<lab>.ipynb``, the answer
    cells; an unreadable notebook counts as empty."""
    out = {}
    for path in sorted((root / "submitted").glob(f"*/{lab}/{lab}.ipynb")):
        try:
            out[path.parent.parent.name] = answer_cells(_read(path))
        except CourseError:
            out[path.parent.parent.name] = {}
    return out


def _score_pairs(own: dict[str, set[int]], threshold: float) -> list[Match]:
    pairs = [
        Match(a, b, round(s, 4), s >= threshold)
        for a, b in itertools.combinations(sorted(own), 2)
        for s in [jaccard(own[a], own[b])]
    ]
    return sorted(pairs, key=lambda m: (-m.score, m.first, m.second))


def _score_references(
    own: dict[str, set[int]], refs: dict[str, set[int]], threshold: float
) -> list[Match]:
    out = []
    for student, prints in own.items():
        scores = {name: containment(ref, prints) for name, ref in refs.items() if ref}
        if scores:
            name = max(sorted(scores), key=scores.get)
            out.append(Match(student, name, round(scores[name], 4), scores[name] >= threshold))
    return sorted(out, key=lambda m: (-m.score, m.first))


def similarity_report(
    root: str | os.PathLike,
    lab: str,
    *,
    threshold: float = 0.8,
    top: int = 20,
    k: int = K,
    window: int = WINDOW,
) -> SimilarityReport:
    """Compare the answers every student handed in for ``lab``, with each other and with
    labkit's references, and write ``similarity/<lab>.html`` and ``similarity/<lab>.json``.

    Args:
        root (str | os.PathLike): the course directory.
        lab (str): the lab, a folder of ``solutions/``, released in ``labs/``.
        threshold (float): a score at or above it flags the pair.
        top (int): pairs shown side by side on the page besides the flagged ones.
        k (int): tokens per k-gram (:func:`~labkit.grading.fingerprint.fingerprints`).
        window (int): hashes per winnowing window.

    Returns:
        The scores and the files written.

    Raises:
        CourseError: an unknown lab, a lab not released, no submission, or a threshold
            outside [0, 1].
    """
    root = Path(root)
    if not 0.0 <= threshold <= 1.0:
        raise CourseError(f"--threshold must be in [0, 1]; got {threshold}.")
    check_lab(root, lab)
    release = root / "labs" / lab / f"{lab}.ipynb"
    if not release.is_file():
        raise CourseError(f"{release} is missing; run `labkit course release {lab}` first.")
    subs = _submissions(root, lab)
    if not subs:
        raise CourseError(
            f"no submission of {lab} in {root / 'submitted'} (expected "
            f"<student>/{lab}/{lab}.ipynb); run `labkit course collect` first."
        )
    starter = answer_cells(_read(release))
    own = {s: _own(cells, starter, k=k, window=window) for s, cells in subs.items()}
    ref_text = _references(_read(root / "solutions" / lab / f"{lab}.ipynb"))
    start = fingerprints("\n".join(starter.values()), k=k, window=window)
    refs = {n: fingerprints(t, k=k, window=window) - start for n, t in ref_text.items()}
    report = SimilarityReport(
        _score_pairs(own, threshold),
        _score_references(own, refs, threshold),
        root / "similarity" / f"{lab}.html",
        root / "similarity" / f"{lab}.json",
    )
    texts = {s: "\n\n".join(f"# --- {g} ---\n{t}" for g, t in c.items()) for s, c in subs.items()}
    meta = {"lab": lab, "threshold": threshold, "k": k, "window": window, "students": sorted(subs)}
    _write(report, meta, texts={**texts, **ref_text}, top=top)
    return report


def _write(report: SimilarityReport, meta: dict, *, texts: dict[str, str], top: int) -> None:
    """Write the report's page (the flagged and the ``top`` pairs, the flagged references or
    the three highest) and its JSON file."""
    pairs = [m for m in report.pairs if m.flagged]
    pairs += [m for m in report.pairs[:top] if not m.flagged]
    refs = [m for m in report.references if m.flagged]
    refs += [m for m in report.references[:3] if not m.flagged]
    write_atomic(report.html, similarity_page(meta, pairs + refs, texts=texts))
    body = {
        **meta,
        "pairs": [asdict(m) for m in report.pairs],
        "references": [asdict(m) for m in report.references],
    }
    write_atomic(report.json, json.dumps(body, indent=1) + "\n")


def read_flagged(root: str | os.PathLike, lab: str) -> list[Match] | None:
    """The flagged pairs and references of the last :func:`similarity_report` of ``lab``,
    or ``None`` when none was written (or its file does not read)."""
    path = Path(root) / "similarity" / f"{lab}.json"
    try:
        body = json.loads(path.read_text())
        found = [Match(**m) for m in [*body["pairs"], *body["references"]]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [m for m in found if m.flagged]
