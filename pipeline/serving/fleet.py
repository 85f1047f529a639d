"""A fleet of simulated cameras against a Triton server (or the in-process cascade), bounded in time.

    anytime triton fleet --url 127.0.0.1:8000 --engines engines/ranet --data DATA \\
        --cameras 16 --fps 30 --seconds 10 --mode client|bls|local [--budget-ms 33.3] [--json out.json]

Camera i shows frame t at ``start + phase_i + t / fps`` with a deadline ``--budget-ms`` later (one
frame period by default). Each camera is a thread that takes the newest frame when it is free:
frames whose deadline passed while it was busy get no answer. Modes: ``client`` (the client
drives the cascade over the stage models, ``pipeline.serving.remote.remote_cascade``), ``bls``
(one request per frame to the ``cascade`` model) and ``local`` (one in-process ``Cascade`` per
camera, today's runtime). Every request's timeout is the time left to its frame's deadline, so
a slow, killed or restarted server costs frames their answers, never a stall; a camera says
once, on one line, when the server stops answering and when it answers again.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from pipeline.errors import PipelineError, cli_main
from pipeline.files import check_output, write_output
from pipeline.manifest import Manifest, load_manifest
from pipeline.serving.cameras import Feed
from pipeline.serving.report import IN_BUDGET, LATE, NO_ANSWER, Outcome, format_summary, summarize

MODES = ("client", "bls", "local", "batched")
IN_PROCESS = ("local", "batched")  # the modes that run the engines here, with no server
MAX_CAMERAS = 256  # each camera is a thread and, in process, a cascade of its own (sessions, buffers)
MAX_FPS = 1000.0  # a camera's frame rate
MAX_SECONDS = 3600.0  # a camera's clip, and a frame's budget
_PRINT = threading.Lock()


def say(line: str) -> None:
    """One whole line on stderr, whatever the other threads print."""
    with _PRINT:
        sys.stderr.write(line.rstrip("\n") + "\n")
        sys.stderr.flush()


@dataclass(frozen=True)
class FleetOptions:
    cameras: int = 1
    fps: float = 30.0
    seconds: float = 10.0
    mode: str = "client"
    budget_ms: float | None = None  # None: one frame period
    policy: str = "default"
    url: str = ""
    precision: str = "fp32"  # local mode's engines

    def check(self) -> None:
        if self.mode not in MODES:
            raise PipelineError(f"--mode should be one of {', '.join(MODES)}, got {self.mode!r}")
        if not (1 <= self.cameras <= MAX_CAMERAS) or not (0 < self.fps <= MAX_FPS) \
                or not (0 < self.seconds <= MAX_SECONDS):
            raise PipelineError(f"--cameras should be 1 to {MAX_CAMERAS}, --fps in (0, {MAX_FPS:g}], --seconds in "
                                f"(0, {MAX_SECONDS:g}]; got {self.cameras}, {self.fps}, {self.seconds}")
        if self.budget_ms is not None and not (0 < self.budget_ms < math.inf):
            raise PipelineError(f"--budget-ms should be a positive number of milliseconds, got {self.budget_ms}")
        if self.mode not in IN_PROCESS and not self.url:
            raise PipelineError(f"--mode {self.mode} needs --url, the server's HTTP address (host:port)")

    @property
    def budget_s(self) -> float:
        return (self.budget_ms if self.budget_ms is not None else 1e3 / self.fps) / 1e3


Classify = Callable[[np.ndarray, float], tuple[int, int]]  # (frame, deadline) -> (label, exit); raises RemoteFailure


def fallback_answer(logits: Sequence[np.ndarray], aggregate: str) -> int:
    """The label of the last exit that answered in time (the mean softmax of exits 1..k with "mean")."""
    probs = [np.exp(z.reshape(-1) - z.max()) / np.exp(z.reshape(-1) - z.max()).sum() for z in logits]
    chosen = np.mean(probs, axis=0) if aggregate == "mean" else probs[-1]
    return int(np.argmax(chosen))


def make_classifier(mode: str, manifest: Manifest, opts: FleetOptions, engines: Path,
                    start_ms: tuple[list[float], list[float]] | None) -> tuple[Classify, Callable[[], None]]:
    """One camera's (classify, close) in ``mode``."""
    from pipeline.serving.remote import Admission, CascadeModelClient, RemoteChain, remote_cascade
    from pipeline.serving.wire import RemoteFailure

    clock = time.perf_counter
    if mode == "bls":
        client = CascadeModelClient(opts.url, manifest)
        client.activate()

        def bls(frame: np.ndarray, deadline: float) -> tuple[int, int]:
            a = client.classify(frame, deadline)
            return a.label, a.exit

        return bls, client.close
    if mode == "local":
        from pipeline.runtime.cascade import Cascade

        local = Cascade.from_folder(engines, backend="onnxruntime", precision=opts.precision, policy=opts.policy)

        def run_local(frame: np.ndarray, deadline: float) -> tuple[int, int]:
            r = local.classify(frame, budget_ms=max(deadline - clock(), 1e-6) * 1e3)
            return r.label, r.exit

        return run_local, local.close
    cascade = remote_cascade(opts.url, manifest, opts.policy, start_ms)
    chain = cascade.chain
    assert isinstance(chain, RemoteChain)

    admission = Admission(start_ms[0][0] if start_ms is not None else 1.0)  # stage 1's round trip: the first answer

    def client_driven(frame: np.ndarray, deadline: float) -> tuple[int, int]:
        chain.set_deadline(deadline)
        left_ms = (deadline - clock()) * 1e3
        admission.admit(left_ms, "stage1")
        try:
            r = cascade.classify(frame, budget_ms=max(left_ms, 1e-3))
        except RemoteFailure:
            if not chain.frame_logits:  # not even stage 1 in time
                admission.missed(left_ms)
                raise
            admission.observe(chain.round_trips[0][-1])
            return fallback_answer(chain.frame_logits, cascade.aggregate), len(chain.frame_logits)
        admission.observe(chain.round_trips[0][-1])
        return r.label, r.exit

    return client_driven, cascade.close


class Camera(threading.Thread):
    """One camera's loop: the newest frame when free, answered by its deadline or not at all."""

    def __init__(self, index: int, feed: Feed, classify: Classify, t0: float, fps: float, budget_s: float,
                 end: float, clock: Callable[[], float] = time.perf_counter):
        super().__init__(name=f"camera-{index}", daemon=True)
        self.index, self.feed, self.classify = index, feed, classify
        self.t0, self.fps, self.budget_s, self.end, self.clock = t0, fps, budget_s, end, clock
        self.outcomes: list[Outcome] = []
        self.failing = ""  # why the server stopped answering ("" while it answers)

    def run(self) -> None:
        from pipeline.serving.wire import NotSent, RemoteFailure, RequestTimedOut, ServerUnavailable

        clock, period, nxt = self.clock, 1.0 / self.fps, 0
        while True:
            now = clock()
            tick = math.floor((now - self.t0) / period) if now >= self.t0 else -1
            if tick < nxt:  # wait for the next frame
                wake = self.t0 + nxt * period
                if wake >= self.end:
                    return
                time.sleep(max(0.0, wake - now))
                continue
            for skipped in range(nxt, tick):  # shown while this camera was busy: their deadlines passed
                truth = self.feed.at(skipped)[1]
                self.outcomes.append(Outcome(self.index, skipped, NO_ANSWER, None, truth, why="skipped"))
            arrival = self.t0 + tick * period
            if arrival >= self.end:
                return
            nxt, deadline = tick + 1, arrival + self.budget_s
            frame, truth = self.feed.at(tick)
            if clock() >= deadline:  # picked up too late to answer in time
                self.outcomes.append(Outcome(self.index, tick, NO_ANSWER, None, truth, why="skipped"))
                continue
            try:
                label, exit_ = self.classify(frame, deadline)
            except Exception as exc:  # noqa: BLE001  a camera's failure is its frame's, told on one line
                why = ("timeout" if isinstance(exc, RequestTimedOut) else "not sent" if isinstance(exc, NotSent) else
                       "unreachable" if isinstance(exc, ServerUnavailable) else "error")
                if not isinstance(exc, (RemoteFailure, PipelineError)):
                    exc = RuntimeError(f"{type(exc).__name__}: {' '.join(str(exc).split())}")
                self.outcomes.append(Outcome(self.index, tick, NO_ANSWER, None, truth, why=why))
                if why not in ("timeout", "not sent") and not self.failing:
                    self.failing = str(exc)
                    say(f"{self.feed.name}: no answer from the server ({exc}); its frames get no answer until it "
                        "answers again")
                continue
            ms = (clock() - arrival) * 1e3
            self.outcomes.append(Outcome(self.index, tick, IN_BUDGET if ms <= self.budget_s * 1e3 else LATE, ms, truth,
                                         label, exit_))
            if self.failing:
                self.failing = ""
                say(f"{self.feed.name}: the server answers again")


def run_fleet(manifest: Manifest, engines: Path, feeds: Sequence[Feed], opts: FleetOptions,
              start_ms: tuple[list[float], list[float]] | None = None) -> dict[str, Any]:
    """Run ``opts.cameras`` cameras for ``opts.seconds``; the summary, and the round trips the client measured."""
    from pipeline.serving.remote import RemoteChain, measure_round_trips

    opts.check()
    if opts.mode == "client" and start_ms is None:
        probe = RemoteChain(opts.url, manifest)
        try:
            start_ms = measure_round_trips(probe)
        finally:
            probe.deactivate()
    if opts.mode == "batched":
        from pipeline.serving.batched_fleet import run_batched

        outcomes = run_batched(manifest, engines, feeds, opts)
        summary = summarize(outcomes, opts.seconds, opts.cameras, opts.fps, opts.budget_s * 1e3, manifest.num_exits)
        return {**summary, "mode": opts.mode}
    made = [make_classifier(opts.mode, manifest, opts, engines, start_ms) for _ in range(opts.cameras)]
    period = 1.0 / opts.fps
    t0 = time.perf_counter() + 0.2
    end = t0 + opts.seconds
    cams = [Camera(i, feeds[i], made[i][0], t0 + period * i / opts.cameras, opts.fps, opts.budget_s, end)
            for i in range(opts.cameras)]
    try:
        for cam in cams:
            cam.start()
        for cam in cams:  # every request is bounded by its frame's deadline: a camera ends soon after ``end``
            cam.join(timeout=max(0.0, end - time.perf_counter()) + opts.budget_s + 5.0)
    finally:
        for _, close in made:
            close()
    stuck = [c.name for c in cams if c.is_alive()]
    if stuck:
        raise PipelineError(f"{', '.join(stuck)} did not stop within its last frame's deadline plus 5 s")
    outcomes = [o for c in cams for o in c.outcomes]
    summary = summarize(outcomes, opts.seconds, opts.cameras, opts.fps, opts.budget_s * 1e3, manifest.num_exits)
    summary["mode"] = opts.mode
    if start_ms is not None:
        summary["round_trip_start_ms"] = {"p50": start_ms[0], "max": start_ms[1]}
    return summary


def check_server(url: str) -> None:
    """A one-line PipelineError where no ready server answers at ``url``."""
    from pipeline.serving.server import http_status
    from pipeline.serving.wire import split_url

    host, port = split_url(url)
    status = http_status(host, port, "/v2/health/ready", 2.0)
    if status != 200:
        state = "nothing answers there" if status is None else f"it answers {status} to the readiness check"
        raise PipelineError(f"no ready Triton server at {url} ({state}); start one with `anytime triton serve`")


def build_parser() -> argparse.ArgumentParser:
    from pipeline.data.options import add_data_options

    ap = argparse.ArgumentParser(prog="anytime triton fleet", description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="", help="the server's HTTP address, host:port (client and bls modes)")
    ap.add_argument("--engines", type=Path, required=True,
                    help="the model folder whose manifest the server's repository was written from")
    add_data_options(ap, help="the labelled images the generated clips show (test split)")
    ap.add_argument("--source", action="append", default=[],
                    help="a camera, stream, video or image folder instead of generated clips (repeat for several; "
                         "cameras take them in turn)")
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--mode", choices=MODES, default="client")
    ap.add_argument("--budget-ms", type=float, default=None, help="each frame's deadline (default: one frame period)")
    ap.add_argument("--policy", default="default", help="exit policy of the manifest's thresholds")
    ap.add_argument("--precision", default="fp32", help="local mode: the engines' precision")
    ap.add_argument("--seed", type=int, default=0, help="seed of the generated clips")
    ap.add_argument("--json", type=Path, default=None, help="write the summary here too")
    return ap


def load_feeds(args: argparse.Namespace, manifest: Manifest, frames_needed: int) -> list[Feed]:
    from pipeline.data.options import DataOptions
    from pipeline.serving.cameras import clip_feeds, source_feeds

    if args.source:
        return source_feeds(manifest, args.source, args.cameras, frames_needed)
    data = DataOptions.from_args(args)
    return clip_feeds(manifest, data.source, data.cache_dir, args.cameras, frames_needed, args.seed)


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    inputs = [("--engines", args.engines), ("--data", Path(args.data) if args.data else None)]
    if args.json is not None:
        check_output(args.json, "--json", inputs)
    opts = FleetOptions(args.cameras, args.fps, args.seconds, args.mode, args.budget_ms, args.policy, args.url,
                        args.precision)
    opts.check()
    manifest = load_manifest(args.engines, verify=opts.mode in IN_PROCESS)
    if opts.mode not in IN_PROCESS:
        check_server(opts.url)
    feeds = load_feeds(args, manifest, int(opts.fps * opts.seconds) + 1)
    try:
        summary = run_fleet(manifest, args.engines, feeds, opts)
    finally:
        for feed in feeds:
            feed.close()
    print(format_summary(summary, f"{opts.mode} mode" + (f" against {opts.url}" if opts.url else "")), end="")
    if args.json is not None:
        write_output(args.json, json.dumps(summary, indent=1) + "\n", "--json", inputs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
