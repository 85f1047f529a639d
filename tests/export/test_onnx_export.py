"""FP32 export: one checked, simplified graph per stage, named by pipeline.names, chaining to PyTorch's outputs."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from pipeline import names  # noqa: E402
from pipeline.export.onnx_export import tensor_specs  # noqa: E402
from tests.export.conftest import image_like, run_chain, torch_chain  # noqa: E402


def test_one_file_per_stage_named_by_the_names_module(exported):
    assert [p.name for p in exported.paths] == [names.artifact_filename(k, "fp32") for k in (1, 2, 3)]
    for k, path in enumerate(exported.paths, start=1):
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        assert model.opset_import[0].version >= 17
        inputs, outputs = tensor_specs(path)
        n_in = 1 if k == 1 else len(tensor_specs(exported.paths[k - 2])[1]) - 1
        assert [t.name for t in inputs] == names.stage_input_names(k, n_in)
        n_maps = len(outputs) - 1
        assert [t.name for t in outputs] == names.stage_output_names(k, n_maps)
        assert all(t.shape[0] == "N" for t in inputs + outputs)  # dynamic batch everywhere
        assert outputs[0].shape == ["N", 3] and outputs[0].dtype == "float32"


def test_stage1_takes_the_uint8_frame_and_the_last_stage_only_logits(exported):
    inputs, _ = tensor_specs(exported.paths[0])
    assert inputs[0].name == names.FRAME and inputs[0].dtype == "uint8" and inputs[0].shape == ["N", 32, 32, 3]
    _, last = tensor_specs(exported.paths[-1])
    assert [t.name for t in last] == [names.logits_name(3)]


def test_simplified_graph_has_batchnorm_folded(exported):
    ops = {n.op_type for p in exported.paths for n in onnx.load(str(p)).graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops


def test_chained_graphs_reproduce_pytorch_within_1e4(exported):
    frames = image_like(5, seed=1)
    ref = torch_chain(exported.model, frames)
    got = run_chain(exported.paths, frames)  # batch 5 through a graph exported at batch 1: dynamic axis works
    for k, (a, b) in enumerate(zip(got, ref), start=1):
        assert a.shape == b.shape == (5, 3)
        assert np.abs(a - b).max() < 1e-4, f"exit {k}"
