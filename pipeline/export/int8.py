"""INT8 artifacts: Q/DQ graphs calibrated on each stage's own inputs, two flavours from one calibration.

- ``""`` (TensorRT's scheme): symmetric int8 activations (zero point 0), int8 weights symmetric per
  output channel behind a Q/DQ pair, biases float (TensorRT folds them itself).
- ``"u8"`` (ONNX Runtime on x86): uint8 activations with a zero point, int8 per-channel weights,
  the scheme its integer kernels run fast; convolutions with a reduction depth (input channels x
  kernel area) under ``SHALLOW_REDUCTION`` stay float, where its integer kernels are slower.

Preprocessing (the uint8 frame up to the first convolution) stays float: the frame is 8-bit already.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from pathlib import Path
from typing import Any, Iterator

from pipeline.errors import PipelineError

METHODS = ("entropy", "percentile", "minmax")
FLAVOURS = ("", "u8")
SHALLOW_REDUCTION = 64  # u8 flavour: Conv with in_channels/groups * kh * kw below this stays float


def _ort_method(method: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    table = {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile,
             "minmax": CalibrationMethod.MinMax}
    if method not in table:
        raise PipelineError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    return table[method]


def preprocessing_nodes(model: Any) -> list[str]:
    """Names of the nodes fed (transitively) by a uint8 graph input before any Conv: the frame's preprocessing."""
    from onnx import TensorProto

    graph = model.graph
    frontier = [i.name for i in graph.input if i.type.tensor_type.elem_type == TensorProto.UINT8]
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    found: dict[str, None] = {}
    while frontier:
        for node in readers.get(frontier.pop(), []):
            if node.op_type != "Conv" and node.name not in found:
                found[node.name] = None
                frontier.extend(node.output)
    return list(found)


def shallow_convolutions(model: Any, limit: int = SHALLOW_REDUCTION) -> list[str]:
    """Names of the Conv nodes whose reduction depth (weight dims 1..: channels per group x kernel) is under ``limit``."""
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    return [n.name for n in model.graph.node
            if n.op_type == "Conv" and n.input[1] in weights and math.prod(weights[n.input[1]][1:]) < limit]


def _stride(batches: int, limit: int = 4) -> int:
    """Batches per statistics pass: the largest divisor of ``batches`` up to ``limit`` (ORT needs a divisor)."""
    return max(d for d in range(1, min(limit, batches) + 1) if batches % d == 0)


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """ORT's quantizer logs advice on the root logger and prints its progress; keep the build's output readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def qdq_from_onnx(src: str | Path, dst: str | Path, reader: Any, *, method: str = "entropy", flavour: str = "",
                  ranges: str | Path | None = None) -> Path:
    """Quantize the FP32 graph at ``src`` into a Q/DQ graph at ``dst``.

    ``reader`` follows ORT's calibration-reader protocol (see ``CalibrationReader``). ``ranges`` is a
    JSON file of calibrated tensor ranges: read when it exists (no calibration pass), written otherwise,
    so the second flavour of a stage reuses the first one's calibration.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if flavour not in FLAVOURS:
        raise PipelineError(f"unknown INT8 flavour {flavour!r}; choose one of {FLAVOURS}")
    calibrate_method = _ort_method(method)
    model = onnx.load(str(src))
    float_nodes = preprocessing_nodes(model) + (shallow_convolutions(model) if flavour == "u8" else [])
    extra: dict[str, Any] = {"WeightSymmetric": True}
    if flavour == "":  # TensorRT: symmetric int8 activations, float weights and biases behind Q/DQ
        extra.update(ActivationSymmetric=True, AddQDQPairToWeight=True, DedicatedQDQPair=True, QuantizeBias=False)
        act = QuantType.QInt8
    else:  # x86 CPU: asymmetric uint8 activations, int8 weights stored quantized, int32 biases
        extra.update(ActivationSymmetric=False)
        act = QuantType.QUInt8
    have_ranges = ranges is not None and Path(ranges).is_file()
    if not have_ranges:
        if reader is None:
            raise PipelineError(f"INT8 quantization of {Path(src).name} needs calibration data, and none was given")
        extra["CalibStridedMinMax"] = _stride(len(reader))
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet_quantizer():
            quantize_static(str(src), str(dst), None if have_ranges else reader, quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=False, activation_type=act,
                            weight_type=QuantType.QInt8, calibrate_method=calibrate_method,
                            nodes_to_exclude=float_nodes, extra_options=extra,
                            calibration_cache_path=None if ranges is None else str(ranges))
    except PipelineError:
        raise
    except ValueError as exc:  # "No data is collected.", mismatched cache
        raise PipelineError(f"INT8 quantization of {Path(src).name} failed: {exc}") from exc
    return dst
