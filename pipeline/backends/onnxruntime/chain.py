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
        import onnxruntime as ort

        on_gpu = self.providers[0] in GPU_PROVIDERS
        self.sessions = [create_session(p, self.threads, optimize=self.optimize, use_providers=self.providers)
                         for p in self.paths]
        values: dict[str, Any] = {}  # tensor name -> OrtValue, shared between producer and consumer
        self._keep: list[np.ndarray] = []  # host arrays that CPU OrtValues share: keep them alive
        self._bindings: list[Any] = []
        self._logits: list[np.ndarray] = []

        def host_value(shape: tuple[int, ...], dtype: str) -> tuple[np.ndarray, Any]:
            arr = np.zeros(shape, dtype=dtype)
            self._keep.append(arr)
            return arr, ort.OrtValue.ortvalue_from_numpy(arr)

        for sess, spec, path in zip(self.sessions, self.stages, self.paths):
            check_graph(sess, spec, path)
            binding = sess.io_binding()
            for t in spec.inputs:
                if t.name not in values:  # only the frame is not produced by an earlier stage
                    if t.name != names.FRAME:
                        raise PipelineError(f"stage {spec.index} reads {t.name}, which no earlier stage writes")
                    if on_gpu:
                        self._frame = np.zeros(_batch1(t.shape), dtype=t.dtype)
                        values[t.name] = ort.OrtValue.ortvalue_from_shape_and_type(
                            _batch1(t.shape), np.dtype(t.dtype).type, "cuda", 0)
                    else:
                        self._frame, values[t.name] = host_value(_batch1(t.shape), t.dtype)
                binding.bind_ortvalue_input(t.name, values[t.name])
            logits_arr, logits_val = host_value(_batch1(spec.outputs[0].shape), spec.outputs[0].dtype)
            binding.bind_ortvalue_output(spec.outputs[0].name, logits_val)  # (1, classes) on the host
            self._logits.append(logits_arr)
            for t in spec.outputs[1:]:  # carried maps (1, C, H, W): device memory on a GPU
                if on_gpu:
                    values[t.name] = ort.OrtValue.ortvalue_from_shape_and_type(
                        _batch1(t.shape), np.dtype(t.dtype).type, "cuda", 0)
                else:
                    values[t.name] = host_value(_batch1(t.shape), t.dtype)[1]
                binding.bind_ortvalue_output(t.name, values[t.name])
            self._bindings.append(binding)
        self._values = values
        self._on_gpu = on_gpu

    def _frame_spec(self) -> tuple[tuple[int, ...], np.dtype]:
        return self._frame.shape, self._frame.dtype

    def _set_frame(self, frame: np.ndarray) -> None:
        if self._on_gpu:
            self._values[names.FRAME].update_inplace(np.ascontiguousarray(frame))
        else:
            np.copyto(self._frame, frame)

    def _run(self, stage: int) -> np.ndarray:
        self.sessions[stage - 1].run_with_iobinding(self._bindings[stage - 1])
        return self._logits[stage - 1].copy()  # (1, classes) float32

    def _deactivate(self) -> None:
        del self._bindings, self._values, self.sessions, self._keep, self._logits
