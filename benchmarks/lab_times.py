"""Run every lab's solution notebook top to bottom (quick profile) and time it.

Usage::

    python benchmarks/lab_times.py --json benchmarks/lab_times.json   # all eight labs
    python benchmarks/lab_times.py lab01_baseline_fcn                  # one lab
    python benchmarks/lab_times.py --smoke                             # the toy check CI runs
    python benchmarks/lab_times.py --cells benchmarks/lab_cells.md     # and every cell's time
    LABKIT_BUDGET=smoke python benchmarks/lab_times.py --cells -      # under the test budget

Method: each notebook is copied into a fresh temporary folder (it draws its Shapes set and
writes its runs there, as on a student's first run) and executed by nbclient in a new
kernel, as `jupyter nbconvert --execute` would; the wall time covers kernel start-up, the
imports, data generation, every training and every plot. The notebooks run one after
another, with this machine's default thread count (the quick profile trains with one
thread). The table also counts each lab's autograded and hand-graded points from its
nbgrader metadata. ``--cells`` adds every code cell's time, read from nbclient's timing
metadata (``execution``: from ``iopub.execute_input`` to ``shell.execute_reply``), with the
cell's nbgrader role, so that what a lab spends on imports, data, exercises, tests and
training can be seen; ``LABKIT_BUDGET`` is passed on to the kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
SMOKE = """{"cells": [{"cell_type": "code", "execution_count": null, "id": "a", "metadata": {},
"outputs": [], "source": "PROFILE = \\"quick\\"\\nfrom labkit.labs import lab_config\\ncfg = lab_config(\\"baseline\\", profile=PROFILE)"}],
"metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
"nbformat": 4, "nbformat_minor": 5}"""


def points(nb: nbformat.NotebookNode) -> tuple[float, float]:
    """(autograded points, hand-graded points) of a source notebook."""
    auto = manual = 0.0
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            if cell.cell_type == "code" and not meta.get("solution"):
                auto += float(meta.get("points", 0))
            else:
                manual += float(meta.get("points", 0))
    return auto, manual


def _role(cell: nbformat.NotebookNode) -> str:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if meta.get("grade") and not meta.get("solution"):
        return f"test `{meta.get('grade_id')}`"
    if meta.get("solution"):
        return f"answer `{meta.get('grade_id')}`"
    return "setup/demo"


def cell_times(nb: nbformat.NotebookNode) -> list[dict]:
    """Each executed code cell's seconds (nbclient's timing metadata), role and first line."""
    rows = []
    for index, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        if cell.cell_type != "code" or "shell.execute_reply" not in timing:
            continue
        start = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
        first = next(
            (
                line
                for line in cell.source.splitlines()
                if line.strip() and not line.startswith("#")
            ),
            "",
        )
        rows.append(
            {
                "cell": index,
                "role": _role(cell),
                "first_line": first[:60],
                "seconds": round((end - start).total_seconds(), 2),
            }
        )
    return rows


def run_notebook(path: Path, *, timeout: int) -> dict:
    """Execute a copy of the notebook in a temporary folder; wall time, errors, cell times."""
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="labkit-labtime-") as tmp:
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            record_timing=True,
            resources={"metadata": {"path": tmp}},
        )
        start = time.perf_counter()
        error = None
        try:
            client.execute()
        except CellExecutionError as exc:
            error = str(exc).strip().splitlines()[-1]
        seconds = time.perf_counter() - start
    auto, manual = points(nb)
    return {
        "lab": path.parent.name,
        "seconds": round(seconds, 1),
        "error": error,
        "auto_points": auto,
        "manual_points": manual,
        "cells": cell_times(nb),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| lab | quick profile, s | autograded points | written points |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        time_text = f"{r['seconds']:.0f}" + (" (failed)" if r["error"] else "")
        lines.append(
            f"| {r['lab']} | {time_text} | {r['auto_points']:g} | {r['manual_points']:g} |"
        )
    return "\n".join(lines)


def cells_table(rows: list[dict]) -> str:
    """Per lab: every code cell's seconds, the share of tests and of what follows the last
    test (what a submission that stops after its last autograded cell saves)."""
    out = []
    for r in rows:
        cells = r["cells"]
        tests = [i for i, c in enumerate(cells) if c["role"].startswith("test")]
        after = sum(c["seconds"] for c in cells[tests[-1] + 1 :]) if tests else 0.0
        total = sum(c["seconds"] for c in cells)
        out += [
            f"### {r['lab']}: {total:.1f} s in cells, {r['seconds']:.1f} s wall; "
            f"{after:.1f} s after the last autograded test",
            "",
            "| cell | role | first line | s |",
            "|---:|---|---|---:|",
        ]
        out += [
            f"| {c['cell']} | {c['role']} | `{c['first_line'].replace('|', '/')}` | "
            f"{c['seconds']:.2f} |"
            for c in cells
        ]
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("labs", nargs="*", help="labs to time (default: all)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument(
        "--cells", metavar="FILE", help="also write every cell's time as markdown (- for stdout)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="time a one-cell notebook instead of the labs (seconds)",
    )
    args = parser.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")
    if args.smoke:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "smoke" / "smoke.ipynb"
            path.parent.mkdir()
            path.write_text(SMOKE)
            rows = [run_notebook(path, timeout=args.timeout)]
    else:
        labs = args.labs or sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
        rows = [
            run_notebook(ROOT / "solutions" / lab / f"{lab}.ipynb", timeout=args.timeout)
            for lab in labs
        ]
    print(table(rows))
    if args.cells:
        text = (
            f"Per-cell times (`LABKIT_BUDGET={os.environ.get('LABKIT_BUDGET', '')}`, "
            f"{os.cpu_count()} CPUs)\n\n" + cells_table(rows)
        )
        if args.cells == "-":
            print(text)
        else:
            Path(args.cells).write_text(text + "\n")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": {
                        "cpus": os.cpu_count(),
                        "python": sys.version.split()[0],
                        "platform": platform.platform(),
                    },
                    "labs": rows,
                },
                indent=2,
            )
            + "\n"
        )
    return 1 if any(r["error"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
