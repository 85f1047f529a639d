"""Backends that run a model's stages: ONNX Runtime (everywhere) and TensorRT (NVIDIA GPUs, Jetson).

``load_chain`` turns a manifest into a ready StageChain; ``pick_backend`` chooses TensorRT where
plans for this GPU and TensorRT version exist and can run, ONNX Runtime otherwise. Nothing here
imports tensorrt or pycuda except when probing for them.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
from pathlib import Path
from typing import Any

from pipeline.backends.base import StageChain
from pipeline.errors import PipelineError
from pipeline.manifest import Manifest, variant_key
from pipeline.names import PRECISIONS

BACKENDS = ("onnxruntime", "tensorrt")

__all__ = ["BACKENDS", "StageChain", "available_backends", "host_device", "load_chain", "pick_backend",
           "tensorrt_unavailable_reason"]


@functools.lru_cache(maxsize=1)
def tensorrt_unavailable_reason() -> str | None:
    """Why TensorRT cannot run here (not installed, no pycuda, no GPU), or None where it can."""
    for module in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(module) is None:
            return f"the {module} package is not installed"
    from pipeline.backends.tensorrt import gpu_info

    try:
        gpu_info()
    except PipelineError as exc:
        return str(exc)
    return None


def available_backends() -> list[str]:
    """The backends that can build and run engines on this machine, ONNX Runtime first."""
    return ["onnxruntime"] + (["tensorrt"] if tensorrt_unavailable_reason() is None else [])


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_device() -> dict[str, Any]:
    """The CPU facts an ONNX Runtime engine (a graph optimised for this CPU) is tied to."""
    return {"cpu": cpu_name(), "machine": platform.machine(), "cpu_count": os.cpu_count()}


def _plans_usable(manifest: Manifest) -> bool:
    if not manifest.files(backend="tensorrt", engines=True) or "tensorrt" not in available_backends():
        return False
    from pipeline.backends.tensorrt import check_plan_device

    try:
        check_plan_device(manifest.device)
    except PipelineError:
        return False
    return True


def pick_backend(manifest: Manifest, folder: str | Path | None = None) -> str:
    """"tensorrt" where the manifest has plans for this GPU and TensorRT version and they run here, else
    "onnxruntime"."""
    return "tensorrt" if _plans_usable(manifest) else "onnxruntime"


def load_chain(manifest: Manifest, folder: str | Path, backend: str, precision: str, threads: int = 1) -> StageChain:
    """A StageChain (not yet activated) over the manifest's engines for ``backend`` and ``precision``.

    ONNX Runtime engines are graphs optimised for the CPU that built them; on another CPU the chain
    uses the portable artifacts of the same precision and flavour instead, optimised at load.
    """
    folder = Path(folder)
    if backend not in BACKENDS:
        raise PipelineError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise PipelineError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    engines = manifest.files(backend=backend, precision=precision, engines=True)
    if len(engines) != manifest.num_exits:
        why = [u["reason"] for u in manifest.unsupported
               if u.get("backend") == backend and u.get("precision") == precision]
        built = sorted({variant_key(e.backend, e.precision) for e in manifest.engines})
        raise PipelineError(f"{folder} has no {variant_key(backend, precision)} engines"
                            f"{' (' + why[0] + ')' if why else ''}; built here: {', '.join(built) or 'none'}. "
                            "Pick one of those, or rebuild with `make engines`")
    if backend == "tensorrt":
        from pipeline.backends.tensorrt import TensorRTChain, check_plan_device

        check_plan_device(manifest.device, f"the plans in {folder}")
        return TensorRTChain([folder / e.path for e in engines], precision)

    from pipeline.backends.onnxruntime import OnnxRuntimeChain

    here, built_on = host_device(), manifest.device
    if (built_on.get("cpu"), built_on.get("machine")) != (here["cpu"], here["machine"]):
        flavour = engines[0].flavour
        portable = manifest.files(precision=precision, flavour=flavour)
        if len(portable) == manifest.num_exits:
            engines = portable
    return OnnxRuntimeChain([folder / e.path for e in engines], manifest.stages, precision, threads)
