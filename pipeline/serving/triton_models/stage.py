"""One stage of the anytime cascade as a Triton Python-backend model: ONNX Runtime on the stage's graph.

The repository carries this file as ``<stage>/1/model.py`` beside the stage's ONNX graph
(``model.onnx``). A batch the dynamic batcher formed runs as one ONNX Runtime call where the
graph's batch axis is dynamic, frame by frame where the graph fixes it to 1. At load, the graph's
inputs and outputs are checked against the model's configuration (names, sizes, types), so a
repository with a wrong shape fails to load with one line naming the stage.

Configuration parameters: ``threads`` (ONNX Runtime intra-op threads), ``providers`` (comma list,
default the CPU). The environment variable ``ANYTIME_TRITON_STAGE_DELAY_MS`` adds a delay to each
execution: "120" to every stage model, "stage1:120" to one (a slow server, for fault tests). Imports only numpy, onnxruntime and the backend's utilities.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# The Python backend's embedded interpreter ignores PYTHONPATH; a launcher that sets it (to the site-packages
# holding numpy and onnxruntime) means it: honour it before those imports.
sys.path[:0] = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

DELAY_ENV = "ANYTIME_TRITON_STAGE_DELAY_MS"
CONFIG_DTYPES = {"TYPE_UINT8": "uint8", "TYPE_INT8": "int8", "TYPE_INT32": "int32", "TYPE_INT64": "int64",
                 "TYPE_FP16": "float16", "TYPE_FP32": "float32"}
ORT_DTYPES = {"tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32", "tensor(int64)": "int64",
              "tensor(float16)": "float16", "tensor(float)": "float32"}


def _tensors(config: dict[str, Any], kind: str) -> list[tuple[str, list[int], str]]:
    return [(t["name"], [int(d) for d in t["dims"]], CONFIG_DTYPES.get(t["data_type"], t["data_type"]))
            for t in config.get(kind, [])]


def check_graph(model: str, session: Any, config: dict[str, Any]) -> bool:
    """Raise ValueError, naming the model, where the graph differs from the configuration; whether it batches."""
    batched = True
    for kind, args in (("input", session.get_inputs()), ("output", session.get_outputs())):
        graph = {a.name: (list(a.shape), ORT_DTYPES.get(a.type, a.type)) for a in args}
        for name, dims, dtype in _tensors(config, kind):
            shape, gtype = graph.get(name, (None, None))
            if shape is None:
                raise ValueError(f"{model}: its configuration lists {kind} {name}, which its graph model.onnx lacks "
                                 f"(the graph has {', '.join(graph)}); write the repository again with "
                                 "`anytime triton repo`")
            rest = shape[1:]
            fits = gtype == dtype and len(rest) == len(dims) and all(
                not isinstance(g, int) or g == d for g, d in zip(rest, dims))
            if not fits:
                raise ValueError(f"{model}: {kind} {name} is {dims} {dtype} (after the batch axis) in its "
                                 f"configuration, but {rest} {gtype} in its graph model.onnx; write the repository "
                                 "again with `anytime triton repo`")
            if kind == "input" and isinstance(shape[0], int) and shape[0] == 1:
                batched = False
    return batched


def delay_ms(spec: str, model: str) -> float:
    """The delay ``spec`` gives ``model``: "120" (every stage model) or "stage1:120,stage3:50"."""
    if ":" not in spec:
        return float(spec or 0)
    table = dict(part.split(":", 1) for part in spec.split(",") if ":" in part)
    return float(table.get(model) or 0)


class TritonPythonModel:
    """The stage's ONNX Runtime session behind Triton's dynamic batcher."""

    def initialize(self, args: dict[str, Any]) -> None:
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        self.name = config["name"]
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        path = Path(args["model_repository"]) / str(args["model_version"]) / "model.onnx"
        if not path.is_file():
            raise ValueError(f"{self.name}: no graph at {path}; write the repository again with `anytime triton repo`")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(params.get("threads") or 1)
        opts.inter_op_num_threads = 1
        providers = [p for p in (params.get("providers") or "CPUExecutionProvider").split(",") if p]
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.batched = check_graph(self.name, self.session, config)
        self.inputs = [name for name, _, _ in _tensors(config, "input")]
        self.outputs = [name for name, _, _ in _tensors(config, "output")]
        self.delay_s = delay_ms(os.environ.get(DELAY_ENV, ""), self.name) / 1e3

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.batched:
            return list(self.session.run(self.outputs, feeds))
        n = next(iter(feeds.values())).shape[0]
        rows = [self.session.run(self.outputs, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(n)]
        return [np.concatenate([r[j] for r in rows]) for j in range(len(self.outputs))]

    def execute(self, requests: list[Any]) -> list[Any]:
        if self.delay_s > 0:
            time.sleep(self.delay_s)
        feeds: list[dict[str, np.ndarray] | None] = []
        errors: list[str | None] = []
        for request in requests:
            got = {n: pb_utils.get_input_tensor_by_name(request, n) for n in self.inputs}
            missing = [n for n, t in got.items() if t is None]
            feeds.append(None if missing else {n: t.as_numpy() for n, t in got.items()})
            errors.append(f"{self.name}: the request lacks {', '.join(missing)}" if missing else None)
        good = [i for i, f in enumerate(feeds) if f is not None]
        outs: dict[int, list[np.ndarray]] = {}
        try:
            if self.batched and len(good) > 1:  # the dynamic batcher's batch as one call
                joined = {n: np.concatenate([feeds[i][n] for i in good]) for n in self.inputs}  # type: ignore[index]
                whole = self._run(joined)
                start = 0
                for i in good:
                    size = feeds[i][self.inputs[0]].shape[0]  # type: ignore[index]
                    outs[i] = [o[start:start + size] for o in whole]
                    start += size
            else:
                for i in good:
                    outs[i] = self._run(feeds[i])  # type: ignore[arg-type]
        except Exception as exc:  # a failed run answers every request of the batch with the error
            message = f"{self.name}: {type(exc).__name__}: {' '.join(str(exc).split())}"
            errors = [e or message for e in errors]
            outs = {}
        responses = []
        for i in range(len(requests)):
            if i in outs:
                tensors = [pb_utils.Tensor(n, np.ascontiguousarray(o)) for n, o in zip(self.outputs, outs[i])]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            else:
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(errors[i])))
        return responses

    def finalize(self) -> None:
        self.session = None
