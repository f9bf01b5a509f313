"""How long the offset explorer takes to answer a click, on the CPU, at 256 × 256.

For each setting: build :class:`labkit.viz.offsets.OffsetExplorer`, then click ``--clicks``
random pixels (``select``, what a click or slider calls) and time each update: unrolling the
sampling points of every panel, moving the artists and the canvas's Agg draw and PNG diff
that ipympl sends to the browser. The canvas is told, as the browser's front end tells it,
that a front end is connected, so it does not also keep a PNG data URL for exports (which a
live session does not do). Also timed: the first visit of an image (one forward pass per
model, then cached) and a revisit.

The issue's target is an update under 300 ms at 256²; the table gives the median and the
95th percentile of the clicks.

Usage:
    python benchmarks/offset_explorer.py [--clicks N] [--size PX] [--threads N]
                                         [--json PATH] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch
from torch import nn

from labkit.models import build_model
from labkit.viz.offsets import OffsetExplorer

TARGET_MS = 300.0


def _trained_looking(model: nn.Module, seed: int) -> nn.Module:
    """Give the zero-initialised offset branches random weights, so points move and the
    drawing is that of a trained model (the cost does not depend on the values)."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "offset_conv"):
            with torch.no_grad():
                module.offset_conv.weight.normal_(0, 0.01, generator=gen)
    return model.eval()


def _settings(smoke: bool) -> list[tuple[str, dict[str, nn.Module], list[int] | None]]:
    if smoke:
        return [
            (
                "resnet18_transfer v1 (1 panel, 2 layers)",
                {
                    "v1": _trained_looking(
                        build_model("resnet18_transfer", num_classes=3, deformable="v1"), 0
                    )
                },
                [-2, -1],
            )
        ]
    dl = {
        kind: _trained_looking(
            build_model("deeplabv3_resnet50", num_classes=21, deformable=kind), i
        )
        for i, kind in enumerate(("v1", "v2"))
    }
    plain = build_model("deeplabv3_resnet50", num_classes=21).eval()
    r18 = _trained_looking(build_model("resnet18_transfer", num_classes=21, deformable="v2"), 3)
    return [
        ("DeepLab v3 R50 plain + v1 + v2 (3 panels, 3 layers)", {"conv": plain, **dl}, None),
        ("DeepLab v3 R50 v2 (1 panel, 3 layers)", {"v2": dl["v2"]}, None),
        ("ResNet-18 transfer v2 (1 panel, 4 layers)", {"v2": r18}, [0, 1, 2, 3]),
    ]


def _bench(
    name: str, models: dict[str, nn.Module], layers, *, size: int, clicks: int, seed: int
) -> dict:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, size, size, generator=gen)
    started = time.perf_counter()
    explorer = OffsetExplorer(models, images, layers=layers)
    build_s = time.perf_counter() - started
    # what the browser's front end sends once it shows the canvas
    explorer.canvas._handle_message(explorer.canvas, {"type": "initialized"}, [])
    times = []
    for row, col in torch.randint(size, (clicks, 2), generator=gen).tolist():
        explorer.select(row, col)
        times.append(explorer.last_update_ms)
    started = time.perf_counter()
    explorer.image.value = 1
    first_visit_ms = 1e3 * (time.perf_counter() - started)
    explorer.image.value = 0
    revisit_ms = explorer.last_update_ms
    points = len(next(iter(explorer.locations.values())).points)
    return {
        "setting": name,
        "panels": len(models),
        "points": points,
        "build_s": build_s,
        "median_ms": statistics.median(times),
        "p95_ms": sorted(times)[max(0, round(0.95 * len(times)) - 1)],
        "first_visit_ms": first_visit_ms,
        "revisit_ms": revisit_ms,
        "under_target": sorted(times)[max(0, round(0.95 * len(times)) - 1)] < TARGET_MS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=40, help="clicks timed per setting")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run for the tests")
    args = parser.parse_args(argv)
    if args.smoke:
        args.clicks, args.size = 3, 64
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [
        _bench(name, models, layers, size=args.size, clicks=args.clicks, seed=i)
        for i, (name, models, layers) in enumerate(_settings(args.smoke))
    ]
    print(
        f"Offset explorer on the CPU ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads), {args.size}×{args.size} images, "
        f"{args.clicks} clicks per setting; target: an update under {TARGET_MS:.0f} ms.\n"
    )
    print(
        "| setting | points per panel | click: median ms | click: p95 ms | new image ms "
        "| revisited image ms | p95 under target |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['setting']} | {r['points']} | {r['median_ms']:.0f} | {r['p95_ms']:.0f} | "
            f"{r['first_visit_ms']:.0f} | {r['revisit_ms']:.0f} | "
            f"{'yes' if r['under_target'] else 'no'} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "size": args.size,
                    "clicks": args.clicks,
                    "threads": torch.get_num_threads(),
                    "target_ms": TARGET_MS,
                    "rows": rows,
                },
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
