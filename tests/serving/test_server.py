"""The real server: stage models, the client-driven cascade and the BLS model answer as the local runtime does."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.runtime.cascade import Cascade
from pipeline.serving.fleet import FleetOptions, run_fleet
from pipeline.serving.cameras import Feed
from pipeline.serving.remote import CascadeModelClient, RemoteChain, remote_cascade
from pipeline.serving.wire import Connection, RequestTimedOut


def local_cascade(tiny):
    return Cascade.from_folder(tiny.folder, backend="onnxruntime", precision="fp32")


def test_each_stage_model_computes_what_the_local_chain_does(server, tiny, manifest, frames):
    from pipeline.backends import load_chain

    chain = load_chain(manifest, tiny.folder, "onnxruntime", "fp32", 1)
    with chain:
        want = [[z.copy() for z in chain.run_all(f[None])] for f in frames[:3]]
    conn = Connection(server.url)
    carry = {"frame": frames[:3]}  # three frames as one request: the dynamic batch axis
    for spec in manifest.stages:
        outs = conn.infer(f"stage{spec.index}", {t.name: carry[t.name] for t in spec.inputs},
                          [t.name for t in spec.outputs], timeout_s=30)
        assert outs[spec.outputs[0].name].shape == (3, len(manifest.classes))
        for i in range(3):
            np.testing.assert_allclose(outs[spec.outputs[0].name][i], want[i][spec.index - 1][0], rtol=1e-4, atol=1e-4)
        carry = {t.name: outs[t.name] for t in spec.outputs[1:]}
    conn.close()


def test_a_stage_graph_with_a_fixed_batch_runs_frame_by_frame(repo, own_server, manifest, frames, tmp_path):
    import onnx

    fixed = tmp_path / "repo"
    shutil.copytree(repo, fixed)
    path = fixed / "stage1" / "1" / "model.onnx"
    graph = onnx.load(str(path))
    for v in list(graph.graph.input) + list(graph.graph.output):
        v.type.tensor_type.shape.dim[0].dim_value = 1  # batch 1, as the graphs were before dynamic axes
    onnx.save(graph, str(path))
    server = own_server(fixed)
    conn = Connection(server.url)
    spec = manifest.stages[0]
    batch = conn.infer("stage1", {"frame": frames[:3]}, [spec.outputs[0].name], timeout_s=30)[spec.outputs[0].name]
    one = [conn.infer("stage1", {"frame": frames[i:i + 1]}, [spec.outputs[0].name], timeout_s=30)[spec.outputs[0].name]
           for i in range(3)]
    np.testing.assert_allclose(batch, np.concatenate(one), rtol=1e-5, atol=1e-5)
    conn.close()


def test_the_client_driven_cascade_answers_as_the_local_one(server, tiny, manifest, frames):
    local = local_cascade(tiny)
    remote = remote_cascade(server.url, manifest, warmup=2)
    try:
        assert remote.backend == "triton" and remote.thresholds == local.thresholds
        for f in frames:
            a, b = local.classify(f), remote.classify(f)
            assert (a.label, a.exit, a.stopped_by) == (b.label, b.exit, b.stopped_by)
            assert abs(a.confidence - b.confidence) < 1e-4
        chain = remote.chain
        assert isinstance(chain, RemoteChain) and all(len(t) >= len(frames) for t in chain.round_trips[:1])
    finally:
        local.close()
        remote.close()


def test_the_cascade_model_answers_as_the_local_cascade(server, tiny, manifest, frames):
    local = local_cascade(tiny)
    client = CascadeModelClient(server.url, manifest)
    client.activate()
    try:
        for f in frames:
            want, got = local.classify(f), client.classify(f)
            assert (got.label, got.exit) == (want.label, want.exit)
            assert abs(got.confidence - want.confidence) < 1e-4 and got.server_ms > 0
    finally:
        local.close()
        client.close()


def test_a_budget_stops_the_cascade_model_early(server, manifest, frames):
    client = CascadeModelClient(server.url, manifest, shed=False)
    client.activate()
    deep = [client.classify(f).exit for f in frames]
    assert max(deep) == manifest.num_exits  # no thresholds in the tiny manifest: every frame to the last exit
    shallow = []
    for f in frames:
        try:  # a budget that only stage 1 fits (the rule predicts the rest would overrun it)
            shallow.append(client.classify(f, time.perf_counter() + 0.0015).exit)
        except RequestTimedOut:
            shallow.append(0)
    client.close()
    assert max(shallow) < manifest.num_exits


def test_a_fleet_run_accounts_for_every_frame(server, tiny, manifest, frames):
    feeds = [Feed(f"camera {i}", frames, np.zeros(len(frames), np.int64), i) for i in range(2)]
    for mode in ("client", "bls", "local", "batched"):
        s = run_fleet(manifest, tiny.folder, feeds, FleetOptions(2, 20, 1.0, mode, 200.0, url=server.url))
        assert s["frames"] >= 38 and s["in_budget"] + s["late"] + s["no_answer"] == s["frames"], (mode, s)
        assert s["in_budget"] > 0.8 * s["frames"] and s["p99_ms"] is not None, (mode, str(s))
        assert sum(s["exits"].values()) == s["in_budget"] + s["late"]


def test_the_fleet_command_prints_its_summary(server, tiny, capsys, tmp_path):
    from pipeline.serving.fleet import main

    out = tmp_path / "fleet.json"
    code = main(["--url", server.url, "--engines", str(tiny.folder), "--data", str(tiny.data), "--cache-dir",
                 str(tiny.cache), "--cameras", "2", "--fps", "10", "--seconds", "1", "--mode", "bls",
                 "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "throughput" in printed and "deadline misses" in printed and "accuracy" in printed
    assert out.is_file()


def test_a_server_serving_another_model_is_refused_in_one_line(server, manifest):
    other = type(manifest)(**{**manifest.__dict__, "model": {**manifest.model, "checkpoint_sha256": "0" * 64}})
    with pytest.raises(PipelineError, match="written from checkpoint") as exc:
        RemoteChain(server.url, other).activate()
    assert "\n" not in str(exc.value)


def test_the_launcher_points_the_stub_at_this_interpreter(server):
    log = server.log()
    assert "_recursion_count" not in log and "successfully loaded 'stage1'" in log
    assert Path(server.repository).is_dir()
