"""A latest-frame thread for live sources, with bounded reconnects.

A live camera keeps producing while we classify. Reading it in the loop would hand us frames
that queued up while the previous one was processed, each older than the last; instead a thread
reads continuously and keeps only the newest frame, counting the ones nobody took (drops). When
the source stops giving frames (disconnect, end of stream, or a read blocked for longer than the
stall timeout) the thread reopens it with exponential backoff, a bounded number of times, then
fails with an error that the next ``read`` raises. Tests inject a source double, a clock and a sleep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pipeline.errors import PipelineError
from pipeline.video.sources import redact
from pipeline.video.stream import Frame, FrameSource, release_quietly

_POLL_S = 0.05  # how often a waiting read() wakes to check for a stall or a stop


class LatestFrameCapture:
    """Reads a live source on a thread, keeping only the newest frame.

    ``open_source`` opens (or reopens) the source and raises if it cannot; ``advice`` (what to
check) ends the final error unless the last problem already says it. The first open happens
    in :meth:`start`, so a source that never opens fails at once, without retries. After that,
    each failure (no frame, or a read blocked longer than ``stall_timeout_s``) is followed by a
    reconnect after a backoff of ``backoff_s * 2**(n-1)`` (capped at ``backoff_max_s``); after
    ``max_reconnects`` consecutive attempts without a frame, :meth:`read` raises a PipelineError.
    """

    live = True

    def __init__(self, open_source: Callable[[], FrameSource], name: str, *, advice: str = "",
                 stall_timeout_s: float = 5.0, max_reconnects: int = 5, backoff_s: float = 0.5,
                 backoff_max_s: float = 8.0, fps: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Any] | None = None):
        self.name = redact(name)
        self.fps = fps
        self.stall_timeout_s = stall_timeout_s
        self.max_reconnects = max_reconnects
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self._open, self._advice, self._clock = open_source, advice, clock
        self._closed_event = threading.Event()
        self._sleep = sleep or self._closed_event.wait  # the default wakes at once on close()
        self._cond = threading.Condition()
        self._latest: Frame | None = None  # the newest frame not yet read
        self._gen = 0  # bumped when a stalled worker is abandoned; its late frames are ignored
        self._failures = 0  # consecutive failures since the last good frame
        self._reading_since: float | None = None  # when the current worker entered src.read()
        self._problem = ""
        self._error: PipelineError | None = None
        self._closed = False
        self._threads: list[threading.Thread] = []
        self.captured = 0  # frames taken from the source
        self.dropped = 0  # frames replaced by a newer one before anyone read them
        self.reconnects = 0  # reopen attempts
        self.backoffs: list[float] = []  # the delays waited before each attempt

    # -- consumer side -------------------------------------------------------------------------

    def start(self) -> LatestFrameCapture:
        src = self._open()
        self._spawn(src)
        return self

    @property
    def finished(self) -> bool:
        with self._cond:
            return self._latest is None and (self._closed or self._error is not None)

    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet read, waiting for one if needed.

        Returns None after :meth:`close` or when ``timeout`` seconds pass without a new frame;
        raises the capture's PipelineError once reconnecting has failed.
        """
        t_call = self._clock()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._latest is not None:
                    frame, self._latest = self._latest, None
                    frame.waited_s = max(0.0, frame.timestamp - t_call)  # 0 when it was already waiting
                    return frame
                if self._error is not None:
                    raise self._error
                if self._closed:
                    return None
                since = self._reading_since
                if since is not None and self._clock() - since > self.stall_timeout_s:
                    self._abandon_stalled()
                wait = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
                if wait <= 0:
                    return None
                self._cond.wait(wait)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._closed_event.set()
        for t in self._threads:
            t.join(timeout=1.0)  # a worker stuck inside a read is a daemon; let it go

    def __enter__(self) -> LatestFrameCapture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- worker side ---------------------------------------------------------------------------

    def _spawn(self, src: FrameSource | None) -> None:
        t = threading.Thread(target=self._worker, args=(self._gen, src), daemon=True,
                             name=f"capture-{self._gen}")
        self._threads.append(t)
        t.start()

    def _current(self, gen: int) -> bool:
        return not self._closed and gen == self._gen

    def _abandon_stalled(self) -> None:
        """Called with the lock held: the worker is stuck in a read; start a fresh one that reopens."""
        self._gen += 1
        self._failures += 1
        self._reading_since = None
        self._problem = f"no frame for {self.stall_timeout_s:g} s (the source stalled)"
        self._spawn(None)

    def _worker(self, gen: int, src: FrameSource | None) -> None:
        try:
            while True:
                if src is None:
                    src = self._reconnect(gen)
                    if src is None:
                        return
                with self._cond:
                    if not self._current(gen):
                        return
                    self._reading_since = self._clock()
                try:
                    ok, image = src.read()
                    problem = "the source gave no frame (disconnected, ended or timed out)"
                except Exception as exc:  # a backend error is one more failure to recover from
                    ok, image, problem = False, None, f"reading failed: {redact(str(exc))}"
                now = self._clock()
                with self._cond:
                    if not self._current(gen):
                        return
                    self._reading_since = None
                    if ok and image is not None:
                        self._failures = 0
                        if self._latest is not None:
                            self.dropped += 1
                        self._latest = Frame(image, self.captured, timestamp=now)
                        self.captured += 1
                        self._cond.notify_all()
                        continue
                    self._failures += 1
                    self._problem = problem
                release_quietly(src)
                src = None
        finally:
            if src is not None:
                release_quietly(src)

    def _reconnect(self, gen: int) -> FrameSource | None:
        """Backoff, reopen; repeat until a source opens, or give up after the bounded attempts."""
        while True:
            with self._cond:
                if not self._current(gen):
                    return None
                if self._failures > self.max_reconnects:
                    advice = "" if not self._advice or self._advice.lower() in self._problem.lower() \
                        else f". {self._advice[:1].upper()}{self._advice[1:]}"  # once, not twice
                    waits = f" (backoff {', '.join(f'{d:g}' for d in self.backoffs)} s)" if self.backoffs else ""
                    self._error = PipelineError(redact(
                        f"lost {self.name}: no frame after {self.max_reconnects} reconnect attempts{waits}; "
                        f"last problem: {self._problem}{advice}".rstrip(". ") + "."))
                    self._cond.notify_all()
                    return None
                delay = min(self.backoff_s * 2 ** (self._failures - 1), self.backoff_max_s)
                self.backoffs.append(delay)
            self._sleep(delay)
            with self._cond:
                if not self._current(gen):
                    return None
                self.reconnects += 1
            try:
                return self._open()
            except Exception as exc:
                with self._cond:
                    self._failures += 1
                    self._problem = f"reopening failed: {redact(str(exc))}"
