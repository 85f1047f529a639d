"""pycuda.driver's names and argument lists, read from its source, as a module the source check can use.

pycuda is built against CUDA's headers and imports only where a driver is installed, so without a
GPU its API is read from the Boost.Python wrapper (``src/wrapper/wrap_cudadrv.cpp``: ``py::def``,
``py::class_`` with its ``.def``, ``.add_property`` and ``py::init``; argument lists where the
wrapper declares them) and from ``pycuda/driver.py``'s Python functions. The result is a module of
stand-in classes and callables whose docstrings carry those signatures, so :mod:`uses` checks
``cuda.*`` uses exactly as it checks ``trt.*`` ones. Return types are not in the wrapper's text;
:data:`RETURNS` names the few the backend relies on, and the check fails if one of them is missing
from the source.
"""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path
from typing import Any

RETURNS = {"Device.retain_primary_context": "Context", "Device.make_context": "Context",
           "mem_alloc": "DeviceAllocation", "Stream.handle": "int", "Context.handle": "int"}
CLASS = re.compile(r'py::class_<(?:[^<>]|<[^<>]*>)*>\s*(?:\w+\s*)?\(\s*"(\w+)"')
MEMBER = re.compile(r'\.(def|add_property|def_readwrite|def_readonly|staticmethod)\(\s*"(\w+)"'
                    r'|\.(DEF_SIMPLE_METHOD(?:_WITH_ARGS)?)\((\w+)')
FUNCTION = re.compile(r'py::def\(\s*"(\w+)"|DEF_SIMPLE_FUNCTION(?:_WITH_ARGS)?\((\w+)')


class Member:
    """A callable stand-in whose docstring is its signature, as pybind11 writes one."""

    def __init__(self, name: str, doc: str) -> None:
        self.__name__, self.__doc__ = name, doc

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{self.__name__} is read from pycuda's source and cannot run")


def _call_text(text: str, start: int) -> str:
    """The text of the parenthesised call opening at or after ``start``."""
    i, depth = text.index("(", start), 0
    for j in range(i, len(text)):
        depth += {"(": 1, ")": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j]
    return text[i + 1:]


def _args(call: str) -> list[str] | None:
    """The parameters a wrapper call declares ("name" or "name = ..."), None where it declares none."""
    found: list[str] = []
    for m in re.finditer(r'py::args\(([^)]*)\)(\s*=)?|py::arg\("(\w+)"\)(\s*=)?', call):
        if m.group(1) is not None:
            names = re.findall(r'"(\w+)"', m.group(1))
            found += [f"{n} = ..." if m.group(2) and i == len(names) - 1 else n for i, n in enumerate(names)]
        else:
            found.append(f"{m.group(3)} = ..." if m.group(4) else m.group(3))
    simple = re.match(r'\s*\w+\s*,\s*\(([^()]*)\)\s*$', call)  # DEF_SIMPLE_*_WITH_ARGS(NAME, ("a", "b"))
    if not found and simple:
        found = re.findall(r'"(\w+)"', simple.group(1))
    return found or None


def _doc(name: str, params: list[str] | None, returns: str, method: bool) -> str:
    if params is None:
        return ""
    if method and params[:1] != ["self"]:
        params = ["self", *params]
    return f"{name}({', '.join(params)}) -> {returns or 'object'}"


def read_source(root: Path) -> types.ModuleType:
    """The module pycuda.driver would be, as far as names and declared arguments go."""
    text = (root / "src" / "wrapper" / "wrap_cudadrv.cpp").read_text()
    module = types.ModuleType("pycuda.driver")
    for m in FUNCTION.finditer(text):
        name = m.group(1) or m.group(2)
        call = _call_text(text, m.start())
        params = _args(call.split(",", 2)[2] if m.group(1) and call.count(",") >= 2 else call)
        setattr(module, name, Member(name, _doc(name, params, RETURNS.get(name, ""), False)))
    for m in re.finditer(r"DECLARE_EXC\((\w+),", text):  # the driver's exception classes
        if m.group(1) != "NAME":
            setattr(module, m.group(1), type(m.group(1), (Exception,), {"__module__": "pycuda._driver"}))
    for m in CLASS.finditer(text):
        name, end = m.group(1), text.index(";", m.end())
        block = text[m.start():end]
        attrs: dict[str, Any] = {"__module__": "pycuda._driver"}
        init = re.search(r"py::init<(?:[^<>]|<[^<>]*>)*>", block)
        params = _args(_call_text(block, init.end())) if init and block[init.end():].lstrip().startswith("(") else \
            ([] if init else None)
        optional = init is not None and "py::optional<" in init.group(0)  # every declared argument may be left out
        params = [p if p.endswith("...") or not optional else f"{p} = ..." for p in params] if params else params
        attrs["__init__"] = Member("__init__", _doc("__init__", params, "None", True))
        for mm in MEMBER.finditer(block):
            kind, member = (mm.group(1), mm.group(2)) if mm.group(1) else (mm.group(3), mm.group(4))
            if kind == "staticmethod" or member == "__init__":
                continue
            key = f"{name}.{member}"
            if kind in ("add_property", "def_readwrite", "def_readonly"):
                getter = Member(member, f"(arg0: {name}) -> {RETURNS.get(key, 'object')}")
                attrs[member] = property(getter, None if kind != "def_readwrite" else getter)
            else:
                call = _call_text(block, mm.start() + 1)
                params = _args(call.split(",", 2)[2] if kind == "def" and call.count(",") >= 2 else call)
                attrs[member] = Member(member, _doc(member, params, RETURNS.get(key, ""), True))
        setattr(module, name, type(name, (), attrs))
    driver = root / "pycuda" / "driver.py"
    if driver.is_file():
        for node in ast.parse(driver.read_text()).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                n_default = len(node.args.defaults)
                names = [a.arg for a in node.args.args]
                params = [f"{a} = ..." if i >= len(names) - n_default else a for i, a in enumerate(names)]
                setattr(module, node.name, Member(node.name, _doc(node.name, params, "", False)))
    missing = [k for k in RETURNS if not _has(module, k) or not _has(module, RETURNS[k]) and RETURNS[k] != "int"]
    if missing:
        raise LookupError(f"pycuda's source no longer has {', '.join(missing)} (or the classes they return)")
    return module


def _has(module: Any, dotted: str) -> bool:
    obj = module
    for part in dotted.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True
