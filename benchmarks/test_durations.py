"""Write the test suite's durations table from a ``make test`` run.

``make test`` runs pytest with ``--durations-json=runs/test-durations.json`` (see
``tests/conftest.py``); this turns that file into ``benchmarks/test_durations.md`` (the wall
time, the seconds per module and every test above a threshold, slowest first) and copies it
to ``tests/durations.json``, from which the next run hands out its longest work first::

    make test && python benchmarks/test_durations.py            # after a fresh-clone run
    python benchmarks/test_durations.py runs/test-durations.json --min-seconds 0.5

The seconds of a test are its setup, call and teardown together, so the first test of a
module that builds a module fixture carries that fixture's cost. Under two xdist workers on
two cores, the times are those of a loaded machine, as the suite really runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = (
    "make test  (pytest -n 2 --dist loadgroup --no-loadscope-reorder "
    "--durations-json=runs/test-durations.json)"
)


def table(data: dict, *, min_seconds: float) -> str:
    """The markdown report of one run's durations."""
    tests = data["tests"]
    modules: dict[str, list[float]] = defaultdict(list)
    for nodeid, seconds in tests.items():
        modules[nodeid.split("::")[0]].append(seconds)
    total = sum(tests.values())
    lines = [
        "# Test durations",
        "",
        f"Command: `{COMMAND}`, then `python benchmarks/test_durations.py`.",
        "",
        f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {platform.platform()}.",
        "",
        f"Wall time {data['wall_seconds']:.0f} s ({data['wall_seconds'] / 60:.1f} min) with "
        f"{data['workers'] or 1} workers; {len(tests)} tests; {total:.0f} s of test time "
        f"(setup + call + teardown); exit status {data['exit_status']}.",
        "",
        *_busy(data),
        "## Per module",
        "",
        "| module | tests | s | share |",
        "|---|---:|---:|---:|",
    ]
    for module, secs in sorted(modules.items(), key=lambda kv: -sum(kv[1])):
        lines.append(
            f"| {module} | {len(secs)} | {sum(secs):.1f} | {100 * sum(secs) / total:.1f} % |"
        )
    slow = sorted(((s, n) for n, s in tests.items() if s >= min_seconds), reverse=True)
    lines += [
        "",
        f"## Every test of {min_seconds:g} s or more ({len(slow)} of {len(tests)}; "
        f"the others take {sum(s for s in tests.values() if s < min_seconds):.1f} s "
        "together)",
        "",
        "| s | test |",
        "|---:|---|",
    ]
    lines += [f"| {s:.2f} | `{n}` |" for s, n in slow]
    return "\n".join(lines) + "\n"


def _busy(data: dict) -> list[str]:
    """A line on how long each worker was running tests (the sum of its tests' spans, from
    the first report's start to the last one's stop); nothing for a file without spans."""
    spans = data.get("spans")
    if not spans:
        return []
    busy: dict[str, float] = defaultdict(float)
    for worker, start, stop in spans.values():
        busy[worker] += stop - start
    held = ", ".join(f"{w} {s:.0f} s" for w, s in sorted(busy.items()))
    return [
        f"Busy: {held} of {data['wall_seconds']:.0f} s each (the rest: start-up, "
        "collection, and a worker waiting at the end).",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "json",
        nargs="?",
        type=Path,
        default=ROOT / "runs" / "test-durations.json",
        help="what --durations-json wrote (default: runs/test-durations.json)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "test_durations.md")
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=0.0,
        help="list only the tests taking at least this long (default: all)",
    )
    parser.add_argument(
        "--no-schedule", action="store_true", help="do not copy the run to tests/durations.json"
    )
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        parser.error(
            f"cannot read {args.json} ({type(exc).__name__}: {exc}); run `make test` "
            "first, which writes it"
        )
    text = table(data, min_seconds=args.min_seconds)
    args.out.write_text(text, encoding="utf-8")
    if not args.no_schedule:
        shutil.copyfile(args.json, ROOT / "tests" / "durations.json")
    print(text.split("## Per module")[0].strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
