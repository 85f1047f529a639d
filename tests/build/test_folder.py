"""The build's folder transaction: leftovers of a killed build are cleaned up or put back."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.build import folder


def _dead_pid() -> int:
    import os

    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_leftovers_of_a_killed_build_are_cleaned_or_restored(tmp_path):
    import os

    dead = _dead_pid()
    (tmp_path / f".m.tmp-{dead}").mkdir()  # unfinished build: removed
    (tmp_path / f".m.tmp-{dead}" / folder.TEMP_MARKER).write_text(f"{dead}\n")
    (tmp_path / f".gone.old-{dead}").mkdir()  # set aside, swap never finished: put back
    (tmp_path / f".gone.old-{dead}" / folder.BUILD_INFO).write_text("{}")
    (tmp_path / "kept").mkdir()
    (tmp_path / f".kept.old-{dead}").mkdir()  # set aside, swap finished: removed
    (tmp_path / f".kept.old-{dead}" / folder.BUILD_INFO).write_text("{}")
    (tmp_path / f".live.tmp-{os.getpid()}").mkdir()  # a running build: left alone
    folder.remove_stale_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["gone", "kept", f".live.tmp-{os.getpid()}"])


def test_a_failed_build_removes_only_the_folders_it_made(tmp_path, monkeypatch):
    """Reached through "new/..", the existing "keep" is not one the build made, though it lies under "new"."""
    from pipeline.build.folder import build_lock

    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep").mkdir()
    with pytest.raises(RuntimeError):
        with build_lock(Path("new/../keep/child/deeper")):
            raise RuntimeError("the build failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"] and not list((tmp_path / "keep").iterdir())
