"""TensorRT plans from ONNX artifacts: ``engine_from_onnx``, plus the device facts a plan is tied to.

Precision comes from the artifact (FP32 graph, FP16 = converted graph, INT8 = Q/DQ graph), and the
network is built so that TensorRT keeps it:

- TensorRT 11: every network is strongly typed (each tensor keeps its ONNX type); the creation
  flag is deprecated and ignored, and the FP16/INT8 builder flags are gone, so none is passed.
- TensorRT 10 (JetPack 6.1+): the STRONGLY_TYPED creation flag, no precision flags.
- TensorRT 8.5/8.6 (JetPack 5, 6.0) has no strongly typed mode: an EXPLICIT_BATCH network with the
  FP16 flag for FP16 artifacts and the INT8 flag for Q/DQ ones (explicit quantization needs it).
  No FP16 flag for INT8: the layers a Q/DQ graph leaves unquantized stay FP32, as on TensorRT 10.
- DLA (Orin): the DLA runs FP16 and implicitly quantized INT8 only, and has no dynamic shapes. A
  Q/DQ graph would fall back to the GPU almost entirely, so only FP16 artifacts are built for it,
  batch 1, with GPU fallback for the layers it cannot run. On TensorRT 8.6 and 10 the DLA compiler
  is driven by the FP16 flag, so DLA builds are weakly typed there.

A plan runs only on the TensorRT version and GPU model that built it; :func:`check_plan_device`
refuses any other with a message saying to rebuild.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from pipeline.backends.base import DEFAULT_WORKSPACE_MB
from pipeline.errors import PipelineError
from pipeline.names import PRECISIONS

MAX_BATCH = 1  # by default batch 1 only (cascade, profiler, accuracy): a static profile, the best kernels for it
MIN_VERSION = (8, 5)  # the name-based I/O API (set_tensor_address, execute_async_v3)
T = TypeVar("T")
_LOGGER: tuple[Any, Any] | None = None  # (the tensorrt module, its logger)


def _trt() -> Any:
    """The tensorrt module, refused with a PipelineError where it is missing or too old."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise PipelineError(f"TensorRT is not installed here ({exc}); use --backend onnxruntime, or install "
                            "TensorRT (JetPack ships it) and pycuda") from None
    if _version(trt) < MIN_VERSION:
        raise PipelineError(f"TensorRT {trt.__version__} is too old: this pipeline needs TensorRT "
                            f"{'.'.join(map(str, MIN_VERSION))} or newer (JetPack 5.1+); upgrade, or use "
                            "--backend onnxruntime")
    return trt


def _version(trt: Any) -> tuple[int, int]:
    major, minor = (trt.__version__.split(".") + ["0"])[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def logger() -> Any:
    """The process's one TensorRT logger (warnings and errors), shared by every builder and runtime.

    TensorRT keeps a pointer to the logger it was given for the life of the object; one logger
    that lives as long as the module is always valid.
    """
    global _LOGGER
    trt = _trt()
    if _LOGGER is None or _LOGGER[0] is not trt:
        _LOGGER = (trt, trt.Logger(trt.Logger.WARNING))
    return _LOGGER[1]


def started(make: Callable[[], T], what: str) -> T:
    """``make()`` (a TensorRT builder or runtime), or a PipelineError naming the likely cause where CUDA did not start.

    TensorRT's factories return nothing when they cannot start CUDA, which the bindings report as
    "TypeError: pybind11::init(): factory function returned nullptr".
    """
    try:
        return make()
    except TypeError as exc:
        if "nullptr" not in str(exc):
            raise
        raise PipelineError(
            f"TensorRT {_trt().__version__} could not create its {what}: CUDA did not start for it. The likely cause "
            "is a CUDA driver older than the CUDA this TensorRT was built for (or a TensorRT that does not match the "
            "CUDA installed): compare the driver's CUDA version (`nvidia-smi`; JetPack's release on a Jetson) with "
            "this TensorRT's, then update the driver or install the TensorRT made for it (JetPack's own on a "
            "Jetson); meanwhile use --backend onnxruntime") from None


def check_cuda_starts() -> None:
    """Create one TensorRT runtime: a PipelineError where TensorRT cannot start CUDA here."""
    trt = _trt()
    started(lambda: trt.Runtime(logger()), "runtime")


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
    except ImportError as exc:  # not installed, or the driver's libcuda is missing
        if "libcuda" in str(exc):
            raise PipelineError(f"no NVIDIA driver was found: pycuda is installed but cannot load the driver's library "
                                f"({exc}); install the NVIDIA driver (JetPack's on a Jetson) and check it with "
                                "`nvidia-smi`, or use --backend onnxruntime") from None
        raise PipelineError(f"pycuda cannot be imported ({exc}); the TensorRT backend needs it: "
                            "pip install pycuda") from None
    except PipelineError:
        raise
    except Exception as exc:  # pycuda.driver.Error and friends: no device, a driver too old for pycuda's CUDA
        raise PipelineError(f"no usable CUDA GPU for TensorRT ({type(exc).__name__}: {exc}); check the NVIDIA "
                            "driver with `nvidia-smi`, or use --backend onnxruntime") from None


def check_plan_device(recorded: dict[str, Any], what: str = "these TensorRT plans") -> None:
    """Refuse plans built for another TensorRT version or GPU model than the one here."""
    here = gpu_info()
    diffs = [f"{key} {recorded.get(key, 'unknown')!r} (here: {here[key]!r})"
             for key in ("tensorrt", "gpu", "compute_capability") if recorded.get(key) != here[key]]
    if diffs:
        raise PipelineError(f"{what} were built for {', '.join(diffs)}; a TensorRT plan only runs on the TensorRT "
                            "version and GPU that built it: rebuild them here with `make engines`")


def buildable_precisions() -> set[str]:
    """Precisions this GPU can build: FP16/INT8 where TensorRT reports fast kernels for them.

    TensorRT 11 removed that query (strongly typed networks build whatever types they hold), so
    there every precision is buildable.
    """
    trt = _trt()
    gpu_info()
    builder = started(lambda: trt.Builder(logger()), "builder")
    ok = {"fp32"}
    if getattr(builder, "platform_has_fast_fp16", True):
        ok.add("fp16")
    if getattr(builder, "platform_has_fast_int8", True):
        ok.add("int8")
    return ok


def _check_dla(precision: str, dla_core: int, max_batch: int) -> None:
    if precision != "fp16":
        raise PipelineError(f"the DLA cannot run {precision} artifacts (it runs FP16, and INT8 only implicitly "
                            "quantized, not Q/DQ graphs); build only fp16 with --dla-core, the rest without it")
    if dla_core < 0 or max_batch != 1:
        raise PipelineError(f"DLA builds need a core number >= 0 and batch 1 (no dynamic shapes on the DLA), "
                            f"got core {dla_core}, max batch {max_batch}")


def _batch_profile(builder: Any, network: Any, max_batch: int, opt_batch: int | None = None) -> Any:
    """One optimisation profile over the batch axis "N": 1 to ``max_batch``, kernels tuned for ``opt_batch``
    (default ``max_batch``: the batched cascade's full ticks); other dims are static."""
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(tensor.shape)  # (-1, ...) where the batch is dynamic
        if any(d < 0 for d in shape[1:]):
            raise PipelineError(f"input {tensor.name} has dynamic dims {shape} beyond the batch; export the stages "
                                "with static H, W and channels")
        opt = opt_batch or max_batch
        lo, mid, hi = ((1, *shape[1:]), (opt, *shape[1:]), (max_batch, *shape[1:])) if shape[0] < 0 else \
            (shape, shape, shape)
        profile.set_shape(tensor.name, lo, mid, hi)
    return profile


def _timing_cache(config: Any, path: Path | None) -> Any:
    """Attach the timing cache at ``path``; a new one where it is absent or from another TensorRT or GPU."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data) if data else None
    if cache is not None and config.set_timing_cache(cache, False):
        return cache
    if data:
        print(f"note: starting a new TensorRT timing cache: {path} was made by another TensorRT version or GPU")
    cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, False)
    return cache


def engine_from_onnx(src: str | Path, dst: str | Path, precision: str, *, workspace_mb: int = DEFAULT_WORKSPACE_MB,
                     timing_cache: str | Path | None = None, dla_core: int | None = None,
                     max_batch: int = MAX_BATCH, opt_batch: int | None = None) -> Path:
    """Build a serialized plan for the ONNX artifact ``src`` (of ``precision``) and write it to ``dst``."""
    if precision not in PRECISIONS:
        raise PipelineError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if max_batch < 1 or not 1 <= (opt_batch or max_batch) <= max_batch:
        raise PipelineError(f"max batch must be at least 1 and opt batch between 1 and it, got {max_batch}, {opt_batch}")
    if dla_core is not None:
        _check_dla(precision, dla_core, max_batch)
    trt = _trt()
    major = _version(trt)[0]
    builder = started(lambda: trt.Builder(logger()), "builder")
    weakly_typed = major < 10 or (major == 10 and dla_core is not None)
    if major >= 11:
        flags = 0  # always strongly typed
    elif weakly_typed:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if major < 10 else 0
    else:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger())
    if not parser.parse_from_file(str(src)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise PipelineError(f"TensorRT could not parse {Path(src).name}: {'; '.join(errors[:5]) or 'no detail given'}"
                            ". Re-export the artifacts, or use --backend onnxruntime")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if weakly_typed and precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    if weakly_typed and precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # Q/DQ nodes carry the scales: no calibrator
    if dla_core is not None:
        if builder.num_DLA_cores <= dla_core:
            raise PipelineError(f"DLA core {dla_core} requested, but this device has {builder.num_DLA_cores} DLA "
                                "cores; pick another --dla-core or build without it")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers the DLA cannot run go to the GPU
    config.add_optimization_profile(_batch_profile(builder, network, max_batch, opt_batch))
    cache_path = Path(timing_cache) if timing_cache else None
    cache = _timing_cache(config, cache_path)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise PipelineError(f"TensorRT failed to build a {precision} plan from {Path(src).name}; "
                            "see its messages above")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(plan))
    if cache_path is not None:  # what this build timed, for the next build on this GPU; replaced atomically
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_name(f"{cache_path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(bytes(cache.serialize()))
        os.replace(tmp, cache_path)
    return dst
