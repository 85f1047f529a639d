"""In-order readers for sources that are not live: video files and lists of images.

Every frame is read, in order, optionally paced at the file's frame rate so a recorded clip
plays like the camera that made it. Tests inject a source double, a clock and a sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.errors import PipelineError
from pipeline.video.stream import Frame, FrameSource, release_quietly


class _Pacer:
    """Waits so that frame i is handed out no sooner than ``i / fps`` after the first one."""

    def __init__(self, fps: float | None, clock: Callable[[], float], sleep: Callable[[float], Any]):
        self.fps, self._clock, self._sleep = fps, clock, sleep
        self._t0: float | None = None

    def wait(self, index: int) -> float:
        if not self.fps:
            return 0.0
        now = self._clock()
        if self._t0 is None:
            self._t0 = now - index / self.fps
        delay = self._t0 + index / self.fps - now
        if delay <= 0:  # behind schedule: every frame is still processed, none are skipped
            return 0.0
        self._sleep(delay)
        return delay


class VideoFileReader:
    """Every frame of a video file, in order; paced at ``fps`` when given."""

    live = False
    dropped = 0

    def __init__(self, capture: FrameSource, name: str, fps: float | None = None, pace: bool = False,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Any] = time.sleep):
        self.name, self.fps, self.finished = name, fps, False
        self._cap, self._clock, self._index = capture, clock, 0
        self._pacer = _Pacer(fps if pace else None, clock, sleep)

    def read(self, timeout: float | None = None) -> Frame | None:
        if self.finished:
            return None
        ok, image = self._cap.read()
        if not ok or image is None:
            self.close()
            if self._index == 0:
                raise PipelineError(f"video file {self.name} opened but no frame could be decoded: "
                                    "check it with ffprobe, or re-encode it (e.g. MJPG in .avi, H.264 in .mp4)")
            return None
        waited = self._pacer.wait(self._index)  # after decoding, so decoding overlaps the wait
        frame = Frame(image, self._index, waited_s=waited, timestamp=self._clock())
        self._index += 1
        return frame

    def close(self) -> None:
        if not self.finished:
            self.finished = True
            release_quietly(self._cap)


class ImageReader:
    """Images from a list of paths, in that order; paced at ``fps`` when given."""

    live = False
    dropped = 0

    def __init__(self, paths: Sequence[str], name: str, fps: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Any] = time.sleep):
        self.name, self.fps, self.finished = name, fps, False
        self._paths, self._clock, self._index = list(paths), clock, 0
        self._pacer = _Pacer(fps, clock, sleep)

    def read(self, timeout: float | None = None) -> Frame | None:
        import cv2

        if self._index >= len(self._paths):
            self.finished = True
            return None
        path = self._paths[self._index]
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)  # keep grey / alpha / 16-bit: frames.py converts
        if image is None:
            raise PipelineError(f"could not read image {path}: it is missing or not an image OpenCV can decode")
        waited = self._pacer.wait(self._index)
        frame = Frame(image, self._index, name=path, waited_s=waited, timestamp=self._clock())
        self._index += 1
        return frame

    def close(self) -> None:
        self.finished = True
