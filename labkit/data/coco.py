"""COCO instances turned into 21-class (VOC) semantic segmentation.

Layout under ``root`` (the standard COCO 2017 download)::

    root/annotations/instances_<split>.json
    root/<split>/<file_name>.jpg

The conversion is the one in torchvision's segmentation references
(``references/segmentation/coco_utils.py``): keep the annotations whose category is one of
the 20 VOC categories, map it to its VOC index, rasterise each instance (polygons or RLE)
with pycocotools, and mark every pixel covered by more than one instance — of the same
category or not — with 255.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask
from torch.utils.data import Dataset

from labkit.data._paths import DatasetNotFoundError, missing, resolve_root
from labkit.data.palette import VOC_CLASSES
from labkit.data.voc import check_files, read_rgb, to_sample

__all__ = ["COCOSegmentation", "COCO_VOC_CATEGORIES", "instances_to_mask"]

#: COCO category id of each VOC class, index = VOC class id (0 stands for background).
COCO_VOC_CATEGORIES: tuple[int, ...] = (
    0,
    5,
    2,
    16,
    9,
    44,
    6,
    3,
    17,
    62,
    21,
    67,
    18,
    19,
    4,
    1,
    64,
    20,
    63,
    7,
    72,
)
_TO_VOC = {cat: voc for voc, cat in enumerate(COCO_VOC_CATEGORIES)}

_EXPECTED = "annotations/instances_<split>.json and <split>/<file_name>.jpg (COCO 2017 layout)"
_HINT = (
    "Pass root= the folder that holds annotations/ and the image folders (train2017, "
    "val2017), or set LABKIT_DATA to it. Without COCO, use the Shapes set: "
    "`labkit data shapes --out DIR`."
)

# torchvision's reference keeps a training image only if its VOC-category instances cover
# more than this many pixels in total (by their "area" field).
_MIN_AREA = 1000


class COCOSegmentation(Dataset):
    """COCO images with VOC-category semantic masks, as torchvision's references build them.

    Args:
        root (str | os.PathLike | None): the folder that holds ``annotations/`` and ``<split>/``;
            ``None`` uses ``$LABKIT_DATA``.
        split (str): the image set, e.g. ``"train2017"`` or ``"val2017"``.
        transforms (Callable[..., Any] | None): optional callable ``transforms(image, mask)``; it
            receives ``tv_tensors.Image[3, H, W]`` uint8 and ``tv_tensors.Mask[H, W]`` uint8 (VOC
            class ids 0..20 and 255) and what it returns is returned.
        drop_empty (bool | None): drop images whose VOC-category instances are absent or cover at
            most 1000 pixels (summed ``area``). ``None`` (default) does what the reference does:
            drop them for training splits (names starting with ``"train"``), keep every image
            otherwise, so validation scores count all images.

    Without ``transforms`` an item is ``(image, mask)``: ``image (Tensor[3, H, W])`` float32
    in [0, 1] and ``mask (Tensor[H, W])`` int64 — 0 for background, 1..20 for the VOC
    categories, 255 where instances overlap.

    Attributes:
        root (Path): the COCO root.
        split (str): the split read.
        ids (list[int]): COCO image ids kept, ascending (the order of
            ``torchvision.datasets.CocoDetection``).
        classes (tuple[str, ...]): ``VOC_CLASSES``.
        num_classes (int): 21.

    Raises:
        DatasetNotFoundError: if the annotation file or image folder is missing, the json is
            not COCO instances, or a listed image file is absent.
    """

    classes = VOC_CLASSES
    num_classes = len(VOC_CLASSES)

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "val2017",
        transforms: Callable[..., Any] | None = None,
        *,
        drop_empty: bool | None = None,
    ) -> None:
        self.root = resolve_root(root, dataset="COCO", expected=_EXPECTED)
        self.split = split
        self.transforms = transforms
        ann_file = self.root / "annotations" / f"instances_{split}.json"
        if not ann_file.is_file():
            raise missing(ann_file, dataset="COCO", expected=_EXPECTED, hint=_HINT)
        self._images, self._anns = _load_instances(ann_file)
        self._image_dir = self.root / split
        ids = sorted(self._images)
        if split.startswith("train") if drop_empty is None else drop_empty:
            ids = [i for i in ids if _has_valid_annotation(self._anns.get(i, []))]
        self.ids = ids
        check_files(
            [self._images[i]["file_name"] for i in ids],
            self._image_dir,
            "",
            dataset="COCO",
            expected=_EXPECTED,
            hint=_HINT,
        )

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Any:
        info = self._images[self.ids[index]]
        image = read_rgb(self._image_dir / info["file_name"])
        height, width = image.shape[:2]
        if (height, width) != (info["height"], info["width"]):
            raise DatasetNotFoundError(
                f"{self._image_dir / info['file_name']} is {width}x{height} but the annotation "
                f"file says {info['width']}x{info['height']} (width x height); the image folder "
                "and the annotations do not belong together. Re-extract them."
            )
        mask = instances_to_mask(self._anns.get(info["id"], []), height=height, width=width)
        return to_sample(image, mask, self.transforms)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, len={len(self)})"
        )


def instances_to_mask(anns: list[dict], *, height: int, width: int) -> np.ndarray:
    """Merge COCO instance annotations into one VOC-category label map.

    Annotations of other categories are ignored; a pixel inside exactly one kept instance
    gets that instance's VOC id, a pixel inside two or more gets 255 (the reference's
    "discard overlapping instances").

    Args:
        anns (list[dict]): COCO annotation dicts of one image (``category_id`` and ``segmentation``
            as polygons, uncompressed RLE or compressed RLE).
        height (int): image height.
        width (int): image width.

    Returns:
        np.ndarray[height, width] uint8: 0 background, 1..20 VOC classes, 255 overlaps.
    """
    target = np.zeros((height, width), dtype=np.uint8)
    covered = np.zeros((height, width), dtype=bool)
    overlap = np.zeros((height, width), dtype=bool)
    for ann in anns:
        voc = _TO_VOC.get(ann["category_id"])
        if voc is None:
            continue
        inside = _decode(ann["segmentation"], height, width)
        overlap |= covered & inside
        covered |= inside
        target[inside] = voc
    target[overlap] = 255
    return target


def _decode(segm: Any, height: int, width: int) -> np.ndarray:
    if isinstance(segm, dict) and isinstance(segm.get("counts"), (str, bytes)):
        rles = segm  # compressed RLE is decoded as is
    elif isinstance(segm, list) and not segm:
        return np.zeros((height, width), dtype=bool)  # an empty polygon list covers nothing
    else:
        rles = coco_mask.frPyObjects(segm, height, width)
    inside = coco_mask.decode(rles)  # (H, W) or (H, W, parts) uint8
    return inside.any(axis=2) if inside.ndim == 3 else inside.astype(bool)


def _has_valid_annotation(anns: list[dict]) -> bool:
    kept = [a for a in anns if a["category_id"] in _TO_VOC]
    return bool(kept) and sum(a["area"] for a in kept) > _MIN_AREA


def _load_instances(path: os.PathLike) -> tuple[dict[int, dict], dict[int, list[dict]]]:
    try:
        with open(path) as f:
            data = json.load(f)
        images = {img["id"]: img for img in data["images"]}
        anns: dict[int, list[dict]] = {}
        for ann in data["annotations"]:
            anns.setdefault(ann["image_id"], []).append(ann)
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetNotFoundError(
            f"{path} is not a COCO instances file ({err!r}); expected a JSON object with "
            f"'images' and 'annotations' lists. {_HINT}"
        ) from err
    return images, anns
