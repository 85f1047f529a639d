"""The TensorRT backend. Plans are built and run only where tensorrt, pycuda and a GPU are present;
the refusal paths are tested everywhere."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.backends import load_chain, tensorrt_unavailable_reason
from pipeline.errors import PipelineError
from pipeline.manifest import FileEntry, load_manifest
from tests.export.conftest import image_like

REASON = tensorrt_unavailable_reason()
needs_gpu = pytest.mark.skipif(REASON is not None, reason=f"TensorRT cannot run here: {REASON}")


def test_plans_are_refused_where_tensorrt_cannot_run_or_for_another_device(model_folder, monkeypatch):
    m = load_manifest(model_folder)
    m.engines += [FileEntry(k, "fp32", f"tensorrt/stage{k}.fp32.plan", "0" * 64, backend="tensorrt") for k in (1, 2, 3)]
    m.device = {**m.device, "gpu": "Orin", "compute_capability": "8.7", "tensorrt": "10.3.0"}
    import pipeline.backends.tensorrt.builder as builder

    if REASON is not None:
        with pytest.raises(PipelineError, match="TensorRT|pycuda|GPU"):
            load_chain(m, model_folder, "tensorrt", "fp32")
    monkeypatch.setattr(builder, "gpu_info", lambda: {"gpu": "NVIDIA H100", "compute_capability": "9.0",
                                                       "tensorrt": "10.9.0"})
    with pytest.raises(PipelineError, match="built for tensorrt '10.3.0'.*rebuild them here"):
        load_chain(m, model_folder, "tensorrt", "fp32")


@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_plans_chain_like_onnx_runtime(model_folder, exported, tmp_path, precision):
    from pipeline.backends.tensorrt import TensorRTChain, engine_from_onnx
    from pipeline.export.fp16 import fp16_from_onnx

    srcs = exported.paths if precision == "fp32" else \
        [fp16_from_onnx(p, tmp_path / f"s{k}.fp16.onnx") for k, p in enumerate(exported.paths, 1)]
    plans = [engine_from_onnx(p, tmp_path / f"stage{k}.{precision}.plan", precision, timing_cache=tmp_path / "tc")
             for k, p in enumerate(srcs, start=1)]
    assert (tmp_path / "tc").is_file()
    frames = image_like(3, seed=10)
    ref = load_chain(load_manifest(model_folder), model_folder, "onnxruntime", "fp32")
    tol = 1e-3 if precision == "fp32" else 5e-2
    with TensorRTChain(plans, precision) as trt_chain, ref:
        for i in range(len(frames)):
            trt_chain.set_frame(frames[i:i + 1])
            ref.set_frame(frames[i:i + 1])
            for k in (1, 2, 3):
                a, b = trt_chain.run(k), ref.run(k)
                assert np.abs(a - b).max() <= tol * max(1.0, float(np.abs(b).max()))


@needs_gpu
def test_parse_failure_is_a_clear_error(tmp_path):
    from pipeline.backends.tensorrt import engine_from_onnx

    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(PipelineError, match="TensorRT could not parse bad.onnx"):
        engine_from_onnx(tmp_path / "bad.onnx", tmp_path / "bad.plan", "fp32")
