"""Ctrl-C and SIGTERM, sent to the app in a child process: during start-up they act within a second
and leave no empty log; mid-run they stop cleanly; either way the exit code is 130 or 143."""

from __future__ import annotations

import signal

import pytest

from tests.faults.conftest import Child, log_lines
from tests.video.fakes import count_frames

STREAM = "rtsp://user:hunter2@cam.invalid/live"


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_the_stream_first_opens(engines, tmp_path, sig, code):
    log, out = tmp_path / "f.jsonl", tmp_path / "a.avi"
    child = Child(["--engines", engines, "--source", STREAM, "--headless", "--log", log, "--output", out],
                  "hang-open", tmp_path)
    child.wait_ready()  # the open is under way, and would block for 30 s
    seconds, status, stdout, stderr = child.signal_and_time(sig)
    assert seconds < 1.0, (seconds, stderr)
    assert status == code, stderr
    assert "Traceback" not in stderr and "error:" not in stderr
    assert stdout.splitlines()[0] == f"rtsp://***@cam.invalid/live: 0 frames; stopped: {sig.name}"
    assert "hunter2" not in stdout + stderr
    assert not log.exists() and not out.exists()  # start-up opened no output


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_run_stops_cleanly_and_exits_by_the_convention(engines, tmp_path, sig, code):
    log, out = tmp_path / "f.jsonl", tmp_path / "a.avi"
    child = Child(["--engines", engines, "--source", STREAM, "--headless", "--log", log, "--output", out],
                  "live", tmp_path)
    child.wait_ready()  # frames are flowing
    seconds, status, stdout, stderr = child.signal_and_time(sig)
    assert status == code and seconds < 1.0, stderr
    assert "Traceback" not in stderr and "error:" not in stderr
    records = log_lines(log)
    assert len(records) >= 2
    assert f"{len(records)} frames" in stdout and f"stopped: {sig.name}" in stdout
    assert count_frames(out) == len(records)  # the video finalised with every frame the log holds



def test_sigterm_while_the_model_loads(engines, clip, tmp_path):
    """The load is not cut short, but nothing else starts after it: a summary, exit 143, no outputs."""
    video, _ = clip
    log, out = tmp_path / "f.jsonl", tmp_path / "a.avi"
    child = Child(["--engines", engines, "--source", video, "--headless", "--log", log, "--output", out],
                  "slow-load", tmp_path)
    child.wait_ready()
    seconds, status, stdout, stderr = child.signal_and_time(signal.SIGTERM)
    assert status == 143 and seconds < 1.0, stderr
    assert stdout.splitlines()[0] == f"{video}: 0 frames; stopped: SIGTERM"
    assert not log.exists() and not out.exists()
