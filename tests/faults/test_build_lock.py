"""Two builds of one output folder: the second is refused while the first runs (an advisory lock), and a
build killed while holding the lock stops no one and leaves nothing the next build does not sweep."""

from __future__ import annotations

import signal

from pipeline.manifest import load_manifest
from tests.faults.conftest import CommandChild, build_argv, one_error, run_command, snapshot, temporaries


def test_a_second_build_is_refused_while_one_runs(tiny, tmp_path, capsys):
    from pipeline.build import main

    folder = tiny.copy(tmp_path)
    out = folder.parent
    argv = build_argv(tiny, out, tmp_path / "calib", "--compile-only", "--skip-accuracy", "--force")
    child = CommandChild("build", argv, "slow-swap", tmp_path, pause_s=1.5)  # between its build and its swap
    child.wait_ready(60)
    built = snapshot(out)
    assert run_command(main, argv) == 2
    err = one_error(capsys.readouterr().err)
    assert f"another build of {out} is running (process {child.proc.pid})" in err
    assert snapshot(out) == built  # the refused build touched nothing
    status, stdout, stderr = child.finish()
    assert status == 0 and f"built {folder}" in stdout, stderr
    assert temporaries(out) == [] and [p.name for p in out.iterdir()] == ["msdnet_cifar"]  # no lock file left
    load_manifest(folder)
    assert run_command(main, argv[:-1]) == 0 and "up to date" in capsys.readouterr().out


def test_a_build_killed_holding_the_lock_blocks_no_one(tiny, tmp_path, capsys):
    from pipeline.build import main

    folder = tiny.copy(tmp_path)
    out = folder.parent
    argv = build_argv(tiny, out, tmp_path / "calib", "--compile-only", "--skip-accuracy", "--force")
    child = CommandChild("build", argv, "slow-swap", tmp_path)
    child.wait_ready(60)
    _, status, _, _ = child.signal_and_time(signal.SIGKILL)  # no clean-up at all
    assert status == -signal.SIGKILL and temporaries(out)
    assert run_command(main, argv) == 0, capsys.readouterr().err
    assert temporaries(out) == [] and [p.name for p in out.iterdir()] == ["msdnet_cifar"]
    load_manifest(folder)
