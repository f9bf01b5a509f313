"""Deformable convolution on the CPU: labkit's plain-PyTorch reference against torchvision.

For a few layer shapes met in the labs, time forward and forward + backward of
:func:`labkit.models.deformable.deform_conv2d_reference` (the equation written out with
gathers, what lab 08's students write) and :func:`torchvision.ops.deform_conv2d` (a compiled
kernel), DCN v1 (no mask) and v2 (with the modulation mask), and check that outputs and
input gradients agree. Each case runs both functions interleaved, so the ratio is taken side
by side. The reference is for reading, not speed: the table says what its clarity costs.

Usage:
    python benchmarks/bench_deform.py [--repeats N] [--threads N] [--json PATH] [--smoke]
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
from torchvision.ops import deform_conv2d

from labkit.models.deformable import deform_conv2d_reference

TOLERANCE = 1e-4
# (label, N, C_in, C_out, H, W, dilation): lab 08's quick-profile layer (ResNet-18 layer4 on
# a batch of 96² crops: 3² at stride 32), a narrow layer on a larger map, and DeepLab v3-R50's
# layer4 conv on a 128² image at output stride 16 (8², dilation 2).
CASES = [
    ("ResNet-18 layer4, 96² crops", 8, 512, 512, 3, 3, 1),
    ("64 channels, 32²", 4, 64, 64, 32, 32, 1),
    ("DeepLab R50 layer4, 128², OS 16", 2, 512, 512, 8, 8, 2),
]
SMOKE_CASES = [("tiny", 1, 4, 4, 6, 6, 1)]


def _inputs(
    n: int, c_in: int, c_out: int, h: int, w: int, dilation: int, *, v2: bool, seed: int
) -> dict:
    gen = torch.Generator().manual_seed(seed)
    k = 9
    return {
        "input": torch.randn(n, c_in, h, w, generator=gen),
        "offset": 2 * torch.randn(n, 2 * k, h, w, generator=gen),
        "weight": torch.randn(c_out, c_in, 3, 3, generator=gen) / (3 * c_in**0.5),
        "bias": torch.randn(c_out, generator=gen),
        "mask": torch.rand(n, k, h, w, generator=gen) if v2 else None,
        "padding": dilation,
        "dilation": dilation,
    }


def _forward_backward(fn, args: dict) -> tuple[torch.Tensor, torch.Tensor]:
    x = args["input"].detach().requires_grad_(True)
    out = fn(
        x,
        args["offset"],
        args["weight"],
        args["bias"],
        padding=args["padding"],
        dilation=args["dilation"],
        mask=args["mask"],
    )
    out.backward(torch.ones_like(out))
    return out.detach(), x.grad


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _forward(fn, args: dict) -> torch.Tensor:
    with torch.no_grad():
        return fn(
            args["input"],
            args["offset"],
            args["weight"],
            args["bias"],
            padding=args["padding"],
            dilation=args["dilation"],
            mask=args["mask"],
        )


def bench_case(case: tuple, *, v2: bool, repeats: int, seed: int = 0) -> dict:
    """Time one layer shape; both implementations interleaved, medians of ``repeats``."""
    label, n, c_in, c_out, h, w, dilation = case
    args = _inputs(n, c_in, c_out, h, w, dilation, v2=v2, seed=seed)
    fns = {"labkit": deform_conv2d_reference, "torchvision": deform_conv2d}
    results = {name: _forward_backward(fn, args) for name, fn in fns.items()}  # warm-up
    out_diff = (results["labkit"][0] - results["torchvision"][0]).abs().max().item()
    grad_diff = (results["labkit"][1] - results["torchvision"][1]).abs().max().item()
    fwd = {name: [] for name in fns}
    both = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            fwd[name].append(_seconds(lambda fn=fn: _forward(fn, args)))
            both[name].append(_seconds(lambda fn=fn: _forward_backward(fn, args)))
    ms = {
        f"{name}_{kind}_ms": 1e3 * statistics.median(t[name])
        for kind, t in (("fwd", fwd), ("fwdbwd", both))
        for name in fns
    }
    return {
        "case": label,
        "version": "v2" if v2 else "v1",
        "shape": [n, c_in, h, w],
        "c_out": c_out,
        "dilation": dilation,
        **ms,
        "fwd_ratio": ms["labkit_fwd_ms"] / ms["torchvision_fwd_ms"],
        "fwdbwd_ratio": ms["labkit_fwdbwd_ms"] / ms["torchvision_fwdbwd_ms"],
        "max_abs_diff_out": out_diff,
        "max_abs_diff_grad": grad_diff,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| layer | input N×C×H×W → C_out | DCN | forward: labkit / torchvision ms | "
        "ratio | fwd+bwd: labkit / torchvision ms | ratio | max |Δ| out, grad |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        n, c, h, w = r["shape"]
        lines.append(
            f"| {r['case']} | {n}×{c}×{h}×{w} → {r['c_out']} | {r['version']} | "
            f"{r['labkit_fwd_ms']:.1f} / {r['torchvision_fwd_ms']:.1f} | {r['fwd_ratio']:.1f}× | "
            f"{r['labkit_fwdbwd_ms']:.1f} / {r['torchvision_fwdbwd_ms']:.1f} | "
            f"{r['fwdbwd_ratio']:.1f}× | {r['max_abs_diff_out']:.0e}, "
            f"{r['max_abs_diff_grad']:.0e} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per case (median)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: torch's own default)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--smoke", action="store_true", help="one tiny case, one repeat")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    repeats = 1 if args.smoke else args.repeats
    rows = [
        bench_case(case, v2=v2, repeats=repeats, seed=i)
        for i, case in enumerate(SMOKE_CASES if args.smoke else CASES)
        for v2 in (False, True)
    ]
    env = {
        "torch": torch.__version__,
        "torchvision_op": "torchvision.ops.deform_conv2d",
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "smoke": args.smoke,
    }
    print(
        f"CPU, float32, 3×3 kernel, random offsets (σ = 2 px); torch {torch.__version__}, "
        f"{env['threads']} threads, median of {repeats}, the two interleaved. "
        "Ratio: labkit's reference time over torchvision's.\n"
    )
    print(table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"environment": env, "results": rows}, indent=2) + "\n")
    bad = [
        r["case"]
        for r in rows
        if not max(r["max_abs_diff_out"], r["max_abs_diff_grad"]) <= TOLERANCE
    ]
    if bad:
        print(
            f"labkit's reference and torchvision disagree by more than {TOLERANCE:g} on {bad}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
