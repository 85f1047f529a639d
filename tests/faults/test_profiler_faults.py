"""The latency profiler's faults: output folders it cannot write, refused before the timed runs rather than
after them; SIGINT and SIGTERM stop it cleanly with exit 130 or 143 and the manifest untouched."""

from __future__ import annotations

import signal
import time

import pytest

from tests.faults.conftest import CommandChild, one_error, run_command, snapshot, temporaries


def argv(tiny, folder, out, *extra) -> list:
    return ["--engines", folder, "--data", tiny.data, "--cache-dir", tiny.cache, "--out", out,
            "--runs", "20", "--warmup", "2", "--precisions", "fp32", *extra]


def refused(capsys, args, match: str) -> str:
    from apps.profile_latency import main

    t0 = time.monotonic()
    assert run_command(main, args) == 2
    captured = capsys.readouterr()
    err = one_error(captured.err)
    assert match in err and captured.out == "", err  # before any work: nothing was profiled
    assert time.monotonic() - t0 < 2
    return err


def test_out_that_is_a_file_lies_under_one_or_has_too_long_a_name(tiny, tmp_path, capsys):
    folder = tiny.copy(tmp_path)
    (tmp_path / "file").write_text("keep me")
    before = snapshot(tmp_path)
    err = refused(capsys, argv(tiny, folder, tmp_path / "file"), "it is a file, not a folder")
    assert f"--out {tmp_path / 'file'}" in err
    refused(capsys, argv(tiny, folder, tmp_path / "file" / "reports"), f"{tmp_path / 'file'} is a file, not a folder")
    refused(capsys, argv(tiny, folder, tmp_path / ("r" * 300)), "more than the 255 this file system allows")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("read_only", ["out", "engines"])
def test_read_only_folders_are_refused_before_the_timed_runs(tiny, tmp_path, read_only):
    folder = tiny.copy(tmp_path)
    out = tmp_path / "reports"
    out.mkdir()
    locked = out if read_only == "out" else folder
    before = snapshot(tmp_path)
    locked.chmod(0o555)
    try:
        child = CommandChild("profile", argv(tiny, folder, out), "none", tmp_path, obey_modes=True)
        t0 = time.monotonic()
        status, stdout, stderr = child.finish(60)
    finally:
        locked.chmod(0o755)
    assert status == 2 and "profiling" not in stdout, stderr
    what = "--out" if read_only == "out" else "the manifest's folder --engines"
    assert f"cannot write {what} {locked}: it is read-only for this user" in one_error(stderr)
    assert time.monotonic() - t0 < 10  # the start-up of a child, not the profile
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_profiler_cleanly(tiny, tmp_path, sig, code):
    folder = tiny.copy(tmp_path)
    out = tmp_path / "reports"
    before = snapshot(folder)
    child = CommandChild("profile", argv(tiny, folder, out), "slow-profile", tmp_path)
    child.wait_ready(60)  # the chain is loaded, about to be timed
    seconds, status, stdout, stderr = child.signal_and_time(sig)
    assert status == code and seconds < 2, stderr
    assert "Traceback" not in stderr and "error:" not in stderr and f"stopped: {sig.name}" in stderr
    assert snapshot(folder) == before  # the manifest keeps its tables
    assert not out.exists() and temporaries(tmp_path) == []
