"""StageChain on TensorRT plans, with pycuda for device memory, the stream and timing events.

Every I/O tensor of every stage gets one device buffer when the chain is activated, sized for the
largest batch the plans' optimisation profile takes (1 for plans built for batch 1); a map that
stage k writes and stage k+1 reads is the same buffer (same name, checked to have the same
shape and dtype), so carried maps never leave the GPU. A batch of another size sets every
context's input shapes (``set_input_shape``) for that call; ``keep`` packs the rows still wanted to
the front of the next stage's maps on the device (row copies on the stream) and narrows the shapes. The frame goes up through a pinned host
buffer and only each exit's logits come back, into pinned host memory, all on one CUDA stream that
``run`` synchronises before it returns. Uses the name-based API (``set_tensor_address`` +
``execute_async_v3``) of TensorRT 8.5 to 11.

CUDA context: the device's primary context, the one TensorRT's runtime uses, retained once (not
``pycuda.autoinit``, which creates a context of its own). A CUDA context is current on one thread
at a time, so each call (``activate``, ``set_frame``, ``run``, ``last_run_ms``, ``deactivate``)
makes it current on the calling thread for its duration and releases it before returning. Any
thread may therefore call the chain, one call at a time; a call while another thread's call is
under way is refused with a PipelineError (share a :class:`~pipeline.runtime.cascade.Cascade`, whose
``classify`` takes turns, or give each thread its own chain), except ``deactivate``, which waits
for it to end. No context stays pushed between
calls, so none is left on a thread's stack when it or the process ends (which makes pycuda abort
the process); chains still active at exit are released by an exit hook. Release frees every
buffer even when one free fails, and always leaves the chain inactive. The state checks (active,
stages in order, the frame's shape) are the base class's.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import weakref
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from pipeline import names
from pipeline.backends.base import StageChain
from pipeline.errors import PipelineError

_ACTIVE: "weakref.WeakSet[TensorRTChain]" = weakref.WeakSet()  # chains to release at exit
_HOOKED = False


def _release_at_exit() -> None:
    """Deactivate every chain still active, while pycuda's driver and the primary context are still there."""
    for chain in list(_ACTIVE):
        with contextlib.suppress(Exception):
            chain.deactivate()


def _profile_max(engine: Any, inputs: list[str]) -> int:
    """The largest batch a plan takes: its optimisation profile's max where the batch axis is dynamic, else
    its static batch."""
    sizes = []
    for name in inputs:
        batch = tuple(engine.get_tensor_shape(name))[0]
        sizes.append(int(tuple(engine.get_tensor_profile_shape(name, 0)[2])[0]) if batch < 0 else int(batch))
    return min(sizes) if sizes else 1


class TensorRTChain(StageChain):
    backend = "tensorrt"

    def __init__(self, plans: Sequence[str | Path], precision: str) -> None:
        self.plans = [Path(p) for p in plans]
        self.precision = precision
        self._ctx: Any = None  # the primary context, retained once
        self._busy = threading.Lock()  # held for the duration of one call
        self._clear()

    @property
    def num_stages(self) -> int:
        return len(self.plans)

    def _clear(self) -> None:
        self._contexts: list[Any] = []
        self._engines: list[Any] = []
        self._device: dict[str, Any] = {}  # tensor name -> DeviceAllocation, shared by writer and readers
        self._specs: dict[str, tuple[tuple[int, ...], np.dtype]] = {}  # tensor name -> (shape, dtype)
        self._logits: list[np.ndarray] = []  # pinned (1, classes) per stage
        self._events: list[tuple[Any, Any]] = []  # (start, end) per stage
        self._frame: np.ndarray | None = None  # pinned (max batch, H, W, 3) uint8
        self._inputs: list[list[str]] = []  # per stage, the tensors it reads
        self._max = 1  # the largest batch every plan's profile takes
        self._shaped: list[int] = []  # per stage, the batch its context's input shapes are set for
        self._stream: Any = None
        self._runtime: Any = None
        self._frame_pending = False  # stage 1's start event was recorded before the frame's upload

    @contextlib.contextmanager
    def _current(self, wait: bool = False) -> Iterator[None]:
        """The primary context current on this thread for one call; refused while another thread's call runs
        (``wait``: after it ends instead)."""
        if not self._busy.acquire(blocking=wait):
            raise PipelineError("this TensorRT chain is in a call from another thread: a chain serves one call at a "
                                "time; share a Cascade (its classify takes turns) or give each thread its own chain")
        try:
            self._ctx.push()
            try:
                yield
            finally:
                self._ctx.pop()
        finally:
            self._busy.release()

    def _activate(self) -> None:
        global _HOOKED
        from pipeline.backends.tensorrt.builder import _trt, gpu_info

        trt = _trt()
        gpu_info()  # a clear error where pycuda, the driver or the GPU is missing
        import pycuda.driver as cuda

        if self._ctx is None:
            self._ctx = cuda.Device(0).retain_primary_context()
        with self._current():
            try:
                self._load(trt, cuda)
            except BaseException:
                with contextlib.suppress(Exception):  # the load's error is the one to report
                    self._release()
                raise
        _ACTIVE.add(self)
        if not _HOOKED:
            atexit.register(_release_at_exit)
            _HOOKED = True

    def _load(self, trt: Any, cuda: Any) -> None:
        from pipeline.backends.tensorrt.builder import logger, started

        self._runtime = started(lambda: trt.Runtime(logger()), "runtime")
        self._stream = cuda.Stream()
        for k, path in enumerate(self.plans, start=1):
            engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is None:
                raise PipelineError(f"TensorRT could not load {path}: it was built by another TensorRT version or "
                                    "is damaged; rebuild it with `make engines`")
            self._engines.append(engine)
            context = engine.create_execution_context()
            self._contexts.append(context)
            io = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            inputs = [n for n in io if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            self._inputs.append(inputs)
            if k == 1:
                self._max = _profile_max(engine, inputs)
            elif _profile_max(engine, inputs) != self._max:
                raise PipelineError(f"{path.name} takes batches up to {_profile_max(engine, inputs)}, stage 1's plan "
                                    f"up to {self._max}; rebuild every stage with one --max-batch")
            for name in inputs:  # the largest batch, to size the buffers; output shapes follow from the inputs'
                if not context.set_input_shape(name, (self._max, *tuple(engine.get_tensor_shape(name))[1:])):
                    raise PipelineError(f"{path.name} does not accept batch {self._max} for {name}; rebuild it")
            for name in inputs + [n for n in io if n not in inputs]:  # readers check against what was written
                shape = tuple(context.get_tensor_shape(name))
                dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
                context.set_tensor_address(name, int(self._buffer(cuda, k, name, shape, dtype, name in inputs)))
            self._shaped.append(self._max)
            self._set_batch_of(k, 1)  # batch 1 until a call asks for another
            if names.logits_name(k) not in io:
                raise PipelineError(f"{path.name} has no output {names.logits_name(k)}; is it stage {k}'s plan?")
            shape, dtype = self._specs[names.logits_name(k)]
            self._logits.append(cuda.pagelocked_empty(shape, dtype))  # (max batch, classes)
            self._events.append((cuda.Event(), cuda.Event()))
        if self._frame is None:
            raise PipelineError(f"{self.plans[0].name} does not read {names.FRAME}; is it stage 1's plan?")

    def _buffer(self, cuda: Any, stage: int, name: str, shape: tuple[int, ...], dtype: np.dtype,
                is_input: bool) -> Any:
        """The device buffer of tensor ``name``: allocated by its writer (or for the frame), shared by readers."""
        if any(d < 0 for d in shape):
            raise PipelineError(f"stage {stage}'s {name} has unresolved shape {shape}; rebuild the plans")
        if name in self._specs:
            if not is_input:
                raise PipelineError(f"stage {stage} writes {name}, which an earlier stage writes too; "
                                    "pass each stage's plan once, in order")
            if self._specs[name] != (shape, dtype):
                raise PipelineError(f"stage {stage} reads {name} as {shape} {dtype}, but it is written as "
                                    f"{self._specs[name][0]} {self._specs[name][1]}; rebuild the plans from one export")
        elif is_input and not (stage == 1 and name == names.FRAME):
            raise PipelineError(f"stage {stage} reads {name}, which no earlier stage writes; "
                                "pass the stages' plans in order, all from one export")
        else:
            self._specs[name] = (shape, dtype)
            self._device[name] = cuda.mem_alloc(max(1, int(np.prod(shape)) * dtype.itemsize))
            if name == names.FRAME:
                self._frame = cuda.pagelocked_empty(shape, dtype)
        return self._device[name]

    def _frame_spec(self) -> tuple[tuple[int, ...], np.dtype]:
        assert self._frame is not None  # set by _load, which an active chain has completed
        return (1, *self._frame.shape[1:]), self._frame.dtype

    def _max_batch(self) -> int:
        return self._max

    def _set_batch_of(self, stage: int, n: int) -> None:
        """Set stage ``stage``'s context for a batch of ``n`` (within the profile, so it is accepted)."""
        if self._shaped[stage - 1] == n:
            return
        engine, context = self._engines[stage - 1], self._contexts[stage - 1]
        for name in self._inputs[stage - 1]:
            if not context.set_input_shape(name, (n, *tuple(engine.get_tensor_shape(name))[1:])):
                raise PipelineError(f"{self.plans[stage - 1].name} does not accept batch {n} for {name}; rebuild it")
        self._shaped[stage - 1] = n

    def _set_frame(self, frame: np.ndarray) -> None:
        with self._current():
            for k in range(1, self.num_stages + 1):
                self._set_batch_of(k, frame.shape[0])
            self._upload(frame)

    def _upload(self, frame: np.ndarray) -> None:
        import pycuda.driver as cuda

        assert self._frame is not None  # set by _load, which an active chain has completed
        staged = self._frame[:frame.shape[0]]  # (n, H, W, 3) of the pinned buffer
        np.copyto(staged, frame)  # after run()'s sync no upload reads it; a pending one is superseded
        self._events[0][0].record(self._stream)  # stage 1's time covers the upload, as the profiler counts it
        cuda.memcpy_htod_async(self._device[names.FRAME], staged, self._stream)
        self._frame_pending = True

    def _keep(self, rows: list[int]) -> None:
        with self._current():
            self._pack(rows)

    def _pack(self, rows: list[int]) -> None:
        """Move row ``rows[j]`` of every map the next stage reads to row j (rows ascend: no row is overwritten
        before it is read), on the stream; then the later stages' contexts take ``len(rows)``."""
        import pycuda.driver as cuda

        for name in self._inputs[self._done]:  # what stage done + 1 reads
            shape, dtype = self._specs[name]
            row = int(np.prod(shape[1:])) * dtype.itemsize
            base = int(self._device[name])
            for j, r in enumerate(rows):
                if r != j:
                    cuda.memcpy_dtod_async(base + j * row, base + r * row, row, self._stream)
        for k in range(self._done + 1, self.num_stages + 1):
            self._set_batch_of(k, len(rows))

    def _run(self, stage: int) -> np.ndarray:
        with self._current():
            return self._execute(stage)

    def _execute(self, stage: int) -> np.ndarray:
        import pycuda.driver as cuda

        start, end = self._events[stage - 1]
        if not (stage == 1 and self._frame_pending):
            start.record(self._stream)
        self._frame_pending = False
        if not self._contexts[stage - 1].execute_async_v3(self._stream.handle):
            raise RuntimeError(f"TensorRT failed to enqueue stage {stage}")
        host = self._logits[stage - 1][:self._batch]  # (n, classes) of the pinned buffer
        cuda.memcpy_dtoh_async(host, self._device[names.logits_name(stage)], self._stream)
        end.record(self._stream)
        self._stream.synchronize()
        return np.array(host, dtype=np.float32)  # (n, classes): a copy, off the pinned buffer

    def _last_run_ms(self, stage: int) -> float | None:
        """Device time of the latest ``run`` (CUDA events): its stage, the logits' copy back and, for stage 1,
        the frame's upload."""
        start, end = self._events[stage - 1]
        with self._current():
            return float(end.time_since(start))  # both recorded and complete: run synchronised

    def _deactivate(self) -> None:
        try:
            with self._current(wait=True):  # a release waits for a call under way on another thread
                self._release()
        finally:
            self._clear()
            _ACTIVE.discard(self)

    def _release(self) -> None:
        """Free everything while the context is current (TensorRT objects before the memory they use).

        Every buffer is freed even when one free fails; the first failure is raised afterwards.
        """
        errors: list[Exception] = []
        if self._stream is not None:
            try:
                self._stream.synchronize()
            except Exception as exc:
                errors.append(exc)
        self._contexts.clear()
        self._engines.clear()
        for alloc in self._device.values():
            try:
                alloc.free()
            except Exception as exc:
                errors.append(exc)
        self._clear()
        if errors:
            raise PipelineError(f"releasing the TensorRT chain's device memory failed ({type(errors[0]).__name__}: "
                                f"{errors[0]}); the chain is inactive, and the process may hold that memory until "
                                "it exits") from errors[0]
