"""The Shapes set: a generated stand-in for Pascal VOC that trains on a CPU in minutes.

Every foreground class is a shape family with a surface pattern ("disc", "striped star",
...), drawn over a greyish textured background with distractor blobs (labelled
background), partial occlusion, a long-tailed class distribution, a 12x range of object
radii (most objects large: a few pixels of a 96-px image carry no learnable shape), and
affine plus smooth elastic deformations whose strength is one argument. Colour is tied to
the shape family only loosely: 70 % of the objects take their family's hue (jittered), the
rest any hue, and the plain and striped twins of a family share it, so a network still
needs shape and texture. The files land in the Pascal VOC 2012 layout, so
``VOCSegmentation`` reads them. The primitives (signed distances, patterns, background
textures) live in :mod:`labkit.data._shapes_geometry`.

Each image's randomness comes from ``SeedSequence([seed, split, index])``, so the files are
byte-identical for the same arguments however many worker processes draw them, and the
layout (classes, places, sizes, colours) of a given seed does not depend on ``deformation``.
"""

from __future__ import annotations

import colorsys
import json
import logging
import math
import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from labkit.data._shapes_geometry import SDF, background, grid, pattern
from labkit.data.palette import voc_colormap
from labkit.errors import UsageError

__all__ = [
    "SHAPES_CLASSES",
    "SHAPE_FAMILIES",
    "SHAPE_PATTERNS",
    "STREAMS",
    "class_attributes",
    "draw_shapes_image",
    "generate_shapes",
    "shapes_classes",
]

_LOG = logging.getLogger(__name__)

_FAMILIES = (
    "disc",
    "square",
    "triangle",
    "star",
    "ring",
    "cross",
    "crescent",
    "heart",
    "arrow",
    "hexagon",
)
_PATTERNS = ("plain", "striped", "dotted", "checkered", "wavy", "gridded", "ringed", "speckled")
_STYLES = ("filled", "hollow", "framed", "halved")
_SPLITS = ("train", "val")
#: The random streams images are drawn from: a set's two splits, and a third that no set
#: ever writes (the images :mod:`labkit.models.pretrain` learns from). The stream's position
#: is part of every image's seed, so no two streams share an image, whatever the seed.
STREAMS: tuple[str, ...] = (*_SPLITS, "pretrain")
#: The shape families and surface patterns, in class order (see :func:`shapes_classes`).
SHAPE_FAMILIES: tuple[str, ...] = _FAMILIES
SHAPE_PATTERNS: tuple[str, ...] = _PATTERNS
_TAIL = 30.0  # object-frequency ratio between the commonest and the rarest class
_HUE_TIE = 0.7  # share of objects coloured with their family's hue (the rest: any hue)
_HUE_JITTER = 0.03  # standard deviation of the hue around the family's
_RADIUS = (0.06, 0.75)  # smallest and largest object radius, as fractions of the image side
_RADIUS_SKEW = 0.6  # log-radius = lerp(log lo, log hi, u ** skew): < 1 favours large objects
_OBJECTS = (3, 0.4)  # objects per image: 1 + binomial(n, p)
_CLUTTER = (2, 0.3)  # distractor blobs per image: binomial(n, p)
_BG_CONTRAST = 0.6  # brightness spread of the background texture, in [0, 1]
_PERIOD = (0.25, 0.4)  # pattern period as a fraction of the object radius (>= 4 px)
_SMALL_SET = 32  # below this many images, worker start-up costs more than it saves
_FORMAT = 2  # bump when the drawing changes, so cached sets are redrawn


def _check_int(name: str, value, lo: int, hi: int | None) -> None:
    span = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < lo
        or (hi is not None and value > hi)
    ):
        raise UsageError(f"expected {name} to be an integer {span}; got {value!r}.")


def _combo(j: int) -> tuple[str, str, str]:
    nf, npat = len(_FAMILIES), len(_PATTERNS)
    return _FAMILIES[j % nf], _PATTERNS[(j // nf) % npat], _STYLES[j // (nf * npat)]


def shapes_classes(num_classes: int) -> tuple[str, ...]:
    """Name the classes of a Shapes set.

    Class ``k`` is the ``k``-th (shape, pattern, style) combination, shape varying fastest:
    the first ten are plain shapes, the next ten striped ones, and so on, so a set with
    fewer classes keeps the ids and names of a bigger one.

    Args:
        num_classes (int): number of classes including background, in [2, 255].

    Returns:
        tuple[str, ...] of length ``num_classes``: ``"background"`` then the shape classes.

    Raises:
        ValueError: if ``num_classes`` is outside [2, 255].
    """
    _check_int("num_classes", num_classes, 2, 255)
    names = ["background"]
    for j in range(num_classes - 1):
        fam, pat, sty = _combo(j)
        names.append(" ".join(w for w in (sty, pat, fam) if w not in ("filled", "plain")))
    return tuple(names)


def class_attributes(class_id: int) -> tuple[str, str, str]:
    """The shape family, pattern and style of an object class (``1`` → disc, plain, filled).

    Args:
        class_id (int): an object class id in [1, 254] (0, background, has no shape).

    Returns:
        ``(family, pattern, style)``: members of :data:`SHAPE_FAMILIES`,
        :data:`SHAPE_PATTERNS` and ``("filled", "hollow", "framed", "halved")``.

    Raises:
        UsageError: if ``class_id`` is outside [1, 254].
    """
    _check_int("class_id", class_id, 1, 254)
    return _combo(int(class_id) - 1)


#: The default 21 classes (background, 10 plain shapes, 10 striped shapes), as in VOC.
SHAPES_CLASSES: tuple[str, ...] = shapes_classes(21)


def generate_shapes(
    root: str | os.PathLike,
    *,
    num_train: int,
    num_val: int,
    size: int = 128,
    num_classes: int = 21,
    seed: int = 0,
    deformation: float = 0.5,
    workers: int | None = None,
) -> Path:
    """Draw a Shapes set in the Pascal VOC 2012 layout.

    Writes ``root/VOCdevkit/VOC2012/`` with ``JPEGImages/<id>.jpg`` (RGB),
    ``SegmentationClass/<id>.png`` (mode "P", VOC palette, class ids, 255 = a void band
    along object borders), ``ImageSets/Segmentation/{train,val,trainval}.txt``,
    ``shapes.json`` (arguments, class names, class pixel counts) and
    ``shapes_objects.json`` (per image, per object: class, centre, scale in pixels,
    in-frame area, visible pixels, occluded pixels, truncation). If ``root`` already holds
    a complete set drawn with the same arguments, nothing is redrawn.

    Args:
        root (str | os.PathLike): folder to hold ``VOCdevkit`` (created if missing).
        num_train (int): number of training images (>= 0).
        num_val (int): number of validation images (>= 0).
        size (int): side of the square images in pixels (>= 32).
        num_classes (int): classes including background, in [2, 255].
        seed (int): non-negative seed; the same arguments give byte-identical files.
        deformation (float): strength in [0, 1] of the affine (rotation, shear, anisotropic scale)
            and elastic warps; 0 draws rigid upright shapes.
        workers (int | None): processes to draw with; ``None`` uses ``os.cpu_count()``. Does not
            change the result.

    Returns:
        Path: ``root``, ready for ``torchvision.datasets.VOCSegmentation(root, year="2012")``.

    Raises:
        ValueError: if an argument is out of range.
    """
    args = _checked_arguments(
        num_train=num_train,
        num_val=num_val,
        size=size,
        num_classes=num_classes,
        seed=seed,
        deformation=deformation,
        workers=workers,
    )
    root = Path(root).expanduser()
    voc = root / "VOCdevkit" / "VOC2012"
    if _is_complete(voc, args):
        _LOG.info("Shapes set with these arguments already in %s; not redrawn", voc)
        return root
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    (voc / "shapes.json").unlink(missing_ok=True)  # written last: marks the set complete

    tasks, results = _draw_all(voc, args, workers)
    _write_index(voc, args, tasks, results)
    _LOG.info("drew %d + %d Shapes images of %d px into %s", num_train, num_val, size, voc)
    return root


def _checked_arguments(
    *,
    num_train: int,
    num_val: int,
    size: int,
    num_classes: int,
    seed: int,
    deformation: float,
    workers: int | None,
) -> dict:
    """Check :func:`generate_shapes`' arguments; return the ones that shape the files.

    The returned dict is what ``shapes.json`` records and what :func:`_is_complete` compares,
    so ``workers`` (which never changes the result) is left out of it.

    Raises:
        UsageError: naming the first argument out of range.
    """
    _check_int("num_train", num_train, 0, None)
    _check_int("num_val", num_val, 0, None)
    _check_int("size", size, 32, None)
    _check_int("num_classes", num_classes, 2, 255)
    _check_int("seed", seed, 0, None)
    if workers is not None:
        _check_int("workers", workers, 1, None)
    if (
        isinstance(deformation, bool)
        or not isinstance(deformation, (int, float))
        or not 0.0 <= deformation <= 1.0
    ):
        raise UsageError(
            f"expected deformation to be a number in [0, 1] (0 = rigid shapes); "
            f"got {deformation!r}."
        )
    return dict(
        num_train=num_train,
        num_val=num_val,
        size=size,
        num_classes=num_classes,
        seed=seed,
        deformation=float(deformation),
    )


def _draw_all(
    voc: Path, args: dict, workers: int | None
) -> tuple[list[tuple], list[list[tuple[str, list, list]]]]:
    """Draw every image of both splits into ``voc``, in chunks of 16, in parallel if it pays.

    Returns:
        (the chunk tasks, each ``(voc, split, start, stop, args)``; each chunk's rows from
        :func:`_draw_chunk`, in the same order).
    """
    counts = {"train": args["num_train"], "val": args["num_val"]}
    chunk = 16
    tasks = [
        (str(voc), split, start, min(start + chunk, n), args)
        for split, n in counts.items()
        for start in range(0, n, chunk)
    ]
    workers = min(workers or os.cpu_count() or 1, len(tasks))
    results = None
    # daemonic processes may not have children (e.g. inside a multiprocessing worker)
    if workers > 1 and sum(counts.values()) >= _SMALL_SET and not mp.current_process().daemon:
        # fork is cheap and safe here (children only use numpy and PIL); elsewhere
        # (macOS, Windows) the platform default start method is the safe one.
        ctx = mp.get_context("fork") if sys.platform.startswith("linux") else None
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                results = list(pool.map(_draw_chunk, tasks))
        except (OSError, BrokenProcessPool) as err:  # sandboxes without /dev/shm, OOM kills
            _LOG.warning("worker processes failed (%s); drawing in this process instead", err)
    if results is None:  # same files either way: seeds are per image
        results = [_draw_chunk(t) for t in tasks]
    return tasks, results


def _write_index(
    voc: Path, args: dict, tasks: list[tuple], results: list[list[tuple[str, list, list]]]
) -> None:
    """Write the image lists, ``shapes_objects.json`` and, last, ``shapes.json``.

    ``shapes.json`` goes last because its presence marks the set complete
    (:func:`_is_complete`): a run cut short before it is redrawn next time.
    """
    num_classes = args["num_classes"]
    objects: dict[str, list] = {}
    pixels = {s: np.zeros(256, np.int64) for s in _SPLITS}
    ids: dict[str, list[str]] = {s: [] for s in _SPLITS}
    for split, rows in zip((t[1] for t in tasks), results):
        for image_id, objs, hist in rows:
            ids[split].append(image_id)
            objects[image_id] = objs
            pixels[split] += np.asarray(hist, np.int64)
    sets = voc / "ImageSets" / "Segmentation"
    for name, lst in (
        ("train", ids["train"]),
        ("val", ids["val"]),
        ("trainval", ids["train"] + ids["val"]),
    ):
        (sets / f"{name}.txt").write_text("".join(f"{i}\n" for i in lst))
    (voc / "shapes_objects.json").write_text(json.dumps(objects, separators=(",", ":")))
    meta = {
        "generator": "labkit.data.shapes",
        "format": _FORMAT,
        "arguments": args,
        "classes": list(shapes_classes(num_classes)),
        "class_object_probability": [0.0] + _class_probs(num_classes).round(6).tolist(),
        "pixel_counts": {s: pixels[s][:num_classes].tolist() for s in _SPLITS},
        "void_pixels": {s: int(pixels[s][255]) for s in _SPLITS},
    }
    (voc / "shapes.json").write_text(json.dumps(meta, indent=1))


def _is_complete(voc: Path, args: dict) -> bool:
    try:
        meta = json.loads((voc / "shapes.json").read_text())
    except (OSError, ValueError):
        return False
    sets = voc / "ImageSets" / "Segmentation"
    return (
        meta.get("format") == _FORMAT
        and meta.get("arguments") == args
        and all((sets / f"{s}.txt").is_file() for s in ("train", "val", "trainval"))
    )


@cache
def _class_probs(num_classes: int) -> np.ndarray:
    """Object probabilities of classes 1..C-1: a geometric tail in a fixed scrambled order."""
    k = num_classes - 1
    keys = np.random.default_rng(2012).random(255)[:k]
    rank = np.argsort(np.argsort(keys))
    p = _TAIL ** (-rank / max(k - 1, 1))
    return p / p.sum()


# ---------------------------------------------------------------------------- drawing


def _draw_chunk(task: tuple) -> list[tuple[str, list, list]]:
    vocdir, split, start, stop, args = task
    voc = Path(vocdir)
    palette = voc_colormap().ravel().tolist()
    rows = []
    for index in range(start, stop):
        img, lab, objs = draw_shapes_image(
            index,
            stream=split,
            size=args["size"],
            num_classes=args["num_classes"],
            seed=args["seed"],
            deformation=args["deformation"],
        )
        image_id = f"{split}_{index:06d}"
        Image.fromarray(img).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=90)
        mask = Image.frombytes("P", lab.shape[::-1], lab.tobytes())
        mask.putpalette(palette)
        mask.save(voc / "SegmentationClass" / f"{image_id}.png")
        rows.append((image_id, objs, np.bincount(lab.ravel(), minlength=256).tolist()))
    return rows


def draw_shapes_image(
    index: int,
    *,
    stream: str,
    size: int,
    num_classes: int,
    seed: int = 0,
    deformation: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Draw one Shapes image in memory, exactly as :func:`generate_shapes` draws it.

    ``draw_shapes_image(i, stream="train", ...)`` is image ``train_<i>`` of the set
    ``generate_shapes`` writes with the same arguments, before its JPEG encoding;
    ``stream="pretrain"`` draws from a stream no set holds.

    Args:
        index (int): the image's number within its stream (>= 0).
        stream (str): one of :data:`STREAMS`.
        size (int): side of the square image in pixels (>= 32).
        num_classes (int): classes including background, in [2, 255].
        seed (int): non-negative seed.
        deformation (float): strength of the affine and elastic warps, in [0, 1].

    Returns:
        ``(image, mask, objects)``: ``image`` (ndarray[size, size, 3] uint8, RGB), ``mask``
        (ndarray[size, size] uint8, class ids, 255 along borders) and one dict per object
        (keys as in ``shapes_objects.json``: ``class``, ``visible`` pixels, ...).

    Raises:
        UsageError: if an argument is out of range.
    """
    if stream not in STREAMS:
        raise UsageError(f"expected stream to be one of {list(STREAMS)}; got {stream!r}.")
    _check_int("index", index, 0, None)
    args = _checked_arguments(
        num_train=0,
        num_val=0,
        size=size,
        num_classes=num_classes,
        seed=seed,
        deformation=deformation,
        workers=None,
    )
    ss = np.random.SeedSequence([args["seed"], STREAMS.index(stream), index])
    layout, noise = (np.random.default_rng(s) for s in ss.spawn(2))
    return _draw_image(layout, noise, size, num_classes, args["deformation"])


def _draw_image(
    layout: np.random.Generator,
    noise: np.random.Generator,
    size: int,
    num_classes: int,
    deformation: float,
) -> tuple[np.ndarray, np.ndarray, list]:
    """Draw one image.

    ``layout`` gives a fixed number of scalars per item whatever ``deformation`` is, so
    two sets that differ only in ``deformation`` hold the same objects in the same places;
    ``noise`` gives the pixel-level arrays.

    Returns:
        (ndarray[H, W, 3] uint8, ndarray[H, W] uint8 with 255 void, list of object dicts).
    """
    img = background(layout, noise, size, contrast=_BG_CONTRAST)
    lab = np.zeros((size, size), np.uint8)
    idx = np.zeros((size, size), np.int16)  # 1 + object number; 0 = background
    probs = _class_probs(num_classes)
    n_obj, n_dis = 1 + layout.binomial(*_OBJECTS), layout.binomial(*_CLUTTER)
    r_lo, r_hi = _RADIUS[0] * size, _RADIUS[1] * size
    items = []
    for i in range(n_obj + n_dis):
        is_obj = i < n_obj
        cls = 1 + int(layout.choice(len(probs), p=probs)) if is_obj else 0
        r = r_lo * (r_hi / r_lo) ** (layout.random() ** _RADIUS_SKEW)
        if not is_obj:
            r = min(r, 0.2 * size)
        depth = math.log(r) + layout.normal(0, 0.7) if is_obj else layout.uniform(0, 5)
        items.append((-depth, i, cls, r, _item_params(layout, cls, is_obj, size, r)))
    items.sort(key=lambda t: (t[0], t[1]))  # far (large) first, near (small) last
    objs = []
    for _, _, cls, r, par in items:
        area, box, trunc = _paint(
            img, lab, idx, cls, r, par, deformation, len(objs) + 1 if cls else 0
        )
        if cls:
            objs.append(
                {
                    "class": cls,
                    "center": [round(par["cx"], 2), round(par["cy"], 2)],
                    "scale": round(r, 2),
                    "area": area,
                    "bbox": box,
                    "truncated": trunc,
                }
            )
    top = np.bincount(idx.ravel(), minlength=len(objs) + 1)
    _void_band(lab, max(1, round(size / 128)))
    shown = np.bincount(idx[lab != 255], minlength=len(objs) + 1)
    for k, o in enumerate(objs, start=1):
        o["occluded"], o["visible"] = int(o["area"] - top[k]), int(shown[k])
    # illumination gradient, sensor noise
    yy, xx = grid(size)
    gx, gy = (float(g) / size for g in layout.normal(0, 0.12, 2))
    img *= (1 + gx * (xx - size / 2) + gy * (yy - size / 2))[..., None]
    grain = noise.random(img.shape, dtype=np.float32) - 0.5  # uniform: 8x faster than normal
    img += grain * layout.uniform(0.02, 0.1)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), lab, objs


def _item_params(rng: np.random.Generator, cls: int, is_obj: bool, size: int, r: float) -> dict:
    if is_obj:
        fam, pat, sty = _combo(cls - 1)
        # the hue belongs to the family, so plain and striped twins share it
        tied = _FAMILIES.index(fam) / len(_FAMILIES)
        hue = tied if rng.random() < _HUE_TIE else rng.random()
    else:  # distractor: blob or stick, any pattern
        fam = "blob" if rng.random() < 0.7 else "stick"
        pat, sty = _PATTERNS[rng.integers(len(_PATTERNS))], "filled"
        hue = rng.random()
    hue = (hue + rng.normal(0, _HUE_JITTER)) % 1.0
    v = rng.uniform(0.3, 0.95)
    fg = colorsys.hsv_to_rgb(hue, rng.uniform(0.5, 1.0), v)
    bg = colorsys.hsv_to_rgb(
        rng.random(), rng.uniform(0, 0.9), float(np.clip(1.2 - v + rng.normal(0, 0.1), 0.05, 1))
    )
    edge = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, 1), rng.uniform(0, 1))
    return dict(
        fam=fam,
        pat=pat,
        sty=sty,
        cols=np.array([fg, bg, edge], np.float32),
        cx=rng.uniform(0.05, 0.95) * size,
        cy=rng.uniform(0.05, 0.95) * size,
        aff=rng.uniform(-1, 1, 3),  # rotation, shear, log-anisotropy
        warp=rng.uniform(0, 1, (3, 4)),  # direction, frequency, phase, push angle
        # pattern period grows with the object; never under 4 px, or JPEG and aliasing wipe it out
        period=max(rng.uniform(*_PERIOD) * r, 4.0),
        shade=rng.normal(0, 0.15, 2).tolist(),
        blob=rng.uniform(0, 1, (3, 2)),
        thick=rng.uniform(0.12, 0.22),
    )


def _paint(
    img: np.ndarray,
    lab: np.ndarray,
    idx: np.ndarray,
    cls: int,
    r: float,
    par: dict,
    d: float,
    number: int,
) -> tuple[int, list[int], bool]:
    """Paint one item (radius ``r`` px, deformation ``d``) into the canvases, in place.

    ``img`` (ndarray[H, W, 3] float32), ``lab`` (ndarray[H, W] uint8, class ids) and ``idx``
    (ndarray[H, W] int16, object numbers) take the item where its signed distance is
    negative; the image edge is anti-aliased.

    Returns:
        (pixels inside the frame, bbox [x0, y0, x1, y1], whether it touches the frame).
    """
    size = lab.shape[0]
    th, sh, an = par["aff"] * np.array([math.pi, 0.6, 0.45]) * d
    # a = rotation @ shear @ diag(e^an, e^-an): canonical frame -> pixel offsets / r
    c, s, ea = math.cos(th), math.sin(th), math.exp(an)
    a00, a01, a10, a11 = c * ea, (c * sh - s) / ea, s * ea, (s * sh + c) / ea
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / (det * r), -a01 / (det * r), -a10 / (det * r), a00 / (det * r)
    fro2 = a00**2 + a01**2 + a10**2 + a11**2  # largest singular value, closed form
    norm = math.sqrt((fro2 + math.sqrt(max(fro2**2 - 4 * det**2, 0.0))) / 2)
    w = par["warp"]
    amp = 0.12 * d
    ext = r * norm * (1.25 + 3 * amp) + 2
    x0, x1 = max(int(par["cx"] - ext), 0), min(int(par["cx"] + ext) + 1, size)
    y0, y1 = max(int(par["cy"] - ext), 0), min(int(par["cy"] + ext) + 1, size)
    if x0 >= x1 or y0 >= y1:
        return 0, [0, 0, 0, 0], False
    yy, xx = grid(size)
    px, py = xx[y0:y1, x0:x1] - par["cx"], yy[y0:y1, x0:x1] - par["cy"]
    qx = i00 * px + i01 * py  # canonical frame, shape radius ~1
    qy = i10 * px + i11 * py
    if amp > 0:  # smooth elastic warp: three sine waves
        ux, uy = qx.copy(), qy.copy()
        for dirn, freq, phase, push in w:
            t = 2 * math.pi * dirn
            arg = (1.5 + 1.5 * freq) * (math.cos(t) * ux + math.sin(t) * uy) + 2 * math.pi * phase
            wave = amp * np.sin(arg)
            qx += wave * math.cos(2 * math.pi * push)
            qy += wave * math.sin(2 * math.pi * push)
    sdf = SDF[par["fam"]](qx, qy, par)
    if par["sty"] == "hollow":
        sdf = np.maximum(sdf, -(sdf + 0.3))
    u, v = qx * r, qy * r  # texture follows the deformed surface
    m = pattern(par["pat"], u, v, par["period"])
    if par["sty"] == "halved":
        m = np.maximum(m, (qx > 0).astype(np.float32))
    fg, bg, edge = par["cols"]
    col = fg + (bg - fg) * m[..., None]
    sx, sy = par["shade"]
    col *= 1 + (sx * qx + sy * qy)[..., None]
    if par["sty"] == "framed":
        col = np.where((sdf > -max(0.2, 1.5 / r))[..., None], edge, col)
    alpha = np.clip(0.5 - sdf * r, 0, 1)[..., None]  # anti-aliased edge, about 1 px wide
    crop = img[y0:y1, x0:x1]
    crop += (col - crop) * alpha
    inside = sdf < 0
    lab[y0:y1, x0:x1][inside] = cls
    idx[y0:y1, x0:x1][inside] = number
    ys, xs = np.nonzero(inside)
    if len(ys) == 0:
        return 0, [0, 0, 0, 0], False
    box = [int(xs.min()) + x0, int(ys.min()) + y0, int(xs.max()) + x0 + 1, int(ys.max()) + y0 + 1]
    return int(len(ys)), box, bool(box[0] == 0 or box[1] == 0 or box[2] == size or box[3] == size)


def _void_band(lab: np.ndarray, k: int) -> None:
    """Mark 255 on both sides of every label change, ``2k`` pixels wide, as VOC does."""
    ref = lab.copy()
    band = np.zeros(lab.shape, bool)
    for s in range(1, k + 1):
        dv, dh = ref[s:] != ref[:-s], ref[:, s:] != ref[:, :-s]
        band[s:] |= dv
        band[:-s] |= dv
        band[:, s:] |= dh
        band[:, :-s] |= dh
    lab[band] = 255
