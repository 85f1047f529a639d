"""Stopping a run cleanly: Ctrl-C and SIGTERM set a flag the run looks at, even while a source opens.

A signal handler only sets :attr:`StopFlag.reason` (no locks in a handler); the frame loop and the
start-up look at it between steps. Opening a stream can block in OpenCV for the whole open timeout
(about 10 s for a network stream that does not answer), and Python runs signal handlers only
between bytecodes of the main thread, so the open runs on a helper thread while the main thread
waits in short slices: a stop asked for during the open acts within a fraction of a second. A
second Ctrl-C or SIGTERM raises KeyboardInterrupt at once.

A run stopped by a signal exits 128 + the signal's number once it has finished cleanly (130 for
SIGINT, 143 for SIGTERM), as shells and service managers expect.

Batch commands (the build, the latency profiler) have no frame loop to look at a flag:
:func:`stop_at_once` makes the first signal raise KeyboardInterrupt where the work is, so the
``finally`` blocks on the way out remove what was half-written, and then exits 130 or 143.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_POLL_S = 0.05


class StopFlag:
    """Why the run should stop (None: keep going); ``install`` routes SIGINT and SIGTERM here."""

    def __init__(self, at_once: bool = False, patient: bool = False) -> None:
        """``at_once``: the first signal raises KeyboardInterrupt (and later ones are ignored while the
        clean-up runs) instead of only setting the flag. ``patient``: a repeated SIGTERM is ignored (service
        managers and ``timeout`` may send more than one), and so is any repeat inside :meth:`hold` (work that
        must not be cut short, such as a save); a repeated Ctrl-C elsewhere still stops at once."""
        self.reason: str | None = None
        self.at_once = at_once
        self.patient = patient
        self.holding = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (only the main thread may); :meth:`restore` gives them back."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.reason is not None:  # asked again while stopping: stop now, finalising on the way out
            if self.at_once:
                return  # already unwinding: let the clean-up finish
            if self.patient and (self.holding or signum == signal.SIGTERM):
                return  # the run stops at its next safe point anyway
            raise KeyboardInterrupt
        self.reason = signal.Signals(signum).name
        if self.at_once:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Work that a repeated signal must not interrupt (a patient flag ignores every repeat inside)."""
        was, self.holding = self.holding, True
        try:
            yield
        finally:
            self.holding = was

    @property
    def exit_code(self) -> int:
        """128 + the signal's number when a signal stopped the run, else 0."""
        names = {s.name: int(s) for s in SIGNALS}
        return 128 + names[self.reason] if self.reason in names else 0


@contextlib.contextmanager
def stop_at_once() -> Iterator[StopFlag]:
    """SIGINT or SIGTERM interrupts the enclosed work at once; once the ``finally`` blocks have run,
    ``stopped: SIGTERM`` on stderr and SystemExit(143) (130 for SIGINT or a bare KeyboardInterrupt)."""
    stop = StopFlag(at_once=True)
    stop.install()
    try:
        yield stop
    except KeyboardInterrupt:
        print(f"stopped: {stop.reason or 'SIGINT'}", file=sys.stderr)
        raise SystemExit(stop.exit_code or 130) from None
    finally:
        stop.restore()


def call_interruptibly(func: Callable[[], T], stop: StopFlag, discard: Callable[[T], Any]) -> T | None:
    """``func()`` on a helper thread; None as soon as ``stop`` is set while it runs.

    Exceptions from ``func`` are raised here. A result that arrives after the caller gave up is
    passed to ``discard`` (e.g. a stream's ``close``) on the helper thread.
    """
    lock, done = threading.Lock(), threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            result = func()
        except BaseException as exc:  # handed to the caller, who raises it
            with lock:
                box["error"] = exc
            done.set()
            return
        with lock:
            abandoned = box.get("abandoned", False)
            if not abandoned:
                box["result"] = result
        if abandoned:
            discard(result)
        done.set()

    threading.Thread(target=work, daemon=True, name="open-source").start()
    while not done.wait(_POLL_S):
        if stop.reason is not None:
            with lock:
                if "result" not in box and "error" not in box:
                    box["abandoned"] = True
                    return None
            break
    if "error" in box:
        raise box["error"]
    return box["result"]
