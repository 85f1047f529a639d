"""Every use of an API module in the backend's source, resolved against a real module.

Reads each file with ``ast``: attribute chains rooted at the module's name (``trt.BuilderFlag.FP16``),
calls on them (``trt.Builder(logger)``), and calls, reads and writes on the objects they return
(``builder.create_network(flags)``, ``config.DLA_core = 0``), whose types follow from the signatures'
return types through assignments, ``self`` attributes, list appends and the module's own function
calls. Each use is checked where the code can reach it for the version at hand: the guarding ``if``
tests, conditional expressions and ``and``/``or`` operands are evaluated with the version the code
computes (any function that reads ``__version__``), so ``trt.BuilderFlag.FP16`` under a test that
is false on TensorRT 11 is not required there. An ``api`` object says what exists
(:class:`TrtApi` for the bindings); ``getattr(obj, "name", default)`` is an optional use.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.backends.tensorrt_api import signatures as sg
from tests.backends.tensorrt_api.guards import reachable
from tests.backends.tensorrt_api.kinds import BUILTIN_KINDS, Kind, Thunk, TrtApi


@dataclass
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def _terminates(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], (ast.Return, ast.Raise, ast.Continue, ast.Break))


class _Scope:
    def __init__(self, fn: ast.AST | None) -> None:
        self.kinds: dict[str, Kind] = {}
        counts: dict[str, list[ast.expr]] = {}
        for node in ast.walk(fn) if fn is not None else ():
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        counts.setdefault(t.id, []).append(node.value)
                    elif isinstance(t, ast.Tuple):
                        for e in t.elts:
                            if isinstance(e, ast.Name):
                                counts.setdefault(e.id, []).extend([node.value, node.value])
        self.single = {k: v[0] for k, v in counts.items() if len(v) == 1}


class SourceCheck:
    """Check every file of ``paths`` against ``api`` for ``version`` (a (major, minor) tuple)."""

    def __init__(self, paths: list[Path], api: TrtApi, version: tuple[int, int]) -> None:
        self.api, self.version = api, version
        self.trees = {p: ast.parse(p.read_text(), str(p)) for p in paths}
        self.problems: list[Problem] = []
        self.uses: set[str] = set()
        self.skipped: set[str] = set()  # uses not reachable on this version
        self.version_funcs = {f.name for t in self.trees.values() for f in ast.walk(t)
                              if isinstance(f, ast.FunctionDef)
                              and any(isinstance(n, ast.Attribute) and n.attr == "__version__" for n in ast.walk(f))
                              and any(isinstance(n, ast.Return) and isinstance(n.value, ast.Tuple)
                                      for n in ast.walk(f))}
        self.params: dict[str, dict[str, Kind]] = {}  # function name -> parameter kinds from call sites
        self.attrs: dict[str, Kind] = {}  # "self._runtime" -> kind
        self.elems: dict[str, Kind] = {}  # "self._contexts" -> kind of its elements
        self.consts: dict[str, ast.expr] = {}

    def run(self) -> list[Problem]:
        for _ in range(3):  # inference settles: parameter and attribute kinds flow between functions
            self.problems, self.uses, self.skipped = [], set(), set()
            for path, tree in self.trees.items():
                self.path = path
                self.consts = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign)
                               for t in n.targets if isinstance(t, ast.Name)}
                self._block(tree.body, [], _Scope(None))
        return self.problems

    def _reachable(self, guards: list[tuple[ast.expr, bool]], scope: _Scope) -> bool:
        names = lambda n: scope.single.get(n, self.consts.get(n))  # noqa: E731
        return reachable(guards, names, self.version, self.version_funcs)

    # --- statements ------------------------------------------------------------------------------

    def _block(self, body: list[ast.stmt], guards: list, scope: _Scope, cls: str = "") -> None:
        guards = list(guards)
        for stmt in body:
            if isinstance(stmt, ast.ClassDef):
                self._block(stmt.body, guards, scope, stmt.name)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = _Scope(stmt)
                inner.kinds.update(self.params.get(stmt.name, {}))
                self._block(stmt.body, [], inner, cls)
            elif isinstance(stmt, ast.If):
                self._expr(stmt.test, guards, scope)
                self._block(stmt.body, guards + [(stmt.test, True)], scope, cls)
                self._block(stmt.orelse, guards + [(stmt.test, False)], scope, cls)
                if _terminates(stmt.body) and not stmt.orelse:
                    guards.append((stmt.test, False))
            elif isinstance(stmt, (ast.For, ast.AsyncFor)):
                it = self._expr(stmt.iter, guards, scope)
                if isinstance(stmt.target, ast.Name):
                    scope.kinds[stmt.target.id] = Kind(int, True) if it == Kind(range, True) else \
                        self.elems.get(ast.unparse(stmt.iter)) or scope.kinds.pop(stmt.target.id, None)
                self._block(stmt.body + stmt.orelse, guards, scope, cls)
            elif isinstance(stmt, ast.While):
                self._expr(stmt.test, guards, scope)
                self._block(stmt.body + stmt.orelse, guards, scope, cls)
            elif isinstance(stmt, ast.Try):
                self._block(stmt.body, guards, scope, cls)
                for h in stmt.handlers:
                    self._block(h.body, guards, scope, cls)
                self._block(stmt.orelse + stmt.finalbody, guards, scope, cls)
            elif isinstance(stmt, ast.With):
                for item in stmt.items:
                    self._expr(item.context_expr, guards, scope)
                self._block(stmt.body, guards, scope, cls)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                value = stmt.value
                kind = self._expr(value, guards, scope) if value is not None else None
                for target in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]):
                    self._assign(target, kind, value, guards, scope)
            else:
                for child in ast.iter_child_nodes(stmt):
                    if isinstance(child, ast.expr):
                        self._expr(child, guards, scope)

    def _assign(self, target: ast.expr, kind: Kind | None, value: ast.expr | None, guards: list,
                scope: _Scope) -> None:
        if isinstance(target, ast.Name):
            if kind is not None:
                scope.kinds[target.id] = kind
            else:
                scope.kinds.pop(target.id, None)
        elif isinstance(target, ast.Attribute):
            owner = self._expr(target.value, guards, scope)
            key = ast.unparse(target)
            if owner is not None and owner.instance and self.api.owns(owner.obj):
                self._use(target, guards, scope, lambda: self.api.settable(owner.obj, target.attr))
            elif kind is not None and key.startswith("self."):
                self.attrs[key] = kind
        elif isinstance(target, ast.Tuple):
            for elt in target.elts:
                self._assign(elt, None, None, guards, scope)
        else:
            self._expr(target, guards, scope)

    # --- expressions -----------------------------------------------------------------------------

    def _use(self, node: ast.AST, guards: list, scope: _Scope, check) -> None:
        text = f"{self.path.name}:{node.lineno}: {ast.unparse(node)}"
        if not self._reachable(guards, scope):
            self.skipped.add(text)
            return
        self.uses.add(text)
        why = check()
        if why:
            self.problems.append(Problem(f"{self.path.name}:{node.lineno}", f"{ast.unparse(node)}: {why}"))

    def _expr(self, node: ast.expr | None, guards: list, scope: _Scope) -> Any:  # Kind, Thunk or None
        if node is None:
            return None
        if isinstance(node, ast.Constant):
            return Kind(type(node.value), True)
        if isinstance(node, ast.Name):
            if node.id == self.api.root:
                return Kind(self.api.module, False)
            return scope.kinds.get(node.id)
        if isinstance(node, (ast.Tuple, ast.List)):
            for e in node.elts:
                self._expr(e, guards, scope)
            return Kind(tuple if isinstance(node, ast.Tuple) else list, True)
        if isinstance(node, ast.Attribute):
            return self._attribute(node, guards, scope)
        if isinstance(node, ast.Call):
            return self._call(node, guards, scope)
        if isinstance(node, ast.Subscript):
            self._expr(node.value, guards, scope)
            self._expr(node.slice, guards, scope)
            return self.elems.get(ast.unparse(node.value))
        if isinstance(node, ast.Lambda):
            return Thunk(self._expr(node.body, guards, scope)) if not node.args.args else None
        if isinstance(node, ast.IfExp):
            self._expr(node.test, guards, scope)
            a = self._expr(node.body, guards + [(node.test, True)], scope)
            b = self._expr(node.orelse, guards + [(node.test, False)], scope)
            return a if a == b else None
        if isinstance(node, ast.BoolOp):
            extra: list = []
            for v in node.values:
                self._expr(v, guards + extra, scope)
                extra.append((v, isinstance(node.op, ast.And)))
            return None
        if isinstance(node, ast.BinOp):
            a, b = self._expr(node.left, guards, scope), self._expr(node.right, guards, scope)
            return Kind(int, True) if a == b == Kind(int, True) else None
        if isinstance(node, (ast.ListComp, ast.GeneratorExp, ast.SetComp)):
            for gen in node.generators:
                it = self._expr(gen.iter, guards, scope)
                if isinstance(gen.target, ast.Name) and it == Kind(range, True):
                    scope.kinds[gen.target.id] = Kind(int, True)
            self._expr(node.elt, guards, scope)
            return None
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._expr(child, guards, scope)
        return Kind(bool, True) if isinstance(node, ast.Compare) else None

    def _attribute(self, node: ast.Attribute, guards: list, scope: _Scope) -> Kind | None:
        owner = self._expr(node.value, guards, scope)
        key = ast.unparse(node)
        if key in self.attrs:
            return self.attrs[key]
        if owner is None or not (self.api.owns(owner.obj) or owner.obj is self.api.module):
            return None
        if node.attr.startswith("__"):
            return None
        found = getattr(owner.obj, node.attr, None)
        self._use(node, guards, scope, lambda: None if found is not None or hasattr(owner.obj, node.attr) else
                  f"{'the module' if owner.obj is self.api.module else owner.obj.__name__} has no {node.attr!r}")
        if found is None:
            return None
        if isinstance(found, property):
            if not owner.instance:
                return None
            sigs = sg.signatures(found.fget, drop_self=True)
            return self.api.kind_of(sigs[0].returns) if sigs else None
        if isinstance(found, type):
            return Kind(found, False)
        if callable(found) and not hasattr(type(found), "__members__"):
            return Kind(found, False, bound=owner.instance)
        return Kind(type(found), True)  # an enum member or constant

    def _call(self, node: ast.Call, guards: list, scope: _Scope) -> Kind | None:
        func = node.func
        args = [self._expr(a.value if isinstance(a, ast.Starred) else a, guards, scope) for a in node.args]
        kwargs = [self._expr(k.value, guards, scope) for k in node.keywords]
        starred = any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords)
        if isinstance(func, ast.Name):
            if func.id == "getattr" and len(node.args) == 3:
                return None  # an optional attribute: the default covers its absence
            if func.id in BUILTIN_KINDS:
                return Kind(BUILTIN_KINDS[func.id], True)
            if func.id in self.version_funcs:
                return Kind(tuple, True)
            return self._module_call(func.id, args)
        if isinstance(func, ast.Attribute) and func.attr == "append" and args:
            if args[0] is not None:
                self.elems[ast.unparse(func.value)] = args[0]
            self._expr(func.value, guards, scope)
            return None
        target = self._expr(func, guards, scope)
        if target is None or target.instance:
            return None
        obj = target.obj  # only lookups on the API give a callable kind
        is_class = isinstance(obj, type)
        sigs = sg.class_signatures(obj) if is_class else sg.signatures(obj, drop_self=target.bound)
        if sigs and not starred:
            keywords = [k.arg for k in node.keywords]
            kinds = [None if not isinstance(k, Kind) else k.obj if k.instance else type(k.obj) for k in args + kwargs]
            self._use(node, guards, scope, lambda: sg.fit(sigs, len(node.args), keywords, kinds, self.api.module))
        if is_class:
            return Kind(obj, True)
        return self.api.kind_of(sigs[0].returns) if sigs and sigs[0].returns else None

    def _module_call(self, name: str, args: list[Any]) -> Kind | None:
        """A call of a function of the scanned files: its parameters take the arguments' kinds; where it returns
        what calling one of its parameters gives (``return make()``) and that argument is a lambda, the call's
        kind is the lambda's."""
        gives = None
        for tree in self.trees.values():
            for fn in ast.walk(tree):
                if not (isinstance(fn, ast.FunctionDef) and fn.name == name):
                    continue
                for param, kind in zip(fn.args.args, args):
                    if isinstance(kind, Kind):
                        self.params.setdefault(name, {})[param.arg] = kind
                    called = {n.value.func.id for n in ast.walk(fn) if isinstance(n, ast.Return)
                              and isinstance(n.value, ast.Call) and isinstance(n.value.func, ast.Name)}
                    if isinstance(kind, Thunk) and param.arg in called:
                        gives = kind.gives
        return gives


def check_sources(paths: list[Path], module: Any, version: tuple[int, int], root: str = "trt",
                  owner: str = "tensorrt") -> SourceCheck:
    check = SourceCheck(paths, TrtApi(module, root, owner), version)
    check.run()
    return check
