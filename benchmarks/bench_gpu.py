"""DeepLab v3-ResNet-50 training throughput on a GPU: float32 against AMP + channels_last.

Each setting trains ``deeplabv3_resnet50`` (21 classes, output stride 16) with labkit's own
loop, :func:`labkit.train.fit`, on batches of ``--batch`` 512² images for ``--steps``
iterations, after a warm-up of a few iterations (cuDNN picks its algorithms then). The
batches are made once and already sit on the GPU, so the figure is the model's and the
loop's, not the data loader's. Settings run one after another in one process, so the ratio
to float32 is side by side. Peak memory is ``torch.cuda.max_memory_allocated``. A last row
runs the same AMP + channels_last step in a bare loop (no finiteness check, no running
confusion matrix, no validation): the gap to the row above is what ``fit``'s bookkeeping costs.

Without a GPU nothing is measured: the output says so, and when ``--json`` names a file
that holds an earlier GPU measurement, that measurement is shown, marked as such, with the
device and date it was taken on.

Usage:
    python benchmarks/bench_gpu.py [--steps N] [--batch N] [--size PX] [--json PATH] [--smoke]
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from labkit.models import build_model
from labkit.train import fit

NUM_CLASSES = 21
SETTINGS = [
    ("float32", False, False),
    ("AMP (float16)", True, False),
    ("AMP + channels_last", True, True),
]


def _batches(n: int, batch: int, size: int, device: torch.device) -> list:
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randn(batch, 3, size, size, device=device, generator=gen)
    masks = torch.randint(NUM_CLASSES, (batch, size, size), device=device, generator=gen)
    return [(images, masks)] * n


def _train(
    steps: int, *, batch: int, size: int, amp: bool, channels_last: bool, device: torch.device
) -> float:
    """Seconds for ``steps`` training iterations (and one validation batch) of a fresh model."""
    torch.manual_seed(0)
    model = build_model("deeplabv3_resnet50", num_classes=NUM_CLASSES)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    loss_fn = lambda logits, masks: F.cross_entropy(logits, masks, ignore_index=255)  # noqa: E731
    val = _batches(1, batch, size, device)
    opts = dict(
        epochs=1,
        optimizer=optimizer,
        loss_fn=loss_fn,
        num_classes=NUM_CLASSES,
        device=device,
        amp=amp,
        channels_last=channels_last,
        progress=False,
        log_every=0,
    )
    fit(model, _batches(3, batch, size, device), val, **opts)  # warm-up: cuDNN autotuning
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    fit(model, _batches(steps, batch, size, device), val, **opts)
    torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _train_bare(steps: int, *, batch: int, size: int, device: torch.device) -> float:
    """Seconds for ``steps`` AMP + channels_last iterations of a plain PyTorch loop."""
    torch.manual_seed(0)
    model = build_model("deeplabv3_resnet50", num_classes=NUM_CLASSES).to(device).train()
    model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler("cuda")
    images, masks = _batches(1, batch, size, device)[0]
    images = images.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast("cuda"):
            loss = F.cross_entropy(model(images), masks, ignore_index=255)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(3):
        step()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure(*, steps: int, batch: int, size: int) -> dict:
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    rows = []
    for label, amp, cl in SETTINGS:
        seconds = _train(steps, batch=batch, size=size, amp=amp, channels_last=cl, device=device)
        rows.append(
            {
                "setting": label,
                "amp": amp,
                "channels_last": cl,
                "images_per_s": steps * batch / seconds,
                "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30,
            }
        )
    seconds = _train_bare(steps, batch=batch, size=size, device=device)
    rows.append(
        {
            "setting": "AMP + channels_last, bare PyTorch loop",
            "amp": True,
            "channels_last": True,
            "images_per_s": steps * batch / seconds,
            "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30,
        }
    )
    for r in rows:
        r["speedup"] = r["images_per_s"] / rows[0]["images_per_s"]
    return {
        "environment": {
            "device": torch.cuda.get_device_name(device),
            "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version(),
            "tf32_conv": torch.backends.cudnn.allow_tf32,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "date": datetime.date.today().isoformat(),
            "steps": steps,
            "batch": batch,
            "size": size,
        },
        "results": rows,
    }


def table(data: dict) -> str:
    env = data["environment"]
    lines = [
        f"{env['device']}, torch {env['torch']}, cuDNN {env['cudnn']} "
        f"(TF32 convolutions {'on' if env['tf32_conv'] else 'off'}), "
        f"{env['steps']} iterations of batch {env['batch']} at {env['size']}², "
        f"measured {env['date']}.",
        "",
        "| setting | images/s | × float32 | peak GPU memory GiB |",
        "|---|---:|---:|---:|",
    ]
    for r in data["results"]:
        lines.append(
            f"| {r['setting']} | {r['images_per_s']:.1f} | {r['speedup']:.2f}× | "
            f"{r['peak_gib']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="timed iterations per setting")
    parser.add_argument("--batch", type=int, default=8, help="images per batch")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="write the results here (without a GPU: read an earlier one)",
    )
    parser.add_argument("--smoke", action="store_true", help="2 iterations of 2 at 64²")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not torch.cuda.is_available():
        print("No CUDA GPU on this machine: this section was not run now.")
        earlier = json.loads(args.json.read_text()) if args.json and args.json.is_file() else None
        if earlier and earlier.get("results"):
            print("\nThe last measurement, taken on a GPU machine with the same command:\n")
            print(table(earlier))
        elif args.json:
            args.json.write_text(json.dumps({"environment": None, "results": []}) + "\n")
        return 0
    steps, batch, size = (2, 2, 64) if args.smoke else (args.steps, args.batch, args.size)
    data = measure(steps=steps, batch=batch, size=size)
    print(table(data))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
