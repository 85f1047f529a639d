"""Chain doubles timed on a fake clock, and frames, for the profiler's tests."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.backends.base import StageChain
from pipeline.thresholds import softmax
from tests.helpers import tiny_build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return tiny_build(tmp_path_factory)


class TimedChain(StageChain):
    """Stage k takes ``stage_ms[k - 1]`` on the fake clock (set_frame takes ``frame_ms``); logits are scripted."""

    backend, precision = "double", "fp32"

    def __init__(self, stage_ms, clock, frame_ms=0.0, logits=None, events=None):
        self.stage_ms, self.clock, self.frame_ms = list(stage_ms), clock, frame_ms
        self.logits = logits  # (N, K, C) or None
        self.events = events  # device ms per stage for last_run_ms, or None
        self.frames, self.activations, self._last = 0, 0, None
        self.slowdown = lambda: 1.0  # factor on every stage time: the machine's speed drifting

    @property
    def num_stages(self) -> int:
        return len(self.stage_ms)

    def activate(self) -> None:
        self.activations += 1

    def set_frame(self, frame: np.ndarray) -> None:
        assert frame.shape[0] == 1 and frame.dtype == np.uint8
        self.clock.t += self.frame_ms / 1e3
        self.frames += 1

    def run(self, stage: int) -> np.ndarray:
        self.clock.t += self.stage_ms[stage - 1] * self.slowdown() / 1e3
        self._last = stage
        if self.logits is None:
            return np.zeros((1, 3), dtype=np.float32)
        return self.logits[self.frames - 1, stage - 1][None].copy()


class EventChain(TimedChain):
    def last_run_ms(self):
        return self.events[self._last - 1]


def frames(n=4, h=8, w=8):
    return np.random.default_rng(0).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def synthetic_probs(n=200, k=3, c=4, seed=0):
    """(N, K, C) softmax outputs whose later exits are surer of the label, and (N,) labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=n)
    logits = rng.normal(size=(n, k, c)) + np.arange(1, k + 1)[None, :, None] * np.eye(c)[labels][:, None, :]
    return softmax(logits.astype(np.float32)), labels
