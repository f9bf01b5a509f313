"""Print the markdown table of docs/models.md: parameters, CPU time and memory per model.

Usage::

    python benchmarks/model_table.py                 # every registry model, num_classes=21
    python benchmarks/model_table.py --threads 1 --repeats 5
    python benchmarks/model_table.py --json benchmarks/model_table.json
    python benchmarks/model_table.py --smoke           # one small model, one pass (CI)

For each model: parameters, trainable parameters, the shortest wall time of one forward +
backward pass on a 1×3×128×128 batch on the CPU (best of ``--repeats``: the minimum is the
figure least disturbed by other load on a shared machine), and the peak-memory increase of
that pass.

Method:
- Each model runs in a fresh Python process, so one model's memory does not hide another's.
- The model is in eval mode (gradients on): batch norm after ASPP's 1×1 image pooling
  cannot run in training mode on a batch of one. Dropout is then off and batch norm uses
  its running statistics; the arithmetic is that of a training step otherwise.
- Memory is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after the timed passes minus the
  same value after building the model and the input: how far the process's peak resident
  set grew for activations, gradients and the autograd graph. tracemalloc cannot see
  PyTorch's allocations. It is a high-water mark, so it is a coarse (±a few MiB) figure.
- The DCN rows add deformable v1/v2 in layer4 of DeepLab v3-ResNet-50 and give the
  parameter overhead over the plain model.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

NUM_CLASSES = 21
# The order of the labs; registry models not listed here follow, sorted.
LAB_ORDER = [
    "baseline_fcn",
    "improved_fcn",
    "unet",
    "resnet18_transfer",
    "fcn_resnet50",
    "deeplabv3_resnet18",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "deeplabv3plus_resnet50",
]
SIZE = (1, 3, 128, 128)
VARIANTS = [
    ("deeplabv3_resnet50 + DCN v1 (layer4)", "deeplabv3_resnet50", {"deformable": "v1"}),
    ("deeplabv3_resnet50 + DCN v2 (layer4)", "deeplabv3_resnet50", {"deformable": "v2"}),
]


def measure(name: str, kw: dict, *, repeats: int, threads: int) -> dict:
    """Build one model and time forward + backward; run this in a fresh process."""
    from labkit.models import build_model, count_parameters

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(name, num_classes=NUM_CLASSES, **kw).eval()
    x = torch.randn(*SIZE)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    times = []
    for i in range(repeats + 1):  # the first pass warms up allocators and kernels
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model(x).sum().backward()
        if i:
            times.append(time.perf_counter() - start)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "params": count_parameters(model),
        "trainable": count_parameters(model, trainable_only=True),
        "ms": 1000 * min(times),
        "mem_mib": (rss_after - rss_before) / 1024,
    }


def _run_isolated(name: str, kw: dict, *, repeats: int, threads: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--one",
        json.dumps([name, kw]),
        "--repeats",
        str(repeats),
        "--threads",
        str(threads),
    ]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_all(*, repeats: int, threads: int, smoke: bool = False) -> dict[str, dict]:
    """Measure every registry model and the DCN variants (``smoke``: one small model),
    each in its own process; keyed by the row's label, in table order."""
    if smoke:
        rows = [("baseline_fcn", "baseline_fcn", {})]
    else:
        # Imported here, not at the top: labkit.models (torchvision) takes seconds to import,
        # and this process needs it only for the list of models, not for a smoke run.
        from labkit.models import available_models

        names = [n for n in LAB_ORDER if n in available_models()]
        names += [n for n in available_models() if n not in LAB_ORDER]
        rows = [(name, name, {}) for name in names] + VARIANTS
    return {
        label: {
            "model": name,
            "options": kw,
            **_run_isolated(name, kw, repeats=repeats, threads=threads),
        }
        for label, name, kw in rows
    }


def table(results: dict[str, dict], *, repeats: int, threads: int) -> str:
    """The markdown table of :func:`measure_all`'s results."""
    plain = results.get("deeplabv3_resnet50", {}).get("params")
    lines = [
        "| model | params | trainable | fwd+bwd ms (1×3×128×128, CPU) | peak RSS Δ MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, r in results.items():
        params = f"{r['params']:,}"
        if r["options"] and plain:
            extra = r["params"] - plain
            params += f" (+{extra:,}, +{100 * extra / plain:.2f} %)"
        lines.append(
            f"| `{label}` | {params} | {r['trainable']:,} | {r['ms']:.0f} | {r['mem_mib']:.0f} |"
        )
    cpu = platform.processor() or platform.machine()
    lines.append("")
    lines.append(
        f"num_classes={NUM_CLASSES}, default options, eval mode with gradients, "
        f"best of {repeats} after 1 warm-up, {threads} thread(s), {cpu}, "
        f"torch {torch.__version__}."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per model")
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch intra-op threads (default: torch's default)",
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--smoke", action="store_true", help="one small model, one pass")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: '[name, kw]' to measure
    args = parser.parse_args(argv)
    if args.one:
        name, kw = json.loads(args.one)
        print(json.dumps(measure(name, kw, repeats=args.repeats, threads=args.threads)))
        return
    repeats = 1 if args.smoke else args.repeats
    results = measure_all(repeats=repeats, threads=args.threads, smoke=args.smoke)
    print(table(results, repeats=repeats, threads=args.threads))
    if args.json:
        env = {
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "threads": args.threads,
            "repeats": repeats,
            "input": list(SIZE),
            "num_classes": NUM_CLASSES,
            "smoke": args.smoke,
        }
        Path(args.json).write_text(
            json.dumps({"environment": env, "results": results}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
