"""Ctrl-C and SIGTERM sent to a build in a child process: it stops, exits 130 or 143, and leaves no
temporary file or folder and the previous build as it was; what killed builds left is swept by the next."""

from __future__ import annotations

import os
import signal
import shutil

import pytest

from tests.faults.conftest import (CommandChild, build_argv, dead_pid, mark_build_folder, mark_temporary, one_error,
                                   run_command, snapshot, temporaries)

pytest.importorskip("torch")
pytest.importorskip("onnxsim")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_the_calibration_cache_is_written(tiny, tmp_path, sig, code):
    """An export: torch in the child, a few seconds each."""
    out, calib = tmp_path / "engines", tmp_path / "calib"
    child = CommandChild("build", build_argv(tiny, out, calib, "--precisions", "int8"), "calib-write", tmp_path)
    child.wait_ready(60)
    assert [p.name for p in calib.iterdir() if p.name.endswith(".tmp")], "the cache is being written"
    seconds, status, stdout, stderr = child.signal_and_time(sig)
    # "At once" is the next Python bytecode after a torch operator returns: about a second here, far
    # more on a loaded machine; a build that went on to the end instead would leave engines in ``out``.
    assert status == code and seconds < 15, stderr
    assert "Traceback" not in stderr and f"stopped: {sig.name}" in stderr
    assert temporaries(out, calib) == [] and not list(calib.glob("*.npz"))
    assert not out.exists()  # nothing built, nothing left, not even the folder it made for --out


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_rebuild_leaves_the_previous_build_intact(tiny, tmp_path, sig, code):
    """A compile-only rebuild (no torch in the child: quick), stopped with its engines in the temporary folder."""
    folder = tiny.copy(tmp_path)
    out = folder.parent
    before = snapshot(out)
    child = CommandChild("build", build_argv(tiny, out, tmp_path / "calib", "--compile-only", "--force"),
                         "mid-build", tmp_path)
    child.wait_ready(60)
    assert temporaries(out), "the build is under way in its temporary folder"
    seconds, status, _, stderr = child.signal_and_time(sig)
    assert status == code and seconds < 5, stderr
    assert "Traceback" not in stderr
    assert temporaries(out) == [] and snapshot(out) == before


def test_a_later_build_sweeps_what_killed_builds_left(tiny, tmp_path, capsys):
    from pipeline.build import main

    out, calib = tmp_path / "engines", tmp_path / "calib"
    calib.mkdir()
    dead, alive = dead_pid(), os.getpid()
    # a killed build's half-written calibration cache and its temporary build folder (with a manifest)
    (calib / f".calib-0123.npz.k2j4x.{dead}.tmp").write_bytes(b"\0" * 1000)
    mark_temporary(calib / f".calib-0123.npz.k2j4x.{dead}.tmp", dead)
    (calib / f".calib-4567.npz.a8b9c.{alive}.tmp").write_bytes(b"\0")  # a running one's: left alone
    mark_temporary(calib / f".calib-4567.npz.a8b9c.{alive}.tmp", alive)
    shutil.copytree(tiny.folder, out / f".build.tmp-{dead}")
    mark_build_folder(out / f".build.tmp-{dead}", dead)
    (out / f".build.tmp-{dead}" / f".manifest.json.q1w2e.{dead}.tmp").write_text("{")
    assert run_command(main, build_argv(tiny, out, calib, "--precisions", "fp32,int8", "--skip-accuracy")) == 0
    assert sorted(p.name for p in calib.iterdir() if p.name.endswith(".tmp")) == [f".calib-4567.npz.a8b9c.{alive}.tmp"]
    assert [p.name for p in out.iterdir()] == ["msdnet_cifar"]
    capsys.readouterr()


def test_a_temporary_folder_is_never_taken_for_a_model(tiny, tmp_path, capsys):
    """Compile-only looks for the one model folder under --out: a leftover temporary folder is not one."""
    from pipeline.build import main

    folder = tiny.copy(tmp_path)
    out = folder.parent
    shutil.copytree(folder, out / f".build.tmp-{os.getpid()}")  # a build under way (its process is alive)
    argv = build_argv(tiny, out, tmp_path / "calib", "--compile-only", "--skip-accuracy")
    assert run_command(main, argv) == 0
    assert f"compiling the artifacts of {folder}" in capsys.readouterr().out
    shutil.rmtree(out / f".build.tmp-{os.getpid()}")
    shutil.copytree(folder, out / "other_model")
    assert run_command(main, argv) == 2
    assert "2 model folders in" in one_error(capsys.readouterr().err)


def test_a_signal_between_the_two_renames_of_the_swap_puts_the_previous_build_back(tiny, tmp_path, monkeypatch):
    from pipeline.build import folder as build_folder

    dest = tiny.copy(tmp_path)
    before = snapshot(dest)
    tmp = dest.parent / f".msdnet_cifar.tmp-{os.getpid()}"
    shutil.copytree(dest, tmp)
    real_rename = os.rename

    def rename(src, dst):
        if str(src) == str(tmp):  # the second rename: the new build into place
            raise KeyboardInterrupt  # as the stop handler raises it
        real_rename(src, dst)

    monkeypatch.setattr(build_folder.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        build_folder.swap_into_place(tmp, dest, {"key": 1})
    assert snapshot(dest) == before and not list(dest.parent.glob(".*.old-*"))
