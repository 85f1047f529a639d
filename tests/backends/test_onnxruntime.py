"""The ONNX Runtime backend: optimised engines, and a chain that equals PyTorch's stage chain."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from pipeline.backends import available_backends, load_chain, pick_backend  # noqa: E402
from pipeline.backends.onnxruntime import OnnxRuntimeChain  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.manifest import FileEntry, load_manifest  # noqa: E402
from tests.export.conftest import image_like, torch_chain  # noqa: E402


def test_engine_is_the_graph_optimised_for_this_machine(model_folder):
    m = load_manifest(model_folder)
    for eng, art in zip(m.files(backend="onnxruntime", engines=True), m.files(precision="fp32")):
        assert (model_folder / eng.path).stat().st_size > 0 and eng.sha256 != art.sha256


def test_chain_equals_pytorch_stage_chain(model_folder, exported):
    frames = image_like(4, seed=7)
    ref = torch_chain(exported.model, frames)
    chain = load_chain(load_manifest(model_folder), model_folder, "onnxruntime", "fp32")
    assert isinstance(chain, OnnxRuntimeChain) and chain.num_stages == 3
    with chain:
        for i in range(len(frames)):
            chain.set_frame(frames[i:i + 1])
            for k in range(1, 4):
                logits = chain.run(k)
                assert logits.shape == (1, 3) and logits.dtype == np.float32
                assert np.abs(logits - ref[k - 1][i:i + 1]).max() < 1e-4


def test_buffers_are_allocated_once_and_logits_are_copies(model_folder):
    chain = load_chain(load_manifest(model_folder), model_folder, "onnxruntime", "fp32", threads=2)
    with chain:
        assert chain.sessions[0].get_session_options().intra_op_num_threads == 2
        frame_buffer = chain._frame
        chain.set_frame(image_like(1, seed=8))
        first = chain.run(1)
        first[:] = 0
        chain.set_frame(image_like(1, seed=9))
        assert chain._frame is frame_buffer
        assert chain.run(1).any()


def test_stages_must_run_in_order_on_the_right_frame(model_folder):
    with load_chain(load_manifest(model_folder), model_folder, "onnxruntime", "fp32") as chain:
        chain.set_frame(image_like(1))
        with pytest.raises(PipelineError, match="run the stages in order"):
            chain.run(2)
        with pytest.raises(PipelineError, match=r"frame must be \(1, 32, 32, 3\) uint8"):
            chain.set_frame(np.zeros((1, 16, 16, 3), np.uint8))


def test_on_another_cpu_the_portable_artifacts_are_used(model_folder):
    m = load_manifest(model_folder)
    m.device.cpu = "some other CPU"
    chain = load_chain(m, model_folder, "onnxruntime", "fp32")
    assert [p.parent.name for p in chain.paths] == ["onnx"] * 3


def test_load_chain_errors(model_folder):
    m = load_manifest(model_folder)
    with pytest.raises(PipelineError, match="unknown backend 'openvino'"):
        load_chain(m, model_folder, "openvino", "fp32")
    with pytest.raises(PipelineError, match="unknown precision 'int4'"):
        load_chain(m, model_folder, "onnxruntime", "int4")
    with pytest.raises(PipelineError, match=r"no onnxruntime/fp16 engines \(just a test\).*onnxruntime/fp32"):
        load_chain(m, model_folder, "onnxruntime", "fp16")


def test_backend_choice_here(model_folder):
    m = load_manifest(model_folder)
    assert available_backends()[0] == "onnxruntime"
    m.engines.append(FileEntry(1, "fp32", "tensorrt/stage1.fp32.plan", "0" * 64, backend="tensorrt"))
    if "tensorrt" not in available_backends():
        assert pick_backend(m) == "onnxruntime"


def test_importing_the_backends_needs_no_heavy_package():
    code = ("import sys, pipeline.backends, pipeline.backends.onnxruntime, pipeline.backends.tensorrt; "
            "print(sorted(m for m in ('torch', 'tensorrt', 'pycuda', 'onnxruntime', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_recorded_execution_providers_are_used_and_checked(model_folder):
    m = load_manifest(model_folder)
    m.device.backends["onnxruntime"] = {"providers": ["CPUExecutionProvider"], "threads": 1}
    assert load_chain(m, model_folder, "onnxruntime", "fp32").providers == ("CPUExecutionProvider",)
    m.device.backends["onnxruntime"] = {"providers": ["NoSuchExecutionProvider", "CPUExecutionProvider"]}
    with pytest.raises(PipelineError, match="built for the execution providers .*lacks NoSuchExecutionProvider.*"
                                            "rebuild them here"):
        load_chain(m, model_folder, "onnxruntime", "fp32")


def test_a_batch_equals_its_frames_one_by_one_and_keep_narrows_it(model_folder):
    """Batch N gives each exit's logits of N single-frame runs; keep(rows) runs the next stages on those rows only."""
    frames = image_like(5, seed=11)
    with load_chain(load_manifest(model_folder), model_folder, "onnxruntime", "fp32") as chain:
        single = np.stack([np.concatenate(chain.run_all(frames[i:i + 1])) for i in range(5)])  # (N, K, C)
        assert chain.max_batch > 16
        batched = np.stack(chain.run_all(frames), axis=1)
        assert batched.shape == (5, 3, 3) and np.abs(batched - single).max() < 1e-4
        chain.set_frame(frames)
        chain.run(1)
        chain.keep([1, 3])
        assert chain.batch == 2
        z2 = chain.run(2)
        chain.keep([1])
        z3 = chain.run(3)
        assert np.abs(z2 - single[[1, 3], 1]).max() < 1e-4 and np.abs(z3 - single[[3], 2]).max() < 1e-4
        chain.set_frame(frames[:1])  # back to batch 1, its buffers as before
        assert chain.batch == 1 and np.abs(chain.run(1) - single[0, 0]).max() < 1e-4
        with pytest.raises(PipelineError, match="distinct, sorted rows"):
            chain.keep([0, 0])
        with pytest.raises(PipelineError, match=r"frame must be \(1, 32, 32, 3\) uint8, or a batch"):
            chain.set_frame(np.zeros((2, 16, 16, 3), np.uint8))


def test_a_graph_unlike_its_manifest_stage_is_refused_by_name():
    """Checked when the chain activates, before any frame: a wrong shape, a missing output, an input more."""
    from types import SimpleNamespace as Arg

    from pipeline.backends.onnxruntime.chain import check_graph
    from pipeline.manifest import StageSpec, TensorSpec

    spec = StageSpec(index=2, inputs=[TensorSpec("x", ["N", 8], "float32")],
                     outputs=[TensorSpec("logits", ["N", 3], "float32")], flops=1, params=1)

    def session(inputs, outputs):
        return Arg(get_inputs=lambda: [Arg(name=n, shape=s, type="tensor(float)") for n, s in inputs],
                   get_outputs=lambda: [Arg(name=n, shape=s, type="tensor(float)") for n, s in outputs])

    check_graph(session([("x", ["batch", 8])], [("logits", ["batch", 3])]), spec, Path("s2.onnx"))
    for inputs, outputs, told in (([("x", ["batch", 9])], [("logits", ["batch", 3])], "s2.onnx has [\'batch\', 9]"),
                                  ([("x", ["batch", 8])], [("z", ["batch", 3])], "has no tensor logits (z)"),
                                  ([("x", ["batch", 8]), ("extra", [1])], [("logits", ["batch", 3])],
                                   "also reads extra, which the manifest does not list")):
        with pytest.raises(PipelineError, match=re.escape(told)):
            check_graph(session(inputs, outputs), spec, Path("s2.onnx"))
