"""The student's objects behind a pipe: the referee uses them and sees only data.

A test runs in the referee, a process that never runs student code. The names it takes from
the student's notebook are :class:`Proxy` objects; every use of one (an attribute, a call, an
item, ``len``, iteration, an operator) is a request over :mod:`labkit.grading.wire` to
:func:`serve`, which runs in the student's process, does it there and answers with plain data,
or with a reference to an object that stays there. Tensors that need gradients come back as
tensors joined to the referee's autograd graph: ``backward()`` in the referee runs the
student's backward pass and hands the gradients of the referee's own tensors back.

The student's process can answer anything, so what it says is only ever data: the referee
compares it with its own values. Functions the referee passes (a schedule for an optimizer)
are called back in the referee with plain data.

Requests (referee to student), each answered by ``{"ok": value}`` or ``{"raise": [type name,
message]}``, or first by any number of ``{"callback": [n, args, kwargs]}`` that the referee
answers the same way: ``lookup`` a notebook name, ``module`` (import a library module
from :data:`MODULES`), ``getattr``/``setattr``/``getitem``/``setitem``/``call``/``op``
on a reference, ``type`` (module, qualified name and bases of its class), ``backward``,
``release``, and ``done``.
"""

from __future__ import annotations

import contextlib
import importlib
import operator
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from labkit.grading.wire import Ref, WireError, WireLimits, read_frame, write_frame

if TYPE_CHECKING:  # imported where a tensor is in play: see labkit.grading.wire
    import torch

__all__ = [
    "BINARY_OPERATORS",
    "BUILTIN_ERRORS",
    "MODULES",
    "OPERATORS",
    "UNARY_OPERATORS",
    "RemoteError",
    "serve",
]

#: What the referee may ask the student's process to import (and build objects from): the
#: libraries a test makes the student's inputs with, and ``tempfile`` and ``shutil`` for a
#: scratch folder there (a test that fills a cache the student's code reads).
MODULES = ("torch", "torchvision", "numpy", "math", "labkit", "tempfile", "shutil")
#: The operators a referee's proxy forwards to the object it stands for, by their names in
#: :mod:`operator`: comparisons and unary ones (``__eq__``, ``__neg__``, ...), then binary
#: ones, which a proxy also forwards reflected (``__radd__``).
UNARY_OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "neg", "pos", "abs", "invert")
BINARY_OPERATORS = (
    "add",
    "sub",
    "mul",
    "truediv",
    "floordiv",
    "mod",
    "pow",
    "matmul",
    "and_",
    "or_",
    "xor",
)
#: What an ``op`` request may apply to a reference, by name.
OPERATORS = {
    name: getattr(operator, name)
    for name in (*UNARY_OPERATORS, *BINARY_OPERATORS, "contains", "index")
}
OPERATORS.update(len=len, iter=iter, next=next, bool=bool, repr=repr, str=str, int=int, float=float)
#: Python's own exceptions, by name: an error the student's side reports as one of these is
#: raised as that type on the referee's side (any other as :class:`RemoteError`).
BUILTIN_ERRORS = {
    e.__name__: e
    for e in (
        ArithmeticError,
        AssertionError,
        AttributeError,
        IndexError,
        KeyError,
        LookupError,
        NameError,
        NotImplementedError,
        RuntimeError,
        StopIteration,
        TypeError,
        ValueError,
        ZeroDivisionError,
        OverflowError,
        RecursionError,
        TimeoutError,
        MemoryError,
        ImportError,
        ModuleNotFoundError,
        OSError,
        FileNotFoundError,
        EOFError,
        UnicodeError,
    )
}


class RemoteError(Exception):
    """Student code raised an exception that is not one of Python's own."""


def _plain(value: Any, refs: Callable[[Any], Ref], grads: dict[int, Any]) -> Any:
    """``value`` as wire data: plain values as they are, other objects as references.

    ``grads`` gets, by reference number, what the referee needs to rebuild a tensor that
    takes part in autograd: ``["graph", values]`` for a result in a graph (joined to the
    referee's graph), ``["leaf", values, grad, is_parameter]`` for a parameter or another
    leaf that requires gradients (a snapshot, its ``.grad`` as it is now).
    """
    kind, torch = type(value), sys.modules.get("torch")  # no tensor where torch is not loaded
    if value is None or kind in (bool, int, float, str, bytes):
        return value
    if kind in (list, tuple) or (torch is not None and kind is torch.Size):
        items = [_plain(v, refs, grads) for v in value]
        return items if kind is list else tuple(items)
    if isinstance(value, dict) and kind.__module__ in ("builtins", "collections"):
        return {_plain(k, refs, grads): _plain(v, refs, grads) for k, v in value.items()}
    if torch is not None and isinstance(value, torch.Tensor):
        if not value.requires_grad:
            return value
        ref = refs(value)  # kept: backward runs from it, or its .grad is read again
        if value.grad_fn is not None:
            grads[ref.id] = ["graph", value.detach()]
        else:
            grad = value.grad
            grads[ref.id] = [
                "leaf",
                value.detach(),
                None if grad is None else grad.detach(),
                isinstance(value, torch.nn.Parameter),
            ]
        return ref
    return refs(value)


class _Server:
    """The student's side: objects the referee holds references to, by number."""

    def __init__(self, fd_in: int, fd_out: int, namespace: dict, limits: WireLimits, first: int):
        self.fd_in, self.fd_out, self.namespace, self.limits = fd_in, fd_out, namespace, limits
        self.first = first
        self.objects: dict[int, Any] = {}
        self.numbers: dict[int, int] = {}  # id(object) -> its number, so `is` holds
        self.leaves: dict[int, torch.Tensor] = {}  # the referee's tensors, as leaves here

    def ref(self, obj: Any) -> Ref:
        number = self.numbers.get(id(obj))
        if number is None:
            number = self.numbers[id(obj)] = self.first + len(self.objects)
            self.objects[number] = obj
        return Ref(number)

    def send(self, message: dict) -> None:
        write_frame(self.fd_out, message, limits=self.limits)

    def reply(self, value: Any) -> dict:
        grads: dict[int, Any] = {}
        return {"ok": _plain(value, self.ref, grads), "grads": grads}

    def resolve(self, value: Any) -> Any:
        """Wire data from the referee as objects here: references, leaves and callbacks."""
        if type(value) is Ref:
            if value.id > 0:
                return self.objects[value.id]
            leaf = self.leaves.get(-value.id)
            return _Callback(self, -value.id) if leaf is None else leaf
        if type(value) in (list, tuple):
            return type(value)(self.resolve(v) for v in value)
        if type(value) is dict:
            return {self.resolve(k): self.resolve(v) for k, v in value.items()}
        return value

    def handle(self, request: dict) -> Any:
        op, ref, obj = request["op"], request.get("ref"), None
        if type(ref) is Ref:
            if ref.id not in self.objects:
                raise LookupError("that object belonged to an earlier test's run")
            obj = self.objects[ref.id]
        for number, tensor in request.get("leaves", {}).items():
            self.leaves[number] = tensor.requires_grad_(True)
        if op == "lookup":
            return self.namespace[request["name"]]
        if op == "module":
            name = request["name"]
            if name.split(".")[0] not in MODULES:
                raise ImportError(f"the referee may not import {name!r} here")
            return importlib.import_module(name)
        if op == "getattr":
            return getattr(obj, request["name"])
        if op == "setattr":
            return setattr(obj, request["name"], self.resolve(request["value"]))
        if op == "getitem":
            return obj[self.resolve(request["key"])]
        if op == "setitem":
            obj[self.resolve(request["key"])] = self.resolve(request["value"])
            return None
        if op == "call":
            torch = sys.modules.get("torch")
            with (
                contextlib.nullcontext()
                if torch is None
                else torch.set_grad_enabled(request["grad"])
            ):
                return obj(*self.resolve(request["args"]), **self.resolve(request["kwargs"]))
        if op == "op" and request["name"] in OPERATORS:
            args = self.resolve(request["args"])
            return OPERATORS[request["name"]](
                *(args + [obj] if request.get("reflected") else [obj] + args)
            )
        if op == "isinstance":  # obj is the class
            other = self.resolve(request["of"])
            return issubclass(other, obj) if request.get("subclass") else isinstance(other, obj)
        if op == "type":
            cls = type(obj)
            return [[c.__module__, c.__qualname__] for c in cls.__mro__]
        if op == "backward":
            return self.backward(obj, request["grad"], request["leaves_wanted"])
        if op == "release":
            for number in request["refs"]:
                self.numbers.pop(id(self.objects.pop(number, None)), None)
            return None
        raise ValueError(f"unknown request {op!r}")

    def backward(self, out: torch.Tensor, grad: torch.Tensor, wanted: list[int]) -> list:
        """Back-propagate ``grad`` from ``out``; the increments of the wanted leaves' grads."""
        import torch

        before = {n: self.leaves[n].grad for n in wanted}
        for n in wanted:
            self.leaves[n].grad = None
        torch.autograd.backward(out, grad, retain_graph=True)
        got = [self.leaves[n].grad for n in wanted]
        for n in wanted:
            self.leaves[n].grad = before[n]
        return [None if g is None else g.detach().clone() for g in got]


class _Callback:
    """A function of the referee's, as the student's code sees it: called back with data."""

    def __init__(self, server: _Server, number: int):
        self.server, self.number = server, number

    def __call__(self, *args, **kwargs):
        grads: dict[int, Any] = {}
        self.server.send(
            {
                "callback": [
                    self.number,
                    _plain(list(args), self.server.ref, grads),
                    _plain(kwargs, self.server.ref, grads),
                ]
            }
        )
        answer = read_frame(self.server.fd_in, limits=self.server.limits)
        if "raise" in answer:
            raise RuntimeError(f"the check's own function failed: {answer['raise'][1]}")
        return self.server.resolve(answer.get("ok"))


def serve(
    fd_in: int, fd_out: int, namespace: dict, *, first: int = 1, limits: WireLimits = WireLimits()
) -> None:
    """Answer the referee's requests on ``namespace`` until it says ``done``.

    Runs in the student's process. An exception from student code is answered with its type
    and message; the loop ends when the referee sends ``done`` or closes the channel.

    Args:
        first (int): the number of the first object handed out (each test's run starts its own
            range, so a reference left from an earlier test never names a new object).
    """
    server = _Server(fd_in, fd_out, namespace, limits, first)
    while True:
        try:
            request = read_frame(fd_in, limits=limits)
        except EOFError:
            return
        if request.get("op") == "done":
            return
        try:
            message = server.reply(server.handle(request))
        except BaseException as exc:  # noqa: BLE001 - student code may raise anything
            message = {"raise": [type(exc).__name__, str(exc)[:2000]]}
        try:
            server.send(message)
        except WireError as exc:  # a value the wire refuses: say so instead
            server.send({"raise": ["TypeError", f"the result cannot be sent: {exc}"]})
