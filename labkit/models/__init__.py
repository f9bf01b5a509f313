"""Segmentation models and the ``build_model`` registry.

Every model maps ``Tensor[N, 3, H, W]`` images to ``Tensor[N, num_classes, H, W]`` logits
(see :mod:`labkit.models.registry` for the one documented exception, auxiliary heads in
training mode).
"""

from __future__ import annotations

from labkit.models.backbones import (
    PretrainedWeightsNotFoundError,
    make_deformable,
    pretrained_weights_path,
    resnet_backbone,
)
from labkit.models.deeplab import ASPP, DeepLabHead, DeepLabV3, DeepLabV3Plus
from labkit.models.deformable import (
    DeformConv2d,
    bilinear_sample,
    deform_conv2d_reference,
    offset_param_groups,
)
from labkit.models.fcn import BaselineFCN, ImprovedFCN
from labkit.models.registry import available_models, build_model, count_parameters, model_options
from labkit.models.resnet_transfer import ResNetTransfer
from labkit.models.unet import UNet

__all__ = [
    "ASPP",
    "BaselineFCN",
    "DeepLabHead",
    "DeepLabV3",
    "DeepLabV3Plus",
    "DeformConv2d",
    "ImprovedFCN",
    "PretrainedWeightsNotFoundError",
    "ResNetTransfer",
    "UNet",
    "available_models",
    "bilinear_sample",
    "build_model",
    "count_parameters",
    "deform_conv2d_reference",
    "make_deformable",
    "model_options",
    "offset_param_groups",
    "pretrained_weights_path",
    "resnet_backbone",
]
