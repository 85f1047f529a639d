"""Errors that end a run (a full disk, a file size limit, a failing runtime) and outputs the operating
system refuses: a one-line error naming the cause, exit 2, the video finalised, whole log lines."""

from __future__ import annotations

import errno
import os
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from tests.faults.conftest import PLAN, Child, log_lines, one_error, run_app, snapshot
from tests.video.fakes import FakeCascade, FakeClock, count_frames, write_clip


class FullDisk:
    """A log file with room for ``room`` bytes, then failing as a full disk does: a short write, then ENOSPC."""

    def __init__(self, path, room: int):
        self.file, self.room = open(path, "wb", buffering=0), room

    def write(self, data) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = self.file.write(bytes(data[:self.room]))
        self.room -= n
        return n

    def truncate(self, size: int) -> int:
        return self.file.truncate(size)

    @property
    def closed(self) -> bool:
        return self.file.closed

    def close(self) -> None:
        self.file.close()


def header_frames(path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return n


def test_full_disk_under_the_log_finalises_the_video_and_keeps_whole_lines(engines, clip, tmp_path, capsys):
    video, labels = clip
    out, log = tmp_path / "a.avi", tmp_path / "f.jsonl"
    before = snapshot(tmp_path)
    code = run_app(["--engines", engines, "--source", video, "--headless", "--output", out, "--log", log,
                    "--labels", labels], open_log=lambda path: FullDisk(path, room=1500))
    captured = capsys.readouterr()
    assert code == 2
    assert one_error(captured.err) == f"error: no space left on device writing the log {log}; free some space " \
                                      "or write it elsewhere"
    assert f"; stopped: error: no space left on device writing the log {log}" in captured.out
    records = log_lines(log)  # the line cut by the full disk is gone, every other one is whole
    assert 1 <= len(records) < len(PLAN) and [r["frame"] for r in records] == list(range(len(records)))
    assert f"{len(records)} frames" in captured.out and f"frame log: {log} ({len(records)} frames)" in captured.out
    written = len(records) + 1  # the frame whose log line failed was already in the video
    assert count_frames(out) == header_frames(out) == written  # finalised: its header lists every frame
    assert {k: v for k, v in snapshot(tmp_path).items() if k in before} == before  # the inputs untouched


def test_file_size_limit_in_a_child_process(engines, tmp_path):
    """A real limit (RLIMIT_FSIZE): the log meets EFBIG as it would a full disk, and the video, whose
    encoder buffers its writes, is found incomplete when it is read back."""
    video = write_clip(tmp_path / "clip.avi", PLAN * 4)
    out, log = tmp_path / "a.avi", tmp_path / "f.jsonl"
    before = snapshot(tmp_path)
    child = Child(["--engines", engines, "--source", video, "--headless", "--log", log, "--output", out],
                  "clip", tmp_path, fsize=3000)
    code, stdout, stderr = child.finish()
    assert code == 2, stderr
    assert one_error(stderr) == (f"error: file too large writing the log {log} (this process may write files of "
                                 "at most 3000 bytes: `ulimit -f`)")
    assert f"stopped: error: file too large writing the log {log}" in stdout
    assert f"warning: the annotated video {out} is incomplete: " in stderr
    records = log_lines(log)  # whole lines only: the one cut at the limit is gone
    assert 1 <= len(records) < len(PLAN) and os.path.getsize(log) <= 3000
    assert f"{len(records)} frames" in stdout
    assert {k: v for k, v in snapshot(tmp_path).items() if k in before} == before


def test_runtime_error_mid_run_names_the_cause(engines, clip, tmp_path, capsys):
    """An ONNX Runtime error from the cascade on frame 4 ends the run as a one-line error, not 'end of source'."""
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx.checker.check_model(model)

    def fail(call):
        if call == 5:
            session.run(None, {"x": np.zeros((2, 5), np.float32)})  # wrong shape: ONNX Runtime raises

    clock = FakeClock()
    video, _ = clip
    out, log = tmp_path / "a.avi", tmp_path / "f.jsonl"
    code = run_app(["--engines", engines, "--source", video, "--headless", "--output", out, "--log", log],
                   cascade=FakeCascade(clock, on_classify=fail), clock=clock)
    captured = capsys.readouterr()
    assert code == 2
    error = one_error(captured.err)
    assert error.startswith("error: the fake/fp32 cascade failed on frame 4: InvalidArgument: ")
    assert "stopped: error: the fake/fp32 cascade failed on frame 4" in captured.out
    assert "end of source" not in captured.out
    assert len(log_lines(log)) == 4 and count_frames(out) == header_frames(out) == 4


def test_outputs_the_system_refuses(engines, clip, tmp_path, capsys):
    video, _ = clip
    (tmp_path / "logs").mkdir()
    long_name = "x" * 300 + ".avi"
    before = snapshot(tmp_path)
    base = ["--engines", engines, "--source", video, "--headless"]
    cases = [
        (["--log", tmp_path / "logs"], f"error: cannot write the log {tmp_path / 'logs'}: it is a folder; give a "
                                       "file name"),
        (["--output", video / "a.avi"], f"error: cannot write the annotated video {video / 'a.avi'}: {video} is a "
                                        "file, not a folder"),
        (["--log", video / "deeper" / "f.jsonl"], f"{video} is a file, not a folder"),
        (["--output", tmp_path / long_name], "the file name is 304 bytes long, more than the 255 this file system "
                                             "allows; choose a shorter name"),
    ]
    for argv, match in cases:
        code = run_app(base + argv)
        error = one_error(capsys.readouterr().err)
        assert code == 2 and match in error, error
    assert snapshot(tmp_path) == before


def test_labels_file_that_is_not_utf8(engines, clip, tmp_path, capsys):
    video, _ = clip
    labels = tmp_path / "labels.csv"
    labels.write_bytes("caf\xe9,0\n".encode("latin-1"))
    log = tmp_path / "f.jsonl"
    code = run_app(["--engines", engines, "--source", video, "--headless", "--labels", labels, "--log", log])
    assert code == 2 and one_error(capsys.readouterr().err) == (
        f"error: labels file {labels} is not UTF-8 text (byte 0xe9 at offset 3); save it as UTF-8")
    assert not log.exists()


def test_read_only_output_and_log(engines, clip, tmp_path):
    """In a folder or over a file the user may not write: refused up front, in one line, naming the path."""
    video, _ = clip
    locked = tmp_path / "locked"
    locked.mkdir()
    old_log = tmp_path / "old.jsonl"
    old_log.write_text("{}\n")
    old_log.chmod(0o444)
    locked.chmod(0o555)
    before = snapshot(tmp_path)
    base = ["--engines", engines, "--source", video, "--headless"]
    cases = [
        (["--output", locked / "a.avi"], f"error: cannot write the annotated video {locked / 'a.avi'}: the "
                                         f"folder {locked} is read-only for this user"),
        (["--log", old_log], f"error: cannot write the log {old_log}: the file {old_log} is read-only for this user"),
    ]
    try:
        for argv, match in cases:
            code, _, stderr = Child(base + argv, "clip", tmp_path, obey_modes=True).finish()
            assert code == 2 and one_error(stderr).startswith(match), stderr
            assert snapshot(tmp_path) == before
        code, _, stderr = Child(base + ["--log", tmp_path / "f.jsonl"], "clip", tmp_path, obey_modes=True).finish()
        assert code == 0, stderr  # the same process writes where it may
        assert len(log_lines(tmp_path / "f.jsonl")) == len(PLAN)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot give up root's override of file modes here: {exc}")
    finally:
        locked.chmod(0o755)
