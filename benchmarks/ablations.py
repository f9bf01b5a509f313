"""The seeds' experiments on the Shapes set, 3 seeds each: ``make ablations`` → ABLATIONS.md.

Three studies, each a list of labkit presets (``labkit/presets/*_quick.yaml``) and overrides, so
every row is a run anyone can repeat with ``labkit train --preset NAME --set seed=S``:

- the PA3 chain: baseline → + cosine → + augmentation → + weighted loss; U-Net; ResNet-18
  (trained from scratch here: no ImageNet weights are downloaded);
- the DCN report: plain convs vs DCN v1 vs DCN v2 in ResNet stage 4;
- DeepLab v3-ResNet-50: output stride 16 vs 8, ASPP vs a plain 3×3 head (torchvision's FCN
  head on the same dilated backbone).

Every run trains on the CPU with one thread, two runs at a time. Scores are those of the
last epoch on the validation split (not the best epoch: picking the epoch on the same split
would flatter every row alike and hide nothing but noise). Runs live in ``--out/runs``; a
finished run is read back, an interrupted one resumes from its checkpoint, so a rerun after
a crash only does what is missing. A finished run keeps its config, history and metrics,
not its checkpoints.

Usage::

    python benchmarks/ablations.py                      # all, about 30 minutes on 2 cores
    python benchmarks/ablations.py --study dcn --seeds 0 1 2
    python benchmarks/ablations.py --smoke --out /tmp/a # tiny data, seconds per run (CI)
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import logging
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ablation_report import STUDIES, render  # noqa: E402
from _lessons_report import lessons_summary  # noqa: E402

HERE = Path(__file__).resolve().parent
# The smoke run checks the pipeline, not the models: one epoch of one batch of 4 images and
# 2 validation images, at 32², the smallest size the stride-32 encoders take (1×1 at the end).
SMOKE = {
    "shapes.num_train": 4,
    "shapes.num_val": 2,
    "shapes.size": 32,
    "max_train_images": 4,
    "epochs": 1,
    "crop_size": 32,
    "batch_size": 4,
}


def _config(preset: str, overrides: dict, *, seed: int, smoke: bool):
    from labkit.config import apply_overrides, load_preset

    cfg = apply_overrides(
        load_preset(preset), {**overrides, "seed": seed, **(SMOKE if smoke else {})}
    )
    cfg.cpu_threads, cfg.num_workers, cfg.device = 1, 0, "cpu"
    return cfg


def _train(job: tuple) -> dict:
    """Run (or resume, or read back) one experiment; in a worker process."""
    from labkit.config import load_config
    from labkit.experiment import run_experiment
    from labkit.history import History

    key, preset, overrides, seed, smoke, runs_root = job
    run_dir = Path(runs_root) / f"{key}-seed{seed}"
    cfg = _config(preset, overrides, seed=seed, smoke=smoke)
    cfg.name = run_dir.name
    saved = run_dir / "config.yaml"
    same = saved.is_file() and load_config(saved).to_dict() == cfg.to_dict()
    if not (same and (run_dir / "metrics.json").is_file()):
        # A run of another config (the study was changed since), or one cut off before its
        # first checkpoint, is trained again from the start.
        resume = same and (run_dir / "last.pt").is_file()
        run_experiment(
            cfg, runs_root=runs_root, resume=resume, overwrite=not resume, progress=False
        )
        # Only the scores are needed; 39 runs' checkpoints would take gigabytes.
        for name in ("last.pt", "best.pt"):
            (run_dir / name).unlink(missing_ok=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    last = History.from_csv(run_dir / "history.csv").rows[-1]
    classes = list(metrics["val"]["iou"])
    return {
        "key": key,
        "seed": seed,
        "preset": preset,
        "overrides": overrides,
        "miou": last["miou"],
        "pixel_accuracy": last["pixel_accuracy"],
        "train_miou": last["train_miou"],
        "iou": {c: last[f"iou_{i}"] for i, c in enumerate(classes)},
        "parameters": metrics["parameters"],
        "seconds": metrics["seconds"],
        "epoch_seconds": metrics["seconds"] / metrics["epochs"],
    }


def _die_with_parent() -> None:
    """Stop a worker when the parent dies, so a killed run leaves no training behind."""
    if sys.platform == "linux":
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _all_finished(jobs: list[tuple]) -> bool:
    return all((Path(j[5]) / f"{j[0]}-seed{j[3]}" / "metrics.json").is_file() for j in jobs)


def _needs_shapes_encoder(jobs: list[tuple]) -> bool:
    return any(
        _config(j[1], j[2], seed=0, smoke=j[4]).model_options.get("pretrained_backbone") == "shapes"
        for j in jobs
    )


def _pretrain_once() -> None:
    from labkit.models.pretrain import ensure_shapes_pretrained

    torch.set_num_threads(1)
    ensure_shapes_pretrained()


def _rare_classes(*, smoke: bool, runs_root: Path, n: int = 2) -> list[str]:
    """The ``n`` object classes with the fewest training pixels in the PA3 chain's set (the
    6-class Shapes set every PA3 row and lab 04's lesson train on)."""
    from labkit.data import VOCSegmentation, class_pixel_counts
    from labkit.experiment import resolve_data_root

    _, _, preset, overrides = STUDIES["pa3"]["rows"][0]
    cfg = _config(preset, {**STUDIES["pa3"]["budget"], **overrides}, seed=0, smoke=smoke)
    dataset = VOCSegmentation(resolve_data_root(cfg, runs_root=runs_root), split="train")
    counts = class_pixel_counts(dataset, len(dataset.classes))
    order = sorted(range(1, len(counts)), key=lambda c: float(counts[c]))
    return [dataset.classes[c] for c in order[:n]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", nargs="+", choices=list(STUDIES), default=list(STUDIES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE,
        help="folder for ABLATIONS.md, ablations.json and runs/ "
        "(default: benchmarks/; runs/ is not committed)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="one batch of 4 images of 32², one epoch, two seeds: checks the pipeline",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="only write ABLATIONS.md and lessons.json again from --out/ablations.json "
        "(after a change to the report's layout; trains nothing)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.report:
        data = json.loads((args.out / "ablations.json").read_text())
        _write_json(_lessons_path(args.out), lessons_summary(data))
        _write_report(args.out, render(data, studies=_measured_studies(data)))
        return 0
    seeds = args.seeds[:2] if args.smoke else args.seeds
    runs_root = args.out / "runs" if args.out != HERE else HERE.parent / "runs" / "ablations"
    runs_root.mkdir(parents=True, exist_ok=True)
    # A study's budget applies to each of its rows alike (the row's own overrides win).
    # Longest study first (DeepLab, then the ResNets), so the two workers finish together.
    longest_first = sorted(args.study, key=["deeplab", "dcn", "pa3", "lessons"].index)
    jobs = [
        (key, preset, {**STUDIES[study]["budget"], **overrides}, seed, args.smoke, str(runs_root))
        for study in longest_first
        for key, _, preset, overrides in STUDIES[study]["rows"]
        for seed in seeds
    ]
    # Draw each Shapes set once, here, before two workers could both start drawing it.
    from labkit.experiment import resolve_data_root

    for preset, overrides in {(j[1], json.dumps(j[2])) for j in jobs}:
        resolve_data_root(
            _config(preset, json.loads(overrides), seed=0, smoke=args.smoke), runs_root=runs_root
        )
    rare = _rare_classes(smoke=args.smoke, runs_root=runs_root)
    # Likewise the Shapes-pretrained encoder (lab 06's lesson), once, on one thread. The smoke
    # run, and its workers (spawned: they inherit the variable), use the tiny one that
    # LABKIT_BUDGET=smoke pretrains in seconds, in a file of its own.
    if args.smoke:
        os.environ["LABKIT_BUDGET"] = "smoke"
    if _needs_shapes_encoder(jobs) and not _all_finished(jobs):
        _pretrain_once()

    start, results = time.perf_counter(), []
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(
        max_workers=args.jobs, mp_context=ctx, initializer=_die_with_parent
    ) as pool:
        futures = {pool.submit(_train, job): job for job in jobs}
        for done in cf.as_completed(futures):
            row = done.result()
            results.append(row)
            print(
                f"{row['key']} seed {row['seed']}: val mIoU {row['miou']:.4f} "
                f"({row['seconds']:.0f} s)",
                file=sys.stderr,
            )
    wall = time.perf_counter() - start
    results, earlier = _keep_other_studies(args.out / "ablations.json", results, args.study)
    command = "python benchmarks/ablations.py " + " ".join(argv or sys.argv[1:])
    env = {
        "cpus": os.cpu_count(),
        "jobs": args.jobs,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "seeds": seeds,
        "smoke": args.smoke,
        "wall_seconds": wall,
        "rare_classes": rare,
        "command": command,
        # every command whose runs the file holds, oldest first (--study adds to a report)
        "commands": earlier + [{"command": command, "wall_seconds": wall, "studies": args.study}],
    }
    data = {"environment": env, "runs": sorted(results, key=lambda r: (r["key"], r["seed"]))}
    _write_json(args.out / "ablations.json", data)
    _write_json(_lessons_path(args.out), lessons_summary(data))
    _write_report(args.out, render(data, studies=_measured_studies(data)))
    return 0


def _keep_other_studies(
    path: Path, results: list[dict], studies: list[str]
) -> tuple[list[dict], list[dict]]:
    """The new runs and, from an earlier ``ablations.json``, the runs of the studies not run
    now, so that ``--study lessons`` adds its rows to the report instead of replacing it;
    and the earlier commands whose runs are kept."""
    if not path.is_file():
        return results, []
    old = json.loads(path.read_text())
    fresh = {key for study in studies for key, *_ in STUDIES[study]["rows"]}
    fresh |= {r["key"] for r in results}
    kept = [r for r in old["runs"] if r["key"] not in fresh]
    if not kept:
        return results, []
    env = old["environment"]
    earlier = env.get("commands") or [
        {"command": env["command"], "wall_seconds": env["wall_seconds"], "studies": None}
    ]
    return kept + results, earlier


def _measured_studies(data: dict) -> list[str]:
    keys = {r["key"] for r in data["runs"]}
    return [s for s in STUDIES if any(row[0] in keys for row in STUDIES[s]["rows"])]


def _lessons_path(out: Path) -> Path:
    """Where the labs read the measured lessons: inside the package for the committed run."""
    return HERE.parent / "labkit" / "lessons.json" if out == HERE else out / "lessons.json"


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _write_report(out: Path, text: str) -> None:
    tmp = out / "ABLATIONS.md.tmp"
    tmp.write_text(text)
    tmp.replace(out / "ABLATIONS.md")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
