"""Drawing primitives of the Shapes set: signed distances, surface patterns, backgrounds.

Private to :mod:`labkit.data.shapes`. Everything here is a pure function of its arguments
(and of the generators passed in), so the generator stays deterministic.

Signed distances live in a canonical frame: the shape fits the unit disc and y points down.
Only their sign has to be exact; their magnitude (in shape radii) sets the anti-aliasing.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

__all__ = ["SDF", "background", "grid", "pattern", "value_noise"]


@lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(yy, xx)``, each ndarray[size, size] float32."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    return yy, xx


@lru_cache(maxsize=64)
def _interp_index(size: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Left neighbour and weight of each pixel centre on a ``cells``-point coarse grid.

    Gathers instead of matrix products: tiny BLAS calls start threads and lose time on a
    shared machine.
    """
    pos = (np.arange(size) + 0.5) / size * (cells - 1)
    lo = np.minimum(pos.astype(np.int64), cells - 2)
    return lo, (pos - lo).astype(np.float32)


def value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Bilinear upsampling of a random ``cells`` x ``cells`` grid, rescaled to [0, 1].

    Returns:
        ndarray[size, size] float32.
    """
    lo, frac = _interp_index(size, cells)
    g = rng.random((cells, cells), dtype=np.float32)
    g = g[lo] + (g[lo + 1] - g[lo]) * frac[:, None]  # (size, cells)
    t = g[:, lo] + (g[:, lo + 1] - g[:, lo]) * frac  # (size, size)
    t -= t.min()
    return t / max(float(t.max()), 1e-6)


def background(
    layout: np.random.Generator, noise: np.random.Generator, size: int, *, contrast: float
) -> np.ndarray:
    """A textured background: gradient, value noise, stripes or checks between two colours.

    ``layout`` gives the scalars (a fixed number), ``noise`` the pixel arrays. Both colours
    are greyish (saturation <= 0.35); ``contrast`` in [0, 1] scales how far apart their
    brightness may be, so the texture never out-shouts the objects.

    Returns:
        ndarray[size, size, 3] float32 in about [0, 1].
    """
    yy, xx = grid(size)
    base = layout.uniform(0.25, 0.75)
    cols = [
        colorsys.hsv_to_rgb(
            layout.random(),
            layout.uniform(0, 0.35),
            float(np.clip(base + contrast * layout.uniform(-0.3, 0.3), 0, 1)),
        )
        for _ in range(2)
    ]
    kind, ang = layout.integers(5), layout.uniform(0, math.pi)
    period, cells = layout.uniform(5, 24) * size / 128, int(layout.integers(3, 9))
    along = (xx * math.cos(ang) + yy * math.sin(ang)) / size
    if kind == 0:
        t = along - along.min()
        t /= t.max()
    elif kind == 1:
        t = value_noise(noise, size, cells)
    elif kind == 2:
        t = 0.5 + 0.5 * np.tanh(3 * np.sin(2 * math.pi * along * size / period))
    elif kind == 3:
        t = 0.5 + 0.5 * np.sign(np.sin(math.pi * xx / period) * np.sin(math.pi * yy / period))
    else:
        stripes = (np.sin(2 * math.pi * along * (size / period)) > 0).astype(np.float32)
        t = 0.6 * value_noise(noise, size, cells) + 0.4 * stripes
    a, b = np.array(cols, np.float32)
    img = a + (b - a) * t[..., None].astype(np.float32)
    img += 0.12 * (value_noise(noise, size, int(layout.integers(12, 33))) - 0.5)[..., None]
    return img.astype(np.float32)


def pattern(name: str, u: np.ndarray, v: np.ndarray, t: float) -> np.ndarray:
    """Pattern weight in [0, 1] at texture coordinates ``u, v`` (pixels), period ``t``.

    Returns:
        ndarray float32 of the shape of ``u``: 0 takes the first colour, 1 the second.
    """
    tau = 2 * math.pi
    if name == "plain":
        return np.zeros_like(u)
    if name == "striped":
        m = 0.5 + 1.5 * np.sin(tau * u / t)
    elif name == "dotted":
        fu, fv = u / t - np.floor(u / t) - 0.5, v / t - np.floor(v / t) - 0.5
        m = 0.3 * t + 0.5 - t * np.hypot(fu, fv)
    elif name == "checkered":
        m = 0.5 + 2.0 * np.sin(math.pi * u / t) * np.sin(math.pi * v / t)
    elif name == "wavy":
        m = 0.5 + 1.5 * np.sin(tau * (u + 0.35 * t * np.sin(tau * v / (1.5 * t))) / t)
    elif name == "gridded":
        m = 1.25 - t * np.minimum(
            np.abs(u / t - np.floor(u / t) - 0.5), np.abs(v / t - np.floor(v / t) - 0.5)
        )
    elif name == "ringed":
        m = 0.5 + 1.5 * np.sin(tau * np.hypot(u, v) / t)
    else:  # speckled: hashed cells about t/3 wide
        cu, cv = np.floor(3 * u / t), np.floor(3 * v / t)
        h = np.sin(cu * 12.9898 + cv * 78.233) * 43758.5453
        m = ((h - np.floor(h)) > 0.65).astype(np.float32)
    return np.clip(m, 0, 1).astype(np.float32)


# ---------------------------------------------------------------------- signed distances


def _poly(x, y, verts) -> np.ndarray:
    """Convex polygon, vertices in either order: the max of the distances to its edge lines."""
    turn = sum(ax * by - bx * ay for (ax, ay), (bx, by) in zip(verts, verts[1:] + verts[:1]))
    sign = -1.0 if turn < 0 else 1.0  # makes every normal point outwards
    d = None
    for (ax, ay), (bx, by) in zip(verts, verts[1:] + verts[:1]):
        nx, ny = sign * (by - ay), sign * (ax - bx)
        n = math.hypot(nx, ny)
        e = ((x - ax) * nx + (y - ay) * ny) / n
        d = e if d is None else np.maximum(d, e)
    return d


def _box(x, y, hx, hy, ox=0.0):
    return _poly(x - ox, y, [(-hx, -hy), (-hx, hy), (hx, hy), (hx, -hy)])


def _ngon(n: int, r: float, rot: float) -> list[tuple[float, float]]:
    return [
        (r * math.cos(rot - 2 * math.pi * k / n), r * math.sin(rot - 2 * math.pi * k / n))
        for k in range(n)
    ]


_TRI, _HEX = _ngon(3, 1.05, -math.pi / 2), _ngon(6, 0.9, 0.0)
_HEAD = [(0.2, -0.6), (0.2, 0.6), (1.0, 0.0)]


def _star(x, y, _):
    ang = np.arctan2(x, -y) * (5 / (2 * math.pi))
    tri = np.abs(ang - np.floor(ang) - 0.5) * 2  # 1 at a tip, 0 between tips
    return (np.hypot(x, y) - (0.42 + 0.58 * tri)) * 0.8


def _heart(x, y, _):
    px, py = np.abs(x) / 1.8, 0.55 - y / 1.8  # iq's heart: tip at (0, 0), lobes above
    up = px + py > 1
    d_lobe = np.hypot(px - 0.25, py - 0.75) - math.sqrt(2) / 4
    t = 0.5 * np.maximum(px + py, 0)
    d_low = np.sqrt(np.minimum(px**2 + (py - 1) ** 2, (px - t) ** 2 + (py - t) ** 2)) * np.sign(
        px - py
    )
    return np.where(up, d_lobe, d_low) * 1.8


def _blob(x, y, par):
    ang, rad = np.arctan2(y, x), 0.85
    for k, (a, ph) in zip((2, 3, 5), par["blob"]):
        rad = rad + 0.85 * (0.1 + 0.15 * a) * np.cos(k * ang + 2 * math.pi * ph)
    return (np.hypot(x, y) - rad) * 0.8


#: Signed distance (negative inside) of each family at canonical ``x, y``, given the item.
SDF: dict[str, Callable[..., np.ndarray]] = {
    "disc": lambda x, y, _: np.hypot(x, y) - 0.85,
    "square": lambda x, y, _: _box(x, y, 0.75, 0.75),
    "triangle": lambda x, y, _: _poly(x, y + 0.1, _TRI),
    "star": _star,
    "ring": lambda x, y, _: np.abs(np.hypot(x, y) - 0.68) - 0.24,
    "cross": lambda x, y, _: np.minimum(_box(x, y, 0.92, 0.28), _box(x, y, 0.28, 0.92)),
    "crescent": lambda x, y, _: np.maximum(np.hypot(x, y) - 0.9, 0.7 - np.hypot(x - 0.42, y)),
    "heart": _heart,
    "arrow": lambda x, y, _: np.minimum(_box(x, y, 0.5, 0.2, ox=-0.35), _poly(x, y, _HEAD)),
    "hexagon": lambda x, y, _: _poly(x, y, _HEX),
    "blob": _blob,
    "stick": lambda x, y, par: _box(x, y, 1.0, par["thick"]),
}
