"""The serving parts that need no server: addresses, the protocol's body, the admission rule, log lines, summaries."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.serving.configs import ModelSpec, Tensor, config_text
from pipeline.serving.fleet import FleetOptions, fallback_answer
from pipeline.serving.remote import Admission
from pipeline.serving.report import IN_BUDGET, LATE, NO_ANSWER, Outcome, format_summary, summarize
from pipeline.serving.server import TritonServer, first_failure
from pipeline.serving.wire import NotSent, decode, encode, split_url


@pytest.mark.parametrize("url, want", [("127.0.0.1:8000", ("127.0.0.1", 8000)),
                                       ("http://jetson.local:8000", ("jetson.local", 8000))])
def test_server_addresses(url, want):
    assert split_url(url) == want


@pytest.mark.parametrize("url", ["127.0.0.1", "https://x:1", "x:1/v2", "", "127.0.0.1:70000", "127.0.0.1:-1",
                                 "127.0.0.1:0", "127.0.0.1:http"])
def test_a_bad_server_address_is_refused(url):
    with pytest.raises(PipelineError, match="expected a server address like"):
        split_url(url)


def test_a_request_body_carries_binary_tensors_and_the_timeout():
    frame = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    body, head = encode({"frame": frame}, ["logits_1"], timeout_us=2500)
    header = json.loads(body[:head])
    assert header["inputs"][0] == {"name": "frame", "shape": [1, 2, 2, 3], "datatype": "UINT8",
                                   "parameters": {"binary_data_size": 12}}
    assert header["parameters"] == {"timeout": 2500} and body[head:] == frame.tobytes()
    logits = np.array([[0.5, -1.0]], np.float32)
    answer = json.dumps({"outputs": [{"name": "logits_1", "datatype": "FP32", "shape": [1, 2],
                                      "parameters": {"binary_data_size": 8}}]}).encode()
    out = decode(answer + logits.tobytes(), len(answer))
    np.testing.assert_array_equal(out["logits_1"], logits)


def test_admission_sheds_after_misses_and_sends_again_after_a_few_frames():
    rule = Admission(3.0)
    rule.admit(30.0, "stage1")  # a typical first answer: sent
    for _ in range(3):
        rule.missed(30.0)  # no answer within 30 ms, three times
    with pytest.raises(NotSent, match="predicted in"):
        rule.admit(30.0, "stage1")
    skipped = 1
    while True:
        try:
            rule.admit(30.0, "stage1")
            break
        except NotSent:
            skipped += 1
    assert 1 <= skipped <= 30


def test_the_first_failure_of_a_log_names_the_model():
    log = ('E1206 01:20:32.302790 22842 server.cc:241] "CudaDriverHelper has not been initialized."\n'
           'E1206 01:20:33.1 22842 model_lifecycle.cc:641] "failed to load \'stage2\' version 1: Internal: '
           'ValueError: stage2: input x is [1] in its configuration\\nAt: model.py(70)"\n')
    assert first_failure(log) == ("failed to load 'stage2' version 1: Internal: ValueError: stage2: input x is [1] "
                                  "in its configuration At: model.py(70)")
    assert first_failure("I1206 all good\n") is None


def test_a_configuration_with_impossible_sizes_is_refused():
    with pytest.raises(PipelineError, match="max batch size and instances"):
        config_text(ModelSpec("stage1", [Tensor("frame", "uint8", (4, 4, 3))], [], max_batch_size=0))
    with pytest.raises(PipelineError, match="cannot carry"):
        Tensor("x", "complex64", (1,))


def test_the_fallback_answer_is_the_last_exit_or_the_mean():
    z1, z2 = np.array([[4.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]])
    assert fallback_answer([z1, z2], "last") == 1 and fallback_answer([z1, z2], "mean") == 0


def test_fleet_options_are_checked():
    with pytest.raises(PipelineError, match="needs --url"):
        FleetOptions(mode="bls").check()
    for cameras in (0, 100_000):
        with pytest.raises(PipelineError, match="--cameras should be 1 to 256"):
            FleetOptions(cameras=cameras, mode="local").check()
    assert FleetOptions(fps=25).budget_s == pytest.approx(0.04)
    FleetOptions(mode="batched").check()  # in process: no server to name


def test_a_summary_counts_every_frame_once():
    outcomes = [Outcome(0, 0, IN_BUDGET, 5.0, 1, 1, 1), Outcome(0, 1, LATE, 40.0, 1, 2, 2),
                Outcome(1, 0, NO_ANSWER, None, 1, why="timeout"), Outcome(1, 1, NO_ANSWER, None, 1, why="not sent")]
    s = summarize(outcomes, 1.0, 2, 2, 33.3, 3)
    assert (s["frames"], s["in_budget"], s["late"], s["no_answer"], s["deadline_misses"]) == (4, 1, 1, 2, 3)
    assert s["exits"] == {"1": 1, "2": 1, "3": 0} and s["accuracy_answered"] == 50.0 and s["accuracy_all"] == 25.0
    assert s["no_answer_why"] == {"not sent": 1, "timeout": 1}
    text = format_summary(s, "client mode")
    assert "1 late, 2 no answer in budget (not sent 1, timeout 1)" in text


def test_the_batched_fleet_ends_and_counts_every_frame_shown_even_when_it_cannot_keep_up(monkeypatch):
    """A loop slower than the frame rate: every frame before the end is answered or skipped once, and the run
    ends (it used to wait for frames past the end)."""
    import pipeline.runtime.batched as batched
    import pipeline.runtime.cascade as cascade_module
    from pipeline.runtime.cascade import CascadeResult
    from pipeline.serving.batched_fleet import run_batched
    from pipeline.serving.cameras import Feed

    class SlowBatch:
        def __init__(self, cascade):
            pass

        def classify_batch(self, frames, budgets, arrived):
            time.sleep(0.03)  # three frame periods at 100 frames/s
            return [CascadeResult(0, "a", 1.0, 1, 2, [1.0], 5.0, budgets[0], True, "confidence") for _ in frames]

    class NoCascade:
        class predictor:
            @staticmethod
            def predict(stage, batch=1):
                return 1.0  # ms: every batch fits

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(batched, "BatchedCascade", SlowBatch)
    monkeypatch.setattr(cascade_module.Cascade, "from_folder", classmethod(lambda cls, *a, **k: NoCascade()))
    feeds = [Feed(f"camera {i}", np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4, np.int64)) for i in range(3)]
    opts = FleetOptions(cameras=3, fps=100, seconds=0.5, mode="batched")
    started = time.perf_counter()
    outcomes = run_batched(None, Path("unused"), feeds, opts)
    assert time.perf_counter() - started < 2.0
    shown = {(o.camera, o.index) for o in outcomes}
    assert len(shown) == len(outcomes) == 3 * 50  # 50 frames each in 0.5 s, each counted once
    assert {o.status for o in outcomes} == {IN_BUDGET, NO_ANSWER}


def test_admission_keeps_the_largest_batch_whose_stage_1_fits_every_member():
    from pipeline.serving.batched_fleet import admit

    taken = [(i, 0, 1.0 + 0.01 * i, None, 0) for i in range(5)]  # arrivals 1.00 .. 1.04 s, budget 50 ms
    cost = {1: 5.0, 2: 9.0, 3: 13.0, 4: 17.0, 5: 21.0}  # ms for a batch of that size
    run, shed = admit(taken, 0.05, 1.02, lambda stage, batch: cost[batch])
    # time left: 70, 60, 50, 40, 30 ms for the frames that arrived last to first; 4 frames cost 17 ms <= 40 ms
    assert [t[0] for t in run] == [4, 3, 2, 1, 0] and shed == []
    run, shed = admit(taken, 0.05, 1.05, lambda stage, batch: cost[batch])  # left: 40, 30, 20, 10, 0 ms
    assert [t[0] for t in run] == [4, 3, 2] and [t[0] for t in shed] == [1, 0]  # 13 ms <= 20 ms; 17 > 10
    assert admit(taken, 0.05, 2.0, lambda stage, batch: cost[batch]) == ([], sorted(taken, key=lambda t: -t[2]))


def _group_of(command: str, tmp_path: Path) -> TritonServer:
    """A server object whose process group is ``command`` run by sh (a stand-in for tritonserver and its stubs)."""
    server = TritonServer(tmp_path, exit_timeout_s=0)
    server._proc = subprocess.Popen(["sh", "-c", command], start_new_session=True)
    return server


def _wait_for(path: Path, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.exists(), f"{path} did not appear"


def test_stop_returns_only_when_no_process_of_the_group_is_left(tmp_path):
    # the leader dies at SIGTERM; its child ignores SIGTERM (a marker says so) and lives until the group's SIGKILL
    marker = tmp_path / "trapped"
    server = _group_of(f"(trap '' TERM; touch {marker}; exec sleep 30) & wait", tmp_path)
    _wait_for(marker)
    assert len(server._group_members()) == 2
    started = time.monotonic()
    server.stop()
    assert server._group_members() == []
    assert time.monotonic() - started < 10


def test_waiting_for_the_group_outlasts_a_slow_exit(tmp_path, monkeypatch):
    server = TritonServer(tmp_path)
    left = iter([[101, 102], [102], [102], []])  # what /proc shows on each look: a stub that takes a while to go
    looks = []

    def members() -> list[int]:
        looks.append(1)
        return next(left)

    monkeypatch.setattr(server, "_group_members", members)
    server._wait_group_gone(timeout_s=10)
    assert len(looks) == 4  # it looked until the group was gone, and no longer


def test_a_stopped_server_never_signals_its_old_process_id_again(tmp_path, monkeypatch):
    server = _group_of("exit 0", tmp_path)
    server._proc.wait(timeout=10)
    server.stop()
    sent = []
    monkeypatch.setattr("os.killpg", lambda pid, sig: sent.append((pid, sig)))
    server.stop()  # the pid may be another group's by now
    server.kill()
    assert sent == []


@pytest.mark.parametrize("extra, told", [(["--http-port", "70000"], "--http-port should be a port from 1 to 65535"),
                                         (["--metrics-port", "-1"], "--metrics-port should be a port from 1 to 65535"),
                                         (["--host", "10.255.255.1"], "is not an address this machine can listen on"),
                                         (["--host", ""], "--host is empty")])
def test_a_server_that_cannot_listen_is_refused_before_it_starts(tmp_path, capsys, extra, told):
    """Binding a socket to an address not assigned here sends nothing anywhere."""
    from pipeline.serving.serve import main

    with pytest.raises(SystemExit) as exc:
        main(["--repo", str(tmp_path), *extra])
    assert exc.value.code == 2 and told in capsys.readouterr().err
