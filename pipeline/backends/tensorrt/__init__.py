"""The TensorRT backend: plans built from the ONNX artifacts (``engine_from_onnx``), run by ``TensorRTChain``.

Nothing here imports tensorrt or pycuda at import time; the functions do, when called. A plan
runs only on the TensorRT version and GPU that built it: ``check_device`` refuses any other.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pipeline.backends.base import EngineOptions
from pipeline.backends.tensorrt.builder import (buildable_precisions, check_cuda_starts, check_plan_device,
                                                engine_from_onnx, gpu_info)
from pipeline.backends.tensorrt.chain import TensorRTChain
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.manifest import FileEntry, Manifest

NAME = "tensorrt"
TITLE = "TensorRT"
ENGINE_SUFFIX = ".plan"
STOP_ON_BUILD_FAILURE = True  # a parse or build failure is the user's to fix
PACKAGES = {"tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"), "pycuda": ("pycuda",)}

__all__ = ["ENGINE_SUFFIX", "NAME", "PACKAGES", "STOP_ON_BUILD_FAILURE", "TITLE", "TensorRTChain", "artifact_flavour", "batch_range",
           "build_notes", "buildable_precisions", "chain_from_engines", "check_cuda_starts", "check_device",
           "check_options",
           "check_plan_device", "device_facts", "prefer_faster", "engine_from_artifact", "engine_from_onnx", "gpu_info",
           "unavailable_reason"]


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """Why TensorRT cannot run here (not installed, no pycuda, no driver or GPU, TensorRT unable to start CUDA),
    or None where it can. Asked once per process: the last check creates a TensorRT runtime."""
    for module in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(module) is None:
            return f"the {module} package is not installed"
    try:
        gpu_info()
        check_cuda_starts()
    except PipelineError as exc:
        return str(exc)
    return None


def check_options(options: EngineOptions, precisions: Sequence[str], targeted: bool) -> None:
    """Its own build options: the builder's workspace, and a DLA core (FP16 plans only, and only where
    the build makes TensorRT plans)."""
    if options.workspace_mb < 1:
        raise PipelineError(f"--workspace-mb must be at least 1, got {options.workspace_mb}")
    dla = options.dla_core
    if dla is not None and (dla < 0 or not targeted):
        raise PipelineError("--dla-core needs a non-negative core number and the TensorRT backend")
    if options.max_batch < 1 or not 1 <= (options.opt_batch or options.max_batch) <= options.max_batch:
        raise PipelineError(f"--max-batch must be at least 1 and --opt-batch between 1 and it; got --max-batch "
                            f"{options.max_batch}, --opt-batch {options.opt_batch}")
    if (options.max_batch > 1 or options.opt_batch is not None) and not targeted:
        raise PipelineError("--max-batch and --opt-batch shape TensorRT's optimisation profile: build for the "
                            "TensorRT backend, or drop them (ONNX Runtime's engines take any batch)")
    if dla is not None and options.max_batch != 1:
        raise PipelineError(f"--dla-core builds batch 1 only (the DLA has no dynamic shapes); got --max-batch "
                            f"{options.max_batch}")
    if dla is not None and set(precisions) != {"fp16"}:
        raise PipelineError(f"--dla-core builds FP16 plans only (DLA runs FP16, and INT8 only through implicit "
                            f"quantization, which these Q/DQ artifacts are not); got --precisions "
                            f"{','.join(precisions)}: pass --precisions fp16")


def artifact_flavour(precision: str) -> str:
    return ""  # TensorRT's own scheme: symmetric int8 activations


def engine_from_artifact(src: Path, dst: Path, precision: str, options: EngineOptions) -> Path:
    return engine_from_onnx(src, dst, precision, workspace_mb=options.workspace_mb,
                            timing_cache=options.timing_cache, dla_core=options.dla_core,
                            max_batch=options.max_batch, opt_batch=options.opt_batch)


def device_facts(threads: int) -> dict[str, Any]:
    return gpu_info()


def batch_range(options: EngineOptions) -> dict[str, int]:
    """The optimisation profile every plan gets: batch 1 to ``max_batch``, tuned for ``opt_batch``."""
    return {"min": 1, "opt": options.opt_batch or options.max_batch, "max": options.max_batch}


def check_device(manifest: "Manifest", what: str = "these TensorRT plans") -> None:
    check_plan_device(manifest.device.backends.get(NAME, {}), what)


def chain_from_engines(manifest: "Manifest", folder: Path, engines: list["FileEntry"], precision: str,
                       threads: int) -> TensorRTChain:
    check_device(manifest, f"the plans in {folder}")
    return TensorRTChain([folder / e.path for e in engines], precision)


def build_notes(manifest: "Manifest", folder: Path, precision: str) -> str | None:
    return None


def prefer_faster(manifest: "Manifest", folder: Path, precision: str, options: EngineOptions) -> str | None:
    """Nothing to do: TensorRT's builder times each layer's kernels and keeps the faster precision itself."""
    return None
