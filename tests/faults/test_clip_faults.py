"""The clip generator writes whole or not at all: a file size limit (as a full disk) is one error line, exit 2,
with the previous clip and its labels as they were; a stop mid-write leaves no temporary."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.faults.conftest import ROOT, child_limits, one_error, snapshot, temporaries


def test_a_file_size_limit_keeps_the_previous_clip(tiny, tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    for name, text in (("clip.avi", "the previous clip"), ("labels.json", "[]\n"), ("scenes.json", "[]\n")):
        (out / name).write_text(text)
    before = snapshot(out)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pipeline.video.clip import main; "
            "sys.exit(main(sys.argv[2:]))")
    argv = [ROOT, "--data", tiny.data, "--cache-dir", tiny.cache, "--scenes", "4", "--width", "80", "--height", "60",
            "--out", out]
    proc = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True, timeout=120,
                          preexec_fn=child_limits(20_000, False))
    assert proc.returncode == 2, proc.stderr
    assert "readable frames of" in one_error(proc.stderr) and "left as it was" in proc.stderr
    assert snapshot(out) == before and temporaries(out) == []


def test_a_stop_while_writing_leaves_no_temporary(tmp_path):
    from pipeline.video.clip import write_video

    def frames():
        for i in range(3):
            yield np.full((24, 32, 3), 40 * i, np.uint8)
        raise KeyboardInterrupt  # as SIGINT or SIGTERM under stop_at_once

    (tmp_path / "clip.avi").write_text("the previous clip")
    with pytest.raises(KeyboardInterrupt):
        write_video(frames(), tmp_path / "clip.avi")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi"]
    assert (tmp_path / "clip.avi").read_text() == "the previous clip"


def test_a_clip_written_whole_counts_its_frames(tmp_path):
    from pipeline.video.clip import count_frames, write_video

    path, n = write_video((np.full((24, 32, 3), 9 * i, np.uint8) for i in range(12)), tmp_path / "clip.avi")
    assert n == 12 and count_frames(path) == 12 and sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi"]
