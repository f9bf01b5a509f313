"""Where each dataset lives on disk and which reader opens it: the one table every command,
config and check consults.

The Shapes set is written in Pascal VOC's layout (``VOCdevkit/VOC2012``), so the VOC reader
opens it too; ADE20K keeps the SceneParsing release's layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["LAYOUTS", "DatasetLayout", "detect_layout", "open_split"]


@dataclass(frozen=True)
class DatasetLayout:
    """One dataset's layout.

    Attributes:
        title: its name for people (``"Pascal VOC"``).
        folder: the folder below the data root that holds it (``"VOCdevkit/VOC2012"``).
        splits: its training and validation splits' names.
        reader: ``"module:Class"`` of its reader (imported when a split is opened).
    """

    title: str
    folder: str
    splits: tuple[str, str]
    reader: str

    def split(self, name: str) -> str:
        """This layout's name for ``"train"`` or ``"val"`` (other names as they are)."""
        return {"train": self.splits[0], "val": self.splits[1]}.get(name, name)


_VOC = DatasetLayout(
    "Pascal VOC", "VOCdevkit/VOC2012", ("train", "val"), "labkit.data.voc:VOCSegmentation"
)
#: The layouts by config ``dataset`` name.
LAYOUTS: dict[str, DatasetLayout] = {
    "voc": _VOC,
    "shapes": DatasetLayout("Shapes", _VOC.folder, _VOC.splits, _VOC.reader),
    "ade20k": DatasetLayout(
        "ADE20K", "ADEChallengeData2016", ("training", "validation"), "labkit.data.ade20k:ADE20K"
    ),
}


def detect_layout(root: str | os.PathLike) -> str | None:
    """Which layout a data root holds: ``"voc"`` (VOC or a Shapes set), ``"ade20k"``, or
    ``None`` for neither."""
    for name in ("voc", "ade20k"):
        if os.path.isdir(os.path.join(root, LAYOUTS[name].folder.split("/")[0])):
            return name
    return None


def open_split(dataset: str, root: str | os.PathLike, split: str, transforms: Any = None) -> Any:
    """One split of a dataset, opened by its layout's reader.

    Args:
        dataset (str): a key of :data:`LAYOUTS`.
        root (str | os.PathLike): the data root (the folder holding the layout's folder).
        split (str): the split's name (``"train"`` and ``"val"`` are translated).
        transforms (Any): a paired ``(image, mask)`` transform, or ``None``.

    Returns:
        The dataset of ``(image, mask)`` pairs.
    """
    import importlib

    layout = LAYOUTS[dataset]
    module, _, name = layout.reader.partition(":")
    reader = getattr(importlib.import_module(module), name)
    return reader(root, split=layout.split(split), transforms=transforms)
