"""Frame streams: a latest-frame thread for live sources, in-order readers for files and images.

:func:`open_stream` picks the stream for a source: a live one gets a
:class:`~pipeline.video.latest.LatestFrameCapture` (newest frame only, drops counted, bounded
reconnects), a video file a :class:`~pipeline.video.readers.VideoFileReader` and a folder of
images an :class:`~pipeline.video.readers.ImageReader` (every frame, in order, optionally paced).
Every stream has the same small interface (:class:`~pipeline.video.stream.FrameStream`); the
names of those modules are importable from here too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pipeline.video.latest import LatestFrameCapture
from pipeline.video.readers import ImageReader, VideoFileReader
from pipeline.video.sources import SourceSpec, open_advice, open_capture
from pipeline.video.stream import Frame, FrameSource, FrameStream, release_quietly

__all__ = ["Frame", "FrameSource", "FrameStream", "ImageReader", "LatestFrameCapture", "VideoFileReader",
           "open_stream", "release_quietly"]


def open_stream(spec: SourceSpec, *, pace: bool = False, pace_fps: float | None = None,
                stall_timeout_s: float = 5.0, max_reconnects: int = 5,
                opener: Callable[..., FrameSource] | None = None,
                clock: Callable[[], float] = time.monotonic) -> FrameStream:
    """Open ``spec`` as a :class:`FrameStream`.

    ``pace``: hand out a file's frames at its own rate (images at ``pace_fps``; a file that
    states no rate falls back to ``pace_fps``). ``opener(spec, read_timeout_s=...)`` opens a
    video source (default :func:`~pipeline.video.sources.open_capture`); tests pass a double.
    """
    import cv2

    opener = opener or open_capture
    if spec.kind == "images":
        return ImageReader(spec.paths, spec.name, fps=pace_fps if pace else None, clock=clock)
    if spec.kind == "file":
        cap = opener(spec)
        fps = _nominal_fps(cap, cv2) or pace_fps
        return VideoFileReader(cap, spec.name, fps=fps, pace=pace, clock=clock)
    capture = LatestFrameCapture(lambda: opener(spec, read_timeout_s=stall_timeout_s), spec.name,
                                 advice=open_advice(spec), stall_timeout_s=stall_timeout_s,
                                 max_reconnects=max_reconnects, clock=clock)
    first = capture._open()  # fail now, clearly, if it never opens; the worker takes it over
    capture.fps = _nominal_fps(first, cv2)
    capture._spawn(first)
    return capture


def _nominal_fps(cap: Any, cv2: Any) -> float | None:
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
    except Exception:
        return None
    return fps if 0 < fps < 1000 else None
