"""The lessons' part of ``make ablations``: ``labkit/lessons.json`` (what the labs show) and
the report's lines on each lesson's time per pair.

A lesson (``labkit.lessons.LESSONS``) compares two rows of the studies in
``_ablation_report``; its figures are those rows' last-epoch scores, seed by seed.
"""

from __future__ import annotations

import math
import statistics

from _ablation_report import STUDIES, _values, verdict

from labkit.lessons import LESSONS


def _per_seed(runs: list[dict], key: str) -> dict[int, dict]:
    return {r["seed"]: r for r in runs if r["key"] == key}


def lessons_summary(data: dict) -> dict:
    """Each measured lesson: both rows' scores by seed, the gap, its SE, the verdict and the
    time of one seed's pair of runs; the file the labs read (``labkit.lessons.measured``)."""
    runs, env = data["runs"], data["environment"]
    rare = env["rare_classes"]
    out = []
    for lesson in LESSONS:
        high, low = _per_seed(runs, lesson.high.key), _per_seed(runs, lesson.low.key)
        seeds = sorted(set(high) & set(low))
        if not seeds:
            continue
        pick = [r for r in runs if r["seed"] in seeds]
        a = _values(sorted(pick, key=lambda r: r["seed"]), lesson.high.key, lesson.metric, rare)
        b = _values(sorted(pick, key=lambda r: r["seed"]), lesson.low.key, lesson.metric, rare)
        diff, se, word = verdict(a, b)
        out.append(
            {
                "lab": lesson.lab,
                "effect": lesson.effect,
                "metric": lesson.metric,
                "high": a,
                "low": b,
                "seeds": seeds,
                "diff": diff,
                "se": se,
                "verdict": word.strip("*"),
                "pair_seconds": statistics.fmean(
                    high[s]["seconds"] + low[s]["seconds"] for s in seeds
                ),
            }
        )
    keep = ("cpus", "torch", "seeds", "smoke", "rare_classes", "commands")
    return {
        "environment": {k: env[k] for k in keep if k in env},
        "lessons": out,
        "pa3_chain": _pa3_chain(runs),
    }


def _pa3_chain(runs: list[dict]) -> list[dict]:
    """The PA3 chain's rows, in order, with every seed's scores and the PA3 report's."""
    spec, rows = STUDIES["pa3"], []
    for key, label, preset, _ in spec["rows"]:
        mine = sorted((r for r in runs if r["key"] == key), key=lambda r: r["seed"])
        if not mine:
            continue
        iou, accuracy = spec["seed"][key]
        rows.append(
            {
                "key": key,
                "label": label,
                "preset": preset,
                "miou": [r["miou"] for r in mine],
                "pixel_accuracy": [r["pixel_accuracy"] for r in mine],
                "pa3_iou": iou,
                "pa3_pixel_accuracy": accuracy / 100,
            }
        )
    return rows


#: The labs whose lesson has no CPU setting yet: what was tried (exploration runs with
#: labkit's own training, not rows of this report) and why it does not show.
NOT_FOUND = {
    "lab03": (
        "augmentation beats none on held-out data when training data is scarce",
        "First tries on seed 0, narrow U-Nets on the 6-class set: 40 images for 60 epochs "
        "(augmented 40.0 vs plain 40.7 % mIoU), 32 images for 120 epochs (39.1 vs 39.1), 4 "
        "classes and a wider U-Net (56.2 vs 56.4); the plain net never overfit, as the "
        "generator already draws every object at a random scale, rotation, shear and place. "
        "Then a net made to memorise: 8 images of the 4-class set at 64 px, a U-Net of base "
        "width 16 without weight decay, 500 steps (batch 4, 250 epochs, cosine), 32 validation "
        "images; augmentation scale 0.5-2, flips, rotation up to 30 degrees. Seeds 0-2: "
        "augmented 73.7 ± 3.6 vs plain 70.1 ± 1.4 % (+3.6, SE 2.3, 1.6 SE): ahead on every "
        "seed (+7.9, +2.6, +0.4), within noise; about 135 s a run on a quiet core. The noise is "
        "the 32 validation images, which hold 3 of the 4 classes; next: 3 classes, so that "
        "every class is in the 8 training and the validation images.",
    ),
    "lab06 (fine-tuned)": (
        "a pretrained encoder beats the same encoder from scratch when both are fine-tuned",
        "Tried on seed 0: 4 classes, 20 epochs (50.1 vs 47.8 % mIoU, with a first "
        "pretraining on whole scenes, and over 6 minutes a pair); 64 images, 40 epochs (46.0 "
        "vs 45.3, the same); with the final pretraining, 12 epochs (40.8 vs 40.8) and 6 "
        "classes with median-frequency weights, 10 epochs (15.3 vs 13.4). A fine-tuned random "
        "encoder catches up within the budget on data this simple, and the stand-in "
        "pretraining (about 500 steps on 32-px object crops) is far smaller "
        "than ImageNet's. The lesson above compares frozen encoders, as PA3's model was.",
    ),
    "lab07": (
        "DeepLab's learning-rate and schedule experiments separate; pretrained beats scratch",
        "Not attempted yet. The quick profile trains each ResNet-50 DeepLab for 2 steps on 2 "
        "images, so nothing is learned; a DeepLab head on a small dilated encoder that learns "
        "in minutes comes first. Output stride and ASPP are the DeepLab study above.",
    ),
    "lab08": (
        "deformable v2 beats plain convolutions on strongly deformed objects, v1 between",
        "Tried: DCN in ResNet stages 3 and 4, batch 4, 240 training and 200 validation images "
        "at deformation 1.0, seeds 0-2: v2 21.4 ± 0.1 vs plain 23.5 ± 0.2 % mIoU (-2.1, does "
        "not hold); v1 not run. The network learns only background and squares in that "
        "budget, so the offsets have no shape boundary to adapt to. Next: more steps, "
        "balanced classes (no long tail), larger feature maps.",
    ),
}


def pair_lines(data: dict) -> list[str]:
    """The lessons' table: effect, verdict and the minutes one seed's two runs take."""
    lines = [
        "Each lab's lesson, in one table (each lab shows its line, from `labkit/lessons.json`):",
        "",
        "| lab | lesson | gap (points) | SE | here | one seed's pair, 1 thread each |",
        "|---|---|---:|---:|---|---:|",
    ]
    for m in lessons_summary(data)["lessons"]:
        gap = "—" if math.isnan(m["diff"]) else f"{100 * m['diff']:+.2f}"
        se = "—" if math.isnan(m["se"]) else f"{100 * m['se']:.2f}"
        word = f"**{m['verdict']}**" if m["verdict"] in ("holds", "does not hold") else m["verdict"]
        lines.append(
            f"| {m['lab'][:5]} | {m['effect']} | {gap} | {se} | {word} | "
            f"{m['pair_seconds'] / 60:.1f} min |"
        )
    lines += ["", "Not shown on a CPU yet:", ""]
    lines += [f"- **{lab}: {effect}.** {why}" for lab, (effect, why) in NOT_FOUND.items()]
    return lines
