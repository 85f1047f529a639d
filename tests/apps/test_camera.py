"""The camera app end to end with a fake cascade: a generated clip of known labels in, the log,
the annotated video and the summary out; every error path exits non-zero with a message."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.apps.camera import main
from pipeline.runtime.deadline import BudgetSplit
from pipeline.errors import PipelineError
from pipeline.video.labels import load_labels
from pipeline.video.run import model_input
from pipeline.video.frames import to_model_input
from tests.video.camera_fixtures import clip, engines  # noqa: F401  (fixtures)
from tests.video.fakes import PLAN, FakeCascade, FakeClock, SourceDouble, colour_frame, count_frames

ROOT = Path(__file__).resolve().parents[2]


class Factory:
    def __init__(self, cascade):
        self.cascade, self.calls = cascade, []

    def __call__(self, folder, **kw):
        self.calls.append((folder, kw))
        return self.cascade


def run(argv, cascade=None, clock=None, **kw):
    clock = clock or FakeClock()
    cascade = cascade or FakeCascade(clock)
    factory = Factory(cascade)
    code = main([str(a) for a in argv], cascade_factory=factory, clock=clock, **kw)
    return code, factory


def read_log(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_clip_end_to_end(engines, clip, tmp_path, capsys):
    video, labels = clip
    out, log = tmp_path / "annotated.avi", tmp_path / "frames.jsonl"
    code, factory = run(["--engines", engines, "--source", video, "--headless", "--output", out, "--log", log,
                         "--labels", labels, "--precision", "int8", "--threads", "2"])
    assert code == 0
    assert factory.calls == [(engines, dict(backend="auto", precision="int8", policy="default", threads=2))]
    records = read_log(log)
    assert [r["frame"] for r in records] == list(range(len(PLAN)))
    assert [(r["label"], r["exit"]) for r in records] == PLAN
    assert all(r["true_label"] == r["label"] and r["correct"] for r in records)
    first = records[0]
    for key in ("time", "class", "confidence", "stage_ms", "cascade_ms", "frame_ms", "budget_ms", "met", "dropped"):
        assert key in first
    assert records[6]["stage_ms"] == [1.0, 1.0, 1.0] and records[6]["frame_ms"] == 3.0  # the fake clock's time
    assert first["budget_ms"] is None and first["met"] is None and first["dropped"] == 0
    assert count_frames(out) == len(PLAN)
    text = capsys.readouterr().out
    assert f"{video}: 12 frames" in text and "stopped: end of source" in text
    assert "exits: 1: 6 (50.0%)  2: 3 (25.0%)  3: 3 (25.0%)" in text
    assert "accuracy: 100.0% (12/12 labelled frames)" in text and "dropped frames: 0" in text
    assert "budget: none" in text and f"annotated video: {out} (12 frames)" in text


def test_budget_limits_exits_and_misses_are_counted(engines, clip, tmp_path, capsys):
    video, _ = clip
    log = tmp_path / "frames.jsonl"
    clock = FakeClock()
    cascade = FakeCascade(clock, stage_ms=1.5)
    code, _ = run(["--engines", engines, "--source", video, "--headless", "--fps", 400, "--log", log],
                  cascade=cascade, clock=clock)  # 2.5 ms a frame: room for one 1.5 ms stage, not two
    assert code == 0
    records = read_log(log)
    assert {r["exit"] for r in records} == {1} and all(r["met"] for r in records)
    assert [b for _, b in cascade.calls] == [2.5] * len(PLAN)  # nothing else took time on the fake clock
    assert "budget 2.5 ms per frame: 0 missed (0.0%)" in capsys.readouterr().out

    slow = FakeCascade(clock, stage_ms=4.0)  # stage 1 alone overruns: every frame misses
    code, _ = run(["--engines", engines, "--source", video, "--headless", "--budget-ms", 3, "--log", log],
                  cascade=slow, clock=clock)
    assert all(r["met"] is False for r in read_log(log))
    assert "budget 3.0 ms per frame: 12 missed (100.0%)" in capsys.readouterr().out


def test_overhead_is_set_aside_from_the_budget():
    split = BudgetSplit(20.0)
    assert split.cascade_budget() == 20.0  # nothing measured yet
    split.update(500.0)  # the first frame opens the writer and the window: not counted
    assert split.cascade_budget() == 20.0
    for _ in range(50):
        split.update(5.0)
    assert split.cascade_budget() == pytest.approx(15.0)
    split.update(9.0)  # a jittery frame widens the reserve more than the mean moves
    assert split.cascade_budget() < 15.0 - 0.8
    for _ in range(50):
        split.update(30.0)
    assert split.cascade_budget() == split.floor_ms > 0  # never zero or negative
    assert BudgetSplit(None).cascade_budget() is None


def test_real_clock_the_cascade_gets_less_than_the_frame(engines, clip, tmp_path):
    video, _ = clip
    log = tmp_path / "frames.jsonl"
    cascade = FakeCascade()
    code = main(["--engines", str(engines), "--source", str(video), "--headless", "--budget-ms", "50",
                 "--output", str(tmp_path / "o.mp4"), "--log", str(log)], cascade_factory=Factory(cascade))
    assert code == 0
    budgets = [b for _, b in cascade.calls]
    assert budgets[:2] == [50.0, 50.0] and all(b < 50.0 for b in budgets[2:])  # writing and drawing cost time
    records = read_log(log)
    assert all(r["frame_ms"] > 0 for r in records)
    assert [r["cascade_budget_ms"] for r in records] == pytest.approx(budgets, abs=1e-3)
    assert count_frames(tmp_path / "o.mp4") == len(PLAN)


def test_image_folder_with_csv_labels_and_max_frames(engines, tmp_path, capsys):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    rows = ["file,label"]
    for i, (label, exit) in enumerate(PLAN[:6]):
        frame = colour_frame(label, exit, (20, 30))
        if i == 1:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)
        cv2.imwrite(str(folder / f"f{i}.png"), frame)
        rows.append(f"f{i}.png,{label if i != 2 else 0}")  # one wrong label
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    code, _ = run(["--engines", engines, "--source", folder, "--headless", "--labels", tmp_path / "labels.csv",
                   "--max-frames", 4, "--log", tmp_path / "f.jsonl"])
    assert code == 0
    records = read_log(tmp_path / "f.jsonl")
    assert [Path(r["file"]).name for r in records] == ["f0.png", "f1.png", "f2.png", "f3.png"]
    out = capsys.readouterr().out
    assert "4 frames" in out and "stopped: --max-frames" in out and "accuracy: 75.0% (3/4 labelled frames)" in out


def test_labels_formats(tmp_path):
    classes = ["blue", "green", "red"]
    (tmp_path / "a.txt").write_text("red\n1\n# comment\nblue\n\n")  # an inner blank line is refused (tests/faults)
    assert load_labels(tmp_path / "a.txt", classes).per_frame == [2, 1, 0]
    (tmp_path / "b.json").write_text(json.dumps({"x.png": "green", "3": 2}))
    assert load_labels(tmp_path / "b.json", classes).by_key == {"x.png": 1, "3": 2}
    (tmp_path / "c.csv").write_text("file,label\nx.png,purple\n")
    with pytest.raises(PipelineError, match=r"c.csv row 2: label 'purple' is neither a class name nor an index"):
        load_labels(tmp_path / "c.csv", classes)
    (tmp_path / "d.json").write_text("{oops")
    with pytest.raises(PipelineError, match="not valid JSON"):
        load_labels(tmp_path / "d.json", classes)
    (tmp_path / "e.json").write_text("[" * 100_000 + "]" * 100_000)  # nesting past what Python's parser takes
    with pytest.raises(PipelineError, match="not valid JSON"):
        load_labels(tmp_path / "e.json", classes)


def test_window_q_quits(engines, clip, capsys):
    video, _ = clip
    shown = []

    class FakeWindow:
        def show(self, image):
            shown.append(image.shape)
            return len(shown) < 3  # q pressed on the third frame

        def close(self):
            shown.append("closed")

    code, _ = run(["--engines", engines, "--source", video], window_factory=FakeWindow)
    assert code == 0 and shown == [(384, 512, 3)] * 3 + ["closed"]  # 48x64 enlarged 8x for display
    assert "3 frames" in capsys.readouterr().out


def test_sigterm_stops_cleanly(engines, clip, tmp_path, capsys):
    video, _ = clip
    out, log = tmp_path / "a.avi", tmp_path / "f.jsonl"
    before = signal.getsignal(signal.SIGTERM)
    clock = FakeClock()

    def terminate(call):
        if call == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    code, _ = run(["--engines", engines, "--source", video, "--headless", "--output", out, "--log", log],
                  cascade=FakeCascade(clock, on_classify=terminate), clock=clock)
    assert code == 143  # 128 + SIGTERM, after the clean stop
    assert len(read_log(log)) == 4 and count_frames(out) == 4  # the frame in flight finished, video finalised
    out_text = capsys.readouterr().out
    assert "4 frames" in out_text and "stopped: SIGTERM" in out_text and signal.getsignal(signal.SIGTERM) is before


def test_live_stream_lost_finalises_then_fails(engines, tmp_path, capsys):
    out, log = tmp_path / "live.avi", tmp_path / "f.jsonl"
    sources = [SourceDouble(fail_after=3, period_s=0.002)]

    def opener(spec, read_timeout_s=None):
        if sources:
            return sources.pop()
        raise PipelineError(f"could not open stream {spec.target}")  # unredacted on purpose

    cascade = FakeCascade(input_size=(4, 4))
    with pytest.raises(SystemExit) as info:
        main(["--engines", str(engines), "--source", "rtsp://user:hunter2@cam.local/live", "--headless",
              "--reconnects", "1", "--output", str(out), "--log", str(log)],
             cascade_factory=Factory(cascade), opener=opener)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert "error: lost rtsp://***@cam.local/live: no frame after 1 reconnect attempts" in captured.err
    assert "hunter2" not in captured.err + captured.out
    n = len(read_log(log))
    assert 1 <= n <= 3 and count_frames(out) == n and "stopped: error" in captured.out


def expect_error(capsys, argv, match, **kw):
    with pytest.raises(SystemExit) as info:
        run(argv, **kw)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert any(line.startswith(("error:", "usage:")) for line in err.splitlines())
    assert re.search(match, err), err
    return err


def test_error_paths(engines, clip, tmp_path, capsys):
    video, labels = clip
    base = ["--engines", engines, "--source", video, "--headless"]
    bad_labels = tmp_path / "bad.json"
    bad_labels.write_text('["purple"]')
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"\0" * 64)
    cases = [
        (["--engines", tmp_path / "nope", "--source", video], r"engines folder .*nope not found.*make engines"),
        (["--engines", engines.parent, "--source", video],
         r"has no manifest.json.*built models inside it: .*fake_model"),
        (base + ["--fps", 30, "--budget-ms", 20], r"argument --budget-ms: not allowed with argument --fps"),
        (base + ["--budget-ms", 0], r"--budget-ms: should be a positive number of milliseconds; got '0'"),
        (base + ["--budget-ms", -5], r"--budget-ms: should be a positive"),
        (base + ["--fps", "fast"], r"--fps: should be a positive number of frames per second"),
        (base + ["--max-frames", 0], r"--max-frames: should be a positive integer"),
        (base + ["--reconnects", -1], r"--reconnects should be 0 or more"),
        (base + ["--output", tmp_path / "a.gif"], r"unsupported extension"),
        (base + ["--output", tmp_path / "no" / "a.avi"], r"folder .* does not exist"),
        (base + ["--log", tmp_path / "no" / "f.jsonl"], r"cannot write the log"),
        (base + ["--labels", tmp_path / "none.json"], r"labels file .*none.json not found"),
        (base + ["--labels", bad_labels], r"label 'purple' is neither"),
        (["--engines", engines, "--source", tmp_path / "missing.mp4"], r"is not a camera, stream, existing file"),
        (["--engines", engines, "--source", broken, "--headless"], r"could not open video file .*broken.avi"),
    ]
    for argv, match in cases:
        expect_error(capsys, argv, match)
    err = expect_error(capsys, ["--engines", engines, "--source", "rtsp://me:hunter2@127.0.0.1:1/x", "--headless"],
                       r"could not open stream rtsp://\*\*\*@127.0.0.1:1/x: check the address")
    assert "hunter2" not in err


def test_csi_without_gstreamer_is_explained(engines, capsys):
    from pipeline.video.sources import video_backends

    if video_backends()["GStreamer"]:
        pytest.skip("this OpenCV has GStreamer; the error needs one without")
    expect_error(capsys, ["--engines", engines, "--source", "csi://0", "--headless"],
                 r"csi://0 needs OpenCV built with GStreamer.*getBuildInformation")


def test_as_a_script_errors_have_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "apps" / "camera.py"), "--engines", str(tmp_path / "none"),
                           "--source", "0"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: engines folder") and "Traceback" not in proc.stderr


def test_frames_reach_the_cascade_at_its_size_and_colour_order():
    frame = colour_frame(0, 1, (37, 53))  # blue, odd size
    out = to_model_input(frame, (16, 16), "RGB")
    assert out.shape == (16, 16, 3) and out[0, 0].tolist()[2] > 200  # blue is last in RGB


def test_headless_is_automatic_without_a_display(engines, clip, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video, _ = clip
    code, _ = run(["--engines", engines, "--source", video, "--max-frames", 2])
    assert code == 0
    assert "running headless" in capsys.readouterr().err


def test_with_the_real_cascade_class(engines, clip, tmp_path, capsys):
    """The app against the runtime's own Cascade (``frame_size``, CascadeResult), over a chain double."""
    import numpy as np

    from pipeline.backends.base import StageChain
    from pipeline.runtime.cascade import Cascade
    from pipeline.runtime.deadline import LatencyPredictor

    class ColourChain(StageChain):
        backend, precision = "double", "fp32"
        num_stages = 3

        def activate(self):
            pass

        def set_frame(self, frame):
            assert frame.shape == (1, 32, 32, 3) and frame.dtype == np.uint8
            self.means = frame.reshape(-1, 3).mean(0)  # (3,) B, G, R

        def run(self, stage):
            return (self.means * stage / 10.0).astype(np.float32)[None]  # (1, 3): surer with depth

    video, labels = clip
    cascade = Cascade(ColourChain(), ["blue", "green", "red"], [0.99, 0.999, 1.0], LatencyPredictor(3, [1.0] * 3),
                      frame_size=(32, 32), colour_order="BGR")
    log = tmp_path / "f.jsonl"
    code = main(["--engines", str(engines), "--source", str(video), "--headless", "--labels", str(labels),
                 "--budget-ms", "100", "--log", str(log)], cascade_factory=Factory(cascade))
    assert code == 0
    records = read_log(log)
    assert len(records) == len(PLAN) and {r["stopped_by"] for r in records} <= {"confidence", "deadline", "last-exit"}
    assert "accuracy: 100.0% (12/12 labelled frames)" in capsys.readouterr().out


def test_model_input_from_either_attribute():
    class Runtime:
        frame_size, colour_order = (32, 24), ""

    assert model_input(Runtime()) == ((32, 24), "BGR")  # no order in the manifest: the project's BGR
    assert model_input(FakeCascade(input_size=(8, 9), colour_order="RGB")) == ((8, 9), "RGB")
    Runtime.frame_size = None
    with pytest.raises(PipelineError, match="input size is not fixed"):
        model_input(Runtime())
