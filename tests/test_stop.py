"""Stopping a run: the exit codes after a signal, and a blocking call the main thread can walk away from."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from pipeline.errors import PipelineError
from pipeline.stop import StopFlag, call_interruptibly


def test_a_signal_sets_the_reason_and_the_exit_code():
    stop = StopFlag()
    before = signal.getsignal(signal.SIGTERM)
    stop.install()
    try:
        assert stop.exit_code == 0
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.reason == "SIGTERM" and stop.exit_code == 143
        with pytest.raises(KeyboardInterrupt):  # asked again while stopping
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGTERM) is before
    stop.reason = "SIGINT"
    assert stop.exit_code == 130


def test_call_interruptibly_returns_raises_or_walks_away():
    stop = StopFlag()
    assert call_interruptibly(lambda: 7, stop, discard=print) == 7

    def fails():
        raise PipelineError("could not open it")

    with pytest.raises(PipelineError, match="could not open it"):
        call_interruptibly(fails, stop, discard=print)

    release, discarded = threading.Event(), []

    def blocks():
        release.wait(10)
        return "late"

    threading.Timer(0.1, lambda: setattr(stop, "reason", "SIGINT")).start()
    t0 = time.monotonic()
    assert call_interruptibly(blocks, stop, discard=discarded.append) is None
    assert time.monotonic() - t0 < 1.0
    release.set()
    for _ in range(100):
        if discarded:
            break
        time.sleep(0.01)
    assert discarded == ["late"]  # what came too late was handed to discard, not leaked


def test_a_patient_flag_ignores_a_repeated_sigterm_and_any_repeat_while_holding():
    flag = StopFlag(patient=True)
    flag._handle(signal.SIGTERM, None)
    flag._handle(signal.SIGTERM, None)  # `timeout` signalling make and then its group
    with flag.hold():
        flag._handle(signal.SIGINT, None)  # a save in progress is not cut short
    assert flag.reason == "SIGTERM" and flag.exit_code == 143 and not flag.holding
    with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C outside a save still stops at once
        flag._handle(signal.SIGINT, None)
    impatient = StopFlag()
    impatient._handle(signal.SIGTERM, None)
    with pytest.raises(KeyboardInterrupt):
        impatient._handle(signal.SIGTERM, None)
