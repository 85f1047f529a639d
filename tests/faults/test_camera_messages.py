"""Messages that were wrong or missing: the writer's advice, the lost-stream advice said once, a frame
error naming its file, labels that do not pair with the frames, budgets classify must refuse, and
``make demo`` with a quote in its source."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from pipeline.backends.base import StageChain
from pipeline.runtime.cascade import Cascade
from pipeline.runtime.deadline import LatencyPredictor
from pipeline.errors import PipelineError
from pipeline.video.sources import open_advice
from tests.faults.conftest import PLAN, ROOT, log_lines, one_error, run_app
from tests.video.fakes import CLASSES, FakeCascade, FakeClock, SourceDouble, colour_frame


class NeverOpens:
    """Stands in for cv2.VideoWriter where OpenCV cannot write this codec."""

    def __init__(self, *args):
        pass

    def isOpened(self):
        return False


@pytest.mark.parametrize("name, hint", [("a.mp4", True), ("a.avi", False)])
def test_writer_advice_fits_the_output(engines, clip, tmp_path, capsys, monkeypatch, name, hint):
    monkeypatch.setattr(cv2, "VideoWriter", NeverOpens)
    video, _ = clip
    code = run_app(["--engines", engines, "--source", video, "--headless", "--output", tmp_path / name])
    error = one_error(capsys.readouterr().err)
    assert code == 2 and f"OpenCV could not open {tmp_path / name} for writing" in error
    assert ("try an .avi output" in error) is hint


def test_writer_failure_from_a_folder_gone_since_the_start_names_the_folder(engines, clip, tmp_path, capsys):
    video, _ = clip
    folder = tmp_path / "out"
    folder.mkdir()
    clock = FakeClock()
    cascade = FakeCascade(clock, on_classify=lambda call: call == 1 and shutil.rmtree(folder))
    code = run_app(["--engines", engines, "--source", video, "--headless", "--output", folder / "a.avi"],
                   cascade=cascade, clock=clock)
    error = one_error(capsys.readouterr().err)
    assert code == 2 and error == (f"error: cannot write the annotated video {folder / 'a.avi'}: folder {folder} "
                                   "does not exist; create it or choose another folder")


@pytest.mark.parametrize("reopen_fails", [True, False])
def test_lost_stream_gives_its_advice_once(engines, tmp_path, capsys, reopen_fails):
    sources = [SourceDouble(fail_after=2)]

    def opener(spec, read_timeout_s=None):
        if sources:
            return sources.pop()
        if reopen_fails:
            raise PipelineError(f"could not open stream {spec.name}: {open_advice(spec)}")
        return SourceDouble(fail_after=0)  # opens, then gives nothing

    code = run_app(["--engines", engines, "--source", "rtsp://cam.invalid/live", "--headless", "--reconnects", 1],
                   cascade=FakeCascade(input_size=(4, 4)), opener=opener)
    error = one_error(capsys.readouterr().err)
    assert code == 2 and error.startswith("error: lost rtsp://cam.invalid/live: no frame after 1 reconnect attempts")
    assert "Check: check" not in error and error.lower().count("check the address") == 1, error
    assert error.endswith("and the network or firewall between here and the camera.")


def test_frame_format_error_names_the_file(engines, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "f0.png"), colour_frame(0, 1, (20, 30)))
    cv2.imwrite(str(folder / "f1.tiff"), np.full((20, 30, 3), 0.5, np.float32))  # 32-bit float: no camera frame
    log = tmp_path / "f.jsonl"
    code = run_app(["--engines", engines, "--source", folder, "--headless", "--log", log])
    captured = capsys.readouterr()
    assert code == 2 and one_error(captured.err) == (
        f"error: {folder / 'f1.tiff'}: frames should be 8- or 16-bit integers; got dtype float32")
    assert len(log_lines(log)) == 1 and "1 frames" in captured.out


def labelled_run(engines, video, labels, capsys, *extra):
    code = run_app(["--engines", engines, "--source", video, "--headless", "--labels", labels, *map(str, extra)])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) <= 1
    return (warnings or [""])[0], captured.out


def test_labels_that_do_not_pair_with_the_frames_are_warned_about(engines, clip, tmp_path, capsys):
    video, _ = clip
    names = [CLASSES[label] for label, _ in PLAN]
    labels = tmp_path / "labels.json"
    cases = [
        (names[:5], "5 of 12 frames were labelled; the file has 5 labels, one per frame in order, for 12 frames"),
        (names + names[:8], "12 of 12 frames were labelled; the file has 20 labels, more than the 12 frames"),
        ([], "0 of 12 frames were labelled; the file holds no labels"),
        ({}, "0 of 12 frames were labelled; the file holds no labels"),
        ({"nope.png": "red"}, "0 of 12 frames were labelled; 0 of its 1 keys matched a frame (keys are image file "
                              "names, parent/name, stems or frame indices)"),
        ({"0": "blue", "1": "green", "99": "red"}, "2 of 12 frames were labelled; 2 of its 3 keys matched a frame"),
    ]
    for data, message in cases:
        labels.write_text(json.dumps(data))
        warning, out = labelled_run(engines, video, labels, capsys)
        assert warning.startswith(f"warning: --labels {labels}: {message}"), (data, warning)
    labels.write_text(json.dumps(names[:5]))
    _, out = labelled_run(engines, video, labels, capsys)
    assert "accuracy: 100.0% (5/5 labelled frames)" in out


def test_labels_that_pair_up_say_nothing(engines, clip, tmp_path, capsys):
    video, labels = clip
    assert labelled_run(engines, video, labels, capsys)[0] == ""
    assert labelled_run(engines, video, labels, capsys, "--max-frames", 4)[0] == ""  # the rest were not reached


class Chain(StageChain):
    backend, precision, num_stages = "double", "fp32", 2

    def __init__(self):
        self.runs = 0

    def activate(self):
        pass

    def set_frame(self, frame):
        pass

    def run(self, stage):
        self.runs += 1
        return np.array([[0.0, 1.0, 2.0]], np.float32)


@pytest.mark.parametrize("budget", [math.nan, -1.0, 0.0, math.inf, -math.inf, True, False, "5", [5.0]])
def test_classify_refuses_a_budget_that_is_not_a_time(budget):
    chain = Chain()
    cascade = Cascade(chain, CLASSES, None, LatencyPredictor(2, [1.0, 1.0]))
    with pytest.raises(PipelineError, match=r"^budget_ms should be a (positive, finite )?number of milliseconds "
                                            r"or None; got "):
        cascade.classify(np.zeros((8, 8, 3), np.uint8), budget_ms=budget)
    assert chain.runs == 0  # refused before any stage ran


@pytest.mark.parametrize("budget", [None, 5, 2.5, np.float32(3.0), np.float64(0.5)])
def test_classify_takes_every_real_budget(budget):
    cascade = Cascade(Chain(), CLASSES, None, LatencyPredictor(2, [1.0, 1.0]))
    result = cascade.classify(np.zeros((8, 8, 3), np.uint8), budget_ms=budget)
    assert result.budget_ms == (None if budget is None else float(budget))
    assert isinstance(result.budget_ms, (float, type(None)))


def test_make_demo_passes_a_source_with_quotes_intact(tmp_path):
    """The Makefile's live demo line, run by the shell, hands the camera app the source as written."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    record = tmp_path / "argv"
    python = venv / "bin" / "python"  # records each call's arguments, one per line, and succeeds
    python.write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> {record}\necho --- >> {record}\n")
    python.chmod(0o755)
    (venv / ".installed").touch()  # newer than pyproject.toml: make installs nothing
    source = "rtsp://cam/it's \"here\" $HOME `id`"
    proc = subprocess.run(["make", "-s", "demo", f"SOURCE={source}", f"VENV={venv}", f"DEMO={tmp_path / 'demo'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    calls = [call.strip("\n").split("\n") for call in record.read_text().split("---\n") if call.strip()]
    camera = next(call for call in calls if call[:3] == ["-m", "pipeline.cli", "camera"])
    assert camera[camera.index("--source") + 1] == source
    assert not os.path.exists(tmp_path / "demo" / "frames.jsonl")


def test_a_build_temporary_folder_is_not_listed_as_a_model(tmp_path, capsys):
    root = tmp_path / "engines"
    for name in ("msdnet_cifar", ".build.tmp-4242"):
        (root / name).mkdir(parents=True)
        (root / name / "manifest.json").write_text("{}")
    assert run_app(["--engines", root, "--source", "0", "--headless"]) == 2
    error = one_error(capsys.readouterr().err)
    assert f"built models inside it: {root / 'msdnet_cifar'}" in error and ".build.tmp" not in error


def test_a_blank_line_among_one_label_a_line_is_refused_not_skipped(engines, clip, tmp_path, capsys):
    video, _ = clip
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\n\ndog\nbird\n\n")  # trailing blank lines are fine; the inner one would shift dog, bird
    assert run_app(["--engines", engines, "--source", video, "--headless", "--labels", labels]) == 2
    assert "has a blank line (line 2)" in one_error(capsys.readouterr().err)
    labels.write_text("cat\ndog\nbird\n\n")
    from pipeline.video.labels import read_labels

    assert [e[2] for e in read_labels(labels).entries] == ["cat", "dog", "bird"]
