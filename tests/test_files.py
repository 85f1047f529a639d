"""Atomic writes leave temporaries named with the writer's process id, which later runs sweep once it is gone."""

from __future__ import annotations

import os

import pytest

from pipeline.errors import PipelineError
from pipeline.files import atomic_write, check_output_folder, remove_dead_temps
from tests.faults.conftest import dead_pid, mark_temporary


def test_a_write_cut_short_leaves_nothing_and_its_temporary_names_the_writer(tmp_path):
    seen = []

    def write(f):
        seen.extend(p.name for p in tmp_path.iterdir())
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "cache.npz", write)
    assert len(seen) == 1 and seen[0].startswith(".cache.npz.") and seen[0].endswith(f".{os.getpid()}.tmp")
    assert list(tmp_path.iterdir()) == []


def test_only_the_temporaries_of_dead_processes_are_swept(tmp_path):
    dead, alive = dead_pid(), os.getpid()
    names = [f".a.npz.x1.{dead}.tmp", f".b.npz.x2.{alive}.tmp", ".c.npz.x3.tmp", f"d.{dead}.tmp"]
    for name in names:
        (tmp_path / name).write_text("")
        mark_temporary(tmp_path / name, dead if str(dead) in name else alive)
    assert [p.name for p in remove_dead_temps(tmp_path)] == [names[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])


def test_output_folders_are_judged_without_being_made(tmp_path):
    check_output_folder(tmp_path / "new" / "deeper", "--out")  # made later, under a writable folder
    (tmp_path / "f").write_text("")
    with pytest.raises(PipelineError, match="it is a file, not a folder"):
        check_output_folder(tmp_path / "f", "--out")
    with pytest.raises(PipelineError, match=f"{tmp_path / 'f'} is a file, not a folder"):
        check_output_folder(tmp_path / "f" / "x" / "y", "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
