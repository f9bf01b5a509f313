"""Plain data across the judge's boundary: all that the student's process can say.

The side that decides verdicts never runs student code; it talks to the student's process
through a pipe, in frames that carry plain data only: ``None``, bools, ints, floats, strings,
bytes, lists, tuples, dicts, exact :class:`torch.Tensor` and :class:`numpy.ndarray` values
(dtype, shape and bytes) and :class:`Ref` numbers naming an object that stays on the other
side. Nothing is unpickled and no class is looked up by a name the peer sent, so a decoded
value is always one of these exact types, whatever the peer's objects claimed to be (a Tensor
subclass arrives as a plain tensor). Every frame is checked against :class:`WireLimits` before
anything in it is allocated, and reads stop at a deadline, so the worst a hostile peer can send
is a wrong value or a :class:`WireError`.

A frame: ``b"LKW1"``, the header's length (4 bytes) and the buffers' total length (8 bytes),
both big-endian, the header (UTF-8 JSON ``{"n": [each buffer's length], "v": value}``), then
the buffers back to back. In ``value``, lists are JSON arrays and whatever is not a JSON
scalar is a one-key object: ``{"t": [...]}`` a tuple, ``{"d": [[key, value], ...]}`` a dict,
``{"b": i}`` bytes, ``{"T": [dtype, shape, i, requires_grad]}`` a tensor,
``{"A": [dtype, shape, i, scalar]}`` an array or NumPy scalar, ``{"R": n}`` a :class:`Ref`
(``i``: a buffer's index).
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "Ref",
    "WireError",
    "WireLimits",
    "decode",
    "encode",
    "read_frame",
    "write_encoded",
    "write_frame",
]

MAGIC = b"LKW1"
_PREFIX = struct.Struct(">4sIQ")
# torch dtypes a frame may carry, by name (torch.<name>); NumPy's are its numeric kinds (no
# objects, strings). torch is imported only where a tensor is sent or received: a student's
# process grading a lab that never imports torch does not pay its import (about a second) and
# its memory.
TENSOR_DTYPES = (
    "bool",
    "uint8",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "complex64",
    "complex128",
)
_ARRAY_KINDS = "biufc"


class WireError(ValueError):
    """A frame that is malformed, over its limits, or did not come in time."""


@dataclass(frozen=True)
class Ref:
    """An object that stays in the process that holds it, named by a number."""

    id: int


@dataclass(frozen=True)
class WireLimits:
    """What one frame may hold.

    Attributes:
        max_bytes: header plus buffers.
        max_depth: nesting of lists, tuples and dicts.
        max_items: values in the whole frame (each element, key and value counts).
        max_dims: dimensions of one tensor or array.
    """

    max_bytes: int = 256 * 2**20
    max_depth: int = 32
    max_items: int = 1_000_000
    max_dims: int = 16


def _tensor_bytes(t: torch.Tensor) -> tuple[str, list[int], bytes]:
    import torch

    with torch._C.DisableTorchFunction():  # a subclass's own methods are not asked
        if t.layout != torch.strided or str(t.dtype).removeprefix("torch.") not in TENSOR_DTYPES:
            raise WireError(
                f"cannot send a tensor of dtype {t.dtype} and layout {t.layout}; "
                f"expected a dense tensor of one of {sorted(TENSOR_DTYPES)}."
            )
        plain = torch.Tensor.as_subclass(t, torch.Tensor).detach()
        plain = plain.to("cpu").contiguous()
        raw = plain.reshape(-1).view(torch.uint8) if plain.numel() else torch.empty(0)
        return (
            str(plain.dtype).removeprefix("torch."),
            list(plain.shape),
            raw.numpy().tobytes() if plain.numel() else b"",
        )


def encode(value: Any, *, limits: WireLimits = WireLimits()) -> bytes:
    """``value`` as one frame.

    Raises:
        WireError: a value of another type (an object must be sent as a :class:`Ref`), too
            deep, or a tensor that cannot be sent.
    """
    buffers: list[bytes] = []

    def add(data: bytes) -> int:
        buffers.append(data)
        return len(buffers) - 1

    def walk(v: Any, depth: int) -> Any:
        if depth > limits.max_depth:
            raise WireError(f"value nested deeper than {limits.max_depth} levels.")
        if v is None or type(v) in (bool, int, float, str):
            return v
        if type(v) is list:
            return [walk(x, depth + 1) for x in v]
        if type(v) is tuple:
            return {"t": [walk(x, depth + 1) for x in v]}
        if type(v) is dict:
            return {"d": [[walk(k, depth + 1), walk(x, depth + 1)] for k, x in v.items()]}
        if type(v) in (bytes, bytearray):
            return {"b": add(bytes(v))}
        if type(v) is Ref:
            return {"R": int(v.id)}
        if (torch := sys.modules.get("torch")) is not None and isinstance(v, torch.Tensor):
            dtype, shape, data = _tensor_bytes(v)
            return {"T": [dtype, shape, add(data), bool(v.requires_grad)]}
        if isinstance(v, (np.ndarray, np.generic)):
            a = np.asarray(v)
            if a.dtype.kind not in _ARRAY_KINDS:
                raise WireError(
                    f"cannot send a NumPy array of dtype {a.dtype}; expected a "
                    "numeric or boolean dtype."
                )
            a = np.array(a, order="C")  # ascontiguousarray would make a 0-d array 1-d
            return {"A": [a.dtype.str, list(a.shape), add(a.tobytes()), isinstance(v, np.generic)]}
        raise WireError(
            f"cannot send a {type(v).__module__}.{type(v).__qualname__}; only plain "
            "data (numbers, strings, lists, tuples, dicts, tensors, arrays) or a Ref."
        )

    tree = walk(value, 0)
    header = json.dumps({"n": [len(b) for b in buffers], "v": tree}, separators=(",", ":")).encode()
    body = sum(map(len, buffers))
    if len(header) + body > limits.max_bytes:
        raise WireError(
            f"value of {len(header) + body:,} bytes is over the frame limit of "
            f"{limits.max_bytes:,}."
        )
    return b"".join([_PREFIX.pack(MAGIC, len(header), body), header, *buffers])


def _shape(shape: Any, limits: WireLimits) -> tuple[int, ...]:
    if (
        type(shape) is not list
        or len(shape) > limits.max_dims
        or any(type(s) is not int or s < 0 for s in shape)
    ):
        raise WireError(
            f"bad shape {shape!r:.80}: expected a list of at most "
            f"{limits.max_dims} non-negative ints."
        )
    return tuple(shape)


def _prefix(data: bytes, limits: WireLimits) -> tuple[int, int]:
    magic, head, body = _PREFIX.unpack(data)
    if magic != MAGIC:
        raise WireError(f"not a frame: it starts with {magic!r}, expected {MAGIC!r}.")
    if head + body > limits.max_bytes:
        raise WireError(
            f"frame of {head + body:,} bytes is over the limit of {limits.max_bytes:,}."
        )
    return head, body


def decode(frame: bytes, *, limits: WireLimits = WireLimits()) -> Any:
    """The value one frame holds, as fresh objects of the exact types listed above.

    Raises:
        WireError: anything but the forms in the module docstring, or over ``limits``.
    """
    if len(frame) < _PREFIX.size:
        raise WireError(f"a frame of {len(frame)} bytes is shorter than its prefix.")
    head, body = _prefix(frame[: _PREFIX.size], limits)
    if len(frame) != _PREFIX.size + head + body:
        raise WireError(
            f"frame of {len(frame)} bytes; its prefix says {_PREFIX.size + head + body}."
        )
    return _decode(frame[_PREFIX.size : _PREFIX.size + head], frame[_PREFIX.size + head :], limits)


def _decode(header: bytes, blob: bytes, limits: WireLimits) -> Any:
    try:
        top = json.loads(header)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"frame header is not JSON: {type(exc).__name__}: {exc}"[:200]) from None
    sizes = top.get("n") if type(top) is dict else None
    if (
        type(sizes) is not list
        or any(type(n) is not int or n < 0 for n in sizes)
        or sum(sizes) != len(blob)
        or set(top) != {"n", "v"}
    ):
        raise WireError(
            'frame header must be {"n": [buffer sizes adding up to the body], "v": value}.'
        )
    buffers, at = [], 0
    for n in sizes:
        buffers.append(blob[at : at + n])
        at += n
    tree, count = top["v"], [0]

    def buffer(i: Any) -> bytes:
        if type(i) is not int or not 0 <= i < len(buffers):
            raise WireError(f"bad buffer index {i!r:.40}.")
        return buffers[i]

    def walk(v: Any, depth: int) -> Any:
        count[0] += 1
        if count[0] > limits.max_items or depth > limits.max_depth:
            raise WireError(
                f"frame holds more than {limits.max_items:,} values or nests "
                f"deeper than {limits.max_depth} levels."
            )
        if v is None or type(v) in (bool, int, float, str):
            return v
        if type(v) is list:
            return [walk(x, depth + 1) for x in v]
        if type(v) is not dict or len(v) != 1:
            raise WireError(f"unknown form {v!r:.80} in frame.")
        ((tag, body),) = v.items()
        if tag == "t" and type(body) is list:
            return tuple(walk(x, depth + 1) for x in body)
        if tag == "d" and type(body) is list:
            out = {}
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise WireError(f"bad dict entry {pair!r:.80}.")
                key = walk(pair[0], depth + 1)
                try:
                    out[key] = walk(pair[1], depth + 1)
                except TypeError:  # an unhashable key: a list
                    raise WireError(f"dict key {key!r:.40} is not hashable.") from None
            return out
        if tag == "b":
            return bytes(buffer(body))
        if tag == "R" and type(body) is int:
            return Ref(body)
        if tag == "T" and type(body) is list and len(body) == 4:
            return _tensor(*body, buffer, limits)
        if tag == "A" and type(body) is list and len(body) == 4:
            return _array(*body, buffer, limits)
        raise WireError(f"unknown form {v!r:.80} in frame.")

    return walk(tree, 0)


def _tensor(dtype: Any, shape: Any, index: Any, grad: Any, buffer, limits) -> torch.Tensor:
    if dtype not in TENSOR_DTYPES or type(grad) is not bool:
        raise WireError(f"bad tensor dtype {dtype!r:.40} or requires_grad {grad!r:.20}.")
    import torch

    dt, size, data = getattr(torch, dtype), _shape(shape, limits), buffer(index)
    itemsize = torch.empty(0, dtype=dt).element_size()
    if len(data) != math.prod(size) * itemsize:
        raise WireError(
            f"tensor of shape {size} and dtype {dtype} needs "
            f"{math.prod(size) * itemsize} bytes, the frame has {len(data)}."
        )
    with torch._C.DisableTorchFunction():
        t = (
            torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dt).reshape(size)
            if data
            else torch.empty(size, dtype=dt)
        )
        if grad and not (t.is_floating_point() or t.is_complex()):
            raise WireError(f"a {dtype} tensor cannot require gradients.")
        return t.requires_grad_(grad)


def _array(dtype: Any, shape: Any, index: Any, scalar: Any, buffer, limits) -> Any:
    try:
        dt = np.dtype(dtype) if type(dtype) is str else None
    except TypeError:
        dt = None
    if dt is None or dt.kind not in _ARRAY_KINDS or type(scalar) is not bool:
        raise WireError(f"bad array dtype {dtype!r:.40}: expected a numeric NumPy dtype.")
    size, data = _shape(shape, limits), buffer(index)
    if len(data) != math.prod(size) * dt.itemsize or scalar and size:
        raise WireError(
            f"array of shape {size} and dtype {dt} needs "
            f"{math.prod(size) * dt.itemsize} bytes, the frame has {len(data)}."
        )
    a = np.frombuffer(data, dtype=dt).reshape(size).copy()
    return a[()] if scalar else a


def write_frame(
    fd: int, value: Any, *, limits: WireLimits = WireLimits(), timeout: float | None = None
) -> None:
    """Send ``value`` as one frame on the file descriptor ``fd`` (a pipe or socket).

    Raises:
        WireError: :func:`encode` refused it, or the peer did not take it within ``timeout``.
        OSError: the peer is gone (``BrokenPipeError``).
    """
    write_encoded(fd, encode(value, limits=limits), timeout=timeout)


def write_encoded(fd: int, frame: bytes, *, timeout: float | None = None) -> None:
    """Send a frame :func:`encode` made (so a refused value fails before anything is sent).

    Raises:
        WireError: the peer did not take it within ``timeout`` seconds.
        OSError: the peer is gone (``BrokenPipeError``).
    """
    data = memoryview(frame)
    deadline = None if timeout is None else time.monotonic() + timeout
    while data:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and (left <= 0 or not select.select([], [fd], [], left)[1]):
            raise WireError(f"the peer did not take a frame within {timeout} s.")
        data = data[os.write(fd, data[: 1 << 20]) :]


def _read(fd: int, n: int, deadline: float | None, what: str) -> bytes:
    parts, got = [], 0
    while got < n:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and (left <= 0 or not select.select([fd], [], [], left)[0]):
            raise WireError(f"no complete {what} came in time.")
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError(
                f"the peer closed the channel in the middle of a {what}"
                if got or what != "frame"
                else "the peer closed the channel"
            )
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_frame(fd: int, *, limits: WireLimits = WireLimits(), timeout: float | None = None) -> Any:
    """Read one frame from ``fd`` and decode it; its size is checked before it is read.

    Raises:
        WireError: malformed, over ``limits``, or not complete within ``timeout`` seconds.
        EOFError: the peer closed the channel.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    head, body = _prefix(_read(fd, _PREFIX.size, deadline, "frame"), limits)
    header = _read(fd, head, deadline, "frame header")
    return _decode(header, _read(fd, body, deadline, "frame body"), limits)
