"""The annotated video: opened on the first frame (whose size fixes the video's), checked when closed.

OpenCV's writer reports little. A frame it could not write (a full disk, a file size limit) is a
False from ``write`` in OpenCV 5 and nothing at all in OpenCV 4, and buffered frames fail only
when the file is closed. So the finished file is read back on close (its header's frame count,
and its last frame): one that does not hold every frame written is reported as incomplete
instead of a silent success.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError, file_size_limit, write_failure
from pipeline.video.outputs import check_output

VIDEO_CODECS = {".avi": "MJPG", ".mkv": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v"}
WHAT = "the annotated video"


def check_video_path(path: Path) -> str:
    """The codec for ``path``; a PipelineError for an extension without one or a path not writable."""
    codec = VIDEO_CODECS.get(path.suffix.lower())
    if codec is None:
        raise PipelineError(f"--output {path}: unsupported extension; use one of {', '.join(VIDEO_CODECS)}")
    check_output(path, WHAT)
    return codec


class VideoOutput:
    """Writes (H, W, 3) uint8 BGR frames to ``path``; ``fps`` may be set until the first frame."""

    def __init__(self, path: str | Path, fps: float = 30.0):
        self.path, self.fps = Path(path), fps
        self.codec = check_video_path(self.path)
        self._writer: Any = None
        self._size: tuple[int, int] | None = None
        self.frames = 0  # frames the writer accepted

    def _open(self, image: Any) -> None:
        import cv2

        self._size = (image.shape[1], image.shape[0])  # (W, H)
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.codec), self.fps, self._size)  # type: ignore[attr-defined]
        if self._writer.isOpened():
            return
        self._writer = None
        check_output(self.path, WHAT)  # the path may have changed since the start: say so first
        other = "try an .avi output (MJPG), which every OpenCV build can write" if self.path.suffix.lower() != ".avi" \
            else "check that this OpenCV can write video (cv2.getBuildInformation(): Video I/O)"
        raise PipelineError(f"OpenCV could not open {self.path} for writing with codec {self.codec}; {other}")

    def write(self, image: Any) -> None:
        import cv2

        if self._writer is None:
            self._open(image)
        if (image.shape[1], image.shape[0]) != self._size:  # a source that changed size mid-stream
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        if self._writer.write(image) is False:  # OpenCV 5; OpenCV 4 returns None whatever happened
            raise self._failure()
        self.frames += 1

    def _failure(self) -> PipelineError:
        """Why a write most likely failed: the disk, the size limit, or else the encoder."""
        limit = file_size_limit()
        try:
            size = os.path.getsize(self.path)
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            size, free = 0, None
        if limit is not None and size >= limit * 0.9:
            return write_failure(OSError(errno.EFBIG, "File too large"), WHAT, self.path)
        if free is not None and free < 1 << 20:
            return write_failure(OSError(errno.ENOSPC, "No space left on device"), WHAT, self.path)
        return PipelineError(f"OpenCV could not write frame {self.frames + 1} to {self.path} (codec {self.codec})")

    def close(self) -> None:
        """Finalise the file; a PipelineError when it does not read back as every frame written."""
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        why = self.read_back()
        if why:
            raise PipelineError(f"{WHAT} {self.path} is incomplete: {why} (a full disk or a file size limit?)")

    def read_back(self) -> str:
        """Why the finished file is not whole ('' when it is): its header's count and its last frame."""
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        try:
            if not cap.isOpened():
                return "it cannot be opened again"
            count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
            if 0 <= count < self.frames:
                return f"its header lists {int(count)} of the {self.frames} frames written"
            cap.set(cv2.CAP_PROP_POS_FRAMES, self.frames - 1)
            if not cap.read()[0]:
                return f"its last frame ({self.frames}) cannot be read back"
            return ""
        finally:
            cap.release()
