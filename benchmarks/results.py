"""Run every benchmark and write ``benchmarks/RESULTS.md`` (``make bench``).

Each benchmark is its own script (``benchmarks/bench_*.py`` and friends) that prints a
markdown table and writes its figures as JSON; this one runs them one after another in
fresh processes, keeps their tables, checks the targets the course set against the JSON,
and writes the report with a summary at the top::

    python benchmarks/results.py                       # everything, about 30 minutes
    python benchmarks/results.py --only metrics data   # some sections (the report keeps
                                                       # the others' last tables)
    python benchmarks/results.py --smoke --out /tmp/b  # seconds-long versions (CI)

Sections run one at a time, so that none slows another. A failing script does not stop the
others; its section shows the error and the exit code is 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
MARK = "<!-- section: {} -->"


@dataclass(frozen=True)
class Section:
    """One benchmark script and what its numbers are held against."""

    key: str
    title: str
    script: str
    args: tuple[str, ...]
    about: str
    summary: Callable[[dict], tuple[str, str, bool | None]] | None = None


def _metrics(d: dict) -> tuple[str, str, bool | None]:
    worst = min(r["speedup"] for r in d["results"])
    over = max(r["labkit_over_bound"] for r in d["results"])
    same = all(r["miou_abs_diff"] <= 1e-6 for r in d["results"])
    return (
        "mIoU: labkit ≥ 10× torchmetrics, same values",
        f"{worst:.0f}× (slowest case), {over:.1f}× the memory-bandwidth limit, "
        f"values {'equal' if same else 'DIFFER'}",
        worst >= 10 and same,
    )


def _data(d: dict) -> tuple[str, str, bool | None]:
    worst = min(r["ratio"] for r in d["readers"])
    return (
        "Shapes/VOC reader ≥ 1× torchvision's VOCSegmentation",
        f"{worst:.2f}× (worst of 0 and 2 workers)",
        worst >= 1,
    )


def _deform(d: dict) -> tuple[str, str, bool | None]:
    ratios = [r["fwdbwd_ratio"] for r in d["results"]]
    return (
        "deformable conv reference vs torchvision, fwd+bwd (no target)",
        f"{min(ratios):.1f}× to {max(ratios):.1f}× torchvision's time",
        None,
    )


def _labs(d: dict) -> tuple[str, str, bool | None]:
    total = sum(lab["seconds"] for lab in d["labs"])
    slowest = max(d["labs"], key=lambda lab: lab["seconds"])
    ok = not any(lab["error"] for lab in d["labs"])
    return (
        "every lab's solution runs (quick profile)",
        f"{len(d['labs'])} notebooks in {total:.0f} s, slowest {slowest['lab']} "
        f"{slowest['seconds']:.0f} s",
        ok,
    )


def _grading(d: dict) -> tuple[str, str, bool | None]:
    best = max(d["rows"], key=lambda r: r["per_minute"])
    return (
        f"autograde a class of {d['rows'][0]['submissions']}",
        f"{best['method']}: {best['per_minute']:.1f} submissions/min, "
        f"{best['ratio_to_nbgrader']:.2f}× plain nbgrader",
        None,
    )


def _explorer(d: dict) -> tuple[str, str, bool | None]:
    worst = max(r["p95_ms"] for r in d["rows"])
    return (
        f"offset explorer update < {d['target_ms']:.0f} ms at {d['size']}²",
        f"p95 {worst:.0f} ms (slowest setting)",
        worst < d["target_ms"],
    )


def _gpu(d: dict) -> tuple[str, str, bool | None]:
    if not d.get("results"):
        return (
            "GPU: DeepLab v3 R50 training, AMP + channels_last vs float32",
            "not run (no GPU)",
            None,
        )
    best = max(d["results"][1:3], key=lambda r: r["speedup"])
    return (
        "GPU: DeepLab v3 R50 training, AMP + channels_last vs float32",
        f"{best['speedup']:.2f}× ({best['images_per_s']:.0f} images/s, "
        f"{d['environment']['device']}, {d['environment']['date']})",
        None,
    )


SECTIONS = [
    Section(
        "metrics",
        "Metrics: ConfusionMatrix vs torchmetrics",
        "bench_metrics.py",
        (),
        "`update` + `compute` of labkit's `ConfusionMatrix` and torchmetrics' "
        "`MulticlassJaccardIndex` on the same 8×512×512 label tensors.",
        _metrics,
    ),
    Section(
        "data",
        "Data: readers and transforms vs torchvision",
        "bench_data.py",
        (),
        "labkit's VOC-format reader and torchvision's `VOCSegmentation` on the same "
        "Shapes set with the same `transforms.v2` training pipeline.",
        _data,
    ),
    Section(
        "deform",
        "Deformable convolution: reference vs torchvision",
        "bench_deform.py",
        (),
        "labkit's plain-PyTorch `deform_conv2d_reference` (the lab 08 exercise) and "
        "`torchvision.ops.deform_conv2d`.",
        _deform,
    ),
    Section(
        "models",
        "Models: forward + backward at 128² on the CPU",
        "model_table.py",
        (),
        "Every registry model, each in its own process.",
        None,
    ),
    Section(
        "labs",
        "Labs: quick-profile execution time",
        "lab_times.py",
        (),
        "Each solution notebook top to bottom in a fresh kernel.",
        _labs,
    ),
    Section(
        "grading",
        "Grading throughput",
        "grading_throughput.py",
        ("--students", "20"),
        "`labkit course autograde` (the referee with 1 and 2 jobs, the runner with 2) against "
        "plain `nbgrader autograde`.",
        _grading,
    ),
    Section(
        "explorer",
        "Offset explorer latency",
        "offset_explorer.py",
        (),
        "Clicks on the widget at 256², ipympl's PNG included.",
        _explorer,
    ),
    Section(
        "gpu",
        "GPU: DeepLab v3 training throughput",
        "bench_gpu.py",
        (),
        "Only on a machine with a CUDA GPU.",
        _gpu,
    ),
]


def _run(section: Section, *, json_path: Path, smoke: bool) -> tuple[int, str, float]:
    cmd = [sys.executable, str(HERE / section.script), *section.args, "--json", str(json_path)]
    if smoke:
        cmd.append("--smoke")
    start = time.perf_counter()
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1")
    )
    seconds = time.perf_counter() - start
    text = done.stdout.strip()
    if done.returncode:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        text += f"\n\n**Failed (exit code {done.returncode}):**\n\n```\n{tail}\n```"
    return done.returncode, text, seconds


def _command(section: Section, smoke: bool) -> str:
    return " ".join(
        ["python", f"benchmarks/{section.script}", *section.args, *(["--smoke"] if smoke else [])]
    )


def _previous(report: Path) -> dict[str, str]:
    """The section texts of an earlier report, so a partial run keeps the others."""
    if not report.is_file():
        return {}
    text, found = report.read_text(), {}
    for s in SECTIONS:
        start = text.find(MARK.format(s.key))
        if start >= 0:
            end = text.find("<!-- section:", start + 1)
            found[s.key] = text[start : end if end >= 0 else len(text)].rstrip() + "\n"
    return found


def render(
    parts: dict[str, str], summaries: list[tuple[str, str, bool | None]], *, smoke: bool
) -> str:
    verdict = {True: "met", False: "**not met**", None: "—"}
    lines = [
        "# labkit benchmarks",
        "",
        "Written by `make bench` (`python benchmarks/results.py`); each section names the "
        "script that made it and can be rerun alone. All timings of one table come from "
        "one run, side by side. JSON beside this file holds every figure.",
        "",
    ]
    if smoke:
        lines += ["**Smoke run: tiny sizes, the numbers mean nothing.**", ""]
    lines += ["| target | measured | |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {verdict[ok]} |" for t, m, ok in summaries]
    lines.append("")
    lines += [parts[s.key] for s in SECTIONS if s.key in parts]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[s.key for s in SECTIONS],
        help="run these sections; keep the others from the last report",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE,
        help="folder for RESULTS.md and the JSON (default: benchmarks/)",
    )
    parser.add_argument("--smoke", action="store_true", help="seconds-long versions (CI)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    report = args.out / "RESULTS.md"
    parts = _previous(report) if args.only else {}
    failed = []
    machine = (
        f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )
    for s in SECTIONS:
        if args.only and s.key not in args.only:
            continue
        json_path = args.out / (Path(s.script).stem + ".json")
        code, text, seconds = _run(s, json_path=json_path, smoke=args.smoke)
        if code:
            failed.append(s.key)
        parts[s.key] = "\n".join(
            [
                MARK.format(s.key),
                f"## {s.title}",
                "",
                s.about,
                "",
                f"`{_command(s, args.smoke)}` · {datetime.date.today().isoformat()} · {machine} · "
                f"{seconds:.0f} s",
                "",
                text,
                "",
            ]
        )
        print(f"{s.key}: {'failed' if code else 'done'} in {seconds:.0f} s", file=sys.stderr)
    summaries = []
    for s in SECTIONS:
        json_path = args.out / (Path(s.script).stem + ".json")
        if s.summary and s.key in parts and json_path.is_file() and s.key not in failed:
            summaries.append(s.summary(json.loads(json_path.read_text())))
    tmp = report.with_suffix(".md.tmp")
    tmp.write_text(render(parts, summaries, smoke=args.smoke))
    tmp.replace(report)
    print(report.read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
