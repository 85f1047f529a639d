"""The ONNX Runtime backend: engines are graphs optimised for this machine, run by ``OnnxRuntimeChain``.

The execution providers are part of what an engine is: the build records them, a chain runs on
exactly those, and a machine that lacks one of them is refused (the latency and thresholds
measured under them would not hold).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pipeline.backends.base import INT8_STAGES, EngineOptions
from pipeline.backends.onnxruntime.builder import (GPU_PROVIDERS, available_providers, computes_in_float32,
                                                   create_session, engine_from_onnx, session_options)
from pipeline.backends.onnxruntime.chain import OnnxRuntimeChain
from pipeline.backends.onnxruntime.faster import float_candidate_name, prefer_faster
from pipeline.errors import PipelineError
from pipeline.names import PRECISIONS

if TYPE_CHECKING:
    from pipeline.manifest import FileEntry, Manifest

NAME = "onnxruntime"
TITLE = "ONNX Runtime"
ENGINE_SUFFIX = ".onnx"
STOP_ON_BUILD_FAILURE = False  # a variant ONNX Runtime cannot load is recorded as unsupported
PACKAGES = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu")}

__all__ = ["ENGINE_SUFFIX", "GPU_PROVIDERS", "NAME", "OnnxRuntimeChain", "PACKAGES", "STOP_ON_BUILD_FAILURE", "TITLE",
           "artifact_flavour", "available_providers", "batch_range", "build_notes", "buildable_precisions",
           "built_on_this_cpu", "chain_from_engines", "check_device", "check_options", "computes_in_float32",
           "create_session", "device_facts", "engine_from_artifact", "engine_from_onnx", "float_stages", "prefer_faster", "recorded_providers", "session_options", "unavailable_reason"]


def unavailable_reason() -> str | None:
    return None if importlib.util.find_spec("onnxruntime") is not None else "the onnxruntime package is not installed"


def buildable_precisions() -> set[str]:
    return set(PRECISIONS)


def check_options(options: EngineOptions, precisions: Sequence[str], targeted: bool) -> None:
    """Its own option: which stages of the INT8 chain stay INT8 (``threads`` serves every backend's chains and is
    checked with the rest)."""
    if options.int8_stages not in INT8_STAGES:
        raise PipelineError(f"--int8-stages must be one of {', '.join(INT8_STAGES)}, got {options.int8_stages!r}")
    if options.int8_stages != INT8_STAGES[0] and not (targeted and "int8" in precisions):
        raise PipelineError("--int8-stages shapes ONNX Runtime's INT8 engines (TensorRT picks each layer's precision "
                            "itself): build INT8 for the onnxruntime backend, or drop it")


def artifact_flavour(precision: str) -> str:
    """INT8 on the CPU provider alone: the uint8-activation graph, which ONNX Runtime's x86 kernels run fast."""
    return "u8" if precision == "int8" and available_providers()[0] == "CPUExecutionProvider" else ""


def engine_from_artifact(src: Path, dst: Path, precision: str, options: EngineOptions) -> Path:
    return engine_from_onnx(src, dst, threads=options.threads)


def device_facts(threads: int) -> dict[str, Any]:
    return {"providers": available_providers(), "threads": threads}


def batch_range(options: EngineOptions) -> dict[str, int]:
    """Any batch: the graphs' batch axis is dynamic and a session sizes its buffers per call."""
    return {"min": 1, "opt": 1, "max": 0}


def recorded_providers(manifest: "Manifest") -> list[str]:
    """The providers the engines were built for; those here where the manifest predates recording them."""
    return list(manifest.device.backends.get(NAME, {}).get("providers") or available_providers())


def check_device(manifest: "Manifest", what: str = "these ONNX Runtime engines") -> None:
    """Refuse engines recorded for an execution provider that this machine's ONNX Runtime lacks."""
    missing = [p for p in recorded_providers(manifest) if p not in available_providers()]
    if missing:
        raise PipelineError(f"{what} were built for the execution providers {recorded_providers(manifest)}, but "
                            f"this ONNX Runtime lacks {', '.join(missing)} (here: {available_providers()}); "
                            "rebuild them here with `make engines`")


def built_on_this_cpu(manifest: "Manifest") -> bool:
    """Whether the engines were optimised for this kind of CPU (else their chain runs the portable artifacts)."""
    from pipeline.device import host_facts

    here = host_facts()
    return (manifest.device.cpu, manifest.device.machine) == (here["cpu"], here["machine"])


def float_stages(manifest: "Manifest") -> set[int]:
    """The stages whose float graph the INT8 chain runs on this CPU (:func:`prefer_faster` put it in place of the
    INT8 engine); none on another CPU, where the chain runs the portable INT8 artifacts."""
    if not built_on_this_cpu(manifest):
        return set()
    return {e.stage for e in manifest.files(backend=NAME, precision="int8", engines=True)
            if e.path == float_candidate_name(e.stage)}


def chain_from_engines(manifest: "Manifest", folder: Path, engines: list["FileEntry"], precision: str,
                       threads: int) -> OnnxRuntimeChain:
    """The chain on the recorded providers. Engines are graphs optimised for the CPU that built them; on
    another CPU the portable artifacts of the same precision and flavour are used, optimised at load."""
    check_device(manifest, f"the ONNX Runtime engines in {folder}")
    if not built_on_this_cpu(manifest):
        portable = manifest.files(precision=precision, flavour=engines[0].flavour)
        if len(portable) == manifest.num_exits:
            engines = portable
    return OnnxRuntimeChain([folder / e.path for e in engines], manifest.stages, precision, threads,
                            use_providers=recorded_providers(manifest))


def build_notes(manifest: "Manifest", folder: Path, precision: str) -> str | None:
    """FP16 engines that compute in float32: the CPU provider has no FP16 kernels for these operators."""
    engines = manifest.files(backend=NAME, precision=precision, engines=True)
    if precision != "fp16" or not engines or not all(computes_in_float32(folder / e.path) for e in engines):
        return None
    return ("ONNX Runtime has no FP16 kernels for these operators on this device: it casts around them and "
            "computes in float32 with FP16-rounded weights (accuracy is FP16's, speed is not)")
