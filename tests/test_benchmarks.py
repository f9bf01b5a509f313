"""Does ``make bench`` work end to end: every section's seconds-long smoke version through
``benchmarks/results.py``, its table in RESULTS.md and its JSON beside it?"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import results  # noqa: E402


def _smoke(out: Path, *keys: str) -> int:
    """``results.py --smoke --only KEYS --out OUT`` in this process; its exit code.

    ``results.main`` runs each section's script in a fresh process, as ``make bench`` does;
    only the driver's own start (an interpreter and torch, seconds) is saved. The script
    entry itself is run as a command by the partial-run test.
    """
    return results.main(["--smoke", "--only", *keys, "--out", str(out)])


@pytest.mark.parametrize("section", results.SECTIONS, ids=lambda s: s.key)
def test_benchmark_section_smoke_run(section, tmp_path):
    """Does the section's script finish, and does the report carry its table and JSON?"""
    code = _smoke(tmp_path, section.key)
    report = (tmp_path / "RESULTS.md").read_text()
    assert code == 0, report  # a failed section's text ends with the script's stderr
    assert f"## {section.title}" in report
    assert f"benchmarks/{section.script}" in report
    data = json.loads((tmp_path / f"{Path(section.script).stem}.json").read_text())
    if section.summary is not None:
        target, measured, _ = section.summary(data)
        assert f"| {target} | {measured} |" in report
    if section.key != "gpu" or data["results"]:
        assert "|---" in report.split(f"## {section.title}")[1]


def _section(report: str, key: str) -> str:
    """The text of one section of a report, from its marker to the next (or the end)."""
    start = report.index(results.MARK.format(key))
    end = report.find("<!-- section:", start + 1)
    return report[start : end if end >= 0 else len(report)]


def test_a_partial_run_keeps_the_other_sections(tmp_path):
    """--only reruns one section and keeps the tables of the others from the last report,
    word for word, in the order of the sections (not of the runs). The first run is the
    command `make bench` runs (its exit status included)."""
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "results.py"),
            "--smoke",
            "--only",
            "gpu",
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    first = (tmp_path / "RESULTS.md").read_text()
    assert _smoke(tmp_path, "deform") == 0
    report = (tmp_path / "RESULTS.md").read_text()
    assert "## Deformable convolution" in report and "## GPU" in report
    assert report.index("## Deformable convolution") < report.index("## GPU")
    assert _section(report, "gpu") == _section(first, "gpu")


def test_a_failing_script_marks_its_section_and_the_exit_code(tmp_path, monkeypatch):
    """A benchmark that crashes shows its error in the report and makes the run fail."""
    broken = results.Section("broken", "Broken", "no_such_script.py", (), "never runs")
    monkeypatch.setattr(results, "SECTIONS", [broken])
    assert results.main(["--smoke", "--out", str(tmp_path)]) == 1
    report = (tmp_path / "RESULTS.md").read_text()
    assert "**Failed (exit code 2)" in report


def test_readme_quotes_the_measured_lab_times_and_points():
    """Do README's lab table and its benchmark summary give what benchmarks/lab_times.json
    measured (seconds per notebook, in all and the slowest) and the points the notebooks
    carry, so that a rerun of the benchmark that changes them fails here until README says
    so too?"""
    import re

    data = json.loads((ROOT / "benchmarks" / "lab_times.json").read_text())
    readme = (ROOT / "README.md").read_text()
    for lab in data["labs"]:
        row = re.search(rf"^\| `{lab['lab']}` \|.*$", readme, re.M)
        assert row, f"README's lab table has no row for {lab['lab']}"
        cells = [c.strip() for c in row.group(0).strip("|").split("|")]
        assert cells[-3:] == [
            f"{round(lab['seconds'])} s",
            f"{lab['auto_points']:g}",
            f"{lab['manual_points']:g}",
        ], (lab, cells)
    seconds = [lab["seconds"] for lab in data["labs"]]
    summary = f"| {round(sum(seconds))} s in all, slowest {round(max(seconds))} s |"
    assert summary in readme, summary
