"""The manifest's JSON checked against its dataclasses' types, and its parts against each other, on load.

A hand-edited or damaged manifest (a ``path`` that is ``null`` or a number, a table that is a
string, an input spec that disagrees with stage 1) must fail as one line naming the field, never
as a ``TypeError`` deep inside a tool. The schema is the dataclasses' own annotations, so a field
added to a table is checked without a change here.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Union

from pipeline.names import PRECISIONS

_JSON_NAMES = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
               list: "an array", dict: "an object"}
_EXPECTED = {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
             type(None): "null"}


class SchemaError(TypeError):
    """A field of the manifest's JSON that is not of its declared type; the message names the field."""


def _found(value: Any) -> str:
    name = _JSON_NAMES.get(type(value), type(value).__name__)
    return f"{name} ({json.dumps(value)})" if isinstance(value, (bool, int, float)) else name


def _expected(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(a) for a in typing.get_args(hint))
    if origin is list or hint is list:
        return "an array"
    if origin is dict or hint is dict or dataclasses.is_dataclass(hint):
        return "an object"
    return _EXPECTED.get(hint, getattr(hint, "__name__", str(hint)))


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the outer JSON type ``hint`` asks for (contents are checked by ``check``)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(hint))
    if origin is list or hint is list:
        return isinstance(value, list)
    if origin is dict or hint is dict or dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def check(value: Any, hint: Any, where: str) -> None:
    """Raise SchemaError naming ``where`` (e.g. ``engines[2].path``) where ``value`` is not a ``hint``."""
    if not _matches(value, hint):
        raise SchemaError(f"{where} should be {_expected(hint)}, found {_found(value)}")
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        check(value, next(a for a in typing.get_args(hint) if _matches(value, a)), where)
    elif origin is list:
        (item,) = typing.get_args(hint)
        for i, v in enumerate(value):
            check(v, item, f"{where}[{i}]")
    elif origin is dict:
        _, item = typing.get_args(hint)
        for k, v in value.items():
            check(v, item, f"{where}[{k!r}]")
    elif dataclasses.is_dataclass(hint):
        check_object(value, hint, where)


def check_object(value: dict[str, Any], cls: Any, where: str) -> None:
    """``value`` as the JSON of dataclass ``cls``: no unknown key, every required key, every field's type."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise SchemaError(f"{where} has unknown field {unknown[0]!r} (expected some of {', '.join(fields)})")
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if name not in value:
            if required:
                raise SchemaError(f"{where} lacks the field {name!r}")
            continue
        check(value[name], hints[name], f"{where}.{name}" if where else name)


def check_consistency(manifest: Any) -> None:
    """Parts of a well-typed manifest that must agree: stage numbering, entries' stages and precisions, and
    the input spec against stage 1's input (what the runtime feeds it)."""
    k = len(manifest.stages)
    if k == 0:
        raise SchemaError("stages is empty: the manifest describes no stage")
    indices = [s.index for s in manifest.stages]
    if indices != list(range(1, k + 1)):
        raise SchemaError(f"stages are numbered {indices}, expected 1 to {k} in order")
    for kind, entries in (("artifacts", manifest.artifacts), ("engines", manifest.engines)):
        for i, e in enumerate(entries):
            if not 1 <= e.stage <= k:
                raise SchemaError(f"{kind}[{i}].stage is {e.stage}, but the model has stages 1 to {k}")
            if e.precision not in PRECISIONS:
                raise SchemaError(f"{kind}[{i}].precision is {e.precision!r}, expected one of {', '.join(PRECISIONS)}")
            if not e.path:
                raise SchemaError(f"{kind}[{i}].path is empty")
    first = manifest.stages[0].inputs
    spec = manifest.input
    if len(first) != 1 or (first[0].name, list(first[0].shape), first[0].dtype) != (spec.name, list(spec.shape),
                                                                                    spec.dtype):
        found = ", ".join(f"{t.name} {t.shape} {t.dtype}" for t in first) or "nothing"
        raise SchemaError(f"input is {spec.name} {spec.shape} {spec.dtype}, but stage 1 reads {found}")
    _check_split(manifest.model.get("split") if isinstance(manifest.model, dict) else None)
    check_ranges(manifest)


def _check_split(split: Any) -> None:
    """The recorded validation split, which redraws the validation images: an object whose size and seed,
    where present, are whole numbers (a size of at least 1, a seed numpy takes)."""
    if split is None:
        return
    if not isinstance(split, dict):
        raise SchemaError(f"model.split should be an object, found {_found(split)}")
    for name, low in (("size", 0), ("seed", 0)):  # size 0: no split (a model made without one)
        value = split.get(name)
        if name in split and (not isinstance(value, int) or isinstance(value, bool) or not low <= value < 2**32):
            raise SchemaError(f"model.split.{name} should be a whole number from {low} to {2**32 - 1}, "
                              f"found {_found(value)}")


MAX_STAGE_MS = 60_000.0  # a minute per stage: past any device, short of a value that silences the deadline rule


def _number(value: Any, where: str, low: float, high: float) -> None:
    """A finite number (not a boolean) in [low, high], or a SchemaError naming ``where``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (low <= float(value) <= high):  # NaN fails both comparisons
        raise SchemaError(f"{where} should be a number from {low:g} to {high:g}, found {_found(value)}")


def _score_range(criterion: str) -> tuple[float, float]:
    """What a threshold in ``criterion``'s units may be: a confidence in [0, 1], an entropy in nats from 0 to
    100 (ln of the classes: about 11.5 for 100 000)."""
    return (0.0, 1.0) if criterion == "confidence" else (0.0, 100.0)


def check_ranges(manifest: Any) -> None:
    """Values a hand edit can make absurd while keeping their type: latencies (finite, 0 to a minute),
    exit thresholds (scores of their criterion), the temporal settings (a prior floor of the criterion's
    range, a cut threshold not below the reuse threshold), and one row or threshold per stage."""
    k = len(manifest.stages)
    for key, table in manifest.latency.items():
        rows = [("stages", table.stages)] + [(f"batches[{b!r}]", r) for b, r in table.batches.items()]
        for name, stages in rows:
            if len(stages) != k or not all("p50_ms" in row for row in stages):
                raise SchemaError(f"latency[{key!r}].{name} should hold one row with a p50_ms per stage ({k}), found "
                                  f"{len(stages)} rows, {sum('p50_ms' in row for row in stages)} with a p50_ms")
            for i, row in enumerate(stages):
                for field, value in row.items():
                    _number(value, f"latency[{key!r}].{name}[{i}].{field}", 0.0, MAX_STAGE_MS)
        for i, value in enumerate(table.cumulative_p50_ms):
            _number(value, f"latency[{key!r}].cumulative_p50_ms[{i}]", 0.0, MAX_STAGE_MS * len(manifest.stages))
    for key, table in manifest.thresholds.items():
        if table.criterion not in ("confidence", "entropy"):
            raise SchemaError(f"thresholds[{key!r}].criterion is {table.criterion!r}, expected confidence or entropy")
        low, high = _score_range(table.criterion)
        for name, policy in table.policies.items():
            values = policy.get("thresholds") if isinstance(policy, dict) else None
            if not isinstance(values, list) or len(values) != k:
                raise SchemaError(f"thresholds[{key!r}].policies[{name!r}].thresholds should be an array of one "
                                  f"threshold per stage ({k})")
            for i, value in enumerate(values):
                if value is not None:
                    _number(value, f"thresholds[{key!r}].policies[{name!r}].thresholds[{i}]", low, high)
    for key, table in getattr(manifest, "temporal", {}).items():
        if not isinstance(table, dict):
            continue  # its own loader tells a table that is not an object
        where = f"temporal[{key!r}]"
        reuse, cut = table.get("reuse_threshold"), table.get("cut_threshold")
        if reuse is not None:
            _number(reuse, f"{where}.reuse_threshold", 0.0, 255.0)
        if cut is not None:
            _number(cut, f"{where}.cut_threshold", 0.0, 255.0)
        if reuse is not None and cut is not None and cut < reuse:
            raise SchemaError(f"{where}.cut_threshold {cut} is below its reuse_threshold {reuse}: a frame would be "
                              "a cut and reusable at once")
        floor, criterion = table.get("prior_floor"), manifest.thresholds.get(key)
        if floor is not None:
            low, high = _score_range(criterion.criterion if criterion is not None else "confidence")
            _number(floor, f"{where}.prior_floor", low, high)
