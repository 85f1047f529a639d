"""StageChain on TensorRT plans, with pycuda for device memory and the stream.

Every I/O tensor of every stage gets one device buffer when the chain is activated; a map that
stage k writes and stage k+1 reads is the same buffer, so carried maps never leave the GPU. The
frame goes up through a pinned host buffer and only each exit's logits come back, into pinned
host memory, on one CUDA stream. Uses the name-based API (``set_tensor_address`` +
``execute_async_v3``) of TensorRT 8.6, 10 and 11. The CUDA context is current in the thread that
activated the chain: run it from that thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline import names
from pipeline.backends.base import StageChain
from pipeline.errors import PipelineError


class TensorRTChain(StageChain):
    backend = "tensorrt"

    def __init__(self, plans: Sequence[str | Path], precision: str) -> None:
        self.plans = [Path(p) for p in plans]
        self.precision = precision
        self._active = False
        self._done = 0

    @property
    def num_stages(self) -> int:
        return len(self.plans)

    def activate(self) -> None:
        if self._active:
            return
        import pycuda.driver as cuda
        import tensorrt as trt

        cuda.init()
        self._ctx = cuda.Device(0).retain_primary_context()
        self._ctx.push()
        try:
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self._stream = cuda.Stream()
            self._device: dict[str, Any] = {}  # tensor name -> DeviceAllocation, shared between stages
            self._engines, self._contexts, self._logits = [], [], []
            for k, path in enumerate(self.plans, start=1):
                engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
                if engine is None:
                    raise PipelineError(f"TensorRT could not load {path}: it was built by another TensorRT version "
                                        "or is damaged; rebuild it with `make engines`")
                context = engine.create_execution_context()
                for i in range(engine.num_io_tensors):  # inputs first: output shapes follow from them
                    name = engine.get_tensor_name(i)
                    if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                        context.set_input_shape(name, (1, *tuple(engine.get_tensor_shape(name))[1:]))
                for i in range(engine.num_io_tensors):
                    name = engine.get_tensor_name(i)
                    shape = tuple(context.get_tensor_shape(name))  # batch 1, all static now
                    dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
                    if name not in self._device:
                        self._device[name] = cuda.mem_alloc(max(1, int(np.prod(shape)) * dtype.itemsize))
                    context.set_tensor_address(name, int(self._device[name]))
                    if name == names.FRAME:
                        self._frame = cuda.pagelocked_empty(shape, dtype)  # (1, H, W, 3) uint8
                    if name == names.logits_name(k):
                        self._logits.append(cuda.pagelocked_empty(shape, dtype))  # (1, classes) float32
                self._engines.append(engine)
                self._contexts.append(context)
        except BaseException:
            self._ctx.pop()
            raise
        self._active = True

    def set_frame(self, frame: np.ndarray) -> None:
        import pycuda.driver as cuda

        if frame.shape != self._frame.shape or frame.dtype != self._frame.dtype:
            raise PipelineError(f"frame must be {self._frame.shape} {self._frame.dtype}, "
                                f"got {frame.shape} {frame.dtype}")
        np.copyto(self._frame, frame)
        cuda.memcpy_htod_async(self._device[names.FRAME], self._frame, self._stream)
        self._done = 0

    def run(self, stage: int) -> np.ndarray:
        import pycuda.driver as cuda

        if not 1 <= stage <= self._done + 1:
            raise PipelineError(f"stage {stage} needs stage {stage - 1}'s maps for this frame; run the stages in order")
        if not self._contexts[stage - 1].execute_async_v3(self._stream.handle):
            raise RuntimeError(f"TensorRT failed to enqueue stage {stage}")
        host = self._logits[stage - 1]
        cuda.memcpy_dtoh_async(host, self._device[names.logits_name(stage)], self._stream)
        self._stream.synchronize()
        self._done = max(self._done, stage)
        return host.copy()

    def deactivate(self) -> None:
        if not self._active:
            return
        self._stream.synchronize()
        del self._contexts, self._engines  # before the memory they point at
        for alloc in self._device.values():
            alloc.free()
        del self._device, self._logits, self._frame, self._stream
        self._ctx.pop()
        self._active = False
