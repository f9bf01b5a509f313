"""Time labkit's ConfusionMatrix against torchmetrics' MulticlassJaccardIndex.

For 21 and 150 classes on pred/target label tensors of 8 x 512 x 512 int64 (some target
pixels 255), time ``update`` + ``compute`` of both, check that the mIoU values agree, and
compare with the time it takes just to read both label tensors once at this machine's
memory bandwidth (measured with ``torch.sum`` over a large int64 tensor).

Usage:
    python benchmarks/bench_metrics.py [--repeats N] [--threads N] [--device cpu|cuda]
                                       [--json PATH] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torchmetrics.classification import MulticlassJaccardIndex

from labkit.metrics import ConfusionMatrix

IGNORE = 255
TOLERANCE = 1e-6


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn, device: torch.device, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _bandwidth(device: torch.device, nbytes: int, repeats: int) -> float:
    """Read bandwidth in bytes/s: the median time of ``torch.sum`` over an int64 tensor
    larger than the last-level cache."""
    x = torch.ones(nbytes // 8, dtype=torch.int64, device=device)
    ms = _median_ms(lambda: x.sum(), device, max(repeats, 5))
    return x.numel() * 8 / (ms / 1e3)


def _labels(
    num_classes: int, shape: tuple[int, ...], device: torch.device, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """pred agrees with target on about 70 % of pixels; about 5 % of target is 255."""
    target = torch.randint(num_classes, shape, generator=gen)
    pred = torch.where(
        torch.rand(shape, generator=gen) < 0.7,
        target,
        torch.randint(num_classes, shape, generator=gen),
    )
    target[torch.rand(shape, generator=gen) < 0.05] = IGNORE
    return pred.to(device), target.to(device)


def _bench_case(
    num_classes: int, shape: tuple[int, ...], device: torch.device, repeats: int, bandwidth: float
) -> dict:
    pred, target = _labels(num_classes, shape, device, torch.Generator().manual_seed(num_classes))
    tm = MulticlassJaccardIndex(num_classes, average="macro", ignore_index=IGNORE).to(device)
    cm = ConfusionMatrix(num_classes, ignore_index=IGNORE, device=device)

    def run_tm() -> float:
        tm.reset()
        tm.update(pred, target)
        return tm.compute().item()

    def run_labkit() -> float:
        cm.reset()
        cm.update(pred, target)
        return cm.compute()["miou"]

    miou_tm, miou_labkit = run_tm(), run_labkit()
    # Interleaved, so that a noisy neighbour slows both alike.
    tm_ms, labkit_ms = [], []
    for _ in range(repeats):
        tm_ms.append(_median_ms(run_tm, device, 1, warmup=0))
        labkit_ms.append(_median_ms(run_labkit, device, 1, warmup=0))
    nbytes = pred.numel() * pred.element_size() + target.numel() * target.element_size()
    bound_ms = 1e3 * nbytes / bandwidth
    tm_med, labkit_med = statistics.median(tm_ms), statistics.median(labkit_ms)
    return {
        "classes": num_classes,
        "shape": list(shape),
        "torchmetrics_ms": tm_med,
        "labkit_ms": labkit_med,
        "speedup": tm_med / labkit_med,
        "bound_ms": bound_ms,
        "labkit_over_bound": labkit_med / bound_ms,
        "torchmetrics_min_ms": min(tm_ms),
        "labkit_min_ms": min(labkit_ms),
        "miou_torchmetrics": miou_tm,
        "miou_labkit": miou_labkit,
        "miou_abs_diff": abs(miou_tm - miou_labkit),
    }


def _table(rows: list[dict]) -> str:
    lines = [
        "| classes | torchmetrics ms | labkit ms | speed-up | bound ms | labkit / bound |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['classes']} | {r['torchmetrics_ms']:.1f} | {r['labkit_ms']:.2f} | "
            f"{r['speedup']:.0f}x | {r['bound_ms']:.2f} | {r['labkit_over_bound']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per case (median)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: torch's own default)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="small tensors and one repeat: checks the script runs, not speed",
    )
    args = parser.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    shape = (2, 64, 64) if args.smoke else (8, 512, 512)
    repeats = 1 if args.smoke else args.repeats
    bandwidth = _bandwidth(device, (16 if args.smoke else 512) << 20, repeats)

    rows = [_bench_case(c, shape, device, repeats, bandwidth) for c in (21, 150)]
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "smoke": args.smoke,
        "bandwidth_GBps": bandwidth / 1e9,
    }
    print(
        f"pred/target {'x'.join(map(str, shape))} int64, {IGNORE} = ignore; device {device}, "
        f"torch {torch.__version__}, {env['threads']} threads, median of {repeats}; "
        f"read bandwidth {bandwidth / 1e9:.1f} GB/s (torch.sum over a large int64 tensor)"
    )
    print()
    print(_table(rows))
    bad = [r for r in rows if not r["miou_abs_diff"] <= TOLERANCE]
    for r in rows:
        print(
            f"\n{r['classes']} classes: mIoU torchmetrics {r['miou_torchmetrics']:.9f}, labkit "
            f"{r['miou_labkit']:.9f} (|diff| {r['miou_abs_diff']:.1e}, tolerance {TOLERANCE:g})",
            end="",
        )
    print()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"environment": env, "results": rows}, indent=2) + "\n")
    if bad:
        print(
            f"mIoU differs from torchmetrics by more than {TOLERANCE:g} for "
            f"{[r['classes'] for r in bad]} classes",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
