"""The version checks around an API use, evaluated for one version: can the code reach the use there?

A guard is an ``if`` test, a conditional expression's test or an ``and``/``or`` operand, with the
branch taken (True or False). Its value is computed from constants, names assigned once (followed
through their expressions) and calls of the code's version function, which give the version as a
(major, minor) tuple; anything else is unknown, and an unknown guard does not rule a use out.
"""

from __future__ import annotations

import ast
from typing import Any, Callable

UNKNOWN = ...
COMPARE = {ast.Lt: "__lt__", ast.LtE: "__le__", ast.Gt: "__gt__", ast.GtE: "__ge__", ast.Eq: "__eq__",
           ast.NotEq: "__ne__"}
Names = Callable[[str], "ast.expr | None"]


def value(node: ast.expr | None, names: Names, version: tuple[int, int], version_funcs: set[str],
          depth: int = 0) -> Any:
    """The value of ``node`` where it depends only on constants and the version; ``...`` when unknown."""
    if node is None or depth > 20:
        return UNKNOWN
    again = lambda n: value(n, names, version, version_funcs, depth + 1)  # noqa: E731
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return again(names(node.id))
    if isinstance(node, ast.Tuple):
        vals = [again(e) for e in node.elts]
        return UNKNOWN if UNKNOWN in vals else tuple(vals)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in version_funcs:
        return version
    if isinstance(node, ast.Subscript):
        seq, idx = again(node.value), again(node.slice)
        try:
            return seq[idx] if UNKNOWN not in (seq, idx) else UNKNOWN
        except (TypeError, IndexError, KeyError):
            return UNKNOWN
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        v = again(node.operand)
        return UNKNOWN if v is UNKNOWN else not v
    if isinstance(node, ast.BoolOp):
        vals = [again(v) for v in node.values]
        decisive = [v for v in vals if v is not UNKNOWN and bool(v) != isinstance(node.op, ast.And)]
        if decisive:  # a false operand of and, a true one of or
            return bool(decisive[0])
        return UNKNOWN if UNKNOWN in vals else vals[-1]
    if isinstance(node, ast.Compare):
        left, result = again(node.left), True
        for op, right_node in zip(node.ops, node.comparators):
            right = again(right_node)
            if UNKNOWN in (left, right) or type(op) not in COMPARE:
                return UNKNOWN
            result = result and getattr(left, COMPARE[type(op)])(right)
            left = right
        return result
    return UNKNOWN


def reachable(guards: list[tuple[ast.expr, bool]], names: Names, version: tuple[int, int],
              version_funcs: set[str]) -> bool:
    """False where one guard is known to take the other branch on ``version``."""
    for test, polarity in guards:
        v = value(test, names, version, version_funcs)
        if v is not UNKNOWN and bool(v) != polarity:
            return False
    return True
