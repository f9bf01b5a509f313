"""Tests for labkit.grading.similarity: planted copies in a small class, found or not."""

import inspect
import json
import re

import nbformat
import pytest

from labkit.grading.course import CourseError
from labkit.grading.similarity import answer_cells, read_flagged, similarity_report
from labkit.metrics import pixel_accuracy
from tests.grading.conftest import REPO

STARTERS = {
    "accuracy": "def pixel_accuracy(pred, target, ignore_index=255):\n"
    "    # YOUR CODE HERE\n    raise NotImplementedError()\n",
    "iou": "def mean_iou(pred, target, num_classes, ignore_index=255):\n"
    "    # YOUR CODE HERE\n    raise NotImplementedError()\n",
}
TEST = (
    "import torch\nimport labkit.metrics\nfrom labkit.checks import forbid\n"
    "with forbid(labkit.metrics.pixel_accuracy):\n"
    "    assert pixel_accuracy(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)) == 1.0\n"
)
ANN = {  # the original the copies are made from
    "accuracy": """def pixel_accuracy(pred, target, ignore_index=255):
    if pred.dim() == 4:
        pred = pred.argmax(dim=1)
    keep = target != ignore_index
    correct = (pred == target) & keep
    return correct.sum().item() / max(keep.sum().item(), 1)
""",
    "iou": """import torch


def _confusion(pred, target, num_classes, ignore_index):
    keep = target != ignore_index
    index = target[keep] * num_classes + pred[keep]
    counts = torch.bincount(index, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def mean_iou(pred, target, num_classes, ignore_index=255):
    if pred.dim() == 4:
        pred = pred.argmax(dim=1)
    matrix = _confusion(pred, target, num_classes, ignore_index).double()
    inter = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - inter
    present = union > 0
    return (inter[present] / union[present]).mean().item()
""",
}
EVE = {  # the same exercise written independently, another way
    "accuracy": """def pixel_accuracy(pred, target, ignore_index=255):
    labels = pred.argmax(1) if pred.ndim == 4 else pred
    hits = total = 0
    for guess, truth in zip(labels.flatten().tolist(), target.flatten().tolist()):
        if truth == ignore_index:
            continue
        total += 1
        hits += guess == truth
    return hits / total if total else 0.0
""",
    "iou": """def mean_iou(pred, target, num_classes, ignore_index=255):
    labels = pred.argmax(1) if pred.ndim == 4 else pred
    scores = []
    for c in range(num_classes):
        mine = (labels == c) & (target != ignore_index)
        theirs = target == c
        both = (mine & theirs).sum().item()
        either = (mine | theirs).sum().item()
        if either:
            scores.append(both / either)
    return sum(scores) / len(scores)
""",
}


def _rename(text: str, names: dict[str, str]) -> str:
    return re.sub(r"\b(\w+)\b", lambda m: names.get(m.group(1), m.group(1)), text)


BEN = {  # ann's, every variable renamed
    cell: _rename(
        text,
        {
            "pred": "p",
            "target": "gt",
            "keep": "valid",
            "correct": "ok",
            "_confusion": "_cm",
            "index": "flat",
            "counts": "hist",
            "matrix": "cm",
            "inter": "tp",
            "union": "denom",
            "present": "seen",
            "num_classes": "n",
        },
    )
    for cell, text in ANN.items()
}
_PARTS = ANN["iou"].split("\n\n\n")  # import, helper, mean_iou
CAT = {  # ann's, statements reordered: the functions, the import, two lines of a body
    "accuracy": ANN["accuracy"].replace(
        "    if pred.dim() == 4:\n        pred = pred.argmax(dim=1)\n"
        "    keep = target != ignore_index\n",
        "    keep = target != ignore_index\n"
        "    if pred.dim() == 4:\n        pred = pred.argmax(dim=1)\n",
    ),
    "iou": "\n\n\n".join([_PARTS[2].rstrip("\n"), _PARTS[1], _PARTS[0]]) + "\n",
}
DAN = {  # ann's with comments and docstrings added, blank lines changed
    cell: text.replace("):\n", '):\n    """Answer, as asked."""\n\n', 1)
    .replace("\n    return", "  # done\n    # the result\n    return")
    .replace("\n\n\n", "\n# helpers\n")
    for cell, text in ANN.items()
}
FAY = {  # labkit's reference pasted with renamed variables
    "accuracy": _rename(
        inspect.getsource(pixel_accuracy),
        {"pred": "y_hat", "target": "y", "valid": "mask", "ignore_index": "skip"},
    ),
    "iou": STARTERS["iou"],
}
COPIES = {"ann", "ben", "cat", "dan"}
STUDENTS = {"ann": ANN, "ben": BEN, "cat": CAT, "dan": DAN, "eve": EVE, "fay": FAY}
BLANK = ("gus", "hal")  # hand in the release untouched


def _notebook(cells: dict[str, str], *, tests: bool) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for gid, text in cells.items():
        cell = nbformat.v4.new_code_cell(text)
        cell.metadata["nbgrader"] = {"grade_id": gid, "solution": True, "grade": False}
        nb.cells.append(cell)
    intro = nbformat.v4.new_code_cell("import torch  # not an answer")
    test = nbformat.v4.new_code_cell(TEST)
    test.metadata["nbgrader"] = {"grade_id": "test_accuracy", "grade": True, "points": 1}
    nb.cells = [intro, *nb.cells, *([test] if tests else [])]
    return nb


def _write(path, nb) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def make_class(root) -> None:
    """A course of one lab ``sim``: source, release (the starters) and the planted class."""
    (root / "nbgrader_config.py").parent.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text((REPO / "nbgrader_config.py").read_text())
    _write(root / "solutions/sim/sim.ipynb", _notebook(ANN, tests=True))
    _write(root / "labs/sim/sim.ipynb", _notebook(STARTERS, tests=False))
    for student, cells in {**STUDENTS, **dict.fromkeys(BLANK, STARTERS)}.items():
        _write(root / f"submitted/{student}/sim/sim.ipynb", _notebook(cells, tests=False))


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    """The class of :func:`make_class` and its report at the default threshold (0.8)."""
    root = tmp_path_factory.mktemp("sim")
    make_class(root)
    return root, similarity_report(root, "sim")


def test_copies_and_only_copies_are_flagged(found):
    """Are the renamed, reordered and re-commented copies of ann's answer flagged with it and
    with each other, and no pair with the independent solution or the blanks?"""
    _, report = found
    flagged = {frozenset((m.first, m.second)) for m in report.pairs if m.flagged}
    expected = {frozenset((a, b)) for a in COPIES for b in COPIES if a != b}
    assert flagged == expected, [m for m in report.pairs if m.score > 0.3]
    assert all(m.score == 1.0 for m in report.pairs if {m.first, m.second} <= {"ann", "ben", "dan"})
    scores = {frozenset((m.first, m.second)): m.score for m in report.pairs}
    assert max(scores[frozenset(("eve", s))] for s in COPIES) < 0.3


def test_a_copy_of_labkits_reference_is_flagged(found):
    """Is the answer pasted from labkit.metrics.pixel_accuracy, variables renamed, flagged
    against it, and no one else's?"""
    _, report = found
    flagged = [(m.first, m.second) for m in report.references if m.flagged]
    assert flagged == [("fay", "labkit.metrics.pixel_accuracy")]
    others = [m.score for m in report.references if m.first != "fay"]
    assert others and max(others) < 0.5


def test_starter_code_alone_is_not_alike(found):
    """Do two students who hand in the release untouched score 0, with each other and with
    everyone else (the starter code is left out)?"""
    _, report = found
    blank = [m for m in report.pairs if set(BLANK) & {m.first, m.second}]
    assert blank and all(m.score == 0.0 for m in blank)
    assert all(m.score == 0.0 for m in report.references if m.first in BLANK)


def test_the_files_hold_the_report(found):
    """Do the JSON file and read_flagged give the report's scores, and the page show the
    flagged pairs' answers, escaped?"""
    root, report = found
    body = json.loads(report.json.read_text())
    assert body["students"] == sorted([*STUDENTS, *BLANK]) and body["threshold"] == 0.8
    assert [tuple(p.values()) for p in body["pairs"]] == [
        (m.first, m.second, m.score, m.flagged) for m in report.pairs
    ]
    assert sorted(read_flagged(root, "sim"), key=repr) == sorted(report.flagged, key=repr)
    page = report.html.read_text()
    assert "labkit.metrics.pixel_accuracy" in page and "_confusion(pred, target" in page
    assert "mask = y != skip" in page  # fay's answer beside the reference
    assert "(pred == target) &amp; keep" in page and "(pred == target) & keep" not in page
    assert read_flagged(root, "nope") is None


def test_answer_cells_are_the_code_solution_cells():
    """Are only nbgrader code solution cells answers, by grade_id?"""
    nb = _notebook(ANN, tests=True)
    nb.cells.append(nbformat.v4.new_markdown_cell("written"))
    nb.cells[-1].metadata["nbgrader"] = {"grade_id": "why", "solution": True}
    assert answer_cells(nb) == ANN


def test_what_is_missing_is_said(tmp_path):
    """Are an unknown lab, a lab not released, no submission and a bad threshold refused
    with what to do?"""
    make_class(tmp_path)
    with pytest.raises(CourseError, match="threshold must be in"):
        similarity_report(tmp_path, "sim", threshold=1.5)
    with pytest.raises(CourseError, match="lab 'nope' is not in"):
        similarity_report(tmp_path, "nope")
    (tmp_path / "labs/sim/sim.ipynb").unlink()
    with pytest.raises(CourseError, match="run `labkit course release sim`"):
        similarity_report(tmp_path, "sim")
    _write(tmp_path / "labs/sim/sim.ipynb", _notebook(STARTERS, tests=False))
    for path in (tmp_path / "submitted").glob("*/sim/sim.ipynb"):
        path.unlink()
    with pytest.raises(CourseError, match="no submission of sim"):
        similarity_report(tmp_path, "sim")


def test_an_unreadable_submission_counts_as_empty(tmp_path):
    """Does a submission that is not a notebook score 0 instead of stopping the report?"""
    make_class(tmp_path)
    (tmp_path / "submitted/zed/sim").mkdir(parents=True)
    (tmp_path / "submitted/zed/sim/sim.ipynb").write_text("{ not json")
    report = similarity_report(tmp_path, "sim", threshold=0.9)
    assert all(m.score == 0.0 for m in report.pairs if "zed" in (m.first, m.second))
