"""The frame stream interface: what every stream hands out and what it reads from.

Live captures, video files and image folders all satisfy :class:`FrameStream`, so the camera
loop does not care which one it has. A source is the part of ``cv2.VideoCapture`` a stream uses;
tests inject a double (anything with ``read() -> (ok, image)`` and ``release()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class FrameSource(Protocol):
    """The part of ``cv2.VideoCapture`` a stream uses."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


@dataclass
class Frame:
    """One image from a stream, with where it came from and how long the read waited for it."""

    image: np.ndarray  # as the source gives it: (H, W), (H, W, 1|3|4), uint8 or uint16
    index: int  # 0-based position in the source; live: capture sequence number, so gaps are drops
    name: str | None = None  # the image file, for sources that are folders of images
    waited_s: float = 0.0  # idle time inside read(): waiting for a live frame or for the pace
    timestamp: float = 0.0  # the stream's clock when the frame was captured


class FrameStream(Protocol):
    """What the camera loop reads frames from, whatever the source."""

    name: str  # redacted
    live: bool
    fps: float | None  # the source's nominal rate, when it says
    dropped: int
    @property
    def finished(self) -> bool:
        """No more frames will come (end of file, closed, or failed)."""

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None at the end, on close, or when ``timeout`` (s) passes with none."""

    def close(self) -> None: ...


def release_quietly(src: Any) -> None:
    """Release ``src``, ignoring an error: a broken source may fail to close too."""
    try:
        src.release()
    except Exception:  # nothing more to do with it
        pass
