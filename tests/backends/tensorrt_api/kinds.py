"""What an expression is, for the source check: kinds of values, and the API a module offers by name.

A :class:`Kind` is an instance of a class (a call's result, a property's value, an enum member) or
a module, class or function itself; :class:`TrtApi` answers what a module's names and classes have,
with signatures from pybind11 docstrings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.backends.tensorrt_api import signatures as sg

BUILTIN_KINDS = {"int": int, "str": str, "bytes": bytes, "float": float, "bool": bool, "tuple": tuple, "list": list,
                 "len": int, "range": range}


@dataclass(frozen=True)
class Kind:
    """What an expression is: an instance of ``obj`` (a class), or ``obj`` itself (module, class, function)."""
    obj: Any
    instance: bool
    bound: bool = False  # a method looked up on an instance: its signature's first parameter is self


class TrtApi:
    """A module as the source names it (``root``): members by ``getattr``, signatures from pybind11 docstrings.

    ``owner``: the prefix of the ``__module__`` of the module's classes (their instances are followed).
    """

    def __init__(self, module: Any, root: str = "trt", owner: str = "tensorrt") -> None:
        self.module, self.root, self.owner = module, root, owner

    def owns(self, cls: Any) -> bool:
        return isinstance(cls, type) and getattr(cls, "__module__", "").startswith(self.owner)

    def kind_of(self, type_text: str) -> Kind | None:
        t = sg.clean(type_text)
        if t in BUILTIN_KINDS:
            return Kind(BUILTIN_KINDS[t], True)
        if t in sg.INT_TYPES:
            return Kind(int, True)
        cls = sg.resolve_type(t, self.module)
        return Kind(cls, True) if cls is not None else None

    def settable(self, cls: Any, name: str) -> str | None:
        """None where ``obj.name = value`` works on an instance of ``cls``, else why not."""
        attr = getattr(cls, name, None)
        if not isinstance(attr, property):
            return f"{cls.__name__}.{name} is not a property"
        return None if attr.fset is not None else f"{cls.__name__}.{name} is read-only"


@dataclass(frozen=True)
class Thunk:
    """A lambda without parameters: the kind of what calling it gives."""
    gives: Kind | None
