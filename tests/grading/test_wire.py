"""Does a frame carry plain data exactly, and nothing else, whatever the peer sends?"""

from __future__ import annotations

import json
import os
import pickle
import struct
import threading
import time

import numpy as np
import pytest
import torch

from labkit.grading.wire import (
    MAGIC,
    TENSOR_DTYPES,
    Ref,
    WireError,
    WireLimits,
    decode,
    encode,
    read_frame,
    write_frame,
)


def _frame(tree, buffers=(), *, sizes=None) -> bytes:
    """A frame written by hand, as a hostile peer would: any header, any buffers."""
    header = json.dumps(
        {"n": [len(b) for b in buffers] if sizes is None else sizes, "v": tree}
    ).encode()
    body = b"".join(buffers)
    return struct.pack(">4sIQ", MAGIC, len(header), len(body)) + header + body


def _same(a, b) -> bool:
    """Equal values of the same exact types, all the way down (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return (
            a.dtype == b.dtype
            and a.shape == b.shape
            and a.requires_grad == b.requires_grad
            and torch.equal(torch.nan_to_num(a.detach()), torch.nan_to_num(b.detach()))
        )
    if isinstance(a, (np.ndarray, np.generic)):
        return (
            a.dtype == b.dtype
            and np.shape(a) == np.shape(b)
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


VALUES = [
    None,
    True,
    0,
    -(2**70),
    1.5,
    float("nan"),
    float("-inf"),
    "",
    "ünï\n\x00",
    b"\x00\xff",
    [],
    (),
    {},
    [1, [2, (3, {"a": None})]],
    {(1, "k"): [1.0], 2: "two", None: b"", 0.5: ()},
    torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),  # not contiguous
    torch.tensor(3.5, dtype=torch.float64),  # 0-d
    torch.zeros(0, 5, dtype=torch.int64),  # empty
    torch.tensor([float("nan"), 1.0], dtype=torch.bfloat16),
    torch.tensor([1 + 2j], dtype=torch.complex64),
    torch.tensor([True, False]),
    torch.randn(2, 3, requires_grad=True),
    np.arange(6, dtype=">i4").reshape(2, 3),
    np.float32(2.5),
    np.bool_(True),
    np.array([], dtype=np.complex128),
    Ref(7),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_plain_data_comes_back_as_it_went(value):
    """Each kind of value survives a frame with its type, dtype, shape and bits."""
    back = decode(encode(value))
    assert _same(back, value.contiguous() if isinstance(value, torch.Tensor) else value)


@pytest.mark.parametrize("dtype", sorted(TENSOR_DTYPES))
def test_every_tensor_dtype(dtype):
    t = (torch.rand(4, 3) * 100).to(getattr(torch, dtype))
    assert _same(decode(encode(t)), t)


def test_a_tensor_subclass_arrives_as_a_plain_tensor_with_its_true_values():
    """A subclass that answers every comparison with True fools a naive check; once through a
    frame it is an exact ``torch.Tensor`` holding its real values."""

    class Liar(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            if func in (torch.isclose, torch.Tensor.eq, torch.equal, torch.allclose):
                return (
                    True
                    if func in (torch.equal, torch.allclose)
                    else torch.ones(args[0].shape, dtype=torch.bool)
                )
            return super().__torch_function__(func, types, args, kwargs or {})

    liar = torch.zeros(3).as_subclass(Liar)
    assert torch.allclose(liar, torch.ones(3))  # the naive check is fooled
    back = decode(encode(liar))
    assert type(back) is torch.Tensor and not torch.allclose(back, torch.ones(3))
    param = torch.nn.Parameter(torch.ones(2))
    assert type(decode(encode(param))) is torch.Tensor and decode(encode(param)).requires_grad


@pytest.mark.parametrize(
    "value",
    [
        object(),
        {1, 2},
        [lambda: 0],
        np.array(["a"]),
        np.array([None], dtype=object),
        torch.ones(2).to_sparse(),
        {"k": Exception("x")},
        frozenset(),
        1j,
    ],
)
def test_objects_are_refused_by_the_sender(value):
    with pytest.raises(WireError, match="cannot send"):
        encode(value)


class _Boom:
    def __reduce__(self):
        return (exec, ("import os; os.environ['LABKIT_WIRE_RAN'] = '1'",))


def test_nothing_is_unpickled(monkeypatch):
    """A pickle is only ever bytes: decoding it runs nothing."""
    monkeypatch.delenv("LABKIT_WIRE_RAN", raising=False)
    payload = pickle.dumps(_Boom())
    pickle.loads(payload)  # what unpickling it would do
    assert os.environ.pop("LABKIT_WIRE_RAN") == "1"
    assert decode(encode({"p": payload})) == {"p": payload}
    assert "LABKIT_WIRE_RAN" not in os.environ


BAD = {
    "not JSON": struct.pack(">4sIQ", MAGIC, 3, 0) + b"{{{",
    "no n": struct.pack(">4sIQ", MAGIC, 8, 0) + b'{"v": 1}',
    "plain object": _frame({"a": 1}),
    "unknown tag": _frame({"X": 1}),
    "two keys": _frame({"t": [], "d": []}),
    "bad buffer index": _frame({"b": 3}, [b"x"]),
    "sizes lie": _frame({"b": 0}, [b"xy"], sizes=[5]),
    "wrong byte count": _frame({"T": ["float32", [2, 2], 0, False]}, [b"\0" * 12]),
    "negative shape": _frame({"T": ["float32", [-1], 0, False]}, [b""]),
    "float shape": _frame({"T": ["float32", [1.0], 0, False]}, [b"\0" * 4]),
    "too many dims": _frame({"T": ["uint8", [1] * 40, 0, False]}, [b"\0"]),
    "unknown dtype": _frame({"T": ["object", [1], 0, False]}, [b"\0" * 8]),
    "int requires grad": _frame({"T": ["int64", [1], 0, True]}, [b"\0" * 8]),
    "object array": _frame({"A": ["|O", [1], 0, False]}, [b"\0" * 8]),
    "string array": _frame({"A": ["<U1", [1], 0, False]}, [b"\0" * 4]),
    "unhashable key": _frame({"d": [[[1], 2]]}),
    "too deep": _frame(json.loads("[" * 40 + "]" * 40)),
    "bad magic": b"PKL1" + _frame(None)[4:],
    "truncated": _frame([1, 2, 3])[:-2],
}


@pytest.mark.parametrize("frame", BAD.values(), ids=BAD.keys())
def test_malformed_frames_are_refused_with_a_reason(frame):
    with pytest.raises(WireError) as err:
        decode(frame)
    assert str(err.value)


def test_limits_are_checked_before_anything_is_read():
    """A prefix announcing 10 GB is refused at once: nothing of the rest is waited for."""
    reader, writer = os.pipe()
    try:
        os.write(writer, struct.pack(">4sIQ", MAGIC, 10, 10 * 2**30))
        started = time.monotonic()
        with pytest.raises(WireError, match="over the limit"):
            read_frame(reader, timeout=30)
        assert time.monotonic() - started < 5
        with pytest.raises(WireError, match="more than 10 values"):
            decode(encode(list(range(20))), limits=WireLimits(max_items=10))
        with pytest.raises(WireError, match="frame limit"):
            encode(torch.zeros(1000), limits=WireLimits(max_bytes=1000))
    finally:
        os.close(reader)
        os.close(writer)


def test_frames_cross_a_pipe_and_a_silent_or_closed_peer_ends_the_wait():
    reader, writer = os.pipe()
    value = {"x": torch.randn(512, 1024), "name": "big"}  # 2 MB: more than a pipe holds
    sender = threading.Thread(target=write_frame, args=(writer, value), kwargs={"timeout": 60})
    sender.start()
    assert _same(read_frame(reader, timeout=60), value)
    sender.join()
    with pytest.raises(WireError, match="in time"):
        read_frame(reader, timeout=0.2)
    os.write(writer, _frame([1, 2])[:10])
    os.close(writer)
    with pytest.raises(EOFError, match="middle"):
        read_frame(reader, timeout=5)
    os.close(reader)
