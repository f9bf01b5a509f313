"""Where a deformable convolution looks: the sampling points of one output pixel.

:func:`capture_offsets` runs one image through a model and keeps, for every deformable layer,
its offsets (and v2 mask) and geometry. :func:`sampling_locations` follows one output pixel of
the topmost chosen layer down through the stacked layers: ``k·k`` points for one layer and
``(k·k)^L`` for ``L`` layers, as in the figure of `Dai et al. 2017
<https://arxiv.org/abs/1703.06211>`__ (Fig. 5), each weighted by the product of the v2 masks
along its path. :func:`plot_sampling_locations` draws them; :class:`OffsetExplorer` (in
:mod:`labkit.viz.offset_explorer`) lets a student click through them.

Coordinates are ``(row, column)`` in pixels. Pixel ``i`` of a feature map ``step`` image
pixels apart sits at image coordinate ``(i + 0.5)·step − 0.5``: the convention of bilinear
upsampling with ``align_corners=False``, which is how labkit's models bring their logits back
to the image size.

A deformable layer is any module with an ``offset_conv`` branch that keeps its last offsets in
``last_offset`` (and v2's mask in ``last_mask``): :class:`labkit.models.DeformConv2d` and the
one students write in lab 08.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from labkit.viz._sampling_plot import plot_sampling_locations

__all__ = [
    "LayerOffsets",
    "SamplingLocations",
    "capture_offsets",
    "capture_with_logits",
    "deformable_layer_names",
    "no_deformable_error",
    "sampling_locations",
    "plot_sampling_locations",
    "OffsetExplorer",
]

_Pair = tuple[int, int]


@dataclass(frozen=True)
class LayerOffsets:
    """One deformable layer's offsets for one image.

    Attributes:
        name (str): the layer's qualified name in the model, e.g. ``"backbone.layer4.0.conv2"``.
        offset (Tensor[2*K, Ho, Wo]): row and column shift of every tap (torchvision's layout:
            channel ``2k`` is Δy and ``2k + 1`` is Δx of tap ``k``), in input pixels; zeros
            for a regular convolution.
        mask (Tensor[K, Ho, Wo] or None): the v2 modulation; ``None`` for v1 and regular convs.
        kernel_size, stride, padding, dilation (tuple[int, int]): the layer's geometry.
        input_size (tuple[int, int]): height and width of the layer's input.
        image_size (tuple[int, int]): height and width of the image.
        deformable (bool): false when captured from a regular convolution.
    """

    name: str
    offset: Tensor
    mask: Tensor | None
    kernel_size: _Pair
    stride: _Pair
    padding: _Pair
    dilation: _Pair
    input_size: _Pair
    image_size: _Pair
    deformable: bool = True

    @property
    def output_size(self) -> _Pair:
        return tuple(self.offset.shape[-2:])

    @property
    def input_step(self) -> tuple[float, float]:
        """Image pixels per input pixel, (rows, columns)."""
        return tuple(i / s for i, s in zip(self.image_size, self.input_size))

    @property
    def output_step(self) -> tuple[float, float]:
        """Image pixels per output pixel, (rows, columns)."""
        return tuple(i / s for i, s in zip(self.image_size, self.output_size))

    @property
    def version(self) -> str:
        """``"v2"``, ``"v1"`` or ``"conv"``."""
        return "conv" if not self.deformable else "v1" if self.mask is None else "v2"


@dataclass(frozen=True)
class SamplingLocations:
    """The input points one output pixel reaches through stacked deformable layers.

    Attributes:
        points (Tensor[P, 2]): ``(row, column)`` of every point in image pixels, ``P = K^L``.
        weights (Tensor[P]): the product of the masks along each point's path (ones for v1).
        levels (list[Tensor[K^l, 2]]): the points after unrolling ``l = 1..L`` layers, top
            down; ``levels[-1]`` is ``points``.
        center (tuple[float, float]): the output pixel, in image pixels.
        cell (tuple[int, int]): the output pixel, in the top layer's output pixels.
        layers (list[str]): the layers unrolled, bottom to top.
    """

    points: Tensor
    weights: Tensor
    levels: list[Tensor]
    center: tuple[float, float]
    cell: tuple[int, int]
    layers: list[str]


def _is_deformable(module: nn.Module) -> bool:
    return hasattr(module, "offset_conv") and hasattr(module, "last_offset")


def deformable_layer_names(model: nn.Module) -> list[str]:
    """Qualified names of the model's deformable layers, in registration order."""
    return [name for name, m in model.named_modules() if _is_deformable(m)]


def no_deformable_error(model: nn.Module) -> ValueError:
    """The error for a model without a deformable layer: what it lacks and how to build one.

    Args:
        model (nn.Module): the model that was given.

    Returns:
        The error to raise (a :class:`ValueError`).
    """
    return ValueError(
        f"{type(model).__name__} has no deformable convolution (a module with `offset_conv` and "
        "`last_offset`, such as labkit.models.DeformConv2d), so it has no offsets to show. "
        "Build it with deformable='v1' or 'v2', e.g. build_model('deeplabv3_resnet50', "
        "num_classes=21, deformable='v2'), or pass it next to a deformable model of the same "
        "architecture to see its regular grid."
    )


def _one_image(image: Tensor) -> Tensor:
    """``image`` as a batch of one, Tensor[1, 3, H, W]; a ValueError if it is not one image."""
    if image.dim() == 3:
        image = image[None]
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(
            f"expected one image of shape [3, H, W] (or [1, 3, H, W]); got "
            f"{list(image.shape)}. Pick one image out of a batch: images[i]."
        )
    return image


def _checked_names(
    model: nn.Module, modules: dict[str, nn.Module], names: Sequence[str] | None
) -> Sequence[str]:
    """The layers to capture: ``names``, or every deformable layer when it is ``None``.

    Raises:
        ValueError: if the model has no deformable layer (and ``names`` is ``None``), or a
            name is not a deformable layer nor a ``nn.Conv2d`` of the model.
    """
    if names is None:
        names = deformable_layer_names(model)
        if not names:
            raise no_deformable_error(model)
    for name in names:
        if name not in modules or not (
            _is_deformable(modules[name]) or isinstance(modules[name], nn.Conv2d)
        ):
            raise ValueError(
                f"{type(model).__name__} has no convolution named {name!r}; "
                f"expected one of its deformable layers {deformable_layer_names(model)}"
                " or a nn.Conv2d in the same place"
            )
    return names


def _hooked_forward(
    model: nn.Module, modules: dict[str, nn.Module], names: Sequence[str], image: Tensor
) -> tuple[Tensor | dict, dict[str, _Pair], dict[str, Tensor]]:
    """Run ``image`` through ``model`` in eval mode without gradients, watching ``names``.

    The named layers are made to record their offsets for this pass; the model's mode and the
    layers' ``record`` flags are restored afterwards, even if the forward pass fails.

    Returns:
        (the model's output, each named layer's input height and width, each one's output).
    """
    inputs: dict[str, _Pair] = {}
    outputs: dict[str, Tensor] = {}

    def hook(name):
        def keep(module, args, output):
            inputs[name] = tuple(args[0].shape[-2:])
            outputs[name] = output

        return keep

    recording = {n: modules[n].record for n in names if hasattr(modules[n], "record")}
    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    was_training = model.training
    device = next(model.parameters(), torch.empty(0)).device
    try:
        for n in recording:
            modules[n].record = True
        model.eval()
        with torch.no_grad():
            logits = model(image.to(device))
    finally:
        for h in handles:
            h.remove()
        for n, flag in recording.items():
            modules[n].record = flag
        model.train(was_training)
    return logits, inputs, outputs


def _layer_offsets(
    name: str,
    m: nn.Module,
    inputs: dict[str, _Pair],
    outputs: dict[str, Tensor],
    image_size: _Pair,
) -> LayerOffsets:
    """What layer ``m`` recorded in the watched pass; zero offsets for a regular convolution.

    ``inputs`` and ``outputs`` are the layers' input sizes and outputs that
    :func:`_hooked_forward` kept.
    """
    if _is_deformable(m):
        offset = m.last_offset[0].detach().float().cpu()
        mask = getattr(m, "last_mask", None)
        mask = None if mask is None else mask[0].detach().float().cpu()
    else:
        k = _pair(m.kernel_size)
        offset = torch.zeros(2 * k[0] * k[1], *outputs[name].shape[-2:])
        mask = None
    return LayerOffsets(
        name=name,
        offset=offset,
        mask=mask,
        kernel_size=_pair(m.kernel_size),
        stride=_pair(m.stride),
        padding=_pair(m.padding),
        dilation=_pair(m.dilation),
        input_size=inputs[name],
        image_size=image_size,
        deformable=_is_deformable(m),
    )


def capture_with_logits(
    model: nn.Module,
    image: Tensor,
    names: Sequence[str] | None = None,
) -> tuple[list[LayerOffsets], Tensor]:
    """:func:`capture_offsets`, and the logits of the same forward pass.

    Args:
        model (nn.Module): as for :func:`capture_offsets`.
        image (Tensor): as for :func:`capture_offsets`.
        names (Sequence[str] | None): as for :func:`capture_offsets`.

    Returns:
        ``(offsets, logits)``: one :class:`LayerOffsets` per layer, and the model's logits
        (Tensor[C, H, W]).
    """
    image = _one_image(image)
    modules = dict(model.named_modules())
    names = _checked_names(model, modules, names)
    logits, inputs, outputs = _hooked_forward(model, modules, names, image)
    if isinstance(logits, dict):
        logits = logits["out"]
    image_size = tuple(image.shape[-2:])
    captured = [_layer_offsets(n, modules[n], inputs, outputs, image_size) for n in names]
    return captured, logits[0].detach().float().cpu()


def capture_offsets(
    model: nn.Module,
    image: Tensor,
    *,
    names: Sequence[str] | None = None,
) -> list[LayerOffsets]:
    """Run one image through ``model`` and keep every deformable layer's offsets.

    The model runs in eval mode without gradients, on its own device; its mode and the layers'
    ``record`` flags are restored afterwards.

    Args:
        model (nn.Module): a network with deformable layers, e.g. ``build_model(...,
            deformable="v2")``.
        image (Tensor[3, H, W] or Tensor[1, 3, H, W]): the image, normalised as for training.
        names (Sequence[str] | None): the layers to capture, by qualified name; ``None`` captures
            every deformable layer. A regular ``nn.Conv2d`` named here is captured with zero
            offsets, which shows where a plain network of the same architecture samples.

    Returns:
        list[LayerOffsets]: one per layer, in the order of ``names`` (forward order).

    Raises:
        ValueError: if the model has no deformable layer, a name is unknown or the image is
            not one ``[3, H, W]`` image.
    """
    return capture_with_logits(model, image, names)[0]


def _interpolate(field: Tensor, pos: Tensor) -> Tensor:
    """Bilinear values of ``field`` (Tensor[C, H, W]) at ``pos`` (Tensor[P, 2], rows and
    columns in its pixels), the border repeated outside: Tensor[P, C]."""
    h, w = field.shape[-2:]
    # grid_sample wants (x, y) in [-1, 1], -1 and 1 being the centres of the corner pixels.
    norm = torch.stack([2 * pos[:, 1] / max(w - 1, 1) - 1, 2 * pos[:, 0] / max(h - 1, 1) - 1], -1)
    out = F.grid_sample(
        field[None], norm[None, None], mode="bilinear", padding_mode="border", align_corners=True
    )  # (1, C, 1, P)
    return out[0, :, 0].T


def _choose(captured: Sequence[LayerOffsets], layers) -> list[int]:
    if not captured:
        raise ValueError("expected the layers returned by capture_offsets; got an empty list")
    names = [c.name for c in captured]
    if layers is None:
        return list(range(len(captured)))
    chosen = set()
    for layer in layers:
        if isinstance(layer, str):
            if layer not in names:
                raise ValueError(f"no captured layer named {layer!r}; captured: {names}")
            chosen.add(names.index(layer))
        elif -len(names) <= int(layer) < len(names):
            chosen.add(int(layer) % len(names))
        else:
            raise ValueError(
                f"layer index {layer} is out of range for {len(names)} captured layers {names}"
            )
    if not chosen:
        raise ValueError(f"expected at least one layer to unroll; got layers={list(layers)}")
    return sorted(chosen)


def sampling_locations(
    captured: Sequence[LayerOffsets],
    pixel: tuple[float, float],
    *,
    layers: Sequence[int | str] | None = None,
) -> SamplingLocations:
    """The input points that one output pixel reaches through stacked deformable layers.

    The output pixel is the top chosen layer's output nearest to ``pixel``. Each chosen layer,
    from the top down, replaces every point by the ``K`` points its taps sample there:
    ``p·stride − padding + p_k·dilation + Δp_k`` in its input. A point that falls between the
    pixels of the layer below takes that layer's bilinearly interpolated offsets (and mask).
    Layers not chosen in between only carry the points across, as a regular layer would centre
    them.

    Args:
        captured (Sequence[LayerOffsets]): from :func:`capture_offsets`, in forward order.
        pixel (tuple[float, float]): ``(row, column)`` in image pixels.
        layers (Sequence[int | str] | None): which captured layers to unroll, by index (negative
            counts from the top) or name; ``None`` unrolls them all.

    Returns:
        SamplingLocations: ``K^L`` points in image pixels and their mask products.

    Raises:
        ValueError: unknown layers or an empty choice.
    """
    chosen = [captured[i] for i in _choose(captured, layers)]
    top = chosen[-1]
    out_h, out_w = top.output_size
    step_y, step_x = top.output_step
    cell = (
        min(max(round((pixel[0] + 0.5) / step_y - 0.5), 0), out_h - 1),
        min(max(round((pixel[1] + 0.5) / step_x - 0.5), 0), out_w - 1),
    )
    pos = torch.tensor([cell], dtype=torch.float32)  # (P, 2) in the current layer's output
    weights = torch.ones(1)
    levels = []
    for i, layer in enumerate(reversed(chosen)):
        (kh, kw), k = layer.kernel_size, layer.kernel_size[0] * layer.kernel_size[1]
        taps = torch.stack(
            [
                torch.arange(kh).repeat_interleave(kw) * layer.dilation[0],
                torch.arange(kw).repeat(kh) * layer.dilation[1],
            ],
            -1,
        ).float()  # (K, 2)
        corner = pos * torch.tensor(layer.stride) - torch.tensor(layer.padding)  # (P, 2)
        offset = _interpolate(layer.offset, pos).reshape(-1, k, 2)  # (P, K, 2)
        if layer.mask is not None:
            weights = (weights[:, None] * _interpolate(layer.mask, pos)).reshape(-1)  # (P·K,)
        else:
            weights = weights.repeat_interleave(k)
        pos = (corner[:, None] + taps + offset).reshape(-1, 2)  # (P·K, 2) in the layer's input
        image_pos = (pos + 0.5) * torch.tensor(layer.input_step) - 0.5
        levels.append(image_pos)
        if i + 1 < len(chosen):
            below = chosen[-2 - i]
            pos = (image_pos + 0.5) / torch.tensor(below.output_step) - 0.5
    center = tuple(
        (
            (torch.tensor(cell, dtype=torch.float32) + 0.5) * torch.tensor(top.output_step) - 0.5
        ).tolist()
    )
    return SamplingLocations(
        points=levels[-1],
        weights=weights,
        levels=levels,
        center=center,
        cell=cell,
        layers=[c.name for c in chosen],
    )


def __getattr__(name: str):
    # The widget needs ipywidgets and ipympl; load them only when it is asked for.
    if name == "OffsetExplorer":
        from labkit.viz.offset_explorer import OffsetExplorer

        return OffsetExplorer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
