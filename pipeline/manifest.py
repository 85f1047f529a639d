"""The manifest: the only contract between ``make engines`` and the runtime.

One ``manifest.json`` per built model folder. Paths inside it are relative to that folder. The
loader checks the schema version, that every listed file exists inside the folder, and (unless
asked not to) that its sha256 matches, so the runtime never runs an altered or foreign file.

Keys of the per-variant tables (accuracy, latency, thresholds) are ``"<backend>/<precision>"``,
e.g. ``"onnxruntime/int8"``; see :func:`variant_key`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def variant_key(backend: str, precision: str) -> str:
    return f"{backend}/{precision}"


@dataclass
class TensorSpec:
    name: str
    shape: list[int | str]  # "N" marks the dynamic batch axis
    dtype: str  # numpy dtype name: "uint8", "float32", "float16"


@dataclass
class StageSpec:
    index: int  # 1-based
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]  # outputs[0] is the exit's logits; the rest are carried to stage index+1
    flops: int  # cumulative to this exit, torch's FLOP counter (2 per multiply-add)
    params: int  # cumulative to this exit


@dataclass
class FileEntry:
    """A built file: an ONNX artifact (portable) or an engine (tied to a backend and device)."""

    stage: int
    precision: str
    path: str  # relative to the model folder
    sha256: str
    backend: str = ""  # "" for portable artifacts; "onnxruntime" / "tensorrt" for engines
    flavour: str = ""  # variant of a precision, e.g. "u8" for the CPU-friendly int8 graph


@dataclass
class Manifest:
    model: dict[str, Any]  # {"name", "config", "checkpoint_sha256"}
    classes: list[str]
    input: dict[str, Any]  # {"name", "shape", "dtype", "colour_order", "mean", "std"}
    stages: list[StageSpec]
    artifacts: list[FileEntry] = field(default_factory=list)
    engines: list[FileEntry] = field(default_factory=list)
    unsupported: list[dict[str, str]] = field(default_factory=list)  # {"backend", "precision", "reason"}
    tools: dict[str, str] = field(default_factory=dict)  # package -> version
    device: dict[str, Any] = field(default_factory=dict)  # where the engines were built
    calibration: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # split -> variant -> % per exit
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> {"stages": [{"p50_ms", ...}]}
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> {"policies", "curve"}
    temporal: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> pipeline.temporal's settings
    schema_version: int = SCHEMA_VERSION

    @property
    def num_exits(self) -> int:
        return len(self.stages)

    def files(self, *, backend: str | None = None, precision: str | None = None, flavour: str | None = None,
              engines: bool = False) -> list[FileEntry]:
        """Artifacts (or engines) filtered by backend/precision/flavour, ordered by stage."""
        pool = self.engines if engines else self.artifacts
        sel = [f for f in pool if (backend is None or f.backend == backend)
               and (precision is None or f.precision == precision) and (flavour is None or f.flavour == flavour)]
        return sorted(sel, key=lambda f: f.stage)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {"schema_version": d.pop("schema_version"), **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Manifest":
        d = dict(d)
        stages = [StageSpec(index=s["index"], inputs=[TensorSpec(**t) for t in s["inputs"]],
                            outputs=[TensorSpec(**t) for t in s["outputs"]], flops=s["flops"], params=s["params"])
                  for s in d.pop("stages")]
        arts = [FileEntry(**f) for f in d.pop("artifacts", [])]
        engs = [FileEntry(**f) for f in d.pop("engines", [])]
        return cls(stages=stages, artifacts=arts, engines=engs, **d)


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    """Write ``folder/manifest.json`` atomically (temp file + rename)."""
    path = Path(folder) / MANIFEST_NAME
    tmp = path.with_name(MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _resolve_inside(folder: Path, rel: str) -> Path:
    path = (folder / rel).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise PipelineError(f"manifest in {folder} lists {rel!r}, which lies outside the model folder; "
                            "refusing to load it: rebuild with `make engines`")
    return path


def load_manifest(folder: str | Path, verify: bool = True) -> Manifest:
    """Read and validate ``folder/manifest.json``.

    ``verify``: also check that every artifact and engine exists inside ``folder`` with its sha256.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME if folder.is_dir() else folder
    folder = path.parent
    if not path.is_file():
        raise PipelineError(f"no manifest at {path}; build the engines first with `make engines`")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PipelineError(f"manifest {path} is not valid JSON ({exc}); rebuild with `make engines`") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise PipelineError(f"manifest {path} has schema version {version!r}, this runtime reads version "
                            f"{SCHEMA_VERSION}; rebuild with `make engines` using this version of the pipeline")
    try:
        manifest = Manifest.from_dict(raw)
    except (KeyError, TypeError) as exc:
        raise PipelineError(f"manifest {path} is malformed ({exc}); rebuild with `make engines`") from None
    for entry in manifest.artifacts + manifest.engines:
        file = _resolve_inside(folder, entry.path)
        if not verify:
            continue
        if not file.is_file():
            raise PipelineError(f"manifest {path} lists {entry.path}, which is missing; rebuild with `make engines`")
        digest = sha256_file(file)
        if digest != entry.sha256:
            raise PipelineError(f"{file} does not match the manifest (sha256 {digest[:12]}..., expected "
                                f"{entry.sha256[:12]}...): it was altered after the build; rebuild with `make engines`")
    return manifest
