"""Doubles spec'd from the real TensorRT classes, for the three that need a GPU: Builder, OnnxParser, Runtime.

A :class:`Double` stands for an instance of one real pybind11 class. Reading a name the class lacks
raises AttributeError, as the real object would; a call is checked against the class's pybind11
signatures (argument count, keywords, types) and setting a property the class has no setter for
fails. Those two also go into :data:`MISMATCHES`, so a mismatch that the code under test catches
is still seen. Return values come from a per-class script, else from the signature's return type
(a double of the class it names, True for bool). Every other name of the module stays real:
enums, Logger, Dims, nptype.

``pycuda_driver`` is a small pycuda.driver double for the same runs: device memory as numpy
buffers, a context stack per thread as the driver keeps one.
"""

from __future__ import annotations

import json
import threading
import types
from typing import Any, Callable

import numpy as np

from tests.backends.tensorrt_api import signatures as sg

MISMATCHES: list[str] = []


def kind_of(value: Any) -> Any:
    return object.__getattribute__(value, "_cls") if isinstance(value, Double) else type(value)


def _check_call(trt: Any, owner: str, sigs: list[sg.Signature] | None, args: tuple, kwargs: dict) -> None:
    if not sigs:
        return
    why = sg.fit(sigs, len(args), list(kwargs), [kind_of(a) for a in (*args, *kwargs.values())], trt)
    if why:
        MISMATCHES.append(f"{owner}: {why}")
        raise TypeError(f"{owner}(): incompatible function arguments: {why}")


def default(trt: Any, returns: str) -> Any:
    t = sg.clean(returns)
    if t == "bool":
        return True
    if t in sg.INT_TYPES:
        return 0
    if t == "str":
        return ""
    cls = sg.resolve_type(t, trt)
    return Double(trt, cls) if cls is not None and not hasattr(cls, "__members__") else None


class Double:
    """An instance of the real class ``cls`` as far as its interface goes; ``script`` gives behaviour by name."""

    def __init__(self, trt: Any, cls: type, script: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_trt", trt)
        object.__setattr__(self, "_cls", cls)
        object.__setattr__(self, "_script", dict(script or {}))
        object.__setattr__(self, "_values", {})

    def __getattr__(self, name: str) -> Any:
        trt, cls = object.__getattribute__(self, "_trt"), object.__getattribute__(self, "_cls")
        script, values = object.__getattribute__(self, "_script"), object.__getattribute__(self, "_values")
        if name.startswith("__") or not hasattr(cls, name):
            raise AttributeError(f"'{cls.__name__}' object has no attribute '{name}' (TensorRT {trt.__version__})")
        real = getattr(cls, name)
        if isinstance(real, property):
            if name in values:
                return values[name]
            if name in script:
                return script[name]
            sigs = sg.signatures(real.fget)
            return default(trt, sigs[0].returns) if sigs else None
        sigs = sg.signatures(real)

        def method(*args: Any, **kwargs: Any) -> Any:
            _check_call(trt, f"{cls.__name__}.{name}", sigs, args, kwargs)
            if name in script:
                action = script[name]
                return action(*args, **kwargs) if callable(action) else action
            return default(trt, sigs[0].returns) if sigs else None

        return method

    def __setattr__(self, name: str, value: Any) -> None:
        trt, cls = object.__getattribute__(self, "_trt"), object.__getattribute__(self, "_cls")
        real = getattr(cls, name, None)
        if not isinstance(real, property) or real.fset is None:
            why = f"{cls.__name__}.{name} is {'read-only' if isinstance(real, property) else 'no property'}"
            MISMATCHES.append(f"setting {why}")
            raise AttributeError(f"can't set attribute '{name}': {why} (TensorRT {trt.__version__})")
        _check_call(trt, f"{cls.__name__}.{name} setter", sg.signatures(real.fset), (value,), {})
        object.__getattribute__(self, "_values")[name] = value

    def __bytes__(self) -> bytes:
        cls = object.__getattribute__(self, "_cls")
        if cls.__name__ != "IHostMemory":  # the one class here with the buffer protocol
            raise TypeError(f"cannot convert '{cls.__name__}' object to bytes")
        return bytes(object.__getattribute__(self, "_script").get("data", b""))

    def __repr__(self) -> str:
        return f"<double of {object.__getattribute__(self, '_cls').__name__}>"


def replace(trt: Any, name: str, script: Callable[[], dict[str, Any]]) -> None:
    """Put a factory of doubles in place of ``trt.<name>``, checking constructor arguments against the real one."""
    real = getattr(trt, name)
    sigs = sg.class_signatures(real)

    def make(*args: Any, **kwargs: Any) -> Double:
        _check_call(trt, name, sigs, args, kwargs)
        return Double(trt, real, script())

    setattr(trt, name, make)


def host_memory(trt: Any, data: bytes) -> Double:
    return Double(trt, trt.IHostMemory, {"data": data, "nbytes": len(data)})


def builder_script(trt: Any, *, dla_cores: int = 2, input_shape: tuple[int, ...] = (-1, 4, 4, 3)) -> dict[str, Any]:
    """A builder whose network has one input, "frame", and whose builds give the plan b"plan"."""
    tensor = Double(trt, trt.ITensor, {"name": "frame", "shape": trt.Dims(input_shape)})
    network = Double(trt, trt.INetworkDefinition, {"num_inputs": 1, "get_input": lambda i: tensor})
    cache = Double(trt, trt.ITimingCache, {"serialize": lambda: host_memory(trt, b"timing cache")})
    config = lambda: Double(trt, trt.IBuilderConfig, {"create_timing_cache": lambda data: cache})  # noqa: E731
    return {"num_DLA_cores": dla_cores, "create_network": lambda flags=0: network,
            "create_builder_config": config,
            "build_serialized_network": lambda network, config: host_memory(trt, b"plan")}


def parser_script(trt: Any) -> dict[str, Any]:
    return {"parse_from_file": lambda path: True, "num_errors": 0}


def runtime_script(trt: Any) -> dict[str, Any]:
    """Deserializes the JSON "plans" {"stage": k, "io": [[name, "INPUT"|"OUTPUT", dtype, shape], ...]}."""
    dtypes = {"uint8": trt.DataType.UINT8, "float32": trt.DataType.FLOAT, "float16": trt.DataType.HALF}

    def engine(data: Any) -> Double | None:
        try:
            spec = json.loads(bytes(data))
        except ValueError:
            return None
        io = {n: (getattr(trt.TensorIOMode, m), dtypes[d], tuple(s)) for n, m, d, s in spec["io"]}
        names = list(io)
        shapes: dict[str, tuple[int, ...]] = {}

        def context_shape(name: str) -> Any:
            mode, _, shape = io[name]
            batch = next(iter(shapes.values()))[0] if shapes else 1
            return trt.Dims(shapes.get(name) or (batch, *shape[1:]))

        context = Double(trt, trt.IExecutionContext, {
            "set_input_shape": lambda name, shape: bool(shapes.update({name: tuple(shape)})) or True,
            "get_tensor_shape": context_shape})
        return Double(trt, trt.ICudaEngine, {
            "num_io_tensors": len(io), "get_tensor_name": lambda i: names[i],
            "get_tensor_mode": lambda name: io[name][0], "get_tensor_dtype": lambda name: io[name][1],
            "get_tensor_shape": lambda name: trt.Dims(io[name][2]),
            "get_tensor_profile_shape": lambda name, index: [  # min, opt, max of the plan's one profile
                trt.Dims((b, *io[name][2][1:])) for b in (1, spec.get("max_batch", 1), spec.get("max_batch", 1))],
            "create_execution_context": lambda: context})

    return {"deserialize_cuda_engine": engine}


def install_doubles(trt: Any, **builder: Any) -> None:
    MISMATCHES.clear()
    replace(trt, "Builder", lambda: builder_script(trt, **builder))
    replace(trt, "OnnxParser", lambda: parser_script(trt))
    replace(trt, "Runtime", lambda: runtime_script(trt))


def pycuda_driver() -> types.ModuleType:
    """pycuda.driver as far as the chain uses it, with one context stack per thread."""
    drv = types.ModuleType("pycuda.driver")
    local = threading.local()
    drv.stack = lambda: local.__dict__.setdefault("stack", [])

    class Context:
        def push(self) -> None:
            drv.stack().append(self)

        @staticmethod
        def pop() -> None:
            if not drv.stack():
                raise RuntimeError("cuCtxPopCurrent failed: invalid device context")
            drv.stack().pop()

    class Device:
        def __init__(self, ordinal: int) -> None:
            self.ordinal = ordinal

        @staticmethod
        def count() -> int:
            return 1

        def name(self) -> str:
            return "NVIDIA Double"

        def compute_capability(self) -> tuple[int, int]:
            return (9, 0)

        def retain_primary_context(self) -> Context:
            return Context()

    class DeviceAllocation:
        def __init__(self, nbytes: int) -> None:
            self.buffer, self.freed = np.zeros(nbytes, np.uint8), False

        def __int__(self) -> int:
            return id(self.buffer)

        def free(self) -> None:
            self.freed = True

    class Stream:
        handle = 1

        def __init__(self, flags: int = 0) -> None:
            pass

        def synchronize(self) -> None:
            pass

    class Event:
        def __init__(self, flags: int = 0) -> None:
            self.t = 0.0

        def record(self, stream: Stream | None = None) -> "Event":
            return self

        def time_since(self, start: "Event") -> float:
            return 0.0

    def memcpy_htod_async(dest: DeviceAllocation, src: np.ndarray, stream: Stream | None = None) -> None:
        data = np.frombuffer(np.ascontiguousarray(src).tobytes(), np.uint8)
        dest.buffer[:data.size] = data

    def memcpy_dtoh_async(dest: np.ndarray, src: DeviceAllocation, stream: Stream | None = None) -> None:
        dest.view(np.uint8).reshape(-1)[:] = src.buffer[:dest.nbytes]

    def memcpy_dtod_async(dest: int, src: int, size: int, stream: Stream | None = None) -> None:
        pass  # the doubles' device memory is not addressed by offset; the chain's use is checked by the fakes

    drv.init = lambda flags=0: None
    drv.Context, drv.Device, drv.DeviceAllocation = Context, Device, DeviceAllocation
    drv.Stream, drv.Event = Stream, Event
    drv.mem_alloc = DeviceAllocation
    drv.memcpy_htod_async, drv.memcpy_dtoh_async = memcpy_htod_async, memcpy_dtoh_async
    drv.memcpy_dtod_async = memcpy_dtod_async
    drv.pagelocked_empty = lambda shape, dtype, order="C", mem_flags=0: np.zeros(shape, dtype, order=order)
    return drv
