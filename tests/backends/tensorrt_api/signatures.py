"""pybind11 signatures, read from the docstrings of the real TensorRT bindings, and what they accept.

pybind11 writes each overload's signature as the first line of a docstring:
``name(self: tensorrt.X, flags: int = 0) -> tensorrt.Y`` (numbered ``1. name(...)`` lines where a
function is overloaded; ``(arg0: X) -> T`` for a property's getter and setter). A call fits when one
overload takes its positional and keyword arguments and every argument's type converts the way
pybind11 would convert it.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

PREFIXES = ("tensorrt_bindings.tensorrt.", "tensorrt.")


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # as written, module prefix dropped; "" when not given
    optional: bool  # has a default
    star: str = ""  # "*" or "**"


@dataclass(frozen=True)
class Signature:
    params: tuple[Param, ...]  # without self
    returns: str

    def __str__(self) -> str:
        args = ", ".join(f"{p.star}{p.name}: {p.type}{' = ...' if p.optional else ''}" for p in self.params)
        return f"({args}) -> {self.returns}"


def _split(text: str, sep: str = ",") -> list[str]:
    """``text`` split on ``sep`` outside brackets, angle brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def clean(type_text: str) -> str:
    for prefix in PREFIXES:
        type_text = type_text.replace(prefix, "")
    return type_text.strip()


def _param(text: str) -> Param:
    if text.startswith("**") or text.startswith("*"):
        star = "**" if text.startswith("**") else "*"
        return Param(text.lstrip("*").split(":")[0].strip(), "", True, star)
    head, *default = _split(text, "=")
    name, _, type_text = head.partition(":")
    return Param(name.strip(), clean(type_text), bool(default))


def parse_line(line: str, drop_self: bool) -> Signature | None:
    """One ``name(params) -> returns`` line; None where the line is no signature."""
    match = re.match(r"^\s*(?:\d+\.\s*)?[\w.]*\((.*)\)\s*->\s*(.+?)\s*$", line)
    if match is None:
        return None
    params = [_param(p) for p in _split(match.group(1))]
    if drop_self and params and not params[0].star:
        params = params[1:]
    return Signature(tuple(params), clean(match.group(2)))


def signatures(obj: Any, drop_self: bool = True) -> list[Signature] | None:
    """Every overload of a pybind11 function, method or property accessor; None where none can be read.

    Plain Python functions of the bindings (``trt.nptype``) are read with ``inspect``.
    """
    if inspect.isfunction(obj):
        sig = inspect.signature(obj)
        stars = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
        params = tuple(Param(p.name, "", p.default is not inspect.Parameter.empty, stars.get(p.kind, ""))
                       for p in sig.parameters.values())
        return [Signature(params, "")]
    doc = getattr(obj, "__doc__", None) or ""
    lines = [ln for ln in doc.splitlines() if "->" in ln]
    found = [s for s in (parse_line(ln, drop_self) for ln in lines) if s is not None]
    overloaded = [s for s in found if not any(p.star for p in s.params)]
    return (overloaded or found) or None


def class_signatures(cls: type) -> list[Signature] | None:
    return signatures(cls.__init__)


def resolve_type(type_text: str, trt: Any) -> Any:
    """The bindings' class a type name stands for (``ILogger.Severity`` included), or None."""
    obj = trt
    for part in type_text.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, type) else None


INT_TYPES = ("int", "typing.SupportsInt", "SupportsInt", "typing.SupportsIndex")
FLOAT_TYPES = ("float", "typing.SupportsFloat", "SupportsFloat")
BUFFER_TYPES = ("buffer", "typing_extensions.Buffer", "collections.abc.Buffer", "bytes", "bytearray")
SEQUENCE_HEADS = ("typing.Sequence", "collections.abc.Sequence", "Sequence", "List", "list", "typing.List")


def accepts(type_text: str, kind: Any, trt: Any) -> bool | None:
    """Whether pybind11 converts an argument of ``kind`` to ``type_text``; None where it cannot be judged.

    ``kind``: a Python type (int, str, bytes, tuple, ...), a class of the bindings (its instances), or
    None (not known: accepted).
    """
    if kind is None or not type_text:
        return None
    t = clean(type_text)
    if t.startswith(("typing.Optional[", "Optional[")):
        return True if kind is type(None) else accepts(t[t.index("[") + 1:-1], kind, trt)
    if t.startswith(("typing.Union[", "Union[")) or " | " in t:
        inner = _split(t[t.index("[") + 1:-1]) if "[" in t and " | " not in t else [x.strip() for x in t.split("|")]
        results = [accepts(x, kind, trt) for x in inner]
        return True if any(r for r in results) else (None if None in results else False)
    is_enum = isinstance(kind, type) and hasattr(kind, "__members__") and hasattr(kind, "__index__")
    if t in INT_TYPES:
        return kind in (int, bool) or is_enum
    if t in FLOAT_TYPES:
        return kind in (int, float, bool)
    if t == "bool":
        return kind in (bool, int)
    if t == "str":
        return kind is str
    if t in BUFFER_TYPES:
        return kind in (bytes, bytearray, memoryview) or getattr(kind, "__name__", "") == "IHostMemory"
    if t == "tuple":
        return kind is tuple
    if t.startswith(SEQUENCE_HEADS) or t == "list":
        return kind in (tuple, list) if t != "list" else kind is list
    if t in ("object", "capsule", "numpy.ndarray", "typing.Any", "Any") or "::" in t:
        return None  # any object, or a type the bindings do not name
    target = resolve_type(t, trt)
    if target is None:
        return None
    if target.__name__.startswith("Dims") and kind in (tuple, list):
        return True  # implicit conversion from a sequence of ints
    return isinstance(kind, type) and issubclass(kind, target)


def fit(sigs: list[Signature], n_args: int, keywords: list[str], arg_kinds: list[Any], trt: Any) -> str | None:
    """None where one overload takes the call, else why none does."""
    why = []
    for sig in sigs:
        positional = [p for p in sig.params if not p.star]
        star = any(p.star == "*" for p in sig.params)
        if n_args > len(positional) and not star:
            why.append(f"{sig}: {n_args} positional arguments, at most {len(positional)}")
            continue
        names = [p.name for p in positional]
        unknown = [k for k in keywords if k not in names and not any(p.star == "**" for p in sig.params)]
        if unknown:
            why.append(f"{sig}: no parameter {unknown[0]!r}")
            continue
        given = set(names[:n_args]) | set(keywords)
        missing = [p.name for p in positional if not p.optional and p.name not in given]
        if missing:
            why.append(f"{sig}: {missing[0]!r} not given")
            continue
        bound = list(zip(positional[:n_args], arg_kinds[:n_args]))
        bound += [(next(p for p in positional if p.name == k), kind) for k, kind in zip(keywords, arg_kinds[n_args:])
                  if k in names]
        bad = [(p, kind) for p, kind in bound if accepts(p.type, kind, trt) is False]
        if bad:
            p, kind = bad[0]
            why.append(f"{sig}: {p.name} must be {p.type}, got {getattr(kind, '__name__', kind)}")
            continue
        return None
    return "; ".join(why) or "no signature"
