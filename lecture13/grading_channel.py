"""The narrow channel between the instructor's test cell and the student's answer.

The grader runs the test cell in a *trusted* process and the student's answer in another
(sandboxed) process. The test cell calls the student's function through a proxy made here:
the arguments cross as plain data, the answer's process calls the real function, and the
result comes back as plain data. Only data crosses, never code: every message is a
``torch.save`` of nested dicts, lists, strings, numbers and plain tensors, read on the trusted
side with ``torch.load(..., weights_only=True)`` and checked field by field (:func:`from_wire`).

What an exercise needs beyond plain values:

* **modules** (``sample_pixels(model, u)``, ``gan_iteration(G, D, ...)``): the trusted side sends
  the class's name (and, for a class defined inside a function, its source: course code), the
  attributes, parameters, buffers and the gradients left in ``.grad`` (so an answer that forgets
  ``zero_grad`` accumulates stale gradients over calls, as it would in a training loop); the
  answer's side rebuilds a replica, the student's code runs on it, and whatever it changed in
  place (parameters, buffers, gradients, a gradient cleared to None included) is sent back and
  copied into the trusted module. A module *returned* by the answer is rebuilt on the trusted
  side only from classes of ``torch`` and ``lecture13`` that are already loaded there.
* **optimizers** (and wrappers around one, such as the step counters of
  ``lecture13.checks.gans.iteration_checks``):
  rebuilt on the replica's parameters from their class, hyperparameters and state; their state
  comes back after the call.
* **what happened during the call**, for property checks that watch it: every ``step()`` of a
  passed optimizer (with the modules' state after it) and every forward of a module that has
  forward hooks on the trusted side (with its input, and the gradient that later reached its
  output) is recorded and *replayed* on the trusted objects in order, so the trusted hooks and
  wrappers see the same sequence of events as if the function had run there.
* **gradients through the answer** (``z = reparameterize(mu, logvar, eps); z.sum().backward()``):
  when an argument requires grad, the call is a ``torch.autograd.Function`` whose backward asks
  the answer's process for the vector-Jacobian product.
"""
from __future__ import annotations

import ast
import builtins
import importlib
import io
import socket
import struct
import sys
import textwrap
from typing import Any

import torch
from torch import nn

MAX_MESSAGE = 512 * 2**20  # bytes; a bigger message is refused (the answer's memory limit is of this order)
MAX_DEPTH = 64  # nesting of a decoded value
MAX_ITEMS = 200_000  # values in one message
PLAIN = (type(None), bool, int, float, str)
DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8, torch.int16, torch.int32,
    torch.int64, torch.bool, torch.complex64, torch.complex128)}
ERRORS = {name: getattr(builtins, name) for name in (
    "NotImplementedError", "ValueError", "TypeError", "RuntimeError", "IndexError", "KeyError", "ZeroDivisionError",
    "AttributeError", "NameError", "OverflowError", "ArithmeticError", "LookupError", "UnboundLocalError",
    "RecursionError", "AssertionError", "MemoryError")}
_MODULE_INTERNALS = frozenset(vars(nn.Module())) - {"training"}


class ChannelError(Exception):
    """The other side sent something that is not the plain data agreed on, or went away."""


class AnswerGone(BaseException):
    """The answer's process ended (or broke the protocol) while the test cell waited for it.
    A ``BaseException`` so that no ``except Exception`` in a check turns it into a mere failed case.
    ``broken``: it sent bytes that are not a message (it wrote to the channel itself)."""

    def __init__(self, message: str, broken: bool = False):
        super().__init__(message)
        self.broken = broken


CLOSED = "the other side closed the channel"


class ReferenceUsed(BaseException):
    """The answer called the reference implementation it is graded against (or an equivalent of
    the package). Raised in the answer's process by the neutered reference; re-raised in the
    trusted process so that the whole exercise scores nothing with that reason."""


class RemoteError(Exception):
    """An exception of a type the trusted side does not recreate: ``TypeName: message``."""


# ----------------------------------------------------------------------------- framing
def send(sock: socket.socket, message: dict) -> None:
    """One message: 8-byte length, then ``torch.save`` of the (plain) message."""
    buffer = io.BytesIO()
    torch.save(message, buffer)
    data = buffer.getvalue()
    sock.sendall(struct.pack("<Q", len(data)) + data)


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ChannelError(CLOSED)
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(sock: socket.socket) -> Any:
    """The next message, loaded with ``weights_only=True`` (no code can be unpickled) and
    checked to be plain data only (:func:`check_plain`)."""
    try:
        (size,) = struct.unpack("<Q", _read_exactly(sock, 8))
        if size > MAX_MESSAGE:
            raise ChannelError(f"a message of {size:,} bytes (the limit is {MAX_MESSAGE:,})")
        data = _read_exactly(sock, size)
    except OSError:  # the other side died with data unread (connection reset): it is gone
        raise ChannelError(CLOSED) from None
    try:
        message = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as err:
        raise ChannelError(f"not plain data ({type(err).__name__}: {str(err)[:200]})") from None
    check_plain(message)
    return message


def check_plain(value: Any) -> None:
    """Raise ChannelError unless ``value`` is only dicts (string or number keys), lists, tuples,
    None/bool/int/float/str and plain dense tensors, not nested too deeply nor too many."""
    stack, count = [(value, 0)], 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH or count > MAX_ITEMS:
            raise ChannelError("a message nested too deeply or too large")
        kind = type(item)
        if kind in PLAIN:
            continue
        if kind is torch.Tensor or kind is nn.Parameter:
            if item.layout != torch.strided or item.is_quantized or item.dtype not in DTYPES.values():
                raise ChannelError(f"a tensor of layout {item.layout} / dtype {item.dtype}")
            continue
        if kind is dict:
            for key, val in item.items():
                if type(key) not in (str, int):
                    raise ChannelError(f"a dict key of type {type(key).__name__}")
                stack.append((val, depth + 1))
        elif kind in (list, tuple):
            stack.extend((v, depth + 1) for v in item)
        else:
            raise ChannelError(f"a value of type {kind.__name__}")


# ----------------------------------------------------------------------------- values
def is_optimizer(obj: Any) -> bool:
    """An optimizer, or an object standing for one (``param_groups``, ``step``, ``state_dict``)."""
    if isinstance(obj, torch.optim.Optimizer):
        return True
    try:
        return (callable(getattr(obj, "step", None)) and callable(getattr(obj, "state_dict", None))
                and isinstance(getattr(obj, "param_groups", None), list) and not isinstance(obj, type))
    except Exception:
        return False


def inner_optimizer(obj: Any) -> torch.optim.Optimizer:
    inner = obj if isinstance(obj, torch.optim.Optimizer) else getattr(obj, "optimizer", None)
    if not isinstance(inner, torch.optim.Optimizer):
        raise ChannelError(f"cannot pass a {type(obj).__name__} (not a torch optimizer)")
    return inner


class Encoder:
    """Turns values into wire form; modules and optimizers go into tables (shared ones once)."""

    def __init__(self, handles: dict | None = None, class_source: bool = True):
        self.modules: list = []  # objects, index = reference
        self.module_index: dict[int, int] = {}
        self.optimizers: list = []
        self.optimizer_index: dict[int, int] = {}
        self.handles = handles  # answer side: callables sent back by reference
        self.class_source = class_source

    def value(self, v: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ChannelError("a value nested too deeply")
        kind = type(v)
        if kind in PLAIN:
            return v
        if isinstance(v, torch.Tensor):
            t = v.detach().as_subclass(torch.Tensor) if type(v) is not torch.Tensor else v.detach()
            if t.layout != torch.strided:
                t = t.to_dense()
            return {"$": "tensor", "data": t.cpu().clone(), "requires_grad": bool(v.requires_grad)}
        if isinstance(v, (bool, int, float, str)):  # a subclass (IntEnum, numpy scalar ...): its plain value
            return kind.__mro__[[c in PLAIN for c in kind.__mro__].index(True)](v)
        if isinstance(v, torch.Size):
            return {"$": "tuple", "items": list(v)}
        if isinstance(v, torch.dtype):
            return {"$": "dtype", "name": str(v).removeprefix("torch.")}
        if isinstance(v, torch.device):
            return {"$": "device", "name": str(v)}
        if isinstance(v, (list, tuple)):
            return {"$": "list" if isinstance(v, list) else "tuple", "items": [self.value(x, depth + 1) for x in v]}
        if isinstance(v, dict):
            return {"$": "dict", "keys": [self.value(k, depth + 1) for k in v], "values": [self.value(x, depth + 1) for x in v.values()]}
        if isinstance(v, nn.Module):
            return {"$": "module", "ref": self.module(v)}
        if is_optimizer(v):
            return {"$": "optimizer", "ref": self.optimizer(v)}
        if hasattr(v, "item") and hasattr(v, "dtype") and callable(v.item):  # a numpy scalar
            return self.value(v.item(), depth + 1)
        if self.handles is not None and callable(v):
            self.handles.append(v)
            return {"$": "handle", "id": len(self.handles) - 1, "name": str(getattr(v, "__name__", "function"))[:80]}
        if self.handles is None and callable(v):  # the trusted side passes a function: by its name only
            return {"$": "function", **function_name(v)}
        raise ChannelError(f"cannot send a value of type {kind.__name__}")

    def module(self, m: nn.Module) -> int:
        if id(m) in self.module_index:
            return self.module_index[id(m)]
        index = len(self.modules)
        self.module_index[id(m)] = index
        self.modules.append(None)
        cls = type(m)
        attrs = {}
        for key, val in vars(m).items():
            if key in _MODULE_INTERNALS or key == "training":
                continue
            try:
                attrs[key] = self.value(val)
            except ChannelError:
                pass  # an attribute that is not data (a cached function ...): left out
        entry = {"module": cls.__module__, "qualname": cls.__qualname__, "training": m.training, "attrs": attrs,
                 "params": {k: (None if p is None else self.value(p)) for k, p in m._parameters.items()},
                 "buffers": {k: (None if b is None else self.value(b)) for k, b in m._buffers.items()},
                 "grads": {k: self.value(p.grad) for k, p in m._parameters.items() if p is not None and p.grad is not None},
                 "persistent": [k for k in m._buffers if k not in m._non_persistent_buffers_set],
                 "children": {k: (None if c is None else self.module(c)) for k, c in m._modules.items()},
                 "watch": bool(m._forward_hooks or m._forward_pre_hooks)}
        if self.class_source and "<locals>" in cls.__qualname__:
            entry["source"] = class_source(cls)
        self.modules[index] = entry
        return index

    def param_ref(self, p: torch.Tensor) -> list:
        for index, m in enumerate(self.module_objects):
            for name, q in m.named_parameters(recurse=False):
                if q is p:
                    return [index, name]
        raise ChannelError("an optimizer holds a parameter of no module passed along with it")

    def optimizer(self, obj: Any) -> int:
        if id(obj) in self.optimizer_index:
            return self.optimizer_index[id(obj)]
        self.optimizer_index[id(obj)] = len(self.optimizers)
        self.optimizers.append(obj)
        return len(self.optimizers) - 1

    def finish(self, module_objects: list) -> tuple[list, list]:
        """The tables, once every value is encoded (optimizers refer to the modules' parameters)."""
        self.module_objects = module_objects
        optimizers = []
        for obj in self.optimizers:
            inner = inner_optimizer(obj)
            groups = [{"params": [self.param_ref(p) for p in g["params"]],
                       "options": self.value({k: v for k, v in g.items() if k != "params"})} for g in inner.param_groups]
            optimizers.append({"module": type(inner).__module__, "qualname": type(inner).__qualname__,
                               "groups": groups, "state": self.value(inner.state_dict())})
        return self.modules, optimizers


FUNCTION_HOMES = ("torch", "lecture13", "math")


def function_name(fn: Any) -> dict:
    """How the trusted side passes a function to the answer (``gan_iteration(..., generator_loss=
    gan.generator_loss_saturating)``): its module and name, which the answer's side looks up among
    the modules it has loaded. No code crosses, so only a function of torch, lecture13 or math that
    its name finds again can be passed (not a lambda, a closure or a partial of the test cell)."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    candidates = [(module, qualname)] if type(module) is str and type(qualname) is str else []
    name = getattr(fn, "__name__", None)
    if type(name) is str:  # torch's builtins (torch.sigmoid) name a module that does not hold them
        candidates += [(home, name) for home in ("torch", "torch.nn.functional", "torch.special", "math")]
    for module, qualname in candidates:
        if "<" in qualname or module.split(".")[0] not in FUNCTION_HOMES:
            continue
        found = sys.modules.get(module)
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if found is fn:
            return {"module": module, "qualname": qualname}
    raise ChannelError(f"cannot pass the function {getattr(fn, '__name__', fn)!r} to the answer: the grader passes "
                       "only functions of torch, lecture13 or math, by name (write the test with one of those)")


def answer_function(w: dict) -> Any:
    """The answer's side of :func:`function_name`: the function of that name among the loaded modules."""
    module, qualname = w.get("module"), w.get("qualname")
    if type(module) is not str or type(qualname) is not str or module.split(".")[0] not in FUNCTION_HOMES:
        raise ChannelError("malformed function")
    obj = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not callable(obj):
        raise ChannelError(f"unknown function {module}.{qualname}")
    return obj


def class_source(cls: type) -> str:
    """The source of a class defined inside a function of the course's package (sent to the
    answer's side, which cannot import it by name)."""
    import inspect

    return textwrap.dedent(inspect.getsource(cls))


def encode_call(args: tuple, kwargs: dict, handles: list | None = None) -> tuple[dict, Encoder, list]:
    """Encode a call's arguments; returns (wire form, encoder, the module objects by index)."""
    enc = Encoder(handles)
    wire_args = enc.value(list(args))
    wire_kwargs = enc.value(dict(kwargs))
    objects = _collect_modules(enc, args, kwargs)
    modules, optimizers = enc.finish(objects)
    return {"args": wire_args, "kwargs": wire_kwargs, "modules": modules, "optimizers": optimizers}, enc, objects


def _collect_modules(enc: Encoder, *values) -> list:
    """The module objects in the order of the encoder's table (walking what was encoded)."""
    found: dict[int, nn.Module] = {}

    def walk(v, depth=0):
        if depth > MAX_DEPTH:
            return
        if isinstance(v, nn.Module):
            if id(v) not in found:
                found[id(v)] = v
                for c in v._modules.values():
                    if c is not None:
                        walk(c, depth + 1)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x, depth + 1)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x, depth + 1)

    walk(values)
    return [found[i] for i in sorted(found, key=lambda i: enc.module_index.get(i, 1 << 30)) if i in enc.module_index]


class Decoder:
    """Turns wire form back into values. ``resolve`` finds a module's class; on the trusted side
    only already-loaded classes of torch and lecture13 (:func:`trusted_class`)."""

    def __init__(self, modules: list, optimizers: list, resolve, handle=None):
        self.module_entries, self.optimizer_entries = modules, optimizers
        self.resolve, self.handle = resolve, handle
        self.modules: dict[int, nn.Module] = {}
        self.optimizers: dict[int, Any] = {}

    def value(self, w: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ChannelError("a value nested too deeply")
        if type(w) in PLAIN:
            return w
        if type(w) is not dict or type(w.get("$")) is not str:
            raise ChannelError(f"malformed value ({type(w).__name__})")
        tag = w["$"]
        if tag == "tensor":
            data = w.get("data")
            if type(data) not in (torch.Tensor, nn.Parameter):
                raise ChannelError("malformed tensor")
            t = data.detach().as_subclass(torch.Tensor)
            return t.requires_grad_(True) if w.get("requires_grad") is True and t.is_floating_point() else t
        if tag in ("list", "tuple"):
            items = [self.value(x, depth + 1) for x in _list(w.get("items"))]
            return items if tag == "list" else tuple(items)
        if tag == "dict":
            keys, values = _list(w.get("keys")), _list(w.get("values"))
            if len(keys) != len(values):
                raise ChannelError("malformed dict")
            out = {}
            for k, v in zip(keys, values):
                key = self.value(k, depth + 1)
                if type(key) not in PLAIN:
                    raise ChannelError("a dict key that is not a plain value")
                out[key] = self.value(v, depth + 1)
            return out
        if tag == "dtype":
            if w.get("name") not in DTYPES:
                raise ChannelError("unknown dtype")
            return DTYPES[w["name"]]
        if tag == "device":
            return torch.device("cpu")
        if tag == "module":
            return self.module(_index(w.get("ref"), len(self.module_entries)))
        if tag == "optimizer":
            return self.optimizer(_index(w.get("ref"), len(self.optimizer_entries)))
        if tag == "function" and self.resolve is answer_class:  # never decoded on the trusted side
            return answer_function(w)
        if tag == "handle" and self.handle is not None:
            return self.handle(_index(w.get("id"), 1 << 20), str(w.get("name", "function"))[:80])
        raise ChannelError(f"unknown value tag {tag!r}")

    def module(self, index: int, depth: int = 0) -> nn.Module:
        if index in self.modules:
            return self.modules[index]
        if depth > MAX_DEPTH:
            raise ChannelError("modules nested too deeply")
        entry = self.module_entries[index]
        if type(entry) is not dict:
            raise ChannelError("malformed module")
        cls = self.resolve(entry)
        m = cls.__new__(cls)
        nn.Module.__init__(m)
        self.modules[index] = m
        for key, val in _dict(entry.get("attrs")).items():
            if type(key) is str and key not in _MODULE_INTERNALS:
                m.__dict__[key] = self.value(val)
        m.training = entry.get("training") is True
        for name, p in _dict(entry.get("params")).items():
            t = None if p is None else self.value(p)
            m._parameters[str(name)] = None if t is None else nn.Parameter(_tensor(t), requires_grad=t.requires_grad)
        for name, g in _dict(entry.get("grads", {})).items():  # what earlier steps left in .grad (no zero_grad yet)
            p, grad = m._parameters.get(str(name)), _tensor(self.value(g)).detach()
            if p is None or grad.shape != p.shape:
                raise ChannelError(f"a gradient of the wrong shape for {name}")
            p.grad = grad
        persistent = set(_list(entry.get("persistent")))
        for name, b in _dict(entry.get("buffers")).items():
            m._buffers[str(name)] = None if b is None else _tensor(self.value(b)).detach()
            if name not in persistent:
                m._non_persistent_buffers_set.add(str(name))
        for name, child in _dict(entry.get("children")).items():
            m._modules[str(name)] = None if child is None else self.module(_index(child, len(self.module_entries)), depth + 1)
        return m

    def optimizer(self, index: int):
        if index in self.optimizers:
            return self.optimizers[index]
        entry = _dict(self.optimizer_entries[index])
        cls = optimizer_class(entry)
        groups = []
        for group in _list(entry.get("groups")):
            group = _dict(group)
            params = [self.module_parameter(ref) for ref in _list(group.get("params"))]
            groups.append({"params": params, **_dict(self.value(group.get("options")))})
        opt = cls(groups)
        opt.load_state_dict(self.value(entry.get("state")))
        self.optimizers[index] = opt
        return opt

    def module_parameter(self, ref) -> nn.Parameter:
        index, name = _list(ref)
        p = self.module(_index(index, len(self.module_entries)))._parameters.get(name)
        if p is None:
            raise ChannelError("an optimizer refers to a parameter that does not exist")
        return p


def _list(v) -> list:
    if type(v) not in (list, tuple):
        raise ChannelError("malformed message (a list expected)")
    return list(v)


def _dict(v) -> dict:
    if type(v) is not dict:
        raise ChannelError("malformed message (a dict expected)")
    return v


def _index(v, size: int) -> int:
    if type(v) is not int or not 0 <= v < size:
        raise ChannelError("malformed reference")
    return v


def _tensor(v) -> torch.Tensor:
    if type(v) is not torch.Tensor:
        raise ChannelError("a tensor expected")
    return v


def optimizer_class(entry: dict) -> type:
    module, qualname = entry.get("module"), entry.get("qualname")
    if type(module) is not str or not module.startswith("torch.optim") or type(qualname) is not str:
        raise ChannelError("an optimizer that is not one of torch.optim")
    cls = getattr(sys.modules.get(module), qualname, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ChannelError(f"unknown optimizer {module}.{qualname}")
    return cls


def trusted_class(entry: dict) -> type:
    """A module's class for the trusted side: a class of torch or lecture13 already loaded there,
    found by name (nothing is imported and no class of the answer's is run)."""
    module, qualname = entry.get("module"), entry.get("qualname")
    if type(module) is not str or type(qualname) is not str:
        raise ChannelError("malformed module class")
    if not (module == "torch" or module.startswith(("torch.", "lecture13."))) or "<" in qualname:
        raise ChannelError(f"returns a module of class {qualname[:60]} (defined in the answer): the grader "
                           "checks modules built from torch.nn and lecture13 classes")
    obj = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise ChannelError(f"unknown module class {module}.{qualname}")
    return obj


def answer_class(entry: dict) -> type:
    """A module's class for the answer's side: imported by name, or, for a class defined inside
    a function of the package, rebuilt from the source the trusted side sent."""
    module, qualname = str(entry["module"]), str(entry["qualname"])
    if "source" in entry:
        namespace = dict(vars(importlib.import_module(module)))
        exec(compile(str(entry["source"]), f"<{module}.{qualname}>", "exec"), namespace)
        return namespace[qualname.rsplit(".", 1)[-1]]
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def error_message(err: BaseException) -> dict:
    return {"type": type(err).__name__, "message": str(err)[:4000]}


def raise_remote(error: Any) -> None:
    """Raise, on the trusted side, the exception the answer raised: a builtin exception of the
    same type (so ``NotImplementedError`` still reads as 'not implemented'), else RemoteError."""
    error = error if type(error) is dict else {}
    name, message = str(error.get("type", "Error"))[:80], str(error.get("message", ""))[:4000]
    if name == "ReferenceUsed":
        raise ReferenceUsed(message)
    cls = ERRORS.get(name)
    if cls is None:
        raise RemoteError(f"{name}: {message}")
    raise cls(message)


# ----------------------------------------------------------------------------- trusted side
class Answer:
    """The trusted side's end of the channel: calls into the answer's process."""

    def __init__(self, sock: socket.socket):
        self.sock, self.calls = sock, 0

    def request(self, message: dict) -> dict:
        try:
            send(self.sock, message)
            reply = receive(self.sock)
        except ChannelError as err:
            raise AnswerGone(f"the answer's process ended or broke the channel while it was being tested ({err})",
                             broken=str(err) != CLOSED) from None
        if type(reply) is not dict:
            raise AnswerGone("the answer's process sent something that is not a reply", broken=True)
        return reply

    def proxy(self, handle: int, name: str):
        """A function standing for the answer's ``name``."""
        answer = self

        def student_function(*args, **kwargs):
            return answer.call(handle, args, kwargs)

        student_function.__name__ = student_function.__qualname__ = name
        return student_function

    def call(self, handle: int, args: tuple, kwargs: dict):
        wire, enc, module_objects = encode_call(args, kwargs)
        tensors = list(_tensors((args, kwargs)))  # in the order the answer's side meets them
        flat = [t for t in tensors if t.requires_grad]
        if flat and torch.is_grad_enabled():
            return _differentiable_call(self, handle, wire, enc, module_objects, flat, tensors)
        reply = self.request({"op": "call", "handle": handle, **wire, "grad_inputs": 0})
        return self.finish(reply, enc, module_objects, tensors)

    def finish(self, reply: dict, enc: Encoder, module_objects: list, tensors: list):
        if "error" in reply:
            self.apply_changes(reply, enc, module_objects, tensors)
            raise_remote(reply["error"])
        self.apply_changes(reply, enc, module_objects, tensors)
        decoder = Decoder(_list(reply.get("modules", [])), [], trusted_class, handle=self.proxy)
        return decoder.value(reply.get("result"))

    def apply_changes(self, reply: dict, enc: Encoder, module_objects: list, tensors: list) -> None:
        """Copy what the call wrote in place into the tensors passed in (``x.clamp_(0, 1)``); replay
        what it did (optimizer steps, watched forwards and the gradients that reached them), then copy
        the final state of every module and optimizer passed in."""
        load_tensor_changes(_dict(reply.get("tensors", {})), tensors)
        if "changes" not in reply:
            return
        changes = _dict(reply["changes"])
        replay(_list(changes.get("events", [])), enc, module_objects)
        for index, state in _dict(changes.get("modules", {})).items():
            load_module_state(module_objects[_index(index, len(module_objects))], _dict(state))
        for index, state in _dict(changes.get("optimizers", {})).items():
            inner_optimizer(enc.optimizers[_index(index, len(enc.optimizers))]).load_state_dict(
                Decoder([], [], trusted_class).value(state))


def _tensors(value, depth=0):
    if depth > MAX_DEPTH:
        return
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v, depth + 1)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v, depth + 1)


def load_tensor_changes(changed: dict, tensors: list) -> None:
    """The answer changed these argument tensors in place: the same change, in the trusted ones."""
    plain = Decoder([], [], trusted_class)
    with torch.no_grad():
        for index, value in changed.items():
            target = tensors[_index(index, len(tensors))]
            new = _tensor(plain.value(value))
            if new.shape != target.shape or new.dtype != target.dtype:
                raise ChannelError("the answer changed the shape or dtype of a tensor passed to it")
            target.copy_(new)


def load_module_state(m: nn.Module, state: dict) -> None:
    """Copy parameters, buffers and gradients the answer changed into the trusted module."""
    plain = Decoder([], [], trusted_class)
    with torch.no_grad():
        for kind, table in (("params", m._parameters), ("buffers", m._buffers)):
            for name, value in _dict(state.get(kind, {})).items():
                target = table.get(name)
                new = _tensor(plain.value(value)).detach()
                if target is None or target.shape != new.shape:
                    raise ChannelError(f"the answer changed the shape of {name}")
                target.copy_(new)
        for name, value in _dict(state.get("grads", {})).items():
            p = m._parameters.get(name)
            if p is None:
                continue
            g = None if value is None else _tensor(plain.value(value)).detach()
            if g is not None and g.shape != p.shape:
                raise ChannelError(f"a gradient of the wrong shape for {name}")
            p.grad = g
    if "training" in state:
        m.training = state["training"] is True


def replay(events: list, enc: Encoder, module_objects: list) -> None:
    """Re-enact the recorded events on the trusted objects, in order (see the module's docstring)."""
    plain = Decoder([], [], trusted_class)
    outputs: dict[int, torch.Tensor] = {}
    for number, event in enumerate(events):
        event = _dict(event)
        kind = event.get("kind")
        if kind == "forward":
            m = module_objects[_index(event.get("module"), len(module_objects))]
            inputs = plain.value(event.get("inputs"))
            with torch.set_grad_enabled(event.get("grad_enabled") is True):
                out = m(*inputs)
            if isinstance(out, torch.Tensor):
                outputs[number] = out
        elif kind == "backward":
            out = outputs.get(event.get("forward"))
            grad = plain.value(event.get("grad"))
            if out is not None and out.requires_grad and isinstance(grad, torch.Tensor) and grad.shape == out.shape:
                torch.autograd.backward(out, grad)
        elif kind == "step":
            for index, state in _dict(event.get("modules", {})).items():
                load_module_state(module_objects[_index(index, len(module_objects))], _dict(state))
            opt = enc.optimizers[_index(event.get("optimizer"), len(enc.optimizers))]
            params = [p for g in inner_optimizer(opt).param_groups for p in g["params"]]
            grads = [p.grad for p in params]
            for p in params:
                p.grad = None  # the step itself was taken by the answer: here only its observers run
            opt.step()
            for p, g in zip(params, grads):
                p.grad = g


def _differentiable_call(answer: Answer, handle: int, wire: dict, enc: Encoder, module_objects: list, inputs: list,
                         tensors: list):
    box: dict = {}

    class RemoteCall(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            reply = answer.request({"op": "call", "handle": handle, **wire, "grad_inputs": len(tensors)})
            box["reply"] = reply
            if "error" in reply:
                return torch.zeros(())
            outs = [t for t in _result_tensors(reply.get("result"))]
            box["outs"] = outs
            results = tuple(o.detach().clone() for o in outs) or (torch.zeros(()),)
            ctx.mark_non_differentiable(*[r for r, o in zip(results, outs) if not o.requires_grad])
            return results

        @staticmethod
        def backward(ctx, *grads):
            reply = answer.request({"op": "backward", "grads": [Encoder().value(g) for g in grads]})
            if "error" in reply:
                raise_remote(reply["error"])
            got = [Decoder([], [], trusted_class).value(g) for g in _list(reply.get("grads"))]
            if len(got) != len(inputs):
                raise ChannelError("the answer sent the wrong number of gradients")
            return tuple(g if isinstance(g, torch.Tensor) and g.shape == t.shape else None for g, t in zip(got, inputs))

    results = RemoteCall.apply(*inputs)
    reply = box["reply"]
    if "error" in reply:
        return answer.finish(reply, enc, module_objects, tensors)
    value = answer.finish(reply, enc, module_objects, tensors)
    differentiable = iter(results if isinstance(results, tuple) else (results,))
    return _substitute(value, differentiable, len(box["outs"]))


def _result_tensors(w, depth=0):
    """The tensors of a wire value, in the order Decoder.value meets them."""
    if depth > MAX_DEPTH or type(w) is not dict:
        return
    tag = w.get("$")
    if tag == "tensor":
        data = w.get("data")
        if type(data) in (torch.Tensor, nn.Parameter):
            yield data.detach().as_subclass(torch.Tensor).requires_grad_(w.get("requires_grad") is True and data.is_floating_point())
    elif tag in ("list", "tuple"):
        for x in w.get("items", []):
            yield from _result_tensors(x, depth + 1)
    elif tag == "dict":
        for x in w.get("values", []):
            yield from _result_tensors(x, depth + 1)


def _substitute(value, replacements, count: int, depth=0):
    """``value`` with its tensors (in order) replaced by the autograd-connected ones."""
    if count == 0:
        return value
    if isinstance(value, torch.Tensor):
        return next(replacements)
    if isinstance(value, list):
        return [_substitute(v, replacements, count, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_substitute(v, replacements, count, depth + 1) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, replacements, count, depth + 1) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------- answer side
class Recorder:
    """Answer side: rebuilds the arguments of one call and records what happens to them."""

    def __init__(self, message: dict):
        self.decoder = Decoder(message.get("modules", []), message.get("optimizers", []), answer_class)
        self.events: list[dict] = []
        self.enc = Encoder(class_source=False)
        self.args = self.decoder.value(message.get("args"))
        self.kwargs = self.decoder.value(message.get("kwargs"))
        for i in range(len(self.decoder.module_entries)):
            self.decoder.module(i)
        for i in range(len(self.decoder.optimizer_entries)):
            self.decoder.optimizer(i)
        self.versions = {i: self.module_versions(m) for i, m in self.decoder.modules.items()}
        for i, entry in enumerate(self.decoder.module_entries):
            if entry.get("watch"):
                self.decoder.modules[i].register_forward_hook(self.forward_hook(i))
        for i, opt in self.decoder.optimizers.items():
            self.wrap_step(i, opt)
        self.inputs = list(_tensors((self.args, self.kwargs)))  # the order the trusted side lists them in
        self.input_versions = [t._version for t in self.inputs]

    def tensor_changes(self) -> dict:
        """The argument tensors the call wrote to in place, by position."""
        changed = {i: self.enc.value(t) for i, (t, v) in enumerate(zip(self.inputs, self.input_versions)) if t._version != v}
        return {"tensors": changed} if changed else {}

    @staticmethod
    def module_versions(m: nn.Module) -> dict:
        return {name: t._version for name, t in list(m._parameters.items()) + list(m._buffers.items()) if t is not None}

    def forward_hook(self, index: int):
        def hook(module, inputs, output):
            number = len(self.events)
            self.events.append({"kind": "forward", "module": index, "inputs": self.enc.value(list(inputs)),
                                "grad_enabled": torch.is_grad_enabled()})
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(lambda grad: self.events.append(
                    {"kind": "backward", "forward": number, "grad": self.enc.value(grad)}))
        return hook

    def wrap_step(self, index: int, opt) -> None:
        step = opt.step

        def recorded_step(*args, **kwargs):
            result = step(*args, **kwargs)
            self.events.append({"kind": "step", "optimizer": index, "modules": self.states(all_tensors=True)})
            return result

        opt.step = recorded_step

    def states(self, all_tensors: bool = False, all_grads: bool = False) -> dict:
        """What the call changed in each module (everything with ``all_tensors``); ``all_grads``: every
        parameter's ``.grad``, None included (a step may have set one that a later ``zero_grad`` cleared)."""
        out = {}
        for i, m in self.decoder.modules.items():
            before = self.versions[i]
            params = {n: self.enc.value(p) for n, p in m._parameters.items()
                      if p is not None and (all_tensors or p._version != before.get(n))}
            buffers = {n: self.enc.value(b) for n, b in m._buffers.items()
                       if b is not None and (all_tensors or b._version != before.get(n))}
            grads = {n: (None if p.grad is None else self.enc.value(p.grad)) for n, p in m._parameters.items()
                     if p is not None and (p.grad is not None or all_tensors or all_grads)}
            state = {"params": params, "buffers": buffers, "grads": grads, "training": m.training}
            if params or buffers or grads or all_tensors or m.training != self.decoder.module_entries[i].get("training"):
                out[i] = state
        return out

    def changes(self) -> dict:
        if not self.decoder.modules and not self.decoder.optimizers:
            return {}
        return {"changes": {"events": self.events, "modules": self.states(all_grads=True),
                            "optimizers": {i: self.enc.value(inner_optimizer(o).state_dict())
                                           for i, o in self.decoder.optimizers.items()}}}


def serve(sock: socket.socket, objects: list) -> None:
    """Answer side: serve calls until the trusted side closes the channel. ``objects`` holds the
    answer's callables by handle (results that are functions are added)."""
    last: dict = {}
    while True:
        try:
            message = receive(sock)
        except ChannelError:
            return
        op = message.get("op") if type(message) is dict else None
        if op == "call":
            send(sock, serve_call(message, objects, last))
        elif op == "backward":
            send(sock, serve_backward(message, last))
        else:
            return


def serve_call(message: dict, objects: list, last: dict) -> dict:
    last.clear()
    try:
        recorder = Recorder(message)
        fn = objects[_index(message.get("handle"), len(objects))]
    except Exception as err:
        return {"error": {"type": "RuntimeError", "message": f"the grader could not pass the arguments: {err}"}}
    try:
        result = fn(*recorder.args, **recorder.kwargs)
    except BaseException as err:  # SystemExit and ReferenceUsed included: reported, not obeyed
        return {"error": error_message(err), **_changes(recorder)}
    if message.get("grad_inputs"):
        last["inputs"] = [t for t in _tensors((recorder.args, recorder.kwargs)) if t.requires_grad]
        last["outputs"] = list(_tensors(result))
    try:
        enc = Encoder(handles=objects, class_source=False)
        wire = enc.value(result)
        modules, _ = enc.finish(_collect_modules(enc, result))
    except Exception as err:
        return {"error": {"type": "TypeError", "message": f"the answer returned something the grader cannot use ({err})"},
                **_changes(recorder)}
    return {"result": wire, "modules": modules, **_changes(recorder)}


def _changes(recorder: Recorder) -> dict:
    try:
        return {**recorder.changes(), **recorder.tensor_changes()}
    except Exception:
        return {}


def serve_backward(message: dict, last: dict) -> dict:
    inputs, outputs = last.get("inputs", []), last.get("outputs", [])
    try:
        grads = [Decoder([], [], answer_class).value(g) for g in message.get("grads", [])]
        pairs = [(o, g) for o, g in zip(outputs, grads) if o.requires_grad and isinstance(g, torch.Tensor)]
        got = torch.autograd.grad([o for o, _ in pairs], inputs, [g for _, g in pairs], allow_unused=True) if pairs else [None] * len(inputs)
        return {"grads": [None if g is None else Encoder().value(g) for g in got]}
    except BaseException as err:
        return {"error": error_message(err)}
