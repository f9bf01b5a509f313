"""How fast is the Shapes generator, and how fast are labkit's readers against torchvision's?

    python benchmarks/bench_data.py [--smoke] [--json PATH]

Prints a markdown table. The generator's target: 1,000 images of 128² in under 30 s on
two cores. The readers' target: at least as many images per second as
``torchvision.datasets.VOCSegmentation`` with the same ``transforms.v2`` pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch.utils.data import DataLoader

from labkit.data import VOCSegmentation, generate_shapes, train_transforms


def _images_per_second(
    datasets: list, *, workers: int, batch_size: int = 16, repeats: int
) -> list[float]:
    """Median images/s of each dataset, its passes interleaved with the others' so that a
    change in the machine's load or the page cache touches all of them alike."""
    times: list[list[float]] = [[] for _ in datasets]
    for _ in range(repeats):
        for dataset, seconds in zip(datasets, times):
            loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
            start = time.perf_counter()
            for _batch in loader:
                pass
            seconds.append(time.perf_counter() - start)
    return [len(d) / statistics.median(t) for d, t in zip(datasets, times)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat (CI)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    n, size, repeats = (40, 64, 1) if args.smoke else (1000, 128, 5)
    results: dict = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        root = generate_shapes(Path(tmp) / "shapes", num_train=n, num_val=0, size=size, seed=0)
        results["generate"] = {"images": n, "size": size, "seconds": time.perf_counter() - start}

        transforms = train_transforms(crop_size=size)
        ours = VOCSegmentation(root, split="train", transforms=transforms)
        theirs = torchvision.datasets.VOCSegmentation(
            root, year="2012", image_set="train", transforms=transforms
        )
        rows = []
        for workers in (0, 2):
            a, b = _images_per_second([ours, theirs], workers=workers, repeats=repeats)
            rows.append({"workers": workers, "labkit": a, "torchvision": b, "ratio": a / b})
        results["readers"] = rows

    gen = results["generate"]
    print(
        f"| Shapes generation | {gen['images']} images of {gen['size']}² | "
        f"{gen['seconds']:.1f} s | {gen['images'] / gen['seconds']:.0f} images/s |"
    )
    print("\n| workers | labkit img/s | torchvision img/s | ratio |\n|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['workers']} | {r['labkit']:.0f} | {r['torchvision']:.0f} | {r['ratio']:.2f}× |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
