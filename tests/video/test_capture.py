"""Frame streams: the latest-frame thread (drops, reconnects, stalls) and in-order file readers."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.video.capture import ImageReader, LatestFrameCapture, VideoFileReader, open_stream
from pipeline.video.sources import parse_source
from tests.video.fakes import FakeClock, SourceDouble


def wait_until(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.002)


class Opener:
    """Hands out the given sources (or raises the given exceptions) in turn, counting calls."""

    def __init__(self, *items):
        self.items, self.calls = list(items), 0

    def __call__(self, *args, **kwargs):
        item = self.items[min(self.calls, len(self.items) - 1)]
        self.calls += 1
        if isinstance(item, Exception):
            raise item
        return item


def capture(opener, **kw):
    kw.setdefault("sleep", lambda s: None)
    return LatestFrameCapture(opener, "rtsp://user:secret@cam/live", **kw)


def test_keeps_only_the_newest_frame_and_counts_drops():
    gate = threading.Semaphore(0)
    src = SourceDouble(gate=gate)
    with capture(Opener(src)) as cap:
        gate.release(5)  # the source produces 5 frames before anyone reads
        wait_until(lambda: cap.captured == 5)
        frame = cap.read(timeout=1)
        assert frame.index == 4 and int(frame.image[0, 0, 0]) == 4  # the newest, not the oldest
        assert cap.dropped == 4 and frame.waited_s == 0.0
        assert cap.read(timeout=0.05) is None  # nothing newer yet
        gate.release(1)
        assert cap.read(timeout=1).index == 5
        assert cap.dropped == 4
        gate.release(100)  # let the worker out of its read, to see close() stop it
    assert cap.finished and cap.read(timeout=0.1) is None
    wait_until(lambda: src.released)


def test_a_fast_source_and_a_slow_reader():
    src = SourceDouble(period_s=0.001)  # ~1000 frames/s against a reader at ~50 frames/s
    with capture(Opener(src)) as cap:
        got = []
        for _ in range(5):
            got.append(cap.read(timeout=2).index)
            time.sleep(0.02)
        with cap._cond:
            pending = cap._latest is not None
            assert cap.captured == len(got) + cap.dropped + pending
    assert got == sorted(set(got)) and cap.dropped > 0


def test_reconnects_with_backoff_after_a_disconnect():
    sleeps = []
    first, second = SourceDouble(fail_after=2), SourceDouble(start=100)
    opener = Opener(first, PipelineError("refused"), second)
    cap = LatestFrameCapture(opener, "cam", sleep=sleeps.append, max_reconnects=3, backoff_s=0.5)
    cap.start()
    try:
        indices = set()
        while True:
            frame = cap.read(timeout=2)
            assert frame is not None
            if int(frame.image[0, 0, 0]) >= 100:  # from the reopened source
                break
            indices.add(frame.index)
        assert sleeps == [0.5, 1.0] and cap.reconnects == 2 and opener.calls == 3
        assert first.released
        assert not cap.finished
    finally:
        cap.close()


def test_gives_up_after_bounded_attempts_with_a_clear_redacted_error():
    sleeps = []
    opener = Opener(SourceDouble(fail_after=1), PipelineError("could not open stream rtsp://user:secret@cam/live"))
    cap = capture(opener, sleep=sleeps.append, max_reconnects=4, backoff_s=0.25, backoff_max_s=1.0)
    cap.start()
    lost = r"lost rtsp://\*\*\*@cam/live: no frame after 4 reconnect attempts"
    with pytest.raises(PipelineError, match=lost) as info:
        for _ in range(10):
            cap.read(timeout=2)
    assert sleeps == [0.25, 0.5, 1.0, 1.0]  # exponential, capped
    assert "reopening failed" in str(info.value) and "secret" not in str(info.value)
    assert cap.finished
    with pytest.raises(PipelineError):  # and it keeps saying so
        cap.read(timeout=0.1)
    cap.close()


def test_a_source_that_never_opens_fails_at_once():
    with pytest.raises(PipelineError, match="no camera"):
        capture(Opener(PipelineError("no camera"))).start()


def test_a_stalled_read_is_abandoned_and_the_source_reopened():
    clock = FakeClock()
    sleeps = []
    gate = threading.Semaphore(0)
    stuck, fresh = SourceDouble(block_after=1), SourceDouble(start=50, gate=gate)
    cap = LatestFrameCapture(Opener(stuck, fresh), "cam", stall_timeout_s=5.0, clock=clock,
                             sleep=sleeps.append, backoff_s=0.5)
    cap.start()
    try:
        assert cap.read(timeout=2).index == 0
        assert stuck.blocking.wait(2)  # the worker is inside a read that will not return
        assert cap.read(timeout=0.1) is None  # not yet a stall: the clock has not moved
        clock.advance(6.0)
        gate.release(1)
        frame = cap.read(timeout=2)
        assert int(frame.image[0, 0, 0]) == 50 and sleeps == [0.5] and cap.reconnects == 1
        assert "stalled" in cap._problem
    finally:
        stuck.unblock.set()
        gate.release(100)
        cap.close()
    wait_until(lambda: stuck.released)  # the abandoned worker let go of its source when the read returned


def test_video_file_read_in_order_every_frame(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (16, 12))
    values = [0, 40, 80, 120, 160, 200, 240]
    for v in values:
        writer.write(np.full((12, 16, 3), v, np.uint8))
    writer.release()
    stream = open_stream(parse_source(str(path)))
    assert not stream.live and stream.fps == pytest.approx(10.0)
    frames = []
    while (f := stream.read()) is not None:
        frames.append(f)
    assert [f.index for f in frames] == list(range(len(values)))
    assert [round(float(f.image.mean()) / 40) * 40 for f in frames] == values
    assert stream.finished and stream.dropped == 0


def test_video_file_pacing_at_its_fps():
    clock = FakeClock()
    sleeps = []

    def sleep(s):
        sleeps.append(round(s, 6))
        clock.advance(s)

    class Three(SourceDouble):
        def read(self):
            clock.advance(0.03)  # decoding takes 30 ms
            return super().read() if self.count < 3 else (False, None)

    reader = VideoFileReader(Three(), "clip", fps=10.0, pace=True, clock=clock, sleep=sleep)
    waits = [reader.read().waited_s for _ in range(3)]
    assert reader.read() is None
    assert sleeps == [0.07, 0.07] and waits[0] == 0.0  # the first frame at once, then one per 100 ms
    assert waits[1:] == [pytest.approx(0.07)] * 2


def test_an_empty_video_is_an_error():
    reader = VideoFileReader(SourceDouble(fail_after=0), "empty.avi")
    with pytest.raises(PipelineError, match="empty.avi opened but no frame could be decoded"):
        reader.read()


def test_image_folder_in_natural_order_keeps_grey_and_alpha(tmp_path):
    cv2.imwrite(str(tmp_path / "img10.png"), np.full((4, 4, 4), 10, np.uint8))  # BGRA
    cv2.imwrite(str(tmp_path / "img2.png"), np.full((5, 3), 2, np.uint8))  # grey
    cv2.imwrite(str(tmp_path / "img1.png"), np.full((4, 4, 3), 1, np.uint8))
    stream = open_stream(parse_source(str(tmp_path)))
    frames = [stream.read() for _ in range(3)]
    assert stream.read() is None and stream.finished
    assert [f.name.rsplit("/", 1)[1] for f in frames] == ["img1.png", "img2.png", "img10.png"]
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.image.shape for f in frames] == [(4, 4, 3), (5, 3), (4, 4, 4)]


def test_unreadable_image_is_named(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(PipelineError, match="could not read image .*broken.png"):
        ImageReader([str(bad)], "x").read()


def test_open_stream_live_uses_the_opener_and_its_fps():
    calls = []

    def opener(spec, read_timeout_s=None):
        calls.append((spec.kind, read_timeout_s))
        return SourceDouble(period_s=0.001)

    stream = open_stream(parse_source("rtsp://u:p@cam/x"), stall_timeout_s=2.0, opener=opener)
    try:
        assert stream.live and stream.fps == 25.0 and stream.name == "rtsp://***@cam/x"
        assert stream.read(timeout=2) is not None
        assert calls == [("stream", 2.0)]
    finally:
        stream.close()
