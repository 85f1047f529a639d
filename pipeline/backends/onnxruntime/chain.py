"""StageChain on ONNX Runtime sessions, through I/O bindings fixed once at activation.

Every tensor between stages is one OrtValue: stage k's output binding and stage k+1's input
binding point at the same buffer, so carried maps never pass through numpy and nothing is
allocated per frame. On the CPU the frame and logits buffers are numpy arrays that the OrtValues
share; with the CUDA/TensorRT providers the maps live on the GPU and only logits come back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline import names
from pipeline.backends.base import StageChain
from pipeline.backends.onnxruntime.builder import GPU_PROVIDERS, available_providers, create_session
from pipeline.errors import PipelineError
from pipeline.manifest import StageSpec


def _batch1(shape: Sequence[int | str]) -> tuple[int, ...]:
    return tuple(1 if isinstance(d, str) else int(d) for d in shape)  # (N, ...) -> (1, ...)


_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8",
               "tensor(int8)": "int8", "tensor(int64)": "int64"}


def check_graph(session: Any, spec: StageSpec, path: Path) -> None:
    """Refuse a graph whose inputs or outputs are not what the manifest's stage says (names, fixed sizes,
    types): the chain binds buffers of the manifest's shapes, which the graph would reject at run time."""
    for kind, args, tensors in (("reads", session.get_inputs(), spec.inputs),
                                ("writes", session.get_outputs(), spec.outputs)):
        graph = {a.name: (list(a.shape), _ORT_DTYPES.get(a.type, a.type)) for a in args}
        for t in tensors:
            shape, dtype = graph.get(t.name, (None, None))
            fits = shape is not None and len(shape) == len(t.shape) and dtype == t.dtype and all(
                isinstance(g, str) or g is None or isinstance(m, str) or g == m for g, m in zip(shape, t.shape))
            if not fits:
                found = f"{shape} {dtype}" if shape is not None else f"no tensor {t.name} ({', '.join(graph)})"
                raise PipelineError(f"the manifest says stage {spec.index} {kind} {t.name} {list(t.shape)} "
                                    f"{t.dtype}, but its graph {path} has {found}; the manifest does not describe "
                                    "its engines: rebuild with `make engines`")
    unfed = sorted({a.name for a in session.get_inputs()} - {t.name for t in spec.inputs})
    if unfed:  # the chain feeds only what the manifest lists: the graph would fail on its first run
        raise PipelineError(f"stage {spec.index}'s graph {path} also reads {', '.join(unfed)}, which the manifest "
                            "does not list; the manifest does not describe its engines: rebuild with `make engines`")


class OnnxRuntimeChain(StageChain):
    backend = "onnxruntime"

    def __init__(self, paths: Sequence[str | Path], stages: Sequence[StageSpec], precision: str, threads: int = 1,
                 *, optimize: str = "all", use_providers: Sequence[str] | None = None) -> None:
        """``use_providers``: the execution providers, best first (default: every one present here)."""
        if len(paths) != len(stages):
            raise PipelineError(f"{len(paths)} stage graphs for {len(stages)} stages in the manifest")
        self.paths = [Path(p) for p in paths]
        self.stages = list(stages)
        self.precision = precision
        self.threads = threads
        self.optimize = optimize
        self.providers = tuple(use_providers or available_providers())

    @property
    def num_stages(self) -> int:
        return len(self.paths)

    def _activate(self) -> None:
        self._on_gpu = self.providers[0] in GPU_PROVIDERS
        self.sessions = [create_session(p, self.threads, optimize=self.optimize, use_providers=self.providers)
                         for p in self.paths]
        for sess, spec, path in zip(self.sessions, self.stages, self.paths):
            check_graph(sess, spec, path)
        self._sets: dict[int, _Buffers] = {}  # batch size -> its buffers and bindings, made on first use
        self._use(1)
        self._frame_shape1 = self._frame.shape  # (1, H, W, 3)

    def _use(self, n: int) -> None:
        """Make batch ``n``'s buffers and bindings the current ones (built the first time ``n`` is asked for)."""
        if n not in self._sets:
            self._sets[n] = self._buffers(n)
        b = self._sets[n]
        self._n, self._frame, self._bindings, self._logits, self._values = n, b.frame, b.bindings, b.logits, b.values

    def _buffers(self, n: int) -> "_Buffers":
        import onnxruntime as ort

        on_gpu = self._on_gpu
        b = _Buffers()

        def shape_of(spec_shape: Sequence[int | str]) -> tuple[int, ...]:
            return (n, *_batch1(spec_shape)[1:])  # (N, ...) -> (n, ...)

        def host_value(shape: tuple[int, ...], dtype: str, name: str) -> Any:
            arr = np.zeros(shape, dtype=dtype)
            b.arrays[name] = arr  # the CPU OrtValue shares it: keep it alive
            return ort.OrtValue.ortvalue_from_numpy(arr)

        def map_value(shape: tuple[int, ...], dtype: str, name: str) -> Any:
            if on_gpu:  # device memory on a GPU
                return ort.OrtValue.ortvalue_from_shape_and_type(shape, np.dtype(dtype).type, "cuda", 0)
            return host_value(shape, dtype, name)

        for sess, spec in zip(self.sessions, self.stages):
            binding = sess.io_binding()
            for t in spec.inputs:
                if t.name not in b.values:  # only the frame is not produced by an earlier stage
                    if t.name != names.FRAME:
                        raise PipelineError(f"stage {spec.index} reads {t.name}, which no earlier stage writes")
                    b.values[t.name] = map_value(shape_of(t.shape), t.dtype, t.name)
                    b.frame = b.arrays[t.name] if not on_gpu else np.zeros(shape_of(t.shape), dtype=t.dtype)
                binding.bind_ortvalue_input(t.name, b.values[t.name])
            out = spec.outputs[0]
            binding.bind_ortvalue_output(out.name, host_value(shape_of(out.shape), out.dtype, out.name))  # (n, classes)
            b.logits.append(b.arrays[out.name])
            for t in spec.outputs[1:]:  # carried maps (n, C, H, W)
                b.values[t.name] = map_value(shape_of(t.shape), t.dtype, t.name)
                binding.bind_ortvalue_output(t.name, b.values[t.name])
            b.bindings.append(binding)
        return b

    def _frame_spec(self) -> tuple[tuple[int, ...], np.dtype]:
        return self._frame_shape1, self._frame.dtype

    def _max_batch(self) -> int:
        return MAX_BATCH

    def _set_frame(self, frame: np.ndarray) -> None:
        if frame.shape[0] != self._n:
            self._use(frame.shape[0])
        if self._on_gpu:
            self._values[names.FRAME].update_inplace(np.ascontiguousarray(frame))
        else:
            np.copyto(self._frame, frame)

    def _keep(self, rows: list[int]) -> None:
        """Copy the rows of the maps the next stage reads into batch len(rows)'s buffers (host side on a GPU)."""
        src = self._sets[self._n]
        self._use(len(rows))
        dst = self._sets[self._n]
        for t in self.stages[self._done - 1].outputs[1:]:  # what stage done + 1 reads
            if self._on_gpu:
                dst.values[t.name].update_inplace(np.ascontiguousarray(src.values[t.name].numpy()[rows]))
            else:
                np.take(src.arrays[t.name], rows, axis=0, out=dst.arrays[t.name])

    def _run(self, stage: int) -> np.ndarray:
        self.sessions[stage - 1].run_with_iobinding(self._bindings[stage - 1])
        return self._logits[stage - 1].copy()  # (n, classes) float32

    def _deactivate(self) -> None:
        del self._bindings, self._values, self.sessions, self._sets, self._logits, self._frame


MAX_BATCH = 1 << 16  # ONNX Runtime runs any batch the dynamic axis allows; a bound only against mistakes


class _Buffers:
    """One batch size's buffers: the frame, each exit's logits, the carried maps, and each stage's binding."""

    def __init__(self) -> None:
        self.frame: np.ndarray = np.empty(0, np.uint8)  # (n, H, W, 3): on the host (staging on a GPU)
        self.values: dict[str, Any] = {}  # tensor name -> OrtValue, shared between producer and consumer
        self.arrays: dict[str, np.ndarray] = {}  # tensor name -> the host array a CPU OrtValue shares
        self.logits: list[np.ndarray] = []  # per stage: (n, classes) float32
        self.bindings: list[Any] = []
