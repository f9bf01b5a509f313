"""Tiny dataset trees in the real on-disk layouts of Pascal VOC 2012 and ADE20K.

For tests that must open the full profile's datasets exactly as a course server holds them
(``$LABKIT_DATA/VOCdevkit/VOC2012`` and ``$LABKIT_DATA/ADEChallengeData2016``), only small:
each image a few dozen pixels, of varying sizes (as the real sets' are), holding a
background and a few rectangular objects. The classes drawn are chosen at random from the
full range (21 for VOC, 150 + "other" for ADE20K), so a class missing from a split is
normal, as it is in small parts of the real sets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from labkit.data.palette import voc_colormap

__all__ = ["write_ade", "write_voc"]


def _labels(
    rng: np.random.Generator,
    h: int,
    w: int,
    *,
    background: int,
    classes: range,
    outline: int | None,
) -> np.ndarray:
    """A label map (H, W) uint8: ``background`` with 1-3 rectangles of random classes, each
    drawn with a 1-pixel ``outline`` (VOC's void border) when given."""
    label = np.full((h, w), background, dtype=np.uint8)
    for _ in range(rng.integers(1, 4)):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        y1, x1 = y0 + rng.integers(h // 4, h // 2 + 1), x0 + rng.integers(w // 4, w // 2 + 1)
        if outline is not None:
            label[max(y0 - 1, 0) : y1 + 1, max(x0 - 1, 0) : x1 + 1] = outline
        label[y0:y1, x0:x1] = rng.choice(classes)
    return label


def _image(rng: np.random.Generator, label: np.ndarray) -> Image.Image:
    """An RGB image whose colour follows the label (so a network has something to learn)."""
    colour = (np.asarray(label, dtype=np.int64)[..., None] * np.array([37, 91, 53])) % 256
    noise = rng.integers(-20, 21, colour.shape)
    return Image.fromarray(np.clip(colour + noise, 0, 255).astype(np.uint8))


def _size(rng: np.random.Generator, sizes: tuple[int, int]) -> tuple[int, int]:
    return int(rng.integers(*sizes, endpoint=True)), int(rng.integers(*sizes, endpoint=True))


def write_voc(
    root: Path,
    *,
    num_train: int = 16,
    num_val: int = 4,
    sizes: tuple[int, int] = (64, 96),
    seed: int = 0,
) -> Path:
    """Write ``root/VOCdevkit/VOC2012`` as VOC 2012 holds it.

    JPEG images (one of them greyscale, as a few of VOC's are), palette PNG masks with class
    ids 0-20 and 255 around every object, and ``ImageSets/Segmentation/{train,val,trainval}.txt``.

    Args:
        root: the folder ``$LABKIT_DATA`` will point to.
        num_train, num_val: images per split.
        sizes: the smallest and largest side length in pixels.
        seed: the random seed.

    Returns:
        The ``VOC2012`` folder.
    """
    rng = np.random.default_rng(seed)
    base = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    palette = voc_colormap().reshape(-1).tolist()
    splits: dict[str, list[str]] = {"train": [], "val": []}
    for k in range(num_train + num_val):
        name = f"{2007 + k % 5}_{k:06d}"
        splits["train" if k < num_train else "val"].append(name)
        label = _labels(rng, *_size(rng, sizes), background=0, classes=range(1, 21), outline=255)
        image = _image(rng, label)
        if k == 1:
            image = image.convert("L")  # readers must hand back RGB
        image.save(base / "JPEGImages" / f"{name}.jpg", quality=90)
        mask = Image.fromarray(label, mode="P")
        mask.putpalette(palette)
        mask.save(base / "SegmentationClass" / f"{name}.png")
    splits["trainval"] = splits["train"] + splits["val"]
    for split, ids in splits.items():
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return base


def write_ade(
    root: Path,
    *,
    num_train: int = 8,
    num_val: int = 4,
    sizes: tuple[int, int] = (64, 96),
    seed: int = 0,
) -> Path:
    """Write ``root/ADEChallengeData2016`` as the SceneParsing release holds it.

    ``images/{training,validation}/ADE_*.jpg`` and grey ``annotations/...png`` with 0 =
    "other" (ignored by readers) and 1-150 the classes; the "background" of each image is a
    real class (wall, 1 on disk), as it so often is in ADE20K.

    Args:
        root: the folder ``$LABKIT_DATA`` will point to.
        num_train, num_val: images per split.
        sizes: the smallest and largest side length in pixels.
        seed: the random seed.

    Returns:
        The ``ADEChallengeData2016`` folder.
    """
    rng = np.random.default_rng(seed)
    base = root / "ADEChallengeData2016"
    for split, count, prefix in (
        ("training", num_train, "ADE_train"),
        ("validation", num_val, "ADE_val"),
    ):
        (base / "images" / split).mkdir(parents=True, exist_ok=True)
        (base / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            label = _labels(
                rng, *_size(rng, sizes), background=1, classes=range(0, 151), outline=None
            )
            name = f"{prefix}_{k + 1:08d}"
            _image(rng, label).save(base / "images" / split / f"{name}.jpg", quality=90)
            Image.fromarray(label, mode="L").save(base / "annotations" / split / f"{name}.png")
    return base
