"""Every tool that rewrites a manifest (the profiler, the temporal calibration) takes the build's lock: while
a build (or another of them) holds it, a second is refused in one line and the folder is left as it was."""

from __future__ import annotations

import os

from pipeline.build.folder import build_lock, model_lock
from tests.faults.conftest import one_error, run_command, snapshot


def test_profiler_and_calibration_are_refused_while_the_folder_is_being_built(tiny, tmp_path, capsys):
    from pipeline.apps.profile_latency import main as profile
    from pipeline.apps.temporal_calibrate import main as temporal

    folder = tiny.copy(tmp_path)
    before = snapshot(folder)
    data = ["--data", tiny.data, "--cache-dir", tiny.cache]
    with build_lock(folder.parent):  # a build of the same --out, under way
        for main, argv in ((profile, ["--engines", folder, *data, "--out", tmp_path / "reports", "--runs", "2"]),
                           (temporal, ["--engines", folder, *data])):
            assert run_command(main, argv) == 2
            err = one_error(capsys.readouterr().err)
            assert f"{folder} is in use by another process (a build, process {os.getpid()})" in err
    assert snapshot(folder) == before and not (tmp_path / "reports").exists()


def test_a_build_is_refused_while_the_profiler_holds_the_folder(tiny, tmp_path, capsys):
    from pipeline.build import main
    from tests.faults.conftest import build_argv

    folder = tiny.copy(tmp_path)
    before = snapshot(folder)
    with model_lock(folder, "the latency profiler"):  # re-reading and rewriting the manifest
        assert run_command(main, build_argv(tiny, folder.parent, tmp_path / "calib", "--compile-only",
                                            "--skip-accuracy", "--force")) == 2
    err = one_error(capsys.readouterr().err)
    assert f"{folder.parent} is in use by another process (the latency profiler, process {os.getpid()})" in err
    assert snapshot(folder) == before


def test_the_profilers_reports_never_land_in_the_model_folder(tiny, tmp_path, capsys):
    from pipeline.apps.profile_latency import main as profile

    folder = tiny.copy(tmp_path)
    before = snapshot(folder)
    assert run_command(profile, ["--engines", folder, "--data", tiny.data, "--out", folder]) == 2
    assert "inside the built model folder" in one_error(capsys.readouterr().err)
    assert snapshot(folder) == before
