"""Faults against the real server: down at start, killed mid-stream, restarted, slow, a stage missing, a wrong shape.

Never a traceback or a hang: every run here is bounded in time and sends only to 127.0.0.1, every
message is one whole line, and a frame without an answer in its budget is counted as such.
"""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.serving.cameras import Feed
from pipeline.serving.fleet import FleetOptions, main as fleet_main, run_fleet
from pipeline.serving.remote import remote_cascade
from pipeline.serving.server import free_ports


def feeds(frames, n=2):
    return [Feed(f"camera {i}", frames, np.zeros(len(frames), np.int64), i) for i in range(n)]


def whole_camera_lines(err: str) -> list[str]:
    lines = err.splitlines()
    assert all(line.startswith("camera ") and "Traceback" not in line for line in lines), err
    return lines


def fleet_in_thread(manifest, tiny, frames, opts):
    result = {}

    def run():
        result["summary"] = run_fleet(manifest, tiny.folder, feeds(frames, opts.cameras), opts)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


@pytest.mark.parametrize("mode", ["client", "bls"])
def test_a_server_down_at_start_is_one_line_and_exit_2(tiny, mode, capsys):
    port = free_ports(1)[0]
    started = time.monotonic()
    with pytest.raises(SystemExit) as exc:
        fleet_main(["--url", f"127.0.0.1:{port}", "--engines", str(tiny.folder), "--data", str(tiny.data),
                    "--cache-dir", str(tiny.cache), "--mode", mode, "--seconds", "1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and time.monotonic() - started < 10
    assert err.startswith("error: no ready Triton server at 127.0.0.1:") and len(err.splitlines()) == 1


def test_a_server_killed_mid_stream_costs_frames_their_answers_not_a_stall(own_server, tiny, manifest, frames,
                                                                             capsys):
    server = own_server()
    opts = FleetOptions(2, 10, 3.0, "client", 150.0, url=server.url)
    started = time.monotonic()
    thread, result = fleet_in_thread(manifest, tiny, frames, opts)
    time.sleep(1.5)
    server.kill()
    thread.join(timeout=15)
    assert not thread.is_alive() and time.monotonic() - started < 10
    s = result["summary"]
    assert s["in_budget"] > 0 and s["no_answer"] > 0 and s["no_answer_why"].get("unreachable", 0) > 0, s
    assert s["in_budget"] + s["late"] + s["no_answer"] == s["frames"]
    lines = whole_camera_lines(capsys.readouterr().err)
    assert any("no answer from the server" in line for line in lines)


def test_a_restarted_server_is_picked_up_again(own_server, tiny, manifest, frames, capsys):
    server = own_server()
    opts = FleetOptions(2, 10, 6.0, "bls", 150.0, url=server.url)
    thread, result = fleet_in_thread(manifest, tiny, frames, opts)
    time.sleep(1.0)
    server.kill()
    time.sleep(0.5)
    server.start()  # the same ports
    thread.join(timeout=20)
    assert not thread.is_alive()
    s = result["summary"]
    assert s["no_answer_why"].get("unreachable", 0) > 0, s
    lines = whole_camera_lines(capsys.readouterr().err)
    assert any("the server answers again" in line for line in lines), lines
    assert s["in_budget"] > 12, s  # before the kill and after the restart


def test_a_slow_server_gives_no_answer_in_budget_never_a_late_one(own_server, tiny, manifest, frames, capsys):
    server = own_server(env={"ANYTIME_TRITON_STAGE_DELAY_MS": "stage1:120"})  # slower than the budget
    for mode in ("client", "bls"):
        opts = FleetOptions(2, 10, 1.5, mode, 60.0, url=server.url)
        started = time.monotonic()
        s = run_fleet(manifest, tiny.folder, feeds(frames), opts)
        assert time.monotonic() - started < 12, mode
        assert s["in_budget"] == 0 and s["late"] == 0 and s["no_answer"] == s["frames"] > 0, (mode, s)
    whole_camera_lines(capsys.readouterr().err)


def test_a_served_repository_missing_a_stage_is_named(own_server, repo, manifest, tmp_path):
    partial = tmp_path / "repo"
    shutil.copytree(repo, partial)
    shutil.rmtree(partial / "stage2")
    server = own_server(partial)  # the server itself starts: nothing it loads needs stage2 at load
    with pytest.raises(PipelineError, match=r"has no ready model stage2 \(ready: .*stage1") as exc:
        remote_cascade(server.url, manifest, warmup=1)
    assert "\n" not in str(exc.value)


def test_a_stage_of_the_wrong_shape_fails_to_load_naming_it(repo, manifest, tmp_path):
    from pipeline.serving.server import TritonServer
    from tests.serving.conftest import need_server, processes_in_group

    need_server()
    damaged = tmp_path / "repo"
    shutil.copytree(repo, damaged)
    config = damaged / "stage2" / "config.pbtxt"
    out = manifest.stages[1].outputs[1]
    dims = ", ".join(str(d) for d in out.shape[1:])
    wrong = ", ".join(str(d + 1) for d in out.shape[1:])
    config.write_text(config.read_text().replace(f"dims: [ {dims} ]", f"dims: [ {wrong} ]", 1))
    server = TritonServer(damaged, ready_timeout_s=60)
    with pytest.raises(PipelineError, match="stage2") as exc:
        server.start()
    assert "\n" not in str(exc.value) and "stopped before it was ready" in str(exc.value)
    assert server.pid is None or processes_in_group(server.pid) == []
