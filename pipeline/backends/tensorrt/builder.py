"""TensorRT plans from ONNX artifacts: ``engine_from_onnx``, plus the device facts a plan is tied to.

Precision comes from the artifact (FP16 = converted graph, INT8 = Q/DQ graph):

- TensorRT 10 and 11 build *strongly typed* networks: every tensor keeps the type the ONNX graph
  gives it, no precision flags. (TensorRT 11 builds strongly typed networks whatever the flag says.)
- TensorRT 8.6 (JetPack 5, 6.0) has no strongly typed mode: the network is weakly typed and the
  FP16 / INT8 builder flags are set from the artifact's precision, so TensorRT may use them.
- TensorRT 10 with a DLA core also takes the weakly typed path: its DLA compiler is driven by the
  precision flags.

A plan runs only on the TensorRT version and GPU model that built it; :func:`check_plan_device`
refuses any other with a message saying to rebuild.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

DEFAULT_WORKSPACE_MB = 1024
MAX_BATCH = 64  # the optimisation profile covers batch 1 (the cascade) up to this (evaluation)


def _trt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise PipelineError(f"TensorRT is not installed here ({exc}); use --backend onnxruntime, or install "
                            "TensorRT (JetPack ships it) and pycuda") from None
    return trt


def trt_major() -> int:
    return int(_trt().__version__.split(".")[0])


def gpu_info() -> dict[str, Any]:
    """{"gpu", "compute_capability", "tensorrt"} of device 0; PipelineError where there is no usable GPU."""
    trt = _trt()
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() < 1:
            raise PipelineError("TensorRT is installed but no CUDA GPU is visible; use --backend onnxruntime")
        dev = cuda.Device(0)
        major, minor = dev.compute_capability()
        return {"gpu": dev.name(), "compute_capability": f"{major}.{minor}", "tensorrt": trt.__version__}
    except ImportError as exc:
        raise PipelineError(f"pycuda is not installed ({exc}); the TensorRT backend needs it: "
                            "pip install pycuda") from None
    except PipelineError:
        raise
    except Exception as exc:  # pycuda.driver.Error and friends: no driver, no device
        raise PipelineError(f"no usable CUDA GPU for TensorRT ({type(exc).__name__}: {exc}); "
                            "use --backend onnxruntime") from None


def check_plan_device(recorded: dict[str, Any], what: str = "these TensorRT plans") -> None:
    """Refuse plans built for another TensorRT version or GPU model than the one here."""
    here = gpu_info()
    diffs = [f"{key} {recorded.get(key)!r} (here: {here[key]!r})" for key in ("tensorrt", "gpu", "compute_capability")
             if recorded.get(key) != here[key]]
    if diffs:
        raise PipelineError(f"{what} were built for {', '.join(diffs)}; a TensorRT plan only runs on the TensorRT "
                            "version and GPU that built it: rebuild them here with `make engines`")


def buildable_precisions() -> set[str]:
    """Precisions this GPU can build: FP16/INT8 only where TensorRT reports fast kernels for them (8.6, 10)."""
    trt = _trt()
    gpu_info()
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    ok = {"fp32"}
    if getattr(builder, "platform_has_fast_fp16", True):  # the attribute is gone in TensorRT 11
        ok.add("fp16")
    if getattr(builder, "platform_has_fast_int8", True):
        ok.add("int8")
    return ok


def engine_from_onnx(src: str | Path, dst: str | Path, precision: str, *, workspace_mb: int = DEFAULT_WORKSPACE_MB,
                     timing_cache: str | Path | None = None, dla_core: int | None = None,
                     max_batch: int = MAX_BATCH) -> Path:
    """Build a serialized plan for the ONNX artifact ``src`` (of ``precision``) and write it to ``dst``."""
    trt = _trt()
    major = int(trt.__version__.split(".")[0])
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    weakly_typed = major < 10 or (major == 10 and dla_core is not None)
    if weakly_typed:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if major < 10 else 0
    else:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(src)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        for err in errors:
            print(f"TensorRT ONNX parser: {err}")
        raise PipelineError(f"TensorRT could not parse {Path(src).name}: {'; '.join(errors) or 'no detail given'}. "
                            "Re-export the artifacts, or use --backend onnxruntime")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if weakly_typed and precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # INT8 graphs keep FP16 for the layers left unquantized
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # Q/DQ nodes carry the scales: no calibrator
    if dla_core is not None:
        if builder.num_DLA_cores <= dla_core:
            raise PipelineError(f"DLA core {dla_core} requested, but this device has {builder.num_DLA_cores} DLA cores")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run go to the GPU

    # One profile over the batch axis: the cascade runs batch 1, evaluation larger batches.
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *rest), (1, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)

    cache_path = Path(timing_cache) if timing_cache else None
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path and cache_path.is_file() else b"")
    config.set_timing_cache(cache, False)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise PipelineError(f"TensorRT failed to build a {precision} plan from {Path(src).name}; "
                            "see its messages above")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(plan))
    if cache_path is not None:  # persist what this build timed, for the next build on this GPU
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return dst
