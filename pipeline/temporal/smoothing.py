"""A steadier answer to show: an exponential moving average of the softmax over frames, reset on a cut.

``shown = s * shown + (1 - s) * p`` for each frame's softmax ``p`` (a reused frame folds in the
reused answer's softmax again), so a one-frame wobble of the classifier moves the shown class
only when it is large; ``s = 0`` shows each frame's own answer. A cut starts the average afresh
from the new frame: the old scene's classes never leak into the new one.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import PipelineError


class SoftmaxSmoother:
    """Folds (C,) softmax vectors in; :attr:`label` and :attr:`confidence` are what to show."""

    def __init__(self, smoothing: float):
        if not 0 <= smoothing < 1:
            raise PipelineError(f"smoothing should be in [0, 1) (the weight of past frames); got {smoothing!r}")
        self.smoothing = float(smoothing)
        self.mean: np.ndarray | None = None  # (C,) float64

    def update(self, probs: np.ndarray, reset: bool = False) -> tuple[int, float]:
        """Fold ``probs`` (C,) in (or start again from it when ``reset``); returns (label, confidence) shown."""
        if self.mean is None or reset or self.mean.shape != probs.shape:
            self.mean = np.array(probs, dtype=np.float64)
        else:
            self.mean *= self.smoothing
            self.mean += (1.0 - self.smoothing) * probs
        return self.label, self.confidence

    @property
    def label(self) -> int:
        return -1 if self.mean is None else int(self.mean.argmax())

    @property
    def confidence(self) -> float:
        return 0.0 if self.mean is None else float(self.mean.max())

    def reset(self) -> None:
        self.mean = None
