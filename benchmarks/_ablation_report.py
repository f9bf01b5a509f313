"""What ``benchmarks/ablations.py`` runs, what the seeds claimed, and the report it writes.

A study is a list of rows ``(key, label, preset, overrides)``. A claim says which of two
rows should score higher on a metric; its verdict compares the means over the seeds with the
standard error of their difference, so that a gap smaller than the seed-to-seed noise is
called what it is.
"""

from __future__ import annotations

import math
import statistics

from labkit.lessons import LESSONS

STUDIES = {
    "pa3": {
        "title": "The PA3 chain (the PA3 report)",
        # The same cut for every row of a study, so its rows stay comparable: the presets'
        # own scale would take about an hour for the 39 runs on 2 cores. At 250 images the
        # whole run took 27-30.4 minutes on the shared 2-core machine; 200 leaves a margin.
        "budget": {"max_train_images": 200},
        "rows": [
            ("baseline", "baseline FCN", "baseline_quick", {}),
            ("cosine", "+ cosine schedule", "cosine_quick", {}),
            ("augment", "+ augmentation", "augment_quick", {}),
            ("weighted", "+ weighted loss", "weighted_quick", {}),
            ("unet", "U-Net (with all of the above)", "unet_quick", {}),
            (
                "resnet18",
                "ResNet-18 encoder, from scratch (with all of the above)",
                "resnet18_quick",
                {},
            ),
        ],
        # The PA3 report's figures on its VOC subset: (IoU, pixel accuracy %).
        "seed": {
            "baseline": (0.055, 72.08),
            "cosine": (0.0613, 71.58),
            "augment": (0.0639, 70.98),
            "weighted": (0.068, 69.1),
            "unet": (0.087, 67.747),
            "resnet18": (0.15, 74.4),
        },
    },
    "dcn": {
        "title": "Deformable convolution (the DCN report)",
        "budget": {"max_train_images": 240, "max_val_images": 100},
        "rows": [
            ("dcn_conv", "plain 3×3 conv", "dcn_conv_quick", {}),
            ("dcn_v1", "DCN v1", "dcn_v1_quick", {}),
            ("dcn_v2", "DCN v2", "dcn_v2_quick", {}),
        ],
        # The DCN report on ADE20K, DeepLab v3-R50: (valid mIoU %, train mIoU %).
        "seed": {"dcn_conv": (22.18, 31.03), "dcn_v1": (22.98, 32.09), "dcn_v2": (23.59, 32.92)},
    },
    "deeplab": {
        "title": "DeepLab v3: output stride and ASPP (the DeepLab lab)",
        "budget": {"max_train_images": 120, "crop_size": 64, "max_val_images": 80},
        "rows": [
            ("os16_aspp", "OS 16, ASPP", "deeplab_r50_quick", {}),
            ("os8_aspp", "OS 8, ASPP", "deeplab_r50_quick", {"model_options.output_stride": 8}),
            (
                "os16_head",
                "OS 16, plain 3×3 head",
                "deeplab_r50_quick",
                {"model": "fcn_resnet50", "model_options.output_stride": 16},
            ),
            (
                "os8_head",
                "OS 8, plain 3×3 head",
                "deeplab_r50_quick",
                {"model": "fcn_resnet50", "model_options.output_stride": 8},
            ),
        ],
        "seed": {},
    },
}


def _lesson_rows() -> list[tuple]:
    """The lessons' rows that no other study trains (a lesson may reuse a PA3 row)."""
    others = {key for study in STUDIES.values() for key, *_ in study["rows"]}
    rows: dict[str, tuple] = {}
    for lesson in LESSONS:
        for arm in (lesson.low, lesson.high):
            if arm.key not in others:
                rows[arm.key] = (
                    arm.key,
                    f"{lesson.lab[:5]}: {arm.label}",
                    arm.preset,
                    arm.overrides,
                )
    return list(rows.values())


STUDIES["lessons"] = {
    "title": "Each lab's lesson on a CPU (labkit.lessons)",
    # Each lesson row carries its own budget (labkit.lessons): the rows share none.
    "budget": {},
    "rows": _lesson_rows(),
    "seed": {},
}


def lesson_claim(lesson) -> str:
    """A lesson's line in the claims table (and its key in lessons.json's summary)."""
    return f"{lesson.lab[:5]}: {lesson.effect}"


# (study, metric, higher row, lower row, the claim in words)
CLAIMS = [
    ("pa3", "miou", "cosine", "baseline", "a cosine schedule raises mIoU (0.055 → 0.061)"),
    (
        "pa3",
        "pixel_accuracy",
        "baseline",
        "cosine",
        "… and costs a little pixel accuracy (72.1 → 71.6 %)",
    ),
    ("pa3", "miou", "augment", "cosine", "augmentation raises mIoU (0.061 → 0.064)"),
    ("pa3", "pixel_accuracy", "cosine", "augment", "… and costs pixel accuracy (71.6 → 71.0 %)"),
    ("pa3", "miou", "weighted", "augment", "a weighted loss raises mIoU (0.064 → 0.068)"),
    (
        "pa3",
        "rare_iou",
        "weighted",
        "augment",
        "… by lifting the rare classes (the reason for weighting)",
    ),
    ("pa3", "pixel_accuracy", "augment", "weighted", "… and costs pixel accuracy (71.0 → 69.1 %)"),
    ("pa3", "miou", "unet", "weighted", "U-Net beats the FCN chain's end (0.087 vs 0.068)"),
    (
        "pa3",
        "miou",
        "resnet18",
        "unet",
        "the ResNet-18 encoder scores best (0.15; pretrained there, from scratch here)",
    ),
    ("dcn", "miou", "dcn_v1", "dcn_conv", "DCN v1 beats plain convs (+0.80 mIoU points)"),
    ("dcn", "miou", "dcn_v2", "dcn_v1", "DCN v2 beats v1 (+0.61 points)"),
    ("dcn", "miou", "dcn_v2", "dcn_conv", "DCN v2 beats plain convs (+1.41 points)"),
    ("dcn", "train_miou", "dcn_v2", "dcn_conv", "… on the training set too (+1.89 points)"),
    (
        "deeplab",
        "miou",
        "os8_aspp",
        "os16_aspp",
        "output stride 8 beats 16, with ASPP (denser features, more compute)",
    ),
    ("deeplab", "miou", "os8_head", "os16_head", "output stride 8 beats 16, plain head"),
    ("deeplab", "miou", "os16_aspp", "os16_head", "ASPP beats a plain head at OS 16"),
    ("deeplab", "miou", "os8_aspp", "os8_head", "ASPP beats a plain head at OS 8"),
] + [
    ("lessons", lesson.metric, lesson.high.key, lesson.low.key, lesson_claim(lesson))
    for lesson in LESSONS
    if lesson.table == "lesson"  # the others compare rows whose own study claims them
]


def _values(runs: list[dict], key: str, metric: str, rare: list[str]) -> list[float]:
    rows = [r for r in runs if r["key"] == key]
    if metric == "rare_iou":
        return [_mean_sd([r["iou"][c] for c in rare])[0] for r in rows]
    return [r[metric] for r in rows]


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation, leaving out NaN (a class absent from the split)."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    mean = statistics.fmean(values) if values else math.nan
    return mean, statistics.stdev(values) if len(values) > 1 else math.nan


def _pct(values: list[float]) -> str:
    mean, sd = _mean_sd(values)
    if math.isnan(mean):
        return "—"  # the class is in no validation mask
    return f"{100 * mean:.1f}" if math.isnan(sd) else f"{100 * mean:.1f} ± {100 * sd:.1f}"


def verdict(high: list[float], low: list[float]) -> tuple[float, float, str]:
    """The mean difference ``high - low``, its standard error, and the verdict in words."""
    (m1, s1), (m2, s2) = _mean_sd(high), _mean_sd(low)
    diff = m1 - m2
    se = (s1**2 / len(high) + s2**2 / len(low)) ** 0.5
    if math.isnan(diff):
        return diff, se, "not measured (the classes are in no validation mask)"
    if diff == 0:
        return diff, se, "no difference"
    if math.isnan(se):  # one seed: no noise estimate
        return diff, se, "holds (one seed)" if diff > 0 else "does not hold (one seed)"
    if diff > 2 * se:
        return diff, se, "**holds**"
    if diff > 0:
        return diff, se, "same direction, within noise"
    if diff >= -2 * se:
        return diff, se, "opposite direction, within noise"
    return diff, se, "**does not hold**"


def _table(study: str, runs: list[dict], rare: list[str]) -> list[str]:
    spec, lines = STUDIES[study], []
    base = [r for r in runs if r["key"] == spec["rows"][0][0]]
    base_params = base[0]["parameters"] if base else None
    base_epoch = statistics.fmean(r["epoch_seconds"] for r in base) if base else None
    if study == "pa3":
        head = (
            ["step", "val mIoU %", "pixel acc %"]
            + [f"IoU {c} %" for c in rare]
            + ["PA3 report: IoU, pixel acc %"]
        )
    elif study == "dcn":
        head = [
            "model",
            "valid mIoU %",
            "train mIoU %",
            "params",
            "s / epoch",
            "DCN report: valid, train mIoU %",
        ]
    else:
        head = ["model", "val mIoU %", "pixel acc %", "params", "s / epoch"]
    lines += ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for key, label, _, _ in spec["rows"]:
        rows = [r for r in runs if r["key"] == key]
        if not rows:
            continue
        miou = _pct([r["miou"] for r in rows])
        cells = [label]
        if study == "pa3":
            cells += [miou, _pct([r["pixel_accuracy"] for r in rows])]
            cells += [_pct([r["iou"][c] for r in rows]) for c in rare]
            iou, acc = spec["seed"][key]
            cells.append(f"{iou:.3f}, {acc:.1f}")
        else:
            if study == "dcn":
                if key != spec["rows"][0][0] and base:
                    gap = 100 * (
                        statistics.fmean(r["miou"] for r in rows)
                        - statistics.fmean(r["miou"] for r in base)
                    )
                    miou += f" ({gap:+.2f})"
                cells += [miou, _pct([r["train_miou"] for r in rows])]
            else:
                cells += [miou, _pct([r["pixel_accuracy"] for r in rows])]
            params = rows[0]["parameters"]
            extra = (
                ""
                if key == spec["rows"][0][0] or study != "dcn"
                else f" (+{params - base_params:,}, +{100 * (params - base_params) / base_params:.1f} %)"
            )
            epoch = statistics.fmean(r["epoch_seconds"] for r in rows)
            cells += [f"{params:,}{extra}", f"{epoch:.0f} ({epoch / base_epoch:.2f}×)"]
            if study == "dcn":
                valid, train = spec["seed"][key]
                cells.append(f"{valid:.2f}, {train:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _dcn_costs(runs: list[dict]) -> list[str]:
    """The DCN report's cost claims: parameters added and slower learning."""
    by = {k: [r for r in runs if r["key"] == k] for k in ("dcn_conv", "dcn_v1", "dcn_v2")}
    if not all(by.values()):
        return []
    base = by["dcn_conv"][0]["parameters"]
    added = {k: by[k][0]["parameters"] - base for k in ("dcn_v1", "dcn_v2")}
    epoch = {k: statistics.fmean(r["epoch_seconds"] for r in v) for k, v in by.items()}
    return [
        f"| DCN adds 300–400k parameters, about 1 % of DeepLab v3-R50 | — | — | v1 "
        f"+{added['dcn_v1']:,} (+{100 * added['dcn_v1'] / base:.1f} %), v2 +{added['dcn_v2']:,} "
        f"(+{100 * added['dcn_v2'] / base:.1f} %) of a {base / 1e6:.1f} M ResNet-18 net |",
        f"| learning is a little slower | — | — | an epoch takes "
        f"{epoch['dcn_v1'] / epoch['dcn_conv']:.2f}× (v1) and "
        f"{epoch['dcn_v2'] / epoch['dcn_conv']:.2f}× (v2) the plain net's time |",
    ]


_LESSONS_INTRO = (
    "Each lab's headline effect, in a setting a student can run on a laptop CPU: each row "
    "is a preset (`labkit/presets/lesson*_quick.yaml`, with the overrides `labkit.lessons` "
    "lists). A lesson may compare rows of the studies above (lab 05's are the PA3 chain's, "
    "lab 07's second table the DeepLab study's); those are not trained twice."
)


def _budget_line(runs: list[dict], env: dict) -> str:
    """What the whole of ``make ablations`` costs: every run's training time, summed, and
    spread over the workers (each command's wall time above includes any contention)."""
    total = sum(r["seconds"] for r in runs) / 60
    return (
        f"**Budget:** the {len(runs)} runs trained for {total:.0f} minutes of one CPU thread "
        f"in all: about {total / env['jobs']:.0f} minutes of `make ablations` on "
        f"{env['jobs']} cores, plus 3–4 minutes, once, to pretrain the Shapes encoder "
        "(`labkit pretrain`, cached in the torch hub folder)."
    )


def render(data: dict, *, studies: list[str]) -> str:
    """ABLATIONS.md from the runs in ``data`` (see ``benchmarks/ablations.py``)."""
    env, runs, rare = data["environment"], data["runs"], data["environment"]["rare_classes"]
    seeds = ", ".join(map(str, env["seeds"]))
    made = " and then ".join(
        f"`{c['command'].strip()}` in {c['wall_seconds'] / 60:.1f} minutes"
        for c in env.get("commands")
        or [{"command": env["command"], "wall_seconds": env["wall_seconds"]}]
    )
    lines = [
        "# labkit ablations: the seeds' experiments on the Shapes set",
        "",
        f"Made by {made} (`make ablations` runs them all) on {env['cpus']} CPU cores, "
        f"{env['jobs']} runs at a time with one thread each, torch {env['torch']}. "
        f"Seeds {seeds}; every figure is the mean ± standard deviation over the seeds of "
        "the last epoch's validation score. Each row is a preset "
        "(`labkit train --preset NAME --set seed=S`); `benchmarks/ablations.json` has "
        "every run.",
        "",
        _budget_line(runs, env),
        "",
    ]
    if env["smoke"]:
        lines += [
            "**Smoke run: one batch of 4 images of 32², one epoch; the numbers mean nothing.**",
            "",
        ]
    lines += [
        "A verdict compares the mean gap with its standard error (SE) over the seeds: "
        "**holds** when the gap has the claimed sign and exceeds 2 SE, *within noise* "
        "when it is smaller than that.",
        "",
        "Scale: the seeds trained for hours on real photographs; each run here takes one "
        "to five minutes on one CPU thread, on a few hundred Shapes images, and stops "
        "far from convergence. A gap within noise says this budget cannot separate the "
        "two rows, not that the claim is false; a claim that does not hold here says "
        "what happens at this budget. The rare classes are the two object classes with "
        "the fewest training pixels.",
        "",
    ]
    for study in studies:
        budget = ", ".join(f"`{k}={v}`" for k, v in STUDIES[study]["budget"].items())
        intro = (
            f"Every row of this study runs its preset with {budget}, to fit the time budget."
            if budget
            else _LESSONS_INTRO
        )
        lines += [f"## {STUDIES[study]['title']}", "", intro, ""] + _table(study, runs, rare)
        who = "the lab's lesson" if study == "lessons" else "the seed's claim"
        lines += ["", f"| {who} | gap (points) | SE | here |", "|---|---:|---:|---|"]
        for s, metric, high, low, text in CLAIMS:
            a, b = (_values(runs, k, metric, rare) for k in (high, low))
            if s != study or not a or not b:
                continue
            diff, se, word = verdict(a, b)
            gap = "—" if math.isnan(diff) else f"{100 * diff:+.2f}"
            noise = "—" if math.isnan(se) else f"{100 * se:.2f}"
            lines.append(f"| {text} | {gap} | {noise} | {word} |")
        if study == "dcn":
            lines += _dcn_costs(runs)
        lines.append("")
        if study == "lessons":
            from _lessons_report import pair_lines  # it imports this module

            lines += pair_lines(data) + [""]
    return "\n".join(lines)
