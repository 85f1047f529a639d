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
    assert f"{out} is in use by another process (a build, process {child.proc.pid})" in err
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


def test_a_lock_file_that_is_a_symbolic_link_is_refused_not_followed(tiny, tmp_path, capsys):
    from pipeline.build import main

    folder = tiny.copy(tmp_path)
    out = folder.parent
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    (out / ".build.lock").symlink_to(precious)
    before = snapshot(out)
    argv = build_argv(tiny, out, tmp_path / "calib", "--compile-only", "--skip-accuracy", "--force")
    assert run_command(main, argv) == 2
    assert "the lock" in (err := one_error(capsys.readouterr().err)) and "symbolic link" in err
    assert precious.read_text() == "keep" and (out / ".build.lock").is_symlink() and snapshot(out) == before


def test_a_rebuild_leaves_what_it_did_not_make_and_says_which_tables_it_dropped(tiny, tmp_path, capsys):
    import json
    import shutil

    from pipeline.build import main
    from tests.faults.conftest import dead_pid

    out = tmp_path / "engines"
    out.mkdir()
    real = shutil.copytree(tiny.folder, tmp_path / "elsewhere" / "msdnet_cifar")  # the model folder is a link
    manifest = json.loads((real / "manifest.json").read_text())
    manifest["latency"] = {"onnxruntime/fp32": {"stages": [{"p50_ms": 1.0}] * len(manifest["stages"])}}
    (real / "manifest.json").write_text(json.dumps(manifest))
    (out / "msdnet_cifar").symlink_to(real)
    dead = dead_pid()
    foreign = [out / f".notes.tmp-{dead}", out / f".backup.old-{dead}"]
    for path in foreign:
        path.mkdir()
        (path / "mine.txt").write_text("the user's")
    (out / f".config.{dead}.tmp").write_text("the user's")
    linked = snapshot(real)
    argv = build_argv(tiny, out, tmp_path / "calib", "--compile-only", "--skip-accuracy", "--force")
    assert run_command(main, argv) == 0
    captured = capsys.readouterr()
    assert "latency (onnxruntime/fp32) were dropped" in captured.err and "anytime profile --engines" in captured.err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f".backup.old-{dead}", f".config.{dead}.tmp", f".notes.tmp-{dead}", "msdnet_cifar"])  # no .old link left
    assert all((p / "mine.txt").read_text() == "the user's" for p in foreign)
    assert snapshot(real) == linked and not (out / "msdnet_cifar").is_symlink()
    load_manifest(out / "msdnet_cifar")
