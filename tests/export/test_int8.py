"""INT8 Q/DQ artifacts: TensorRT's scheme (zero points 0, per-channel weights) and the CPU's u8 flavour."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, numpy_helper  # noqa: E402

from pipeline import names  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.export.calibration import CalibrationReader, calibration_inputs, calibration_key  # noqa: E402
from pipeline.export.int8 import (SHALLOW_REDUCTION, preprocessing_nodes, qdq_from_onnx,  # noqa: E402
                                  shallow_convolutions)
from tests.export.conftest import image_like  # noqa: E402
from tests.export.conftest import run_chain  # noqa: E402


@pytest.fixture(scope="module")
def quantized(exported, tmp_path_factory):
    """Both flavours of every stage, from one calibration (the u8 flavour reads the first one's ranges)."""
    out = tmp_path_factory.mktemp("int8")
    frames = image_like(16, seed=5)
    feeds, _, _ = calibration_inputs(exported.paths, frames, out, calibration_key("e" * 64, frames, 0))
    paths = {"": [], "u8": []}
    for k, src in enumerate(exported.paths, start=1):
        ranges = out / f"stage{k}.ranges.json"
        for flavour in ("", "u8"):
            reader = CalibrationReader(feeds[k - 1], batch=4) if flavour == "" else None  # u8: cached ranges only
            paths[flavour].append(qdq_from_onnx(src, out / names.artifact_filename(k, "int8", flavour), reader,
                                                method="entropy", flavour=flavour, ranges=ranges))
        assert ranges.is_file()
    return paths


def qdq_params(path):
    """Per Q/DQ node: (op, zero-point array, scale array, whether it quantizes a weight initializer)."""
    g = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    q_of_weight = {n.output[0] for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] in inits
                   and inits[n.input[0]].ndim > 1}
    rows = []
    for n in g.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            weight = (n.input[0] in inits and inits[n.input[0]].ndim > 1) or n.input[0] in q_of_weight
            rows.append((n.op_type, inits[n.input[2]], inits[n.input[1]], weight))
    return rows


def test_tensorrt_flavour_is_symmetric_int8_with_per_channel_weights(quantized):
    for path in quantized[""]:
        rows = qdq_params(path)
        assert rows
        for op, zp, scale, weight in rows:
            assert zp.dtype == np.int8 and not zp.any(), f"{op} zero point must be 0"
            if weight:
                assert scale.ndim == 1 and scale.size > 1, "weight scales are per output channel"
            else:
                assert scale.ndim == 0, "activation scales are per tensor"
        assert any(w for *_, w in rows) and any(not w for *_, w in rows)


def test_cpu_flavour_has_uint8_activations_and_int8_per_channel_weights(quantized):
    for path in quantized["u8"]:
        rows = qdq_params(path)
        acts = [zp.dtype for op, zp, scale, w in rows if not w and scale.ndim == 0]
        weights = [(zp.dtype, scale.size) for op, zp, scale, w in rows if w or scale.ndim == 1]
        assert acts and set(acts) == {np.dtype(np.uint8)}
        assert weights and {d for d, _ in weights} <= {np.dtype(np.int8), np.dtype(np.int32)}
        assert all(size > 1 for _, size in weights)


def test_preprocessing_stays_float(quantized, exported):
    g = onnx.load(str(quantized[""][0])).graph
    pre = set(preprocessing_nodes(onnx.load(str(exported.paths[0]))))
    assert pre and pre <= {n.name for n in g.node}
    dq_outputs = {n.output[0] for n in g.node if n.op_type == "DequantizeLinear"}
    assert not any(set(n.input) & dq_outputs for n in g.node if n.name in pre)


@pytest.mark.parametrize("flavour", ["", "u8"])
def test_both_flavours_run_and_track_fp32(quantized, exported, flavour):
    frames = image_like(8, seed=6)

    for q, f in zip(run_chain(quantized[flavour], frames), run_chain(exported.paths, frames)):
        assert q.dtype == np.float32 and np.isfinite(q).all()
        assert np.corrcoef(q.ravel(), f.ravel())[0, 1] > 0.9


def test_inputs_and_outputs_keep_their_types(quantized, exported):
    for path, src in zip(quantized[""], exported.paths):
        g, s = onnx.load(str(path)).graph, onnx.load(str(src)).graph
        assert [(i.name, i.type.tensor_type.elem_type) for i in g.input] == \
               [(i.name, i.type.tensor_type.elem_type) for i in s.input]
        assert {o.type.tensor_type.elem_type for o in g.output} == {TensorProto.FLOAT}


def test_bad_options_are_pipeline_errors(exported, tmp_path):
    src = exported.paths[-1]
    with pytest.raises(PipelineError, match="calibration method"):
        qdq_from_onnx(src, tmp_path / "a.onnx", None, method="mse")
    with pytest.raises(PipelineError, match="flavour"):
        qdq_from_onnx(src, tmp_path / "a.onnx", None, flavour="s4")
    with pytest.raises(PipelineError, match="needs calibration data"):
        qdq_from_onnx(src, tmp_path / "a.onnx", None)


def _conv_weight_is_quantized(path):
    """Conv node name -> whether its weight comes through a DequantizeLinear."""
    g = onnx.load(str(path)).graph
    dq = {n.output[0] for n in g.node if n.op_type == "DequantizeLinear"}
    return {n.name: n.input[1] in dq for n in g.node if n.op_type == "Conv"}


def test_cpu_flavour_keeps_shallow_convolutions_float(quantized, exported):
    shallow_seen = deep_seen = False
    for path, trt_path, src in zip(quantized["u8"], quantized[""], exported.paths):
        model = onnx.load(str(src))
        shallow = set(shallow_convolutions(model))
        weights = {i.name: list(i.dims) for i in model.graph.initializer}
        for n in model.graph.node:
            if n.op_type == "Conv":
                assert (n.name in shallow) == (int(np.prod(weights[n.input[1]][1:])) < SHALLOW_REDUCTION)
        u8, trt = _conv_weight_is_quantized(path), _conv_weight_is_quantized(trt_path)
        assert all(trt.values()), "TensorRT's flavour quantizes every convolution"
        for name, quantized_weight in u8.items():
            assert quantized_weight == (name not in shallow), name
        shallow_seen |= bool(shallow)
        deep_seen |= any(u8.values())
    assert shallow_seen and deep_seen, "the tiny model should have both kinds of convolution"
