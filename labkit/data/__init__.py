"""Datasets, the Shapes generator, paired transforms and class statistics.

Every reader returns ``(image Tensor[3, H, W] float32, mask Tensor[H, W] int64)`` with 255
as the void label; paths come from a ``root`` argument or ``$LABKIT_DATA``.
"""

from labkit.data._paths import DatasetNotFoundError, resolve_root
from labkit.data.ade20k import ADE20K, ADE20K_CLASSES
from labkit.data.coco import COCO_VOC_CATEGORIES, COCOSegmentation, instances_to_mask
from labkit.data.palette import VOC_CLASSES, decode_mask, voc_colormap
from labkit.data.shapes import SHAPES_CLASSES, generate_shapes, shapes_classes
from labkit.data.stats import class_pixel_counts
from labkit.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transforms, train_transforms
from labkit.data.voc import VOCSegmentation

__all__ = [
    "ADE20K",
    "ADE20K_CLASSES",
    "COCOSegmentation",
    "COCO_VOC_CATEGORIES",
    "DatasetNotFoundError",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SHAPES_CLASSES",
    "VOCSegmentation",
    "VOC_CLASSES",
    "class_pixel_counts",
    "decode_mask",
    "eval_transforms",
    "generate_shapes",
    "instances_to_mask",
    "resolve_root",
    "shapes_classes",
    "train_transforms",
    "voc_colormap",
]
