"""The referee's side of :mod:`labkit.grading.remote`: proxies for the student's objects.

:class:`Channel` sends requests and turns answers into values: plain data as it came (exact
types, :mod:`labkit.grading.wire`), references as :class:`Proxy` objects (one per object, so
``is`` holds), tensors from the student's autograd graph as tensors of the referee's own graph.
A proxy forwards attribute access, calls, items, ``len``, iteration, comparisons and arithmetic;
``isinstance`` sees the class the student's process names when the referee can import it from
a library (:data:`~labkit.grading.remote.MODULES`), else a stand-in subclass of the nearest
class in its bases that it can. None of this runs student code here: a lying student process
can only make its own answers wrong.
"""

from __future__ import annotations

import builtins
import importlib
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from labkit.checks import ReferenceUsedError
from labkit.grading.remote import (
    BINARY_OPERATORS,
    BUILTIN_ERRORS,
    MODULES,
    UNARY_OPERATORS,
    RemoteError,
)
from labkit.grading.wire import (
    Ref,
    WireError,
    WireLimits,
    encode,
    read_frame,
    write_encoded,
    write_frame,
)

__all__ = ["Channel", "Proxy"]

_TRUSTED = (*MODULES, "builtins", "collections")


class Channel:
    """The referee's connection to one student process.

    Args:
        fd_in, fd_out (int): the pipe ends to read answers from and write requests to.
        limits (WireLimits): what one frame may hold, each way.
        timeout (float): seconds the student's side has for all requests until
            :meth:`reset_deadline` is called again; once it is past, every request fails (the
            channel is broken).
    """

    def __init__(
        self, fd_in: int, fd_out: int, *, limits: WireLimits = WireLimits(), timeout: float = 60.0
    ):
        self.fd_in, self.fd_out, self.limits, self.timeout = fd_in, fd_out, limits, timeout
        self.proxies: dict[int, Proxy] = {}
        self.callbacks: dict[int, Callable] = {}
        self.sources: dict[int, tuple[Any, int]] = {}  # id(tensor) -> (tensor, ref number)
        self.classes: dict[int, type] = {}
        self.generators: dict[int, tuple] = {}  # id -> (the referee's, the student's copy)
        self.numbers = itertools.count(1)  # of the referee's own objects: callbacks, leaves
        self.broken: str | None = None
        self.over: dict | None = None  # the student's report that the test's run ended
        self.reset_deadline()

    def reset_deadline(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    # -- requests ------------------------------------------------------------------------
    def request(self, op: str, **fields: Any) -> Any:
        """Send one request; answer callbacks until its own answer comes; that answer."""
        if self.broken:
            raise TimeoutError(self.broken)
        leaves: dict[int, torch.Tensor] = {}
        message = {"op": op, **{k: self._outgoing(v, leaves) for k, v in fields.items()}}
        if leaves:
            message["leaves"] = {n: t.detach() for n, t in leaves.items()}
        try:
            frame = encode(message, limits=self.limits)
        except WireError as exc:  # nothing was sent: the channel is still good
            raise TypeError(f"cannot hand this to the student's code: {exc}") from None
        try:
            write_encoded(self.fd_out, frame, timeout=self._left())
            while True:
                answer = read_frame(self.fd_in, limits=self.limits, timeout=self._left())
                if type(answer) is dict and "test_over" in answer:
                    self.over = answer  # the run serving this test ended before answering
                    raise WireError("its run ended during the test")
                if type(answer) is not dict or not {"ok", "raise", "callback"} & set(answer):
                    raise WireError(f"expected an answer, got {str(answer)[:80]}")
                if "callback" not in answer:
                    break
                self._call_back(answer["callback"])
        except (WireError, EOFError, OSError) as exc:
            self.broken = f"the student's code did not answer: {exc}"
            raise TimeoutError(self.broken) from None
        if "raise" in answer:
            name, text = (list(answer["raise"]) + ["", ""])[:2]
            # labkit's own refusal reads as itself: "ReferenceUsedError: this exercise must ..."
            error = BUILTIN_ERRORS.get(name) or {"ReferenceUsedError": ReferenceUsedError}.get(name)
            raise error(text) if error else RemoteError(f"{name}: {text}")
        return self._incoming(answer.get("ok"), answer.get("grads") or {}, leaves)

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.broken = "the student's code ran past the test's time limit"
            raise TimeoutError(self.broken)
        return left

    def _call_back(self, body: Any) -> None:
        number, args, kwargs = body
        try:
            value = self.callbacks[number](
                *self._incoming(args, {}, {}), **self._incoming(kwargs, {}, {})
            )
            reply = {"ok": self._outgoing(value, {})}
        except Exception as exc:  # noqa: BLE001 - reported to the student's side as text
            reply = {"raise": [type(exc).__name__, str(exc)]}
        write_frame(self.fd_out, reply, limits=self.limits, timeout=self._left())

    # -- values each way -----------------------------------------------------------------
    def _outgoing(self, value: Any, leaves: dict[int, torch.Tensor]) -> Any:
        if isinstance(value, Proxy):
            return Ref(object.__getattribute__(value, "_number"))
        if type(value) in (list, tuple):
            return type(value)(self._outgoing(v, leaves) for v in value)
        if isinstance(value, dict) and type(value).__module__ in ("builtins", "collections"):
            return {
                self._outgoing(k, leaves): self._outgoing(v, leaves) for k, v in value.items()
            }  # a state_dict's OrderedDict as a dict
        if isinstance(value, torch.Tensor):
            source = self.sources.get(id(value))
            if source is not None and source[0] is value:
                return Ref(source[1])  # the student's own tensor: its graph goes on there
            if value.requires_grad and torch.is_grad_enabled():
                number = next(self.numbers)
                leaves[number] = value
                return Ref(-number)
            return value
        if isinstance(value, torch.Generator):  # made there once, from this one's state
            made = self.generators.get(id(value))
            if made is None or made[0] is not value:
                there = self.module("torch").Generator()
                there.set_state(value.get_state())
                made = self.generators[id(value)] = (value, there)
            return Ref(object.__getattribute__(made[1], "_number"))
        if (
            callable(value)
            and not isinstance(value, type)
            and not isinstance(value, torch.nn.Module)
        ):
            number = next(self.numbers)
            self.callbacks[number] = value
            return Ref(-number)
        return value  # plain data; anything else the wire refuses, saying what it was

    def _incoming(self, value: Any, grads: dict, leaves: dict[int, torch.Tensor]) -> Any:
        if type(value) is Ref:
            if value.id in grads:
                return self._tensor(value.id, grads[value.id], leaves)
            proxy = self.proxies.get(value.id)
            if proxy is None:
                proxy = self.proxies[value.id] = Proxy(self, value.id)
            return proxy
        if type(value) in (list, tuple):
            return type(value)(self._incoming(v, grads, leaves) for v in value)
        if type(value) is dict:
            return {k: self._incoming(v, grads, leaves) for k, v in value.items()}
        return value

    def _tensor(self, number: int, spec: Any, leaves: dict) -> torch.Tensor:
        """A tensor of the student's autograd as one of the referee's (see remote._plain)."""
        kind = spec[0] if type(spec) is list and spec else None
        if kind == "graph" and len(spec) == 2 and type(spec[1]) is torch.Tensor:
            return self._bridge(number, spec[1], leaves)
        if (
            kind == "leaf"
            and len(spec) == 4
            and type(spec[1]) is torch.Tensor
            and (spec[2] is None or type(spec[2]) is torch.Tensor)
        ):
            leaf = (
                torch.nn.Parameter(spec[1])
                if spec[3] is True
                else spec[1].requires_grad_(spec[1].is_floating_point() or spec[1].is_complex())
            )
            if spec[2] is not None and spec[2].shape == spec[1].shape:
                leaf.grad = spec[2].to(spec[1].dtype)
            return leaf
        raise WireError(f"a tensor the referee cannot rebuild: {str(spec)[:80]}")

    def _bridge(self, number: int, data: torch.Tensor, leaves: dict) -> torch.Tensor:
        wanted = sorted(leaves)
        anchor = torch.zeros((), requires_grad=True)
        out = _FromStudent.apply(self, number, data, wanted, anchor, *(leaves[n] for n in wanted))
        self.sources[id(out)] = (out, number)
        return out

    # -- names ---------------------------------------------------------------------------
    def lookup(self, name: str) -> Any:
        """The value of ``name`` in the student's notebook."""
        return self.request("lookup", name=name)

    def module(self, name: str) -> Proxy:
        """A library module as imported in the student's process (to build objects there)."""
        return self.request("module", name=name)

    def done(self) -> None:
        """Tell the student's side this test is over."""
        if not self.broken:
            try:
                write_frame(self.fd_out, {"op": "done"}, limits=self.limits, timeout=5)
            except (WireError, OSError):
                pass

    def class_of(self, number: int) -> type:
        """A referee-side class for the object ``number``: its own when a library has it."""
        if number not in self.classes:
            self.classes[number] = _stand_in(self.request("type", ref=Ref(number)))
        return self.classes[number]


def _library_class(module: str, qualname: str) -> type | None:
    if (
        type(module) is not str
        or type(qualname) is not str
        or module.split(".")[0] not in _TRUSTED
        or "<" in qualname
    ):
        return None
    try:
        value: Any = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
    except Exception:  # noqa: BLE001 - a name the library does not have: not ours
        return None
    return value if isinstance(value, type) else None


def _stand_in(mro: Any) -> type:
    """The first class of ``mro`` a library has; a stand-in subclass when it is not the first."""
    pairs = [p for p in mro if type(p) is list and len(p) == 2] if type(mro) is list else []
    for depth, (module, qualname) in enumerate(pairs):
        cls = _library_class(module, qualname)
        if cls is not None:
            if depth == 0:
                return cls
            try:
                return type(
                    str(pairs[0][1]).rsplit(".", 1)[-1], (cls,), {"__module__": str(pairs[0][0])}
                )
            except TypeError:  # a final class such as bool
                return cls
    return object


class _FromStudent(torch.autograd.Function):
    """A tensor of the student's graph in the referee's: backward runs the student's."""

    @staticmethod
    def forward(ctx, channel, number, data, wanted, anchor, *leaves):
        ctx.channel, ctx.number, ctx.wanted = channel, number, wanted
        return data.clone()

    @staticmethod
    def backward(ctx, grad):
        with torch.no_grad():
            grads = ctx.channel.request(
                "backward",
                ref=Ref(ctx.number),
                grad=grad.detach().contiguous(),
                leaves_wanted=ctx.wanted,
            )
        if type(grads) is not list or len(grads) != len(ctx.wanted):
            raise RuntimeError("the student's side sent no gradients for the check's tensors")
        return (
            None,
            None,
            None,
            None,
            None,
            *(g if isinstance(g, torch.Tensor) else None for g in grads),
        )


class Proxy:
    """An object in the student's process, used from the referee."""

    __slots__ = ("_channel", "_number", "__weakref__")

    def __init__(self, channel: Channel, number: int):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_number", number)

    def _ask(self, op: str, **fields: Any) -> Any:
        return object.__getattribute__(self, "_channel").request(
            op, ref=Ref(object.__getattribute__(self, "_number")), **fields
        )

    def _op(self, name: str, *args: Any, reflected: bool = False) -> Any:
        return self._ask("op", name=name, args=list(args), reflected=reflected)

    @property
    def __class__(self):  # isinstance() asks this after type()
        return object.__getattribute__(self, "_channel").class_of(
            object.__getattribute__(self, "_number")
        )

    def __instancecheck__(self, instance: Any) -> bool:  # isinstance(x, StudentClass)
        return (
            _exact(self._ask("isinstance", of=instance), bool, "isinstance()")
            if isinstance(instance, Proxy)
            else False
        )

    def __subclasscheck__(self, cls: Any) -> bool:
        return (
            _exact(self._ask("isinstance", of=cls, subclass=True), bool, "issubclass()")
            if isinstance(cls, Proxy)
            else False
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # probes by libraries (copy, numpy) stay here
        return self._ask("getattr", name=name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._ask("setattr", name=name, value=value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._ask("call", args=list(args), kwargs=kwargs, grad=torch.is_grad_enabled())

    def __getitem__(self, key: Any) -> Any:
        return self._ask("getitem", key=key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._ask("setitem", key=key, value=value)

    def __len__(self) -> int:
        return _exact(self._op("len"), int, "len()")

    def __bool__(self) -> bool:
        return _exact(self._op("bool"), bool, "bool()")

    def __iter__(self) -> Iterator:
        iterator = self._op("iter")
        while True:
            try:
                yield iterator._op("next") if isinstance(iterator, Proxy) else next(iterator)
            except StopIteration:
                return

    def __contains__(self, item: Any) -> bool:
        return _exact(self._op("contains", item), bool, "in")

    def __repr__(self) -> str:
        try:
            return str(self._op("repr"))[:500]
        except Exception as exc:  # noqa: BLE001 - a message must still print
            return f"<student object: {type(exc).__name__}>"

    __str__ = __repr__
    __hash__ = object.__hash__  # one proxy per object: identity is the object's

    def __index__(self) -> int:
        return _exact(self._op("index"), int, "an index")

    def __float__(self) -> float:
        return _exact(self._op("float"), float, "float()")

    def __int__(self) -> int:
        return _exact(self._op("int"), int, "int()")


def _exact(value: Any, kind: type, what: str) -> Any:
    if type(value) is not kind:
        raise TypeError(
            f"{what} of a student object gave {builtins.type(value).__name__}, "
            f"expected {kind.__name__}"
        )
    return value


def _forward(name: str, reflected: bool = False):
    def method(self, *args):
        return self._op(name, *args, reflected=reflected)

    method.__name__ = f"__{'r' if reflected else ''}{name.rstrip('_')}__"
    return method


for _name in UNARY_OPERATORS:
    setattr(Proxy, f"__{_name}__", _forward(_name))
for _name in BINARY_OPERATORS:
    setattr(Proxy, f"__{_name.rstrip('_')}__", _forward(_name))
    setattr(Proxy, f"__r{_name.rstrip('_')}__", _forward(_name, reflected=True))
