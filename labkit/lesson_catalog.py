"""What each lab teaches, as comparisons ``make ablations`` measures: the catalogue of lessons.

A :class:`Lesson` names an effect a lab teaches and the two runs that show it, each an
:class:`Arm` (a preset plus overrides), so the comparison is one anyone can repeat with
``labkit train --preset NAME``. ``benchmarks/ablations.py`` trains every arm over the seeds;
:mod:`labkit.lessons` shows what it found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LESSONS", "Arm", "Lesson"]


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: a preset and the overrides every seed's run adds.

    Attributes:
        key: the run's name in ``benchmarks/ablations.json`` (``<key>-seed<S>``).
        label: what the tables call it.
        preset: a ``labkit/presets`` name.
        overrides: config keys set on top of the preset (``max_train_images``, ...).
    """

    key: str
    label: str
    preset: str
    overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Lesson:
    """An effect a lab teaches: ``high`` should score more than ``low`` on ``metric``.

    Attributes:
        lab: the lab's folder name, e.g. ``"lab02_lr_schedules"``.
        effect: the effect in words.
        metric: ``"miou"`` (last epoch's validation mIoU) or ``"rare_iou"`` (the mean IoU of
            the two object classes with the fewest training pixels).
        high, low: the two rows.
        setting: the measured setting in words (the lab's quick profile is smaller).
        cpu_preset: the preset the lab's ``PROFILE = "cpu"`` trains with: the measured
            setting, so that the student's live comparison is the one measured; None for a
            comparison too long for a laptop, shown as measured only.
        table: ``"lesson"`` for the lab's headline effect; another name puts the comparison
            in a further table of the lab (``lesson_table(lab, table=...)``).
    """

    lab: str
    effect: str
    metric: str
    high: Arm
    low: Arm
    setting: str
    cpu_preset: str | None
    table: str = "lesson"


# The PA3 chain's rows at the budget of its study in benchmarks/ablations.py; lessons that
# use them share those runs instead of training them again.
_PA3 = {"max_train_images": 200}
_LAB04 = (
    "narrow U-Net (depth 3, width 8), 6-class Shapes at 64 px, 200 images, 30 epochs at lr "
    "0.01 with the cosine schedule"
)
_L04_NONE = Arm("l04_none", "unweighted", "lesson04_unweighted_quick")
_L07 = Arm("l07_pretrained", "Shapes-pretrained, lr 0.01", "lesson07_pretrained_quick")
# Lab 07's second table: the DeepLab study's rows of benchmarks/ablations.py, at its budget.
_DEEPLAB = {"max_train_images": 120, "crop_size": 64, "max_val_images": 80}
_OS8, _HEAD8 = (
    {"model_options.output_stride": 8},
    {
        "model": "fcn_resnet50",
        "model_options.output_stride": 8,
    },
)
_HEAD16 = {"model": "fcn_resnet50", "model_options.output_stride": 16}
_OS16_ASPP, _OS8_ASPP = ("os16_aspp", "OS 16, ASPP"), ("os8_aspp", "OS 8, ASPP")
_OS16_HEAD, _OS8_HEAD = ("os16_head", "OS 16, plain 3×3 head"), ("os8_head", "OS 8, plain 3×3 head")
_LAB07 = (
    "DeepLab v3-ResNet-18 (output stride 16, fine-tuned), 4-class Shapes at 64 px, 48 "
    "images, 24 epochs of SGD with the poly schedule; pretrained once on generated Shapes "
    "objects (labkit.models.pretrain)"
)

LESSONS: tuple[Lesson, ...] = (
    Lesson(
        "lab02_lr_schedules",
        "a cosine schedule beats a constant learning rate",
        "miou",
        Arm("l02_cosine", "cosine", "lesson02_cosine_quick"),
        Arm("l02_constant", "constant", "lesson02_constant_quick"),
        "narrow U-Net, 4-class Shapes at 64 px, 200 images, 30 epochs at lr 0.01",
        "lesson02_constant_quick",
    ),
    Lesson(
        "lab03_augmentation",
        "augmentation beats none on held-out data when training data is scarce",
        "miou",
        Arm("l03_augment", "augmented", "lesson03_augment_quick"),
        Arm("l03_plain", "plain", "lesson03_plain_quick"),
        "U-Net (depth 3, width 16, no weight decay) on 8 training images of 2-class Shapes at "
        "64 px (background vs disc), 500 steps; scored on 100 held-out images; augmentation: "
        "scale 0.5-2, flips, rotation up to 30 degrees",
        "lesson03_plain_quick",
    ),
    Lesson(
        "lab04_weighted_loss",
        "class weights raise the rare classes' IoU",
        "rare_iou",
        Arm("l04_weighted", "median-frequency", "lesson04_weighted_quick"),
        _L04_NONE,
        _LAB04,
        "lesson04_unweighted_quick",
    ),
    Lesson(
        "lab04_weighted_loss",
        "tempered weights (1 / √ frequency) raise mIoU",
        "miou",
        Arm("l04_sqrt", "√ median-frequency", "lesson04_sqrt_quick"),
        _L04_NONE,
        _LAB04,
        "lesson04_unweighted_quick",
    ),
    Lesson(
        "lab05_unet",
        "U-Net's skip connections beat the FCN",
        "miou",
        Arm("unet", "U-Net", "unet_quick", _PA3),
        Arm("weighted", "baseline FCN", "weighted_quick", _PA3),
        "U-Net vs baseline FCN at half width, both with median-frequency weights, cosine "
        "schedule and augmentation; 6-class Shapes at 128 px, 200 images, 6 epochs",
        "lesson05_unet_quick",
    ),
    Lesson(
        "lab06_resnet_transfer",
        "a pretrained encoder beats the same encoder at random (both frozen)",
        "miou",
        Arm("l06_pretrained", "Shapes-pretrained, frozen", "lesson06_pretrained_quick"),
        Arm("l06_scratch", "scratch, frozen", "lesson06_scratch_quick"),
        "ResNet-18 encoder (frozen) + deconvolution decoder, 4-class Shapes at 64 px, 200 "
        "images, 15 epochs; pretrained once on generated Shapes objects (labkit.models.pretrain)",
        "lesson06_scratch_quick",
    ),
    Lesson(
        "lab07_deeplab_v3",
        "a pretrained encoder beats the same DeepLab from scratch (both fine-tuned)",
        "miou",
        _L07,
        Arm("l07_scratch", "scratch, lr 0.01", "lesson07_scratch_quick"),
        _LAB07,
        "lesson07_pretrained_quick",
    ),
    Lesson(
        "lab07_deeplab_v3",
        "the learning rate matters: SGD at 0.01 beats 0.001 in the same budget",
        "miou",
        _L07,
        Arm("l07_lr_low", "Shapes-pretrained, lr 0.001", "lesson07_lr_low_quick"),
        _LAB07,
        "lesson07_pretrained_quick",
    ),
    *(
        Lesson(
            "lab07_deeplab_v3",
            effect,
            "miou",
            Arm(*high, "deeplab_r50_quick", {**_DEEPLAB, **high_overrides}),
            Arm(*low, "deeplab_r50_quick", {**_DEEPLAB, **low_overrides}),
            "DeepLab v3-ResNet-50 from scratch (deeplab_r50_quick), 6-class Shapes at 128 px "
            "cropped to 64, 120 images, 2 epochs; hours on a laptop, so no live run",
            None,
            table="architecture",
        )
        for effect, high, high_overrides, low, low_overrides in (
            ("output stride 8 beats 16, with ASPP", _OS8_ASPP, _OS8, _OS16_ASPP, {}),
            ("output stride 8 beats 16, plain head", _OS8_HEAD, _HEAD8, _OS16_HEAD, _HEAD16),
            ("ASPP beats a plain 3×3 head at OS 16", _OS16_ASPP, {}, _OS16_HEAD, _HEAD16),
            ("ASPP beats a plain 3×3 head at OS 8", _OS8_ASPP, _OS8, _OS8_HEAD, _HEAD8),
        )
    ),
)
