"""An offline stand-in for ImageNet: a ResNet-18 pretrained once on generated Shapes objects.

Lab 06's lesson is that an encoder pretrained on a large, varied classification task beats
the same encoder trained from scratch on a small segmentation set. Its quick profile runs on
a CPU with no download, so the large task is generated: ``num_images`` scenes of the Shapes
world (:func:`labkit.data.shapes.draw_shapes_image`), each object cut out as a small square
crop, and each crop labelled with its shape family (one of 10) and its surface pattern (one
of 8), learnt as two softmax classifications (cross-entropy of each, summed).

Why this task:

- *Object-centred crops, one label each, as ImageNet's photos are*. Labelling whole scenes
  with "which families are present" was tried first: in the same CPU budget a ResNet-18
  learnt little more than colour from it (held-out mean AUC 0.63-0.65, no better than a
  linear model on a colour histogram), because most objects are small, occluded or among
  distractors. A centred crop poses the question cleanly, and a 32-px crop costs half a
  64-px scene, so the same minutes buy twice the examples.
- *All 10 families and 8 patterns, 80 classes, more than any lab uses* (a quick lab set has
  3 to 20 object classes), as ImageNet's 1000 classes are more than VOC's 20: the features
  must tell shapes and textures apart in general, not one lab's few classes.
- *Labels, no masks*: the encoder learns what an object is, never where each pixel belongs,
  as an ImageNet classifier does. What the lab's decoder must learn stays to learn.
- *Images no lab ever sees*: the scenes come from the generator's ``"pretrain"`` stream,
  whose position is part of every image's seed (``SeedSequence([seed, 2, index])``), while
  every lab set's training and validation images come from streams 0 and 1. Whatever seed a
  lab draws its set with, none of its validation images (the lab's test) was seen here.

The weights are cached in the torch hub cache next to the ImageNet files,
``torch.hub.get_dir()/checkpoints/labkit-shapes-resnet18-<hash>.pth``, where ``<hash>``
digests :class:`PretrainOptions`; the file is written atomically, so an interrupted run
leaves no half file. The same options give the same weights on the same machine and thread
count (every random draw is seeded; the model's initialisation does not touch the caller's
random state). The default budget took 200 s of one CPU thread on a shared 2-core machine;
``labkit pretrain`` builds the cache ahead of a class.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision import models as tvm

from labkit.atomic import replace_atomically
from labkit.data.shapes import SHAPE_FAMILIES, SHAPE_PATTERNS, class_attributes, draw_shapes_image
from labkit.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from labkit.errors import LabkitError, UsageError

__all__ = [
    "DEFAULT_OPTIONS",
    "SMOKE_OPTIONS",
    "LABELS",
    "PretrainCacheError",
    "PretrainOptions",
    "accuracy",
    "default_options",
    "ensure_shapes_pretrained",
    "load_shapes_pretrained",
    "pretrain_resnet18",
    "pretraining_set",
    "shapes_pretrained_path",
]

log = logging.getLogger(__name__)

#: What the 18 outputs of the pretraining head score: the 10 families (one softmax), then
#: the 8 patterns (another).
LABELS: tuple[str, ...] = SHAPE_FAMILIES + SHAPE_PATTERNS
_FORMAT = 1  # bump when the task or the training changes, so cached files are rebuilt
_FILE = "labkit-shapes-resnet18-{}.pth"


class PretrainCacheError(LabkitError, ValueError):
    """The cached pretrained weights are not what labkit wrote (truncated, corrupt, other)."""


@dataclass(frozen=True)
class PretrainOptions:
    """What the pretraining draws and how long it trains; all of it names the cache file.

    Attributes:
        num_images: training images drawn from the ``"pretrain"`` stream (their objects
            give about 1.5 times as many crops).
        held_out: further images of that stream, whose crops are scored after training
            (logged, stored in the file).
        size: side of the square images drawn, in pixels (the lab presets' size).
        crop: side of the object crops the network learns from, in pixels.
        num_shape_classes: object classes drawn (family × pattern, filled): 80 is all.
        deformation: the generator's warp strength, as the labs' sets.
        epochs: passes over the images; batch_size, lr (one-cycle, AdamW), weight_decay.
        seed: seeds the images, the initialisation, the order and the flips.
    """

    num_images: int = 5000
    held_out: int = 500
    size: int = 64
    crop: int = 32
    num_shape_classes: int = 80
    deformation: float = 0.5
    epochs: int = 2
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0


#: The options ``pretrained_backbone="shapes"`` uses.
DEFAULT_OPTIONS = PretrainOptions()
#: What it uses under ``LABKIT_BUDGET=smoke``, which shrinks every training's budget (see
#: :mod:`labkit.labs`), this one's too: seconds, and another file than the real weights'.
SMOKE_OPTIONS = PretrainOptions(num_images=32, held_out=8, epochs=1)


def default_options() -> PretrainOptions:
    """:data:`DEFAULT_OPTIONS`, or :data:`SMOKE_OPTIONS` while ``LABKIT_BUDGET=smoke``."""
    smoke = os.environ.get("LABKIT_BUDGET", "").strip().lower() == "smoke"
    return SMOKE_OPTIONS if smoke else DEFAULT_OPTIONS


def shapes_pretrained_path(options: PretrainOptions | None = None) -> Path:
    """Where the weights of ``options`` are cached.

    Returns:
        path (Path): ``torch.hub.get_dir()/checkpoints/labkit-shapes-resnet18-<hash>.pth``,
        ``<hash>`` the first 10 hex digits of the options' SHA-256.
    """
    record = {"format": _FORMAT, **dataclasses.asdict(options or default_options())}
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:10]
    return Path(torch.hub.get_dir()) / "checkpoints" / _FILE.format(digest)


def _crop(image: Image.Image, box: list[int], side: int) -> np.ndarray:
    """A square around ``box`` (x0, y0, x1, y1), 1.25× its longer side, zero outside the
    image, resized to ``side`` px: ndarray[side, side, 3] uint8."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * 0.625
    square = (round(cx - half), round(cy - half), round(cx + half), round(cy + half))
    return np.asarray(image.crop(square).resize((side, side), Image.Resampling.BILINEAR))


def pretraining_set(options: PretrainOptions, *, start: int, count: int) -> tuple[Tensor, Tensor]:
    """The object crops of images ``start .. start + count - 1`` of the ``"pretrain"`` stream.

    Each image is JPEG-encoded at quality 90 and decoded, as the labs' sets are stored. Every
    object of which at least half is visible, and at least ``size² / 64`` pixels (64 at
    64 px), gives one crop: a square 1.25× the object's longer side around it, resized to
    ``crop`` px. An image gives 1.5 crops on average.

    Returns:
        ``(crops, targets)``: ``crops`` (Tensor[M, 3, crop, crop] uint8) and ``targets``
        (Tensor[M, 2] int64: the family's index in :data:`SHAPE_FAMILIES`, the pattern's
        in :data:`SHAPE_PATTERNS`).
    """
    crops, targets = [], []
    for index in range(start, start + count):
        img, _, objects = draw_shapes_image(
            index,
            stream="pretrain",
            size=options.size,
            num_classes=options.num_shape_classes + 1,
            seed=options.seed,
            deformation=options.deformation,
        )
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        image = Image.open(buf).convert("RGB")
        for obj in objects:
            if obj["visible"] >= max(0.5 * obj["area"], options.size**2 / 64):
                crops.append(_crop(image, obj["bbox"], options.crop))
                family, pattern, _ = class_attributes(obj["class"])
                targets.append((SHAPE_FAMILIES.index(family), SHAPE_PATTERNS.index(pattern)))
    images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()  # (M, 3, c, c)
    return images, torch.tensor(targets, dtype=torch.int64).view(-1, 2)


def _normalize(images: Tensor) -> Tensor:
    """uint8 (N, 3, H, W) → float normalised as labkit's transforms do (ImageNet statistics)."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def _loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of the family (logits 0-9) plus that of the pattern (logits 10-17)."""
    nf = len(SHAPE_FAMILIES)
    return F.cross_entropy(logits[:, :nf], targets[:, 0]) + F.cross_entropy(
        logits[:, nf:], targets[:, 1]
    )


def accuracy(logits: Tensor, targets: Tensor) -> dict[str, float]:
    """How often the family and the pattern are right.

    Args:
        logits (Tensor[M, 18]): family logits then pattern logits (see :data:`LABELS`).
        targets (Tensor[M, 2] int64): family and pattern indices.

    Returns:
        ``{"family": float, "pattern": float}``, fractions in [0, 1].
    """
    nf = len(SHAPE_FAMILIES)
    return {
        "family": (logits[:, :nf].argmax(1) == targets[:, 0]).float().mean().item(),
        "pattern": (logits[:, nf:].argmax(1) == targets[:, 1]).float().mean().item(),
    }


@torch.no_grad()
def _held_out(model: torch.nn.Module, options: PretrainOptions, device: torch.device) -> dict:
    """Family and pattern accuracy on the crops of the held-out images."""
    images, targets = pretraining_set(options, start=options.num_images, count=options.held_out)
    model.eval()
    logits = torch.cat(
        [model(_normalize(x).to(device)).cpu() for x in images.split(options.batch_size)]
    )
    return accuracy(logits, targets)


def pretrain_resnet18(
    options: PretrainOptions | None = None, *, device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Train a torchvision ResNet-18 on the presence task (see the module docstring).

    Uses the threads torch is set to (``torch.set_num_threads``); one is enough.

    Args:
        options (PretrainOptions | None): the task and budget (``None``: :func:`default_options`).
        device (str | torch.device): where to train.

    Returns:
        record (dict[str, Any]): ``state_dict`` (the encoder's tensors on the CPU: every key
        of ``torchvision.models.resnet18()`` but ``fc.*``, the pretraining head),
        ``head`` (the pretraining head's ``weight`` (Tensor[18, 512]) and ``bias``, for
        inspection; models never load it), ``options``, ``format``, ``held_out`` (family and
        pattern accuracy on the held-out crops) and ``seconds``.
    """
    options, device = options or default_options(), torch.device(device)
    start = time.perf_counter()
    images, targets = pretraining_set(options, start=0, count=options.num_images)
    log.info("drew %d crops in %.0f s", len(images), time.perf_counter() - start)
    with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
        torch.manual_seed(options.seed)
        model = tvm.resnet18(num_classes=len(LABELS)).to(device)
    gen = torch.Generator().manual_seed(options.seed)
    per_epoch = len(images) // options.batch_size
    if per_epoch < 1:
        raise UsageError(
            f"expected at least batch_size={options.batch_size} crops to train on; got "
            f"{len(images)} from {options.num_images} images (draw more images)"
        )
    opt = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=options.lr, total_steps=options.epochs * per_epoch
    )
    model.train()
    for epoch in range(options.epochs):
        order, total = torch.randperm(len(images), generator=gen), 0.0
        for step in range(per_epoch):
            idx = order[step * options.batch_size : (step + 1) * options.batch_size]
            x = _normalize(images[idx])  # (B, 3, S, S)
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            loss = _loss(model(x.to(device)), targets[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        log.info(
            "pretraining epoch %d/%d: loss %.4f (%.0f s)",
            epoch + 1,
            options.epochs,
            total / per_epoch,
            time.perf_counter() - start,
        )
    held_out = _held_out(model, options, device) if options.held_out else {}
    seconds = time.perf_counter() - start
    log.info("pretrained in %.0f s; held-out accuracy %s", seconds, held_out)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {
        "format": _FORMAT,
        "options": dataclasses.asdict(options),
        "state_dict": {k: v for k, v in state.items() if not k.startswith("fc.")},
        "head": {k[3:]: v for k, v in state.items() if k.startswith("fc.")},
        "held_out": held_out,
        "seconds": seconds,
    }


def _bad_cache(path: Path, expected: str, got: str) -> PretrainCacheError:
    return PretrainCacheError(
        f"the cached Shapes-pretrained ResNet-18 {path} is unusable: expected {expected}; "
        f"got {got}. Delete the file (rm '{path}'); the next use pretrains it again (a few "
        "CPU minutes), or run `labkit pretrain` to build it now."
    )


def _read_cache(path: Path, options: PretrainOptions) -> dict[str, Tensor]:
    """The encoder state dict of a cache file, checked against ``options`` and ResNet-18."""
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file at all, unreadable
        got = f"a file torch.load cannot read ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        raise _bad_cache(path, "a file written by torch.save", got) from exc
    what = f"format {_FORMAT} and options {dataclasses.asdict(options)}"
    if not isinstance(record, dict) or not isinstance(record.get("state_dict"), dict):
        raise _bad_cache(path, f"a labkit record ({what})", f"a {type(record).__name__}")
    if record.get("format") != _FORMAT or record.get("options") != dataclasses.asdict(options):
        got = f"format {record.get('format')} and options {record.get('options')}"
        raise _bad_cache(path, what, got)
    with torch.device("meta"):
        reference = tvm.resnet18().state_dict()
    shapes = {k: tuple(v.shape) for k, v in reference.items() if not k.startswith("fc.")}
    state = record["state_dict"]
    found = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, Tensor)}
    if found != shapes or len(state) != len(shapes):
        wrong = sorted(set(shapes.items()) ^ set(found.items()))[:3]
        raise _bad_cache(
            path, "ResNet-18's tensors (fc left out)", f"other keys or shapes, e.g. {wrong}"
        )
    return state


def load_shapes_pretrained(
    options: PretrainOptions | None = None, *, device: str | torch.device = "cpu"
) -> dict[str, Tensor]:
    """The Shapes-pretrained ResNet-18 encoder's state dict, pretraining it on first use.

    Args:
        options (PretrainOptions | None): the pretraining (``None``: :func:`default_options`).
        device (str | torch.device): where to pretrain if the cache lacks the file.

    Returns:
        state (dict[str, Tensor]): CPU tensors for every key of ``torchvision.models.resnet18()``
        except ``fc.weight`` and ``fc.bias``.

    Raises:
        PretrainCacheError: the cache file exists but is truncated, corrupt or another's;
            the message names it and says to delete it.
    """
    options = options or default_options()
    path = shapes_pretrained_path(options)
    if path.is_file():
        state = _read_cache(path, options)
        log.info("loaded the Shapes-pretrained ResNet-18 from %s", path)
        return state
    log.warning(
        "no Shapes-pretrained ResNet-18 in %s; pretraining it once now (a few CPU minutes; "
        "`labkit pretrain` builds it ahead)",
        path,
    )
    record = pretrain_resnet18(options, device=device)
    replace_atomically(path, lambda fh: torch.save(record, fh))
    log.info("cached the Shapes-pretrained ResNet-18 in %s", path)
    return record["state_dict"]


def ensure_shapes_pretrained(
    options: PretrainOptions | None = None, *, device: str | torch.device = "cpu"
) -> Path:
    """Make sure the cache holds a usable file (pretraining if it is missing); its path.

    Args:
        options (PretrainOptions | None): the pretraining (``None``: :func:`default_options`).
        device (str | torch.device): where to pretrain if needed.

    Returns:
        path (Path): the checked cache file, see :func:`shapes_pretrained_path`.

    Raises:
        PretrainCacheError: the file exists but is unusable (see :func:`load_shapes_pretrained`).
    """
    load_shapes_pretrained(options, device=device)
    return shapes_pretrained_path(options)
