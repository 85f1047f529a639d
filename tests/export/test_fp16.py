"""FP16 artifacts: float16 inside, float32 graph inputs and outputs, loadable and close to FP32."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxconverter_common")

from onnx import TensorProto, helper  # noqa: E402

from pipeline import names  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.export.fp16 import fp16_from_onnx, split_consumed_outputs  # noqa: E402
from tests.export.conftest import image_like  # noqa: E402


@pytest.fixture(scope="module")
def fp16_paths(exported, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp16")
    return [fp16_from_onnx(p, out / names.artifact_filename(k, "fp16")) for k, p in enumerate(exported.paths, 1)]


def run_all(paths, frames):
    feeds, every = {names.FRAME: frames}, []
    for path in paths:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs = sess.run(None, feeds)
        every.append(outs)
        feeds = dict(zip([o.name for o in sess.get_outputs()][1:], outs[1:]))
    return every


def test_io_stays_float32_and_weights_are_float16(fp16_paths, exported):
    for p16, p32 in zip(fp16_paths, exported.paths):
        g16, g32 = onnx.load(str(p16)).graph, onnx.load(str(p32)).graph
        assert [(i.name, i.type.tensor_type.elem_type) for i in g16.input] == \
               [(i.name, i.type.tensor_type.elem_type) for i in g32.input]
        assert [(o.name, o.type.tensor_type.elem_type) for o in g16.output] == \
               [(o.name, o.type.tensor_type.elem_type) for o in g32.output]
        conv_weights = {n.input[1] for n in g16.node if n.op_type == "Conv"}
        assert {i.data_type for i in g16.initializer if i.name in conv_weights} == {TensorProto.FLOAT16}


def test_fp16_chain_runs_and_stays_close_to_fp32(fp16_paths, exported):
    frames = image_like(4, seed=2)
    got, ref = run_all(fp16_paths, frames), run_all(exported.paths, frames)
    for outs16, outs32 in zip(got, ref):
        for a, b in zip(outs16, outs32):
            assert a.dtype == np.float32
            assert np.abs(a - b).max() <= 2e-2 * max(1.0, float(np.abs(b).max()))


def _output_also_read_inside() -> onnx.ModelProto:
    """x -> Relu -> y (graph output, carried) -> Neg -> z (graph output): y is both output and input."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["y"], ["z"])],
                              "g", [x], [z, y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_outputs_read_inside_the_graph_get_their_own_identity(tmp_path):
    model = _output_also_read_inside()
    assert split_consumed_outputs(model) == 1
    assert any(n.op_type == "Identity" and list(n.output) == ["y"] for n in model.graph.node)
    assert all("y" not in n.input for n in model.graph.node)
    onnx.save(_output_also_read_inside(), str(tmp_path / "g.onnx"))
    dst = fp16_from_onnx(tmp_path / "g.onnx", tmp_path / "g16.onnx")
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])  # the converter bug would fail here
    x = np.array([[-1, 0.5, 2, -3]], dtype=np.float32)
    z, y = sess.run(["z", "y"], {"x": x})
    np.testing.assert_allclose(y, np.maximum(x, 0), atol=1e-3)
    np.testing.assert_allclose(z, -np.maximum(x, 0), atol=1e-3)


def test_unreadable_source_is_a_pipeline_error(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"not a graph")
    with pytest.raises(PipelineError, match="not a readable ONNX graph"):
        fp16_from_onnx(tmp_path / "bad.onnx", tmp_path / "out.onnx")
