"""Pascal VOC 2012 segmentation reader (and the Shapes set, which uses the same layout).

The tree under ``root`` is the one torchvision's ``VOCSegmentation`` reads::

    root/VOCdevkit/VOC2012/
        ImageSets/Segmentation/{train,val,trainval}.txt   one image id per line
        JPEGImages/<id>.jpg
        SegmentationClass/<id>.png                        palette PNG: class ids, 255 = void
        SegmentationClassAug/<id>.png                     optional, SBD labels ("L" PNG)
        ImageSets/Segmentation/trainaug.txt               optional, the 10 582 SBD ids
        shapes.json                                       optional, {"classes": [...]}

Images are decoded once with PIL and handed to torch through numpy, so a sample costs one
JPEG decode, one PNG decode and a couple of array copies.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from labkit.data._paths import DatasetNotFoundError, missing, resolve_root
from labkit.data.palette import VOC_CLASSES

__all__ = ["VOCSegmentation"]

_EXPECTED = (
    "VOCdevkit/VOC2012/ with ImageSets/Segmentation/<split>.txt, JPEGImages/<id>.jpg "
    "and SegmentationClass/<id>.png (SegmentationClassAug/<id>.png for trainaug)"
)
_HINT = (
    "Pass root= the folder that holds VOCdevkit, or set LABKIT_DATA to it. For the small "
    "generated Shapes set run `labkit data shapes --out DIR` and use DIR as the root."
)
_AUG_HINT = (
    "split='trainaug' needs the SBD-augmented labels: put SegmentationClassAug/ and "
    "ImageSets/Segmentation/trainaug.txt under VOCdevkit/VOC2012, or use split='train'."
)


class VOCSegmentation(Dataset):
    """Pascal VOC 2012 semantic segmentation, pixel for pixel as torchvision reads it.

    Args:
        root (str | os.PathLike | None): the folder that holds ``VOCdevkit``; ``None`` uses
            ``$LABKIT_DATA``.
        split (str): the id list to read, ``ImageSets/Segmentation/<split>.txt`` (``"train"``,
            ``"val"``, ``"trainval"``; ``"trainaug"`` reads the SBD labels in
            ``SegmentationClassAug``).
        transforms (Callable[..., Any] | None): optional callable ``transforms(image, mask)``; it
            receives the image as ``tv_tensors.Image[3, H, W]`` uint8 and the mask as
            ``tv_tensors.Mask[H, W]`` uint8 (class ids and 255, the dtype torchvision's own v2
            wrappers use) and what it returns is returned.
            ``labkit.data.transforms.train_transforms`` and ``eval_transforms`` finish with an int64
            mask.

    Without ``transforms`` an item is ``(image, mask)``: ``image (Tensor[3, H, W])`` float32
    in [0, 1] and ``mask (Tensor[H, W])`` int64 holding class ids and 255 (void).

    Attributes:
        root (Path): the folder that holds ``VOCdevkit``.
        split (str): the split read.
        ids (list[str]): the image ids, in file order.
        classes (tuple[str, ...]): class names, index = label; ``VOC_CLASSES`` unless a
            ``shapes.json`` beside the images names others.
        num_classes (int): ``len(classes)``.

    Raises:
        DatasetNotFoundError: if the root, the split file, or an image or mask of a listed id
            is missing, or ``shapes.json`` is malformed.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "train",
        transforms: Callable[..., Any] | None = None,
    ) -> None:
        self.root = resolve_root(root, dataset="Pascal VOC", expected=_EXPECTED)
        self.split = split
        self.transforms = transforms
        base = self.root / "VOCdevkit" / "VOC2012"
        if not base.is_dir():
            raise missing(base, dataset="Pascal VOC", expected=_EXPECTED, hint=_HINT)
        aug = split == "trainaug"
        hint = _AUG_HINT if aug else _HINT
        split_file = base / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not split_file.is_file():
            have = sorted(p.stem for p in split_file.parent.glob("*.txt"))
            raise missing(
                split_file,
                dataset="Pascal VOC",
                expected=_EXPECTED,
                hint=f"Splits found there: {have or 'none'}. {hint}",
            )
        self.ids = _read_ids(split_file)
        self._image_dir = base / "JPEGImages"
        self._mask_dir = base / ("SegmentationClassAug" if aug else "SegmentationClass")
        check_files(
            self.ids, self._image_dir, ".jpg", dataset="Pascal VOC", expected=_EXPECTED, hint=hint
        )
        check_files(
            self.ids, self._mask_dir, ".png", dataset="Pascal VOC", expected=_EXPECTED, hint=hint
        )
        self.classes = _read_classes(base / "shapes.json")
        self.num_classes = len(self.classes)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Any:
        name = self.ids[index]
        image = read_rgb(self._image_dir / f"{name}.jpg")
        mask = read_label(self._mask_dir / f"{name}.png", size=image.shape[1::-1])
        return to_sample(image, mask, self.transforms)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, "
            f"len={len(self)}, num_classes={self.num_classes})"
        )


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to RGB.

    Args:
        path (Path): the image file.

    Returns:
        np.ndarray[H, W, 3] uint8: the pixels (grey or CMYK files are converted, as
        torchvision's readers do with ``.convert("RGB")``).
    """
    with Image.open(path) as img:
        if img.mode != "RGB":
            img = img.convert("RGB")
        # np.array (not asarray): a writable copy torch can wrap without another copy.
        return np.array(img)


def read_label(path: Path, *, size: Sequence[int] | None = None) -> np.ndarray:
    """Decode a label PNG (palette "P" or grey "L") to its label indices.

    Args:
        path (Path): the PNG file.
        size (Sequence[int] | None): the ``(width, height)`` the label must have (that of its
            image), or ``None``.

    Returns:
        np.ndarray[H, W] uint8: the stored indices (class ids and 255), not the colours.

    Raises:
        DatasetNotFoundError: if the PNG is not a "P"/"L" image or its size differs from
            ``size``.
    """
    with Image.open(path) as img:
        if img.mode not in ("P", "L"):
            raise DatasetNotFoundError(
                f"label {path} is a {img.mode!r} image; expected a palette ('P') or grey ('L') "
                "PNG whose pixel values are class ids (255 = void). Colour-coded RGB masks must "
                "be converted to indices first."
            )
        if size is not None and tuple(img.size) != tuple(size):
            raise DatasetNotFoundError(
                f"label {path} is {img.size[0]}x{img.size[1]} but its image is "
                f"{size[0]}x{size[1]} (width x height); the dataset tree is malformed. "
                "Regenerate or re-extract it."
            )
        return np.array(img)


def to_sample(image: np.ndarray, mask: np.ndarray, transforms: Callable[..., Any] | None) -> Any:
    """Turn decoded arrays into a dataset item.

    Args:
        image (ndarray[H, W, 3] uint8): RGB pixels, writable (the tensors share its memory).
        mask (ndarray[H, W] uint8): class ids and 255, writable.
        transforms (Callable[..., Any] | None): ``None``, or a callable ``transforms(image, mask)``.

    Returns:
        Without ``transforms``, ``(image, mask)``: ``Tensor[3, H, W]`` float32 in [0, 1] and
        ``Tensor[H, W]`` int64. With it, whatever ``transforms(tv_tensors.Image[3, H, W] uint8,
        tv_tensors.Mask[H, W] uint8)`` returns.
    """
    img = torch.from_numpy(image).permute(2, 0, 1)  # (3, H, W), shares memory
    lbl = torch.from_numpy(mask)  # (H, W)
    if transforms is None:
        # One pass that transposes and casts, then an in-place scale: ~2x faster than
        # .contiguous().float().div(255), with identical values.
        out = torch.empty(img.shape, dtype=torch.float32).copy_(img).div_(255)
        return out, lbl.long()
    # Channels-last layout is kept on purpose: torchvision's uint8 resize is fastest on it,
    # and it is the layout its own PIL-to-tensor conversion produces.
    return transforms(tv_tensors.Image(img), tv_tensors.Mask(lbl))


def check_files(
    ids: Sequence[str], folder: Path, suffix: str, *, dataset: str, expected: str, hint: str
) -> None:
    """Make sure ``folder/<id><suffix>`` exists for every id, listing the folder once.

    Args:
        ids (Sequence[str]): the listed ids.
        folder (Path): the folder that must hold them.
        suffix (str): the file extension, with its dot (``".jpg"``).
        dataset (str): the dataset's name, for the error message.
        expected (str): the layout expected, for the error message.
        hint (str): what to do, for the error message.

    Raises:
        DatasetNotFoundError: naming the folder and the first missing files.
    """
    if not folder.is_dir():
        raise missing(folder, dataset=dataset, expected=expected, hint=hint)
    with os.scandir(folder) as entries:
        present = {entry.name for entry in entries}
    absent = [name for name in ids if name + suffix not in present]
    if absent:
        shown = ", ".join(name + suffix for name in absent[:3])
        raise missing(
            folder / (absent[0] + suffix),
            dataset=dataset,
            expected=expected,
            hint=f"{len(absent)} listed file(s) are missing from {folder} ({shown}"
            f"{', ...' if len(absent) > 3 else ''}). {hint}",
        )


def _read_ids(split_file: Path) -> list[str]:
    ids = []
    for line in split_file.read_text().splitlines():
        if not line.strip():
            continue
        token = line.split()[0]
        # Some trainaug lists hold "/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png" pairs.
        if "/" in token or token.endswith(".jpg"):
            token = Path(token).stem
        ids.append(token)
    if not ids:
        raise missing(
            split_file,
            dataset="Pascal VOC",
            expected=_EXPECTED,
            hint=f"The split file is empty. {_HINT}",
        )
    return ids


def _read_classes(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return VOC_CLASSES
    try:
        classes = json.loads(path.read_text())["classes"]
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetNotFoundError(
            f'{path} is malformed ({err!r}); expected a JSON object {{"classes": [names]}}. '
            "Regenerate the set with `labkit data shapes --out DIR`."
        ) from err
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise DatasetNotFoundError(
            f"{path} is malformed: 'classes' must be a non-empty list of names; got {classes!r}. "
            "Regenerate the set with `labkit data shapes --out DIR`."
        )
    return tuple(classes)
