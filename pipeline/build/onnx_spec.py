"""The spec file of stage graphs made elsewhere: which graphs, in which order, what each gives and carries.

    {
      "name": "mynet",
      "classes": ["cat", "dog"],                      # or "classes.txt", one name a line
      "input": {"height": 224, "width": 224, "colour_order": "RGB", "layout": "NCHW",
                "normalisation": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
                "resize_shorter": 256},               # normalisation "inside": stage 1 takes 0..255 itself
      "stages": [{"graph": "stage1.onnx", "logits": "exit1", "carried": ["features"]},
                 {"graph": "stage2.onnx", "logits": "exit2"}],
      "validation_size": 500                          # optional: default a tenth of the training images
    }

Paths are relative to the spec file. ``mean`` and ``std`` are per channel in the graph's colour
order, on the 0..1 scale. Reading checks the file's own consistency; the graphs are checked
against it in :mod:`pipeline.build.onnx_source`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

INSIDE = "inside"
KEYS = {"name", "classes", "input", "stages", "validation_size"}
INPUT_KEYS = {"height", "width", "colour_order", "layout", "normalisation", "resize_shorter"}
STAGE_KEYS = {"graph", "logits", "carried"}


@dataclass(frozen=True)
class StageGraph:
    graph: Path
    logits: str  # the graph output that is this exit's logits (N, classes)
    carried: tuple[str, ...]  # the graph outputs the next stage takes, by the next graph's input names


@dataclass(frozen=True)
class OnnxSpec:
    path: Path
    name: str
    classes: list[str]
    height: int
    width: int
    colour_order: str  # the order stage 1's graph expects: "RGB" or "BGR"
    layout: str  # "NCHW" or "NHWC"
    mean: tuple[float, ...] | None  # None: the normalisation is inside stage 1
    std: tuple[float, ...] | None
    resize_shorter: int
    stages: list[StageGraph]
    validation_size: int | None

    def identity(self) -> str:
        """sha256 over the spec file and every graph, in order: what the artifacts depend on."""
        h = hashlib.sha256(self.path.read_bytes())
        for s in self.stages:
            h.update(hashlib.sha256(s.graph.read_bytes()).digest())
        return h.hexdigest()


def _fail(path: Path, what: str) -> PipelineError:
    return PipelineError(f"spec {path}: {what}")


def _unknown(path: Path, where: str, found: dict[str, Any], known: set[str]) -> None:
    extra = sorted(set(found) - known)
    if extra:
        raise _fail(path, f"unknown key {extra[0]!r} in {where} (known: {', '.join(sorted(known))})")


def _inside(path: Path, name: Any, what: str) -> Path:
    """``name`` as a file in the spec's folder: a relative path that stays inside it, through no symbolic link."""
    if not isinstance(name, str) or not name:
        raise _fail(path, f"{what} should be a file name relative to the spec's folder, got {name!r}")
    folder = path.parent.resolve()
    file = folder / name
    if Path(name).is_absolute() or ".." in Path(name).parts or os.path.realpath(file) != str(file):
        raise _fail(path, f"{what} {name} is not a file inside the spec's folder {folder} (an absolute path, `..` "
                          "or a symbolic link); copy the file into that folder and name it there")
    return file


def _classes(path: Path, value: Any) -> list[str]:
    if isinstance(value, str):
        file = _inside(path, value, "classes file")
        if not file.is_file():
            raise _fail(path, f"classes file {file} does not exist")
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise _fail(path, f"classes file {file} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
        value = [line.strip() for line in text.splitlines() if line.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
        raise _fail(path, "classes should be a list of names or a text file with one name a line")
    return value


def _channels(path: Path, norm: dict[str, Any], key: str) -> tuple[float, ...]:
    value = norm.get(key)
    if not isinstance(value, list) or len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
        raise _fail(path, f"normalisation {key} should be three numbers (per channel, 0..1 scale), got {value!r}")
    if key == "std" and not all(v > 0 for v in value):
        raise _fail(path, f"normalisation std should be positive, got {value}")
    return tuple(float(v) for v in value)


def _stage(path: Path, k: int, raw: Any, last: bool) -> StageGraph:
    if not isinstance(raw, dict):
        raise _fail(path, f"stage {k} should be an object with graph, logits and carried")
    _unknown(path, f"stage {k}", raw, STAGE_KEYS)
    graph, logits, carried = raw.get("graph"), raw.get("logits"), raw.get("carried", [])
    if not isinstance(graph, str) or not isinstance(logits, str) or not logits:
        raise _fail(path, f"stage {k} needs graph (a file) and logits (an output name)")
    if not isinstance(carried, list) or not all(isinstance(c, str) and c for c in carried):
        raise _fail(path, f"stage {k}: carried should be a list of output names")
    if last and carried:
        raise _fail(path, f"the last stage {k} carries {carried[0]!r}, which no stage takes; drop it from carried")
    if not last and not carried:
        raise _fail(path, f"stage {k} carries nothing, so stage {k + 1} would get no input; list its carried outputs")
    if logits in carried or len(set(carried)) != len(carried):
        raise _fail(path, f"stage {k} names an output twice among logits and carried")
    file = _inside(path, graph, f"stage {k}'s graph")
    if not file.is_file():
        raise _fail(path, f"stage {k}'s graph {file} does not exist")
    return StageGraph(file, logits, tuple(carried))


def read_spec(path: Path) -> OnnxSpec:
    """The spec at ``path``, checked for its own consistency (the graphs are checked later)."""
    if not path.is_file():
        raise PipelineError(f"spec file {path} does not exist; pass --onnx-spec with the JSON file beside the graphs")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nesting past what Python parses
        raise _fail(path, f"not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise _fail(path, "should be a JSON object")
    _unknown(path, "the spec", raw, KEYS)
    inp = raw.get("input")
    if not isinstance(inp, dict):
        raise _fail(path, "input should be an object with height, width, colour_order and normalisation")
    _unknown(path, "input", inp, INPUT_KEYS)
    h, w, shorter = inp.get("height"), inp.get("width"), inp.get("resize_shorter", 0)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
        raise _fail(path, f"input height and width should be positive whole numbers, got {h!r} and {w!r}")
    assert isinstance(h, int) and isinstance(w, int)
    if not isinstance(shorter, int) or (shorter and shorter < max(h, w)):
        raise _fail(path, f"input resize_shorter should be 0 or at least {max(h, w)}, got {shorter!r}")
    order, layout = inp.get("colour_order", "RGB"), inp.get("layout", "NCHW")
    if order not in ("RGB", "BGR") or layout not in ("NCHW", "NHWC"):
        raise _fail(path, f"input colour_order should be RGB or BGR and layout NCHW or NHWC, got {order!r}, {layout!r}")
    norm = inp.get("normalisation")
    if norm == INSIDE:
        mean = std = None
    elif isinstance(norm, dict):
        _unknown(path, "normalisation", norm, {"mean", "std"})
        mean, std = _channels(path, norm, "mean"), _channels(path, norm, "std")
    else:
        raise _fail(path, 'input normalisation should be {"mean": [...], "std": [...]} or "inside"')
    stages = raw.get("stages")
    if not isinstance(stages, list) or not stages:
        raise _fail(path, "stages should list the stage graphs in order, one per exit")
    val = raw.get("validation_size")
    if val is not None and (not isinstance(val, int) or isinstance(val, bool) or val < 1):
        raise _fail(path, f"validation_size should be a positive whole number, got {val!r}")
    name = raw.get("name", path.parent.name)
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise _fail(path, f"name should be a folder name (no '/', not starting with '.'), got {name!r}")
    return OnnxSpec(path, name, _classes(path, raw.get("classes")), h, w, order, layout, mean, std, shorter,
                    [_stage(path, k, s, k == len(stages)) for k, s in enumerate(stages, start=1)], val)
