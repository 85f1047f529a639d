"""Many streams in one process: one tick reads a frame from each stream and classifies them as one batch.

    run_streams(engines, [StreamOptions(...), ...], RuntimeChoice(...))

Per tick: each stream's next frame (a live source's newest) is converted to the model's input, and
its temporal rule (:mod:`pipeline.video.multi_temporal`) either reuses the stream's last answer or
sends the frame to the :class:`~pipeline.runtime.batched.BatchedCascade`, with the stream's own
budget counted from the frame's start (the frame budget less the stream's recent overhead, as the
camera app sets aside). Each stream then writes its own log, annotated video and summary with the
camera app's helpers. Every input and output is checked for every stream before the model loads.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.errors import PipelineError
from pipeline.runtime.deadline import BudgetSplit
from pipeline.stop import StopFlag
from pipeline.temporal.cascade import TemporalResult
from pipeline.temporal.rule import TemporalOptions
from pipeline.video.capture import FrameStream, open_stream
from pipeline.video.frames import to_model_input
from pipeline.video.inputs import Inputs, read_inputs
from pipeline.video.labels import LabelTable
from pipeline.video.multi_temporal import Pending, StreamTemporal
from pipeline.video.options import CameraOptions
from pipeline.video.outputs import lock_outputs, refuse_inputs
from pipeline.video.overlay import display_frame, draw_overlay
from pipeline.video.report import FrameLog, RunSummary, format_summary, frame_record
from pipeline.video.sources import redact
from pipeline.video.writer import VideoOutput


@dataclass(frozen=True)
class RuntimeChoice:
    """What every stream shares: the model variant and how its frames are read."""

    backend: str = "auto"
    precision: str = "fp32"
    policy: str = "default"
    threads: int = 1
    pace: bool = False
    crop: bool = False
    max_frames: int | None = None  # per stream
    temporal: TemporalOptions = field(default_factory=TemporalOptions)


@dataclass
class _Stream:
    """One stream's state in the run."""

    options: CameraOptions
    inputs: Inputs
    source: FrameStream | None = None
    labels: LabelTable | None = None
    temporal: StreamTemporal | None = None
    log: FrameLog | None = None
    video: VideoOutput | None = None
    summary: RunSummary | None = None
    split: BudgetSplit | None = None
    done: str = ""  # why the stream ended ("" while it runs)
    t_first: float | None = None
    t_last: float | None = None


def stream_options(engines: Path, source: str, choice: RuntimeChoice, *, budget_ms: float | None = None,
                   fps: float | None = None, labels: Path | None = None, log: Path | None = None,
                   output: Path | None = None) -> CameraOptions:
    """One stream's options, checked as the camera app checks its own."""
    return CameraOptions(engines=engines, source=source, budget_ms=budget_ms, fps=fps, backend=choice.backend,
                         precision=choice.precision, policy=choice.policy, threads=choice.threads, headless=True,
                         output=output, log=log, labels=labels, pace=choice.pace, max_frames=choice.max_frames,
                         crop=choice.crop, temporal=choice.temporal)


def run_streams(streams: list[CameraOptions], choice: RuntimeChoice,
                clock: Callable[[], float] = time.perf_counter) -> int:
    """Run every stream to its end (or a stop signal); returns the exit status."""
    from pipeline.runtime.batched import BatchedCascade
    from pipeline.temporal.cascade import TemporalCascade

    if not streams:
        raise PipelineError("give at least one stream")
    states = [_Stream(o, read_inputs(o)) for o in streams]
    outputs = {f"{name} of stream {i + 1}": path
               for i, s in enumerate(states) for name, path in s.options.outputs().items()}
    paths = [p.resolve() for p in outputs.values()]
    if len(set(paths)) != len(paths):
        raise PipelineError("two streams write the same file; give each stream its own log and output")
    sources = [(f"{option} of stream {i + 1}", path) for i, s in enumerate(states) for option, path in s.inputs.files]
    refuse_inputs(outputs, sources)  # one stream's output must not be another's input
    engines = states[0].inputs.folder
    stop = StopFlag()
    stop.install()
    try:
        with lock_outputs(outputs):
            tc = TemporalCascade.from_folder(engines, temporal=choice.temporal, backend=choice.backend,
                                             precision=choice.precision, policy=choice.policy, threads=choice.threads)
            try:
                for note in tc.notes:
                    print(f"note: {note}", file=sys.stderr)
                _run(states, tc.cascade, BatchedCascade(tc.cascade), tc.settings, choice, stop, clock)
            finally:
                tc.close()
    finally:
        stop.restore()
    return stop.exit_code


def _run(states: list[_Stream], cascade: Any, batched: Any, settings: Any, choice: RuntimeChoice, stop: StopFlag,
         clock: Callable[[], float]) -> None:
    size = cascade.frame_size
    if not size:
        raise PipelineError("the model's input size is not fixed in its manifest; rebuild the engines")
    order = cascade.colour_order or "BGR"
    try:
        for s in states:
            o = s.options
            s.labels = s.inputs.labels.resolve(cascade.classes) if s.inputs.labels else None
            s.temporal = StreamTemporal(cascade, settings)
            s.summary = RunSummary(cascade.num_exits, o.frame_budget_ms, s.inputs.spec.name)
            s.split = BudgetSplit(o.frame_budget_ms)
            s.source = open_stream(s.inputs.spec, pace=o.pace, pace_fps=o.fps or 30.0,
                                   stall_timeout_s=o.stall_timeout_s, max_reconnects=o.reconnects)
            s.log = FrameLog(o.log) if o.log is not None else None
        print(f"{len(states)} streams -> {states[0].inputs.folder.name} ({cascade.backend}/{cascade.precision}, "
              f"{cascade.num_exits} exits, batches up to {batched.max_batch})", file=sys.stderr)
        while stop.reason is None and not all(s.done for s in states):
            _tick(states, cascade, batched, size, order, choice, clock)
        if stop.reason is None:
            stop.reason = "end of every source"
    finally:
        _finish(states, stop.reason or "error")


def _tick(states: list[_Stream], cascade: Any, batched: Any, size: tuple[int, int], order: str,
          choice: RuntimeChoice, clock: Callable[[], float]) -> None:
    """One frame from each running stream; the frames the rule sends to the cascade run as one batch."""
    ready: list[tuple[_Stream, Any, float, np.ndarray]] = []
    for s in states:
        if s.done:
            continue
        assert s.source is not None and s.summary is not None
        if choice.max_frames is not None and s.summary.frames >= choice.max_frames:
            s.done = "--max-frames"
            continue
        t_read = clock()
        frame = s.source.read(timeout=0.005 if s.source.live else None)
        if frame is None:
            if s.source.finished:
                s.done = "end of source"
            continue
        image = to_model_input(frame.image, size, order, choice.crop, cascade.resize_shorter)
        ready.append((s, frame, t_read - frame.waited_s, image))
    plans: list[TemporalResult | Pending] = []
    for s, frame, t_read, image in ready:
        assert s.temporal is not None and s.split is not None
        plans.append(s.temporal.before(image, s.split.cascade_budget()))
    run = [(i, p) for i, p in enumerate(plans) if isinstance(p, Pending)]
    t_c0 = clock()
    if run:
        answers = batched.classify_batch([ready[i][3] for i, _ in run], [p.budget_ms for _, p in run],
                                         arrived=[p.t0 for _, p in run], priors=[p.prior for _, p in run])
        for j, (i, p) in enumerate(run):
            temporal = ready[i][0].temporal
            assert temporal is not None
            plans[i] = temporal.after(p, answers[j], batched.probs[j])
    t_c1 = clock()
    for (s, frame, t_read, image), result in zip(ready, plans):
        _write(s, frame, t_read, image, result, (t_c1 - t_c0) * 1e3, clock)


def _write(s: _Stream, frame: Any, t_read: float, image: np.ndarray, result: Any, cascade_ms: float,
           clock: Callable[[], float]) -> None:
    assert s.summary is not None and s.split is not None and s.source is not None
    o = s.options
    if o.output is not None:
        if s.video is None:
            s.video = VideoOutput(o.output, s.source.fps or o.fps or 30.0)
        shown = display_frame(frame.image)
        draw_overlay(shown, result, frame_ms=(clock() - t_read) * 1e3, budget_ms=o.frame_budget_ms, fps=None,
                     dropped=s.source.dropped)
        s.video.write(shown)
    t_end = clock()
    frame_ms = (t_end - t_read) * 1e3
    rec = frame_record(frame.index, result, frame_ms=frame_ms, budget_ms=o.frame_budget_ms,
                       cascade_budget_ms=result.budget_ms, dropped=s.source.dropped,
                       true_label=s.labels.lookup(frame) if s.labels else None, name=frame.name)
    if s.log is not None:
        s.log.write(rec)
    s.summary.add(rec)
    s.split.update(frame_ms - cascade_ms)
    s.t_first = t_read if s.t_first is None else s.t_first
    s.t_last = t_end


def _finish(states: list[_Stream], reason: str) -> None:
    """Close every stream's source and outputs; print each stream's summary."""
    problems = []
    for i, s in enumerate(states):
        if s.source is not None:
            s.source.close()
        if s.video is not None:
            try:
                s.video.close()
            except PipelineError as exc:
                problems.append(str(exc))
        if s.log is not None:
            s.log.close()
        if s.summary is None:
            continue
        wall = (s.t_last - s.t_first) if s.t_first is not None and s.t_last is not None else None
        stopped = s.done or reason
        dropped = s.source.dropped if s.source is not None else 0
        print(f"[stream {i + 1}] " + redact(format_summary(s.summary.finish(wall, dropped=dropped, stopped=stopped))),
              flush=True)
        if s.video is not None and s.video.frames:
            print(f"[stream {i + 1}] annotated video: {s.video.path} ({s.video.frames} frames)", flush=True)
        if s.log is not None:
            print(f"[stream {i + 1}] frame log: {s.log.path} ({s.log.lines} frames)" if s.log.lines else
                  f"[stream {i + 1}] frame log: none written (no frame); {s.log.path} left as it was", flush=True)
    if problems:
        raise PipelineError(problems[0])
