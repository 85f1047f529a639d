"""A thread count far past the usable cores (``--threads 1000`` on two) is refused in one line naming the
cores, before a model loads: the camera and the profiler would otherwise make no progress."""

from __future__ import annotations

from pipeline.device import usable_cores
from tests.faults.conftest import one_error, run_app, run_command


def test_the_camera_and_the_profiler_refuse_threads_past_the_cores(engines, clip, tmp_path, capsys):
    from pipeline.apps.profile_latency import main as profile

    video, _ = clip
    told = f"--threads 1000 is more than twice the {usable_cores()} CPU cores this process may use"
    assert run_app(["--engines", engines, "--source", video, "--headless", "--threads", "1000"]) == 2
    assert told in one_error(capsys.readouterr().err)
    assert run_command(profile, ["--engines", engines, "--threads", "1000", "--out", tmp_path / "reports"]) == 2
    assert told in one_error(capsys.readouterr().err)
    assert not (tmp_path / "reports").exists()
