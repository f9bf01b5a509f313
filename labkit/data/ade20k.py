"""ADE20K (the SceneParsing / ADEChallengeData2016 release, 150 classes) reader.

Layout under ``root``::

    root/ADEChallengeData2016/
        images/{training,validation}/<name>.jpg
        annotations/{training,validation}/<name>.png    grey PNG: 0 = other, 1..150 = classes

Label 0 ("other objects") becomes 255 and every other label moves down by one, so class ids
run 0..149 — mmsegmentation's ``reduce_zero_label``, the convention ADE20K results are
reported in.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from labkit.data._paths import missing, resolve_root
from labkit.data.voc import check_files, read_label, read_rgb, to_sample
from labkit.errors import UsageError

__all__ = ["ADE20K", "ADE20K_CLASSES"]

#: The 150 SceneParse150 class names; index = class id after ``reduce_zero_label``.
ADE20K_CLASSES: tuple[str, ...] = (
    "wall",
    "building",
    "sky",
    "floor",
    "tree",
    "ceiling",
    "road",
    "bed",
    "windowpane",
    "grass",
    "cabinet",
    "sidewalk",
    "person",
    "earth",
    "door",
    "table",
    "mountain",
    "plant",
    "curtain",
    "chair",
    "car",
    "water",
    "painting",
    "sofa",
    "shelf",
    "house",
    "sea",
    "mirror",
    "rug",
    "field",
    "armchair",
    "seat",
    "fence",
    "desk",
    "rock",
    "wardrobe",
    "lamp",
    "bathtub",
    "railing",
    "cushion",
    "base",
    "box",
    "column",
    "signboard",
    "chest of drawers",
    "counter",
    "sand",
    "sink",
    "skyscraper",
    "fireplace",
    "refrigerator",
    "grandstand",
    "path",
    "stairs",
    "runway",
    "case",
    "pool table",
    "pillow",
    "screen door",
    "stairway",
    "river",
    "bridge",
    "bookcase",
    "blind",
    "coffee table",
    "toilet",
    "flower",
    "book",
    "hill",
    "bench",
    "countertop",
    "stove",
    "palm",
    "kitchen island",
    "computer",
    "swivel chair",
    "boat",
    "bar",
    "arcade machine",
    "hovel",
    "bus",
    "towel",
    "light",
    "truck",
    "tower",
    "chandelier",
    "awning",
    "streetlight",
    "booth",
    "television receiver",
    "airplane",
    "dirt track",
    "apparel",
    "pole",
    "land",
    "bannister",
    "escalator",
    "ottoman",
    "bottle",
    "buffet",
    "poster",
    "stage",
    "van",
    "ship",
    "fountain",
    "conveyer belt",
    "canopy",
    "washer",
    "plaything",
    "swimming pool",
    "stool",
    "barrel",
    "basket",
    "waterfall",
    "tent",
    "bag",
    "minibike",
    "cradle",
    "oven",
    "ball",
    "food",
    "step",
    "tank",
    "trade name",
    "microwave",
    "pot",
    "animal",
    "bicycle",
    "lake",
    "dishwasher",
    "screen",
    "blanket",
    "sculpture",
    "hood",
    "sconce",
    "vase",
    "traffic light",
    "tray",
    "ashcan",
    "fan",
    "pier",
    "crt screen",
    "plate",
    "monitor",
    "bulletin board",
    "shower",
    "radiator",
    "glass",
    "clock",
    "flag",
)

_SPLITS = ("training", "validation")
_EXPECTED = (
    "ADEChallengeData2016/images/<split>/<name>.jpg and "
    "ADEChallengeData2016/annotations/<split>/<name>.png, split in training/validation"
)
_HINT = (
    "Pass root= the folder that holds ADEChallengeData2016 (the SceneParsing release, "
    "ADEChallengeData2016.zip), or set LABKIT_DATA to it. Without ADE20K, use the Shapes "
    "set: `labkit data shapes --out DIR`."
)

# 0 -> 255, k -> k - 1, 255 stays 255 (uint8 wrap-around turns 0 - 1 into 255).
_REDUCE_ZERO = (np.arange(256, dtype=np.int64) - 1).astype(np.uint8)
_REDUCE_ZERO[255] = 255


class ADE20K(Dataset):
    """ADE20K scene parsing, 150 classes, with label 0 mapped to 255 (ignored).

    Args:
        root (str | os.PathLike | None): the folder that holds ``ADEChallengeData2016``; ``None``
            uses ``$LABKIT_DATA``.
        split (str): ``"training"`` (20 210 images) or ``"validation"`` (2 000 images).
        transforms (Callable[..., Any] | None): optional callable ``transforms(image, mask)``; it
            receives ``tv_tensors.Image[3, H, W]`` uint8 and ``tv_tensors.Mask[H, W]`` uint8 (class
            ids 0..149 and 255) and what it returns is returned.

    Without ``transforms`` an item is ``(image, mask)``: ``image (Tensor[3, H, W])`` float32
    in [0, 1] and ``mask (Tensor[H, W])`` int64, class ids 0..149 and 255.

    Attributes:
        root (Path): the folder that holds ``ADEChallengeData2016``.
        split (str): the split read.
        ids (list[str]): the image names without extension, sorted.
        classes (tuple[str, ...]): ``ADE20K_CLASSES``.
        num_classes (int): 150.

    Raises:
        ValueError: if ``split`` is not ``"training"`` or ``"validation"``.
        DatasetNotFoundError: if the image folder is missing or empty, or an image has no
            annotation.
    """

    classes = ADE20K_CLASSES
    num_classes = len(ADE20K_CLASSES)

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "training",
        transforms: Callable[..., Any] | None = None,
    ) -> None:
        if split not in _SPLITS:
            raise UsageError(f"ADE20K split must be one of {_SPLITS}; got {split!r}.")
        self.root = resolve_root(root, dataset="ADE20K", expected=_EXPECTED)
        self.split = split
        self.transforms = transforms
        base = self.root / "ADEChallengeData2016"
        self._image_dir = base / "images" / split
        self._mask_dir = base / "annotations" / split
        if not self._image_dir.is_dir():
            raise missing(self._image_dir, dataset="ADE20K", expected=_EXPECTED, hint=_HINT)
        with os.scandir(self._image_dir) as entries:
            self.ids = sorted(e.name[:-4] for e in entries if e.name.endswith(".jpg"))
        if not self.ids:
            raise missing(
                self._image_dir / "*.jpg",
                dataset="ADE20K",
                expected=_EXPECTED,
                hint=f"The folder holds no .jpg images. {_HINT}",
            )
        check_files(
            self.ids, self._mask_dir, ".png", dataset="ADE20K", expected=_EXPECTED, hint=_HINT
        )

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Any:
        name = self.ids[index]
        image = read_rgb(self._image_dir / f"{name}.jpg")
        label = read_label(self._mask_dir / f"{name}.png", size=image.shape[1::-1])
        return to_sample(image, _REDUCE_ZERO[label], self.transforms)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, len={len(self)})"
        )
