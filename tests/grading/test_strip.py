"""Does the judge's copy of labkit lack exactly what a lab's tests forbid, everywhere a
student's process could find it, and keep the rest working?"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import labkit.metrics
from labkit.grading.strip import forbidden_references, stripped_package

ROOT = Path(__file__).resolve().parents[2]
LAB = "lab01_baseline_fcn"


@pytest.fixture(scope="module")
def lab01_refs():
    return forbidden_references(
        nbformat.read(ROOT / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    )


def test_the_references_come_from_every_forbid_call_of_the_lab(lab01_refs):
    """Every labkit object the test cells pass to forbid(), and nothing else."""
    refs, others = lab01_refs
    assert ("labkit.metrics", "iou_per_class") in refs and ("labkit.models.fcn", "_UpStage") in refs
    assert ("labkit.metrics", "ConfusionMatrix") in refs and others == []
    assert all(module.startswith("labkit.") for module, _ in refs)
    assert ("labkit.schedules", "poly_lr") not in refs  # lab 02's, not this lab's
    lab04 = forbidden_references(
        nbformat.read(
            ROOT / "solutions/lab04_weighted_loss/lab04_weighted_loss.ipynb", as_version=4
        )
    )
    # `forbid(*_REFS)` with `_REFS = (*labkit.losses.LAB_REFERENCES, F.cross_entropy, ...)`
    assert ("labkit.losses", "weighted_cross_entropy") in lab04[0]
    assert "torch.nn.functional.cross_entropy" in lab04[1]


def test_the_copy_has_no_trace_of_the_references_and_keeps_the_rest(lab01_refs, tmp_path):
    """In a fresh interpreter on the copy: each reference raises ReferenceUsedError (its class
    cannot be built), its source is nowhere in the copy's files, and what the lab does not
    forbid still works."""
    package = stripped_package(tmp_path, lab01_refs[0])
    assert stripped_package(tmp_path, lab01_refs[0]) == package  # made once
    original = Path(labkit.metrics.__file__).read_text()
    text = "\n".join(p.read_text() for p in package.rglob("*.py"))
    for ref in (labkit.metrics.iou_per_class, labkit.metrics._count):
        body = inspect.getsource(ref).strip().splitlines()[-1].strip()  # its last line
        assert len(body) > 12 and original.count(body) == 1
        assert body not in text, f"{ref.__name__}'s code is still in the copy"
    assert not list(package.rglob("*.pyc"))
    probe = f"""
import sys
sys.path.insert(0, {str(package.parent)!r})
import torch, labkit, labkit.metrics as m, labkit.models.fcn as fcn, labkit.schedules as s
from labkit.checks import ReferenceUsedError
assert labkit.__file__.startswith({str(package)!r}), labkit.__file__
for call in (lambda: m.iou_per_class(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), 2),
             lambda: m.pixel_accuracy(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)),
             lambda: fcn.BaselineFCN(3), lambda: m.ConfusionMatrix(3)):
    try:
        call()
    except ReferenceUsedError as exc:
        assert "switched off" in str(exc), exc
    else:
        raise SystemExit("a forbidden reference still ran")
assert abs(s.poly_lr(5, base_lr=1.0, total_steps=10) - 0.5 ** 0.9) < 1e-12
print("ok")
"""
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
