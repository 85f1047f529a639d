"""Test doubles for the camera app: a fake cascade with a fake clock, source doubles, clips."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from pipeline.runtime.cascade import CascadeResult
from pipeline.runtime.interface import AnytimeRuntime

CLASSES = ["blue", "green", "red"]  # the dominant channel of a frame, in BGR order
# (label, wanted exit) of the camera tests' clip: 12 frames, every class and every exit
PLAN = [(0, 1), (1, 1), (2, 1), (0, 2), (1, 2), (2, 2), (0, 3), (1, 3), (2, 3), (2, 1), (1, 1), (0, 1)]
# (dominant, others) channel values per wanted exit: purer colours are "easier" and exit earlier
LEVELS = {1: (230, 20), 2: (180, 80), 3: (140, 110)}


class FakeClock:
    """A clock that moves only when told: ``clock()`` reads it, ``advance(s)`` moves it."""

    def __init__(self, start: float = 100.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:  # a sleep that takes no real time
        self.now += seconds


class FakeCascade(AnytimeRuntime[CascadeResult]):
    """Labels a frame by its dominant colour; exits later the less pure the colour is.

    Each stage "takes" ``stage_ms`` on ``clock``; with a budget, a stage that would not fit is not
    run (stage 1 always runs), as the real cascade does.
    """

    classes: Sequence[str] = CLASSES
    num_exits = 3
    backend = "fake"
    precision = "fp32"
    policy = "default"
    frame_size: tuple[int, int] | None = None
    colour_order = "BGR"
    resize_shorter = 0
    notes: Sequence[str] = ()

    def __init__(self, clock: FakeClock | None = None, stage_ms: float = 1.0,
                 input_size: tuple[int, int] = (16, 16), colour_order: str = "BGR", on_classify=None):
        self.clock, self.stage_ms = clock, stage_ms
        self.input_size, self.colour_order = input_size, colour_order
        self.frame_size = input_size
        self.on_classify = on_classify
        self.calls: list[tuple[tuple[int, ...], float | None]] = []
        self.closed = 0

    def close(self) -> None:
        self.closed += 1

    def classify(self, frame: np.ndarray, budget_ms: float | None = None) -> CascadeResult:
        assert frame.dtype == np.uint8 and frame.shape == (*self.input_size, 3) and frame.flags.c_contiguous
        self.calls.append((frame.shape, budget_ms))
        means = frame.reshape(-1, 3).mean(0)  # (3,) B, G, R
        order = np.argsort(means)[::-1]
        purity = means[order[0]] - means[order[1]]
        wanted = 1 if purity > 150 else 2 if purity > 60 else 3
        stage_ms: list[float] = []
        stopped_by = "confidence" if wanted < self.num_exits else "last-exit"
        for k in range(1, wanted + 1):
            if k > 1 and budget_ms is not None and sum(stage_ms) + self.stage_ms > budget_ms:
                stopped_by = "deadline"
                break
            if self.clock is not None:
                self.clock.advance(self.stage_ms / 1000)
            stage_ms.append(self.stage_ms)
        total = sum(stage_ms)
        if self.on_classify is not None:
            self.on_classify(len(self.calls))
        return CascadeResult(int(order[0]), CLASSES[order[0]], float(min(1.0, purity / 255 + 0.1)), len(stage_ms),
                          self.num_exits, stage_ms, total, budget_ms,
                          None if budget_ms is None else total <= budget_ms, stopped_by)


def colour_frame(label: int, exit: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A solid (H, W, 3) BGR frame whose dominant channel is ``label``, pure enough to exit at ``exit``."""
    dominant, other = LEVELS[exit]
    frame = np.full((*size, 3), other, np.uint8)
    frame[:, :, label] = dominant
    return frame


def write_clip(path: Path, plan: list[tuple[int, int]], fps: float = 10.0, size: tuple[int, int] = (48, 64)) -> Path:
    """An MJPG .avi with one solid frame per (label, exit) in ``plan``."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size[1], size[0]))
    assert writer.isOpened()
    for label, exit in plan:
        writer.write(colour_frame(label, exit, size))
    writer.release()
    return path


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


class SourceDouble:
    """A live source: numbered (4, 4, 3) frames as fast as read, with optional failure modes.

    ``fail_after``: read returns (False, None) from that frame on (a disconnect).
    ``block_after``: read blocks from that frame on until ``unblock`` is set (a stall).
    ``gate``: when given, each read waits for one permit, so a test decides how many frames exist.
    """

    def __init__(self, fail_after: int | None = None, block_after: int | None = None,
                 gate: threading.Semaphore | None = None, period_s: float = 0.0, start: int = 0):
        self.fail_after, self.block_after, self.gate, self.period_s = fail_after, block_after, gate, period_s
        self.count, self.start = 0, start
        self.released = False
        self.blocking = threading.Event()
        self.unblock = threading.Event()

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.fail_after is not None and self.count >= self.fail_after:
            return False, None
        if self.block_after is not None and self.count >= self.block_after:
            self.blocking.set()
            self.unblock.wait(10)
            return False, None
        if self.gate is not None:
            if not self.gate.acquire(timeout=10):
                return False, None
        if self.period_s:
            time.sleep(self.period_s)
        image = np.full((4, 4, 3), (self.start + self.count) % 256, np.uint8)
        self.count += 1
        return True, image

    def get(self, prop: int) -> float:
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self.released = True
