"""The manifest: the only contract between ``make engines`` and the runtime.

One ``manifest.json`` per built model folder. Paths inside it are relative to that folder. The
loader checks the schema version (reading version 1 through ``migrate_v1``), that every listed
file exists inside the folder, and (unless asked not to) that its sha256 matches, so the runtime
never runs an altered or foreign file. Keys of the per-variant tables (accuracy, latency,
thresholds) are ``"<backend>/<precision>"``, e.g. ``"onnxruntime/int8"``: :func:`variant_key`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.manifest import schema as manifest_schema
from pipeline.errors import PipelineError
from pipeline.files import atomic_write_text, sha256_file
from pipeline.manifest.tables import BatchRange, DeviceInfo, InputSpec, LatencyTable, ThresholdTable

SCHEMA_VERSION = 2  # 2: typed input, device, latency and thresholds tables; providers recorded per table
MANIFEST_NAME = "manifest.json"

__all__ = ["MANIFEST_NAME", "SCHEMA_VERSION", "BatchRange", "DeviceInfo", "FileEntry", "InputSpec", "LatencyTable", "Manifest",
           "StageSpec", "TensorSpec", "ThresholdTable", "load_manifest", "migrate_v1", "sha256_file", "variant_key",
           "write_manifest"]


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

    @classmethod
    def of(cls, folder: Path, rel: str, stage: int, precision: str, backend: str = "", flavour: str = ""
           ) -> "FileEntry":
        """The entry of the file ``folder/rel`` as it is now (its sha256)."""
        return cls(stage, precision, rel, sha256_file(folder / rel), backend, flavour)


@dataclass
class Manifest:
    model: dict[str, Any]  # {"name", "config", "checkpoint_sha256", "split"}
    classes: list[str]
    input: InputSpec
    stages: list[StageSpec]
    artifacts: list[FileEntry] = field(default_factory=list)
    engines: list[FileEntry] = field(default_factory=list)
    unsupported: list[dict[str, str]] = field(default_factory=list)  # {"backend", "precision", "reason"}
    tools: dict[str, str] = field(default_factory=dict)  # package -> version
    device: DeviceInfo = field(default_factory=DeviceInfo)  # where the engines were built
    calibration: dict[str, Any] = field(default_factory=dict)  # how the INT8 ranges were calibrated
    accuracy: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # split -> variant -> % per exit
    latency: dict[str, LatencyTable] = field(default_factory=dict)  # variant -> measured latency
    thresholds: dict[str, ThresholdTable] = field(default_factory=dict)  # variant -> calibrated thresholds
    temporal: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> pipeline.temporal's settings
    batch: dict[str, BatchRange] = field(default_factory=dict)  # backend -> the batch sizes its engines take
    schema_version: int = SCHEMA_VERSION

    @property
    def num_exits(self) -> int:
        return len(self.stages)

    def batch_range(self, backend: str) -> BatchRange:
        """The batch sizes ``backend``'s engines take; batch 1 only where the manifest does not say (older builds)."""
        return self.batch.get(backend) or BatchRange()

    def stage_flops(self) -> list[int]:
        """Each stage's own FLOPs (the manifest records them cumulative to each exit)."""
        flops = [s.flops for s in self.stages]
        return [b - a for a, b in zip([0] + flops[:-1], flops)]

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
        """The manifest of a version-2 JSON object; KeyError or TypeError where it is malformed."""
        d = dict(d)
        stages = [StageSpec(index=s["index"], inputs=[TensorSpec(**t) for t in s["inputs"]],
                            outputs=[TensorSpec(**t) for t in s["outputs"]], flops=s["flops"], params=s["params"])
                  for s in d.pop("stages")]
        return cls(stages=stages, input=InputSpec.from_dict(d.pop("input")),
                   artifacts=[FileEntry(**f) for f in d.pop("artifacts", [])],
                   engines=[FileEntry(**f) for f in d.pop("engines", [])],
                   device=DeviceInfo.from_dict(d.pop("device", {})),
                   latency={k: LatencyTable.from_dict(v) for k, v in d.pop("latency", {}).items()},
                   thresholds={k: ThresholdTable.from_dict(v) for k, v in d.pop("thresholds", {}).items()},
                   batch={k: BatchRange.from_dict(v) for k, v in d.pop("batch", {}).items()}, **d)


_V1_BACKEND_KEYS = {"onnxruntime": {"onnxruntime_providers": "providers", "onnxruntime_threads": "threads"},
                    "tensorrt": {"gpu": "gpu", "compute_capability": "compute_capability", "tensorrt": "tensorrt"}}


def migrate_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A version-1 manifest's JSON in version 2's layout, nothing measured lost.

    Version 1 kept the device flat (the backends' facts beside the CPU's), did not record the
    execution providers of its latency and threshold tables (they were the build's, in the
    device), and wrote threshold tables without an ``aggregate`` before exits could answer with
    the mean (those answer with exit k alone: "last").
    """
    out = dict(raw, schema_version=2)
    flat = dict(raw.get("device") or {})
    device: dict[str, Any] = {"backends": {}, "emulated": flat.pop("emulated", {})}
    for key in ("cpu", "machine", "cpu_count"):
        if key in flat:
            device[key] = flat.pop(key)
    for backend, keys in _V1_BACKEND_KEYS.items():
        facts = {new: flat.pop(old) for old, new in keys.items() if old in flat}
        if facts:
            device["backends"][backend] = facts
    out["device"] = device
    providers = list(device["backends"].get("onnxruntime", {}).get("providers", []))

    def of(key: str) -> list[str]:
        return providers if key.startswith("onnxruntime/") else []

    out["latency"] = {k: {**v, "providers": of(k)} for k, v in (raw.get("latency") or {}).items()}
    out["thresholds"] = {k: {"aggregate": "last", **v, "providers": of(k)}
                         for k, v in (raw.get("thresholds") or {}).items()}
    return out


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    """Write ``folder/manifest.json`` atomically (temp file + rename)."""
    path = Path(folder) / MANIFEST_NAME
    atomic_write_text(path, json.dumps(manifest.to_dict(), indent=2) + "\n")
    return path


def _resolve_inside(folder: Path, rel: str) -> Path:
    path = (folder / rel).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise PipelineError(f"manifest in {folder} lists {rel!r}, which lies outside the model folder; "
                            "refusing to load it: rebuild with `make engines`")
    return path


def load_manifest(folder: str | Path, verify: bool = True, engines: bool = True) -> Manifest:
    """Read and validate ``folder/manifest.json``: every field's type, and its parts against each other.

    ``verify``: also check that every artifact and (with ``engines``) every engine exists inside
    ``folder`` with its sha256. ``engines=False`` is for compiling the portable artifacts, which
    need only themselves and the manifest: the engines it lists are the builder's, not copied.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME if folder.is_dir() else folder
    folder = path.parent
    if not path.is_file():
        raise PipelineError(f"no manifest at {path}; build the engines first with `make engines`")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nesting past what Python parses
        raise PipelineError(f"manifest {path} is not valid JSON ({exc}); rebuild with `make engines`") from None
    if not isinstance(raw, dict):
        raise PipelineError(f"manifest {path} is not a JSON object (found {type(raw).__name__}); "
                            "rebuild with `make engines`")
    version = raw.get("schema_version")
    if type(version) is not int:  # true == 1 and 2.0 == 2 in Python: a version is a whole number, not a bool
        raise PipelineError(f"manifest {path} has schema version {json.dumps(version)[:40]}, expected the whole number "
                            f"{SCHEMA_VERSION}; rebuild with `make engines` using this version of the pipeline")
    if version == 1:
        raw = migrate_v1(raw)
        version = SCHEMA_VERSION
    if version != SCHEMA_VERSION:
        raise PipelineError(f"manifest {path} has schema version {version!r}, this runtime reads version "
                            f"{SCHEMA_VERSION}; rebuild with `make engines` using this version of the pipeline")
    try:
        manifest_schema.check_object(raw, Manifest, "")
        manifest = Manifest.from_dict(raw)
        manifest_schema.check_consistency(manifest)
    except (KeyError, TypeError) as exc:
        raise PipelineError(f"manifest {path} is malformed ({exc}); rebuild with `make engines`") from None
    for entry in manifest.artifacts + manifest.engines:
        file = _resolve_inside(folder, entry.path)
        if not verify or (entry.backend and not engines):
            continue
        if not file.is_file():
            raise PipelineError(f"manifest {path} lists {entry.path}, which is missing; rebuild with `make engines`")
        digest = sha256_file(file)
        if digest != entry.sha256:
            raise PipelineError(f"{file} does not match the manifest (sha256 {digest[:12]}..., expected "
                                f"{entry.sha256[:12]}...): it was altered after the build; rebuild with `make engines`")
    return manifest
