"""How much a frame differs from another: the mean absolute difference of small grey thumbnails.

The measure runs on every frame, so it must cost next to nothing against stage 1. It reads the
frame the cascade is given (already at the model's input size), turns it grey, shrinks it to
``size`` x ``size`` (area averaging: sensor noise and a pixel of hand shake average out), and
removes the thumbnail's mean brightness, so that exposure flicker does not count as change. The
distance of two thumbnails is the mean absolute difference of their pixels, in grey levels
(0..255): 0 for the same frame, a few levels for noise, shake and slow drift, tens for a new scene.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import PipelineError

DEFAULT_THUMB = 16  # thumbnail side, pixels


class ChangeMeter:
    """Thumbnails of frames and the distance between two of them."""

    def __init__(self, size: int = DEFAULT_THUMB):
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise PipelineError(f"the change thumbnail should be at least 2 pixels wide; got {size!r}")
        self.size = size

    def thumb(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) or (1, H, W, 3) uint8 BGR or RGB -> (size, size) float32 grey thumbnail, mean 0."""
        import cv2

        image = frame[0] if frame.ndim == 4 else frame
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise PipelineError(f"expected an (H, W, 3) uint8 frame for the change measure, got shape "
                                f"{getattr(frame, 'shape', None)} {getattr(frame, 'dtype', type(frame).__name__)}")
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)  # (H, W) uint8; for RGB only the weights swap
        if grey.shape != (self.size, self.size):
            grey = cv2.resize(grey, (self.size, self.size), interpolation=cv2.INTER_AREA)
        thumb = grey.astype(np.float32)
        thumb -= cv2.mean(thumb)[0]  # OpenCV's calls: a few microseconds each where numpy's cost tens
        return thumb

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> float:
        """Mean absolute difference of two thumbnails, in grey levels."""
        import cv2

        return cv2.norm(a, b, cv2.NORM_L1) / a.size
