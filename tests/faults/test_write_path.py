"""The one write path (pipeline/files.py): what it refuses, that it never follows a link or replaces a
special file, that it sweeps only the temporaries it marked, and that no output is opened anywhere else."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.files import atomic_write_text, check_output, hold_lock, remove_dead_temps, write_output
from tests.faults.conftest import dead_pid, mark_temporary

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline"

# Writes the grep looks for: a file opened for writing, or written by a library call.
WRITES = re.compile(r"""open\([^)]*['"][wax]b?\+?['"]|\.write_text\(|\.write_bytes\(|np\.save|torch\.save\(|"""
                    r"""cv2\.VideoWriter\(|json\.dump\(|\.savefig\(""")
# Where a write may be: the write path itself, and the writers that go through its checks.
ALLOWED = {
    "files.py": "the write path",
    "video/report.py": "the frame log: checked by check_output, locked, opened at its first whole line",
    "video/writer.py": "the annotated video: checked by check_output, locked for the run",
    "video/clip.py": "the clip: a marked temporary, read back, then renamed into place",
    "backends/tensorrt/builder.py": "engines written inside the build's marked temporary folder, swapped in whole",
    "serving/server.py": "the server's log, the child process's output: a temporary file, or --log checked by "
                         "check_output in serving/serve.py before the server starts",
}


def test_no_output_is_opened_outside_the_write_path():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE))
        if rel in ALLOWED:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            # a writer handed the file by atomic_write / write_output is inside the write path; a buffer in
            # memory is no output
            if WRITES.search(line) and not any(s in line for s in ("atomic_write(", "write_output(", "io.BytesIO()")):
                found.append(f"pipeline/{rel}:{n}: {line.strip()}")
    assert found == []


def test_an_output_that_is_an_input_or_in_a_model_folder_is_refused_and_left_alone(tmp_path):
    model = tmp_path / "engines" / "m"
    (model / "onnx").mkdir(parents=True)
    (model / "manifest.json").write_text("{}")
    (model / "onnx" / "stage1.onnx").write_bytes(b"graph")
    data = tmp_path / "data"
    (data / "cat").mkdir(parents=True)
    (data / "cat" / "0.png").write_bytes(b"png")
    archive = tmp_path / "data.tar.gz"
    archive.write_bytes(b"archive")
    os.link(archive, tmp_path / "hardlink.tar.gz")
    inputs = [("--data", data), ("--archive", archive)]
    cases = [(model / "manifest.json", "inside the built model folder"),
             (model / "onnx" / "stage1.onnx", "inside the built model folder"),
             (model / "new.json", "inside the built model folder"),
             (data / "cat" / "0.png", "inside --data"), (data / "report.json", "inside --data"),
             (archive, "it is --archive"), (tmp_path / "hardlink.tar.gz", "it is --archive")]
    for path, told in cases:
        with pytest.raises(PipelineError, match=told):
            write_output(path, "{}", "--json", inputs)
    assert (model / "manifest.json").read_text() == "{}" and archive.read_bytes() == b"archive"
    assert (data / "cat" / "0.png").read_bytes() == b"png" and not (model / "new.json").exists()


def test_special_files_and_links_are_refused_never_replaced_or_followed(tmp_path):
    target = tmp_path / "target.json"
    target.write_text("keep")
    (tmp_path / "link.json").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    cases = [(Path("/dev/full"), "a device"), (tmp_path / "fifo", "a FIFO"), (tmp_path / "link.json", "symbolic link"),
             (tmp_path / "folder", "a folder")]
    for path, told in cases:
        with pytest.raises(PipelineError, match=told):
            write_output(path, "report", "--json")
        with pytest.raises(PipelineError, match=told):
            atomic_write_text(path, "report")  # the build's own writes refuse them too
    assert os.path.exists("/dev/full") and not Path("/dev/full").is_file()
    assert target.read_text() == "keep" and (tmp_path / "link.json").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "folder", "link.json", "target.json"]


def test_a_write_lands_whole_and_leaves_no_temporary(tmp_path):
    out = write_output(tmp_path / "reports" / "r.json", "x" * 10_000, "--json")
    assert out.read_text() == "x" * 10_000 and os.listdir(tmp_path / "reports") == ["r.json"]
    check_output(tmp_path / "reports" / "r.json", "--json")  # an earlier output of its own may be replaced


def test_only_marked_temporaries_of_dead_writers_are_swept(tmp_path):
    dead = dead_pid()
    ours = tmp_path / f".a.json.k2j4x9q1.{dead}.tmp"
    ours.write_text("{")
    mark_temporary(ours, dead)
    lookalike = tmp_path / f".config.{dead}.tmp"  # a user's file with a temporary's name: no mark
    lookalike.write_text("user data")
    assert remove_dead_temps(tmp_path) == [ours]
    assert lookalike.read_text() == "user data"


def test_a_lock_that_is_a_symbolic_link_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep")
    (tmp_path / ".build.lock").symlink_to(target)
    with pytest.raises(PipelineError, match="symbolic link"):
        with hold_lock(tmp_path / ".build.lock", "busy{who}"):
            pass
    assert target.read_text() == "keep" and (tmp_path / ".build.lock").is_symlink()
