"""The ``labkit`` command.

``labkit demo``, ``labkit data shapes|check``, ``labkit train``, ``labkit evaluate``,
``labkit compare``, ``labkit predict``, ``labkit pretrain``, ``labkit doctor`` and
``labkit course`` (:mod:`labkit.grading.cli`).
Every subcommand explains its options under
``--help``. Errors the user can fix (:class:`labkit.errors.LabkitError`: a missing dataset,
a bad option or config value, a GPU out of memory) end as one line on stderr and exit code 2
(with ``-v``, after their traceback). Any other exception is a bug and ends as Python ends
it: its traceback, exit code 1.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from labkit.config import OPTIMIZERS, PROFILES, parse_override
from labkit.errors import LabkitError, UsageError
from labkit.tables import markdown_table, percent

__all__ = ["main", "build_parser"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from labkit.demo import run_demo

    overrides = _overrides(args, [("epochs", "epochs")])
    start = time.perf_counter()
    result = run_demo(
        args.out, preset=args.preset, overrides=overrides, progress=not args.no_progress
    )
    seconds = time.perf_counter() - start
    cfg, shapes = result.config, result.config.shapes
    print(
        f"\nlabkit demo: {cfg.model} ({result.parameters:,} parameters), preset {args.preset}, "
        f"trained {cfg.epochs} epochs on {shapes.num_train} Shapes images of {shapes.size}² "
        f"({len(result.classes)} classes), scored on {shapes.num_val} validation images; "
        f"{seconds:.0f} s in all.\n"
    )
    print(format_scores(result.scores, result.classes))
    print()
    for name, path in result.files.items():
        print(f"  {name:<11} {path}")
    return 0


def format_scores(scores: dict, classes: Sequence[str]) -> str:
    """Render overall scores and per-class IoU as a markdown table."""
    overall = [
        [key, percent(scores[key], digits=2, sign=True)]
        for key in ("pixel_accuracy", "mean_accuracy", "miou", "fwiou")
    ]
    per_class = [
        [name, percent(iou, digits=2, sign=True)]
        for name, iou in zip(classes, scores["iou"].tolist())
    ]
    return (
        markdown_table(["metric", "value"], overall, align="lr")
        + "\n\n"
        + markdown_table(["class", "IoU"], per_class, align="lr")
    )


def _cmd_data_shapes(args: argparse.Namespace) -> int:
    from labkit.data import generate_shapes

    start = time.perf_counter()
    root = generate_shapes(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        size=args.size,
        num_classes=args.num_classes,
        seed=args.seed,
        deformation=args.deformation,
    )
    print(
        f"wrote {args.num_train} train + {args.num_val} val images of {args.size}² to "
        f"{root / 'VOCdevkit' / 'VOC2012'} in {time.perf_counter() - start:.1f} s"
    )
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    from labkit.data.layouts import LAYOUTS, detect_layout, open_split
    from labkit.data.stats import class_pixel_counts

    root = args.root
    kind = args.dataset
    if kind == "auto":
        kind = detect_layout(root)
        if kind is None:
            raise UsageError(
                f"{root} holds neither VOCdevkit/ (Pascal VOC or Shapes) nor "
                "ADEChallengeData2016/ (ADE20K); pass the folder that holds one, "
                "or --dataset to say which."
            )
    splits = args.split or LAYOUTS[kind].splits
    sets = {split: open_split(kind, root, split) for split in splits}  # raises: what is missing
    first = next(iter(sets.values()))
    classes = list(first.classes)
    print(
        f"{root}: {kind} layout, {len(classes)} classes, "
        + ", ".join(f"{s} {len(d)} images" for s, d in sets.items())
    )
    for split, dataset in sets.items():
        n = len(dataset) if args.max_images == 0 else min(args.max_images, len(dataset))
        counts = class_pixel_counts(dataset, len(classes), max_items=n).double()
        total = counts.sum().item()
        print(
            f"\n{split}: pixel share per class over {n} of {len(dataset)} masks "
            f"({int(total):,} labelled pixels)\n"
        )
        rows = [
            [name, f"{int(c):,}", percent(c / max(total, 1), digits=2, sign=True)]
            for name, c in zip(classes, counts.tolist())
        ]
        print(markdown_table(["class", "pixels", "share"], rows, align="lrr"))
        absent = [name for name, c in zip(classes, counts.tolist()) if c == 0]
        if absent:
            print(f"\nclasses with no pixels in {split}: {', '.join(absent)}")
    return 0


def _build_config(args: argparse.Namespace):
    from labkit.config import apply_overrides, load_config, load_preset

    cfg = load_preset(args.preset) if args.preset else load_config(args.config)
    overrides = _overrides(args, _TRAIN_FLAGS)
    return apply_overrides(cfg, overrides) if overrides else cfg


def _overrides(args: argparse.Namespace, flags: Sequence[tuple[str, str]]) -> dict:
    """The config keys ``--set KEY=VALUE`` and the option flags (``--lr``, ...) change. A key
    given both ways must agree: which one wins would be a guess."""
    overrides = dict(parse_override(item) for item in args.set or [])
    for flag, key in flags:
        value = getattr(args, flag)
        if value is None:
            continue
        value = str(value) if isinstance(value, Path) else value
        if key in overrides and overrides[key] != value:
            option = "--" + flag.replace("_", "-")
            raise UsageError(
                f"{key} is set twice: --set {key}={overrides[key]!r} and {option} {value!r}; "
                f"give it once (either works)."
            )
        overrides[key] = value
    return overrides


def _cmd_train(args: argparse.Namespace) -> int:
    from labkit import distributed
    from labkit.config import available_presets, load_preset
    from labkit.experiment import run_experiment

    if args.list_presets:
        for name in available_presets():
            print(f"{name:<28} {load_preset(name).description}")
        return 0
    ctx = distributed.init_distributed()
    try:
        cfg = _build_config(args)
        result = run_experiment(
            cfg,
            runs_root=args.runs_dir,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    finally:
        distributed.shutdown()
    if ctx.is_main:
        m = result.metrics
        print(
            f"\nlabkit train: {cfg.name} ({cfg.model}, {m['parameters']:,} parameters) "
            f"trained {m['epochs']} epochs on {m['device']} "
            f"(x{m['world_size']}) in {m['wall_seconds']:.0f} s; best epoch "
            f"{m['best_epoch']}: val mIoU {100 * m['val']['miou']:.2f} %, pixel acc "
            f"{100 * m['val']['pixel_accuracy']:.2f} %, train mIoU "
            f"{100 * m['train']['miou']:.2f} %\n"
        )
        for name, path in result.files.items():
            print(f"  {name:<8} {path}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from labkit.runs import confusion_figure, evaluate_run

    scores = evaluate_run(
        args.run_dir,
        split=args.split,
        checkpoint=args.checkpoint,
        device=args.device,
        data_root=args.data_root,
        progress=not args.no_progress,
    )
    out = args.out or args.run_dir / f"eval-{scores['split']}"
    out.mkdir(parents=True, exist_ok=True)
    classes = scores["classes"]
    confusion_figure(scores["matrix"], classes).savefig(out / "confusion_matrix.png", dpi=90)

    def plain(x: float) -> float | None:
        return None if math.isnan(x) else x

    (out / "metrics.json").write_text(
        json.dumps(
            {
                "run": str(args.run_dir),
                "split": scores["split"],
                "checkpoint": args.checkpoint,
                "checkpoint_epoch": scores["checkpoint_epoch"],
                **{
                    k: plain(scores[k])
                    for k in ("pixel_accuracy", "mean_accuracy", "miou", "fwiou")
                },
                "iou": {c: plain(v) for c, v in zip(classes, scores["iou"].tolist())},
                "confusion_matrix": scores["matrix"].tolist(),
            },
            indent=2,
        )
    )
    print(
        f"{args.run_dir} ({args.checkpoint}.pt, epoch {scores['checkpoint_epoch']}) on "
        f"{scores['split']}:\n"
    )
    print(format_scores(scores, classes))
    print(f"\n  metrics  {out / 'metrics.json'}\n  heatmap  {out / 'confusion_matrix.png'}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from labkit.runs import compare_runs

    table, fig = compare_runs(args.run_dirs)
    out = args.out or args.run_dirs[0].parent / "compare.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(table)
    print(f"\n  curves   {out}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from labkit.runs import predict_images

    files = predict_images(
        args.run_dir,
        args.in_dir,
        args.out_dir,
        checkpoint=args.checkpoint,
        device=args.device,
        alpha=args.alpha,
    )
    print(
        f"segmented {len(files) // 2} images with {args.run_dir} ({args.checkpoint}.pt): "
        f"masks and overlays in {args.out_dir}"
    )
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from labkit.doctor import exit_code, format_table, run_checks

    checks = run_checks(profile=args.profile, root=args.root)
    code = exit_code(checks)
    if args.json:
        print(
            json.dumps(
                {
                    "profile": args.profile,
                    "exit_code": code,
                    "checks": [dataclasses.asdict(c) for c in checks],
                },
                indent=2,
            )
        )
    else:
        print(format_table(checks))
    return code


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from labkit.devices import cpu_threads, pick_device
    from labkit.models.pretrain import ensure_shapes_pretrained, shapes_pretrained_path

    path = shapes_pretrained_path()
    cached = path.is_file()
    start = time.perf_counter()
    with cpu_threads(args.cpu_threads):
        ensure_shapes_pretrained(device=pick_device(args.device))
    seconds = time.perf_counter() - start
    what = "already cached, checked" if cached else f"pretrained in {seconds:.0f} s"
    print(f"labkit pretrain: Shapes-pretrained ResNet-18 {what}: {path}")
    return 0


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    """Add ``pretrain``: build the Shapes-pretrained ResNet-18 ahead of a class."""
    pretrain = sub.add_parser(
        "pretrain",
        help="build the Shapes-pretrained ResNet-18 (pretrained_backbone: shapes) in the cache",
        description="Pretrain the ResNet-18 encoder that pretrained_backbone: shapes loads "
        "(an offline stand-in for ImageNet, see labkit.models.pretrain) and write it to "
        "$TORCH_HOME/hub/checkpoints, once; later runs read it. Run it where the students' "
        "TORCH_HOME points, before a class, so nobody waits for it. A file already "
        "there is checked, not rebuilt.",
    )
    pretrain.add_argument(
        "--device", default="cpu", help="where to pretrain: cpu (default), cuda or cuda:N"
    )
    pretrain.add_argument(
        "--cpu-threads",
        type=int,
        metavar="N",
        help="threads torch uses on the CPU (default: torch's own; with 1, about 3.5 minutes)",
    )
    pretrain.set_defaults(func=_cmd_pretrain)


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    """Add ``doctor``: check this machine for a course."""
    doctor = sub.add_parser(
        "doctor",
        help="check this machine for a course: versions, GPUs, sandbox, data, weights",
        description="Check what the labs and the grader need here: torch/torchvision/nbgrader "
        "against labkit's pins, CUDA devices and free memory, bubblewrap, the "
        "datasets under $LABKIT_DATA, the weights in $TORCH_HOME, every preset, "
        "and nbgrader's course config. Prints one row per check with a fix for "
        "each problem (docs/deploy.md); exits 1 when a check FAILs, else 0.",
    )
    doctor.add_argument(
        "--profile",
        choices=PROFILES,
        default="quick",
        help="full: missing VOC/ADE20K or ImageNet weights FAIL (default quick: they only warn)",
    )
    doctor.add_argument(
        "--root",
        type=Path,
        metavar="COURSE",
        help="course directory whose nbgrader_config.py to check (default: "
        "the working directory, if it holds one)",
    )
    doctor.add_argument(
        "--json", action="store_true", help="print the rows as JSON instead of a table"
    )
    doctor.set_defaults(func=_cmd_doctor)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (and exit code 2)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# (argparse dest, config key) of the train options that override a config value.
_TRAIN_FLAGS = [
    ("name", "name"),
    ("data_root", "data_root"),
    ("model", "model"),
    ("epochs", "epochs"),
    ("batch_size", "batch_size"),
    ("crop_size", "crop_size"),
    ("lr", "lr"),
    ("optimizer", "optimizer"),
    ("schedule", "schedule"),
    ("seed", "seed"),
    ("device", "device"),
    ("amp", "amp"),
    ("num_workers", "num_workers"),
    ("checkpoint_every", "checkpoint_every"),
    ("tensorboard", "tensorboard"),
    ("gpu_memory", "gpu_memory_gib"),
    ("cpu_threads", "cpu_threads"),
]


def _add_train(sub: argparse._SubParsersAction) -> None:
    """Add ``train``: what to train, the config values to override, how to run it."""
    train = sub.add_parser(
        "train",
        help="train an experiment from a preset or config file",
        description="Train the experiment a preset or config file describes and write "
        "runs/<name>/ (config.yaml, history.csv, metrics.json, last.pt, best.pt, "
        "learning_curves.png). Options below override the config's values. Under "
        "`torchrun --nproc_per_node=N -m labkit train ...` the run is split over N "
        "processes (DDP); only rank 0 writes.",
    )
    what = train.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--preset", metavar="NAME", help="a preset from labkit/presets/ (see --list-presets)"
    )
    what.add_argument("--config", type=Path, metavar="FILE", help="a YAML or JSON config file")
    what.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    _add_train_experiment_options(train)
    _add_train_machine_options(train)
    _add_train_run_options(train)
    train.set_defaults(func=_cmd_train)


def _add_train_experiment_options(train: argparse.ArgumentParser) -> None:
    """Add the ``train`` options that say where the run goes and what it trains."""
    train.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("runs"),
        help="folder of run folders; the run goes to RUNS_DIR/<name> (default: runs)",
    )
    train.add_argument("--name", help="run name and folder (default: the config's name)")
    train.add_argument(
        "--data-root",
        type=Path,
        help="dataset folder (holding VOCdevkit or ADEChallengeData2016); "
        "default: the config's, else $LABKIT_DATA; Shapes is drawn into "
        "RUNS_DIR/.data when absent",
    )
    train.add_argument("--model", help="model name (labkit.models.available_models())")
    train.add_argument("--epochs", type=int, help="training epochs")
    train.add_argument("--batch-size", type=int, help="images per batch and process")
    train.add_argument("--crop-size", type=int, help="side of the square training crops")
    train.add_argument("--lr", type=float, help="base learning rate")
    train.add_argument("--optimizer", choices=OPTIMIZERS, help="optimizer")
    train.add_argument(
        "--schedule",
        choices=("poly", "step", "cosine", "constant"),
        help="learning-rate schedule, stepped every iteration",
    )
    train.add_argument("--seed", type=int, help="seed for data order, augmentation and weights")


def _add_train_machine_options(train: argparse.ArgumentParser) -> None:
    """Add the ``train`` options for the device, its memory and threads, and the logs."""
    train.add_argument(
        "--device", help="auto (the GPU with most free memory, else CPU), cpu, cuda or cuda:N"
    )
    # --amp and --tensorboard default to None, not False: _overrides skips an option not
    # given, so the config's value stands
    train.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mixed precision (default: on for CUDA, off on CPU)",
    )
    train.add_argument("--num-workers", type=int, help="data loader processes")
    train.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="also write last.pt every N iterations (default: per epoch only)",
    )
    train.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="write TensorBoard logs to the run folder (needs `pip install "
        "tensorboard`; view with `tensorboard --logdir runs`)",
    )
    train.add_argument(
        "--gpu-memory",
        type=float,
        metavar="GIB",
        help="cap this process's GPU memory at GIB GiB (shared servers)",
    )
    train.add_argument(
        "--cpu-threads",
        type=int,
        metavar="N",
        help="threads torch uses on the CPU (quick presets: 1, robust on a busy "
        "machine; raise it on an idle one with many cores)",
    )


def _add_train_run_options(train: argparse.ArgumentParser) -> None:
    """Add ``train``'s ``--set`` and the options that resume, replace or quieten a run."""
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any config key, dotted for sections, value in YAML "
        "(e.g. --set augment.rotate=10 --set model_options.output_stride=8); "
        "repeatable",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in RUNS_DIR/<name> from its last.pt, exactly "
        "(the config must be unchanged)",
    )
    train.add_argument(
        "--overwrite", action="store_true", help="delete an earlier run of the same name first"
    )
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_run_dir(parser: argparse.ArgumentParser) -> None:
    """Add the ``RUN_DIR`` argument of ``evaluate`` and ``predict``."""
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder (runs/<name>)")


def _add_device(parser: argparse.ArgumentParser) -> None:
    """Add the ``--device`` option of ``evaluate`` and ``predict``."""
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate``: score a run on a split."""
    ev = sub.add_parser(
        "evaluate",
        help="score a trained run; per-class IoU and confusion matrix",
        description="Score a run's model on a split of its dataset: print the "
        "metrics and per-class IoU, write metrics.json and a "
        "confusion-matrix heatmap to RUN_DIR/eval-<split>/.",
    )
    _add_run_dir(ev)
    ev.add_argument(
        "--split",
        default="val",
        help="split to score: val (default), train, or a split file's name",
    )
    ev.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        default="best",
        help="best.pt (best val mIoU, default) or last.pt",
    )
    ev.add_argument(
        "--data-root", type=Path, help="dataset folder (default: the one the run trained on)"
    )
    _add_device(ev)
    ev.add_argument("--out", type=Path, help="output folder (default: RUN_DIR/eval-<split>)")
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ev.set_defaults(func=_cmd_evaluate)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    """Add ``compare``: one table and one plot of several runs."""
    cmp = sub.add_parser(
        "compare",
        help="compare runs in one table and plot",
        description="Print one markdown table (run, model, val mIoU, train "
        "mIoU, pixel accuracy, Δ val mIoU vs the first run, in "
        "points) and write overlaid learning curves.",
    )
    cmp.add_argument(
        "run_dirs",
        type=Path,
        nargs="+",
        metavar="RUN_DIR",
        help="finished run folders; the first is the reference",
    )
    cmp.add_argument(
        "--out", type=Path, help="PNG for the curves (default: compare.png beside the first run)"
    )
    cmp.set_defaults(func=_cmd_compare)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    """Add ``predict``: segment a folder of images with a run's model."""
    pr = sub.add_parser(
        "predict",
        help="segment a folder of images with a trained run",
        description="Write <name>_mask.png (class ids, VOC palette) and "
        "<name>_overlay.png for every image in IN.",
    )
    _add_run_dir(pr)
    pr.add_argument(
        "--in",
        dest="in_dir",
        type=Path,
        required=True,
        metavar="IN",
        help="folder of images (jpg, png, bmp, tif, webp)",
    )
    pr.add_argument(
        "--out",
        dest="out_dir",
        type=Path,
        required=True,
        metavar="OUT",
        help="folder for masks and overlays (created if missing)",
    )
    pr.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        default="best",
        help="best.pt (default) or last.pt",
    )
    _add_device(pr)
    pr.add_argument(
        "--alpha", type=float, default=0.5, help="opacity of the mask in the overlays (default 0.5)"
    )
    pr.set_defaults(func=_cmd_predict)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    """Add ``demo``: a preset end to end on the CPU."""
    demo = sub.add_parser(
        "demo",
        help="generate the Shapes set, train a small FCN, evaluate it",
        description="Run an experiment preset end to end on the CPU: "
        "draw the Shapes set when missing, train the baseline "
        "FCN for the preset's fixed budget, score the best "
        "checkpoint, print a metrics table and write figures.",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("runs/demo"),
        help="folder for the run and its generated data (default: runs/demo)",
    )
    demo.add_argument(
        "--preset",
        default="baseline_quick",
        help="experiment preset to run (default: baseline_quick; see "
        "`labkit train --list-presets`)",
    )
    demo.add_argument("--epochs", type=int, help="training epochs (default: the preset's)")
    demo.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="change a config key, as for `labkit train` "
        "(e.g. --set shapes.num_train=200); repeatable",
    )
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    demo.set_defaults(func=_cmd_demo)


def _add_data(sub: argparse._SubParsersAction) -> None:
    """Add ``data`` and its actions ``shapes`` and ``check``."""
    data = sub.add_parser(
        "data",
        help="generate or check datasets",
        description="Generate the Shapes set, or check a dataset folder.",
    )
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    _add_data_shapes(data_sub)
    _add_data_check(data_sub)


def _add_data_shapes(data_sub: argparse._SubParsersAction) -> None:
    """Add ``data shapes``: draw the Shapes set in the VOC layout."""
    shapes = data_sub.add_parser(
        "shapes",
        help="generate the Shapes set in the VOC layout",
        description="Write the Shapes set under OUT/VOCdevkit/VOC2012 "
        "in the Pascal VOC 2012 layout.",
    )
    shapes.add_argument(
        "--out", type=Path, required=True, help="folder to hold VOCdevkit (point LABKIT_DATA here)"
    )
    shapes.add_argument(
        "--num-train", type=int, default=1000, help="training images (default 1000)"
    )
    shapes.add_argument("--num-val", type=int, default=200, help="validation images (default 200)")
    shapes.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    shapes.add_argument(
        "--num-classes",
        type=int,
        default=21,
        help="classes including background (default 21, as VOC)",
    )
    shapes.add_argument(
        "--deformation",
        type=float,
        default=0.5,
        help="strength of affine and elastic shape deformation in [0, 1] "
        "(default 0.5; lab 08 uses 1.0)",
    )
    shapes.add_argument(
        "--seed", type=int, default=0, help="seed; same seed, same files (default 0)"
    )
    shapes.set_defaults(func=_cmd_data_shapes)


def _add_data_check(data_sub: argparse._SubParsersAction) -> None:
    """Add ``data check``: open a dataset folder and count its class pixels."""
    check = data_sub.add_parser(
        "check",
        help="validate a VOC/ADE20K/Shapes folder and print class statistics",
        description="Open every split of a dataset folder (every listed image and mask must "
        "exist and match in size), then print the pixel share of each class.",
    )
    check.add_argument(
        "root",
        type=Path,
        metavar="DIR",
        help="folder holding VOCdevkit/ (VOC, Shapes) or ADEChallengeData2016/",
    )
    check.add_argument(
        "--dataset",
        choices=("auto", "voc", "ade20k"),
        default="auto",
        help="layout to expect (default: auto-detect)",
    )
    check.add_argument(
        "--split",
        action="append",
        metavar="NAME",
        help="split to check, repeatable (default: train and val, or "
        "training and validation for ADE20K)",
    )
    check.add_argument(
        "--max-images",
        type=int,
        default=1000,
        metavar="N",
        help="count class pixels over the first N masks of each split (default 1000; 0 = all)",
    )
    check.set_defaults(func=_cmd_data_check)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``labkit`` command and its subcommands."""
    parser = _Parser(
        prog="labkit", description="labkit: a course lab kit for semantic segmentation."
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log progress details; an error shows its traceback too",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # the order here is the order `labkit --help` lists the commands in
    _add_demo(sub)
    _add_data(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_compare(sub)
    _add_predict(sub)
    _add_pretrain(sub)
    _add_doctor(sub)
    from labkit.grading.cli import add_course_parser

    add_course_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``labkit`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except LabkitError as exc:
        if args.verbose:
            traceback.print_exc()
        message = " ".join(str(exc).split())  # one line, whatever the message held
        print(f"labkit {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"labkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
