"""ONNX Runtime's INT8 chain runs a stage's float graph where that is clearly faster here (``--int8-stages
faster``, the default), and INT8 everywhere with ``--int8-stages all``. The timing itself is replaced by fixed
figures here, so what is tested is the choice and what the build makes of it, not this machine's load."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from pipeline.backends import backend_module  # noqa: E402
from pipeline.backends.base import EngineOptions  # noqa: E402
from pipeline.backends.onnxruntime import faster  # noqa: E402
from pipeline.build import main as build_main  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.manifest import load_manifest  # noqa: E402
from tests.helpers import tiny_build  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_build(tmp_path_factory)


@pytest.fixture
def choosing(monkeypatch):
    """The real choice (the suite's builds skip it), with stage 2's float graph "faster": 1 against 2 ms."""
    import pipeline.backends.onnxruntime as ort_backend

    monkeypatch.setattr(ort_backend, "prefer_faster", faster.prefer_faster)
    timed = []

    def fixed(first, second, feeds, threads, providers=None):
        stage = int(first.name.split(".")[0].removeprefix("stage"))
        timed.append(stage)
        return (1.0, 2.0) if stage == 2 else (2.0, 1.0)

    monkeypatch.setattr(faster, "time_pair", fixed)
    return timed


def compile_int8(tiny, out, *extra: str) -> None:
    argv = ["--compile-only", "--artifacts", str(tiny.folder), "--out", str(out), "--backend", "onnxruntime",
            "--precisions", "fp32,int8", "--skip-accuracy", *extra]
    assert build_main(argv) == 0


def test_a_stage_whose_float_graph_is_faster_runs_it_in_the_int8_chain(tiny, tmp_path, choosing, capsys):
    compile_int8(tiny, tmp_path)
    folder = tmp_path / tiny.folder.name
    m = load_manifest(folder)  # every listed file is there, with its recorded sha256
    int8 = m.files(backend="onnxruntime", precision="int8", engines=True)
    assert [e.path for e in int8] == ["onnxruntime/stage1.int8.u8.onnx", "onnxruntime/stage2.int8.float.onnx",
                                      "onnxruntime/stage3.int8.u8.onnx"]
    assert {e.flavour for e in int8} == {"u8"}  # one set: another CPU runs the portable u8 artifacts
    assert sorted(p.name for p in (folder / "onnxruntime").glob("*int8*")) == sorted(e.path.split("/")[1] for e in int8)
    record = m.device.backends["onnxruntime"]["int8_stages"]
    assert record["margin"] == faster.MARGIN and [s["runs"] for s in record["stages"]] == ["int8", "float", "int8"]
    assert record["stages"][1] == {"stage": 2, "int8_ms": 2.0, "float_ms": 1.0, "runs": "float"}
    assert "runs the float graph of stage 2 (1.000 against 2.000 ms)" in capsys.readouterr().out
    # stage 2 of the INT8 chain computes what the FP32 chain's stage 2 does; stage 1 stays quantized
    outs = {}
    for p in ("fp32", "int8"):
        graphs = [folder / e.path for e in m.files(backend="onnxruntime", precision=p, engines=True)]
        outs[p] = [faster.create_session(g).run(None, faster.stage_inputs(m.stages[k], seed=k))
                   for k, g in enumerate(graphs)]
    np.testing.assert_allclose(outs["int8"][1][0], outs["fp32"][1][0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(outs["int8"][0][0], outs["fp32"][0][0], rtol=1e-5, atol=1e-5)


def test_int8_stages_all_keeps_int8_everywhere_and_times_nothing(tiny, tmp_path, choosing):
    compile_int8(tiny, tmp_path, "--int8-stages", "all")
    m = load_manifest(tmp_path / tiny.folder.name)
    assert all(e.path.endswith(".int8.u8.onnx") for e in m.files(backend="onnxruntime", precision="int8", engines=True))
    assert choosing == [] and "int8_stages" not in m.device.backends.get("onnxruntime", {})
    key = json.loads((tmp_path / tiny.folder.name / "build.json").read_text())
    assert key["options"]["int8_stages"] == "all"  # a rebuild with the other choice is not "up to date"


def test_the_two_graphs_are_timed_in_turns_on_inputs_of_the_stages_shapes(tiny):
    m = load_manifest(tiny.folder)
    spec = m.stages[1]
    feeds = faster.stage_inputs(spec)
    assert sorted(feeds) == sorted(t.name for t in spec.inputs)
    assert all(list(feeds[t.name].shape) == [1 if d == "N" else d for d in t.shape] for t in spec.inputs)
    graph = tiny.folder / m.files(backend="onnxruntime", precision="fp32", engines=True)[1].path
    a, b = faster.time_pair(graph, graph, feeds, threads=1)
    assert a > 0 and b > 0


def test_the_option_is_onnx_runtimes_own():
    ort, trt = backend_module("onnxruntime"), backend_module("tensorrt")
    with pytest.raises(PipelineError, match="--int8-stages must be one of faster, all"):
        ort.check_options(EngineOptions(int8_stages="some"), ["int8"], True)
    for precisions, targeted in ((["int8"], False), (["fp32"], True)):  # nothing it would shape
        with pytest.raises(PipelineError, match="--int8-stages shapes ONNX Runtime's INT8 engines"):
            ort.check_options(EngineOptions(int8_stages="all"), precisions, targeted)
    ort.check_options(EngineOptions(int8_stages="all"), ["fp32", "int8"], True)
    trt.check_options(EngineOptions(int8_stages="all"), ["int8"], True)  # built beside ONNX Runtime's: fine


@pytest.mark.parametrize("float_ms, runs", [(0.9, "float"), (0.91, "int8")])
def test_the_float_graph_must_take_at_most_the_margin_of_the_int8_time(tiny, tmp_path, choosing, monkeypatch,
                                                                       float_ms, runs):
    monkeypatch.setattr(faster, "time_pair", lambda *a, **k: (float_ms, 1.0))
    compile_int8(tiny, tmp_path)
    m = load_manifest(tmp_path / tiny.folder.name)
    assert {s["runs"] for s in m.device.backends["onnxruntime"]["int8_stages"]["stages"]} == {runs}


def test_a_stage_that_cannot_be_compared_keeps_its_int8_engine(tiny, tmp_path, choosing, monkeypatch):
    def broken(first, *args, **kwargs):
        raise PipelineError(f"ONNX Runtime cannot load {first.name}: planted")

    monkeypatch.setattr(faster, "time_pair", broken)
    compile_int8(tiny, tmp_path)
    folder = tmp_path / tiny.folder.name
    m = load_manifest(folder)
    assert all(e.path.endswith(".int8.u8.onnx") for e in m.files(backend="onnxruntime", precision="int8", engines=True))
    assert not list((folder / "onnxruntime").glob("*.int8.float.onnx"))
    assert all("planted" in s["not_compared"] for s in m.device.backends["onnxruntime"]["int8_stages"]["stages"])
