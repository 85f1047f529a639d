"""One run of the camera app: inputs checked, start-up, the frame loop, and a finish that always happens.

Order matters for a user's files: every input is read and every option checked first (the
engines folder, the source, the labels, every output's path), then the model loads and the
source opens, and only then are outputs opened. So a mistake is told before anything is written,
an output can never clobber an input, and a run stopped during start-up leaves no empty log.
Once frames flow, whatever ends the run (the end of the source, a stop key or signal, an error
such as a full disk or a failing engine) finalises the video, leaves the log in whole lines and
prints the summary with the cause; an error then still exits non-zero.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias

import numpy as np

from pipeline.runtime.deadline import BudgetSplit
from pipeline.errors import PipelineError, write_failure
from pipeline.runtime.interface import AnytimeRuntime
from pipeline.temporal.cascade import FrameResult, TemporalCascade
from pipeline.temporal.rule import TemporalOptions
from pipeline.video.capture import Frame, FrameStream, open_stream
from pipeline.video.frames import to_model_input
from pipeline.video.inputs import Inputs, read_inputs
from pipeline.video.outputs import lock_outputs
from pipeline.video.labels import LabelTable
from pipeline.video.options import CameraOptions
from pipeline.video.overlay import display_frame, draw_overlay
from pipeline.video.report import FrameLog, RunSummary, format_summary, frame_record
from pipeline.video.sources import redact
from pipeline.stop import StopFlag, call_interruptibly
from pipeline.video.window import Window, display_available
from pipeline.video.writer import VideoOutput


CameraRuntime: TypeAlias = AnytimeRuntime[FrameResult]  # the plain or the temporal cascade


def _default_cascade_factory(folder: Path, temporal: TemporalOptions | None = None, **kw: Any) -> CameraRuntime:
    return TemporalCascade.from_folder(folder, temporal=temporal, **kw)


@dataclass(frozen=True)
class CameraHooks:
    """What tests replace: the cascade loader, the source opener, the window, the clock, the log's file.

    The default loader is the temporal cascade with the run's ``--reuse``/``--prior``/... choices; a
    replacement gets the same keywords but those (its cascade is what the test made it).
    """

    cascade_factory: Callable[..., CameraRuntime] = _default_cascade_factory
    opener: Callable[..., Any] | None = None  # opener(spec, read_timeout_s=...) for video sources
    window_factory: Callable[[], Any] | None = None
    clock: Callable[[], float] = time.perf_counter
    open_log: Callable[[Path], BinaryIO] | None = None


def model_input(cascade: AnytimeRuntime[object]) -> tuple[tuple[int, int], str]:
    """The (H, W) and colour order the cascade's stage 1 takes (its ``frame_size`` and ``colour_order``)."""
    size = cascade.frame_size
    if not size or len(size) != 2:
        raise PipelineError("the model's input size is not fixed in its manifest (stage 1's input shape should "
                            "be [N, H, W, 3]); rebuild the engines with `make engines`")
    return (int(size[0]), int(size[1])), cascade.colour_order or "BGR"


def run_camera(options: CameraOptions, hooks: CameraHooks | None = None) -> int:
    """Run the app; returns its exit status (0, or 130 / 143 after a clean stop on SIGINT / SIGTERM)."""
    inputs = read_inputs(options)
    return CameraRun(options, hooks or CameraHooks(), inputs).run()


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


class CameraRun:
    """The state of one run; :meth:`run` starts it up, loops over frames and always finishes."""

    def __init__(self, options: CameraOptions, hooks: CameraHooks, inputs: Inputs):
        self.options, self.hooks, self.inputs = options, hooks, inputs
        self.budget_ms = options.frame_budget_ms
        self.stop = StopFlag()
        self.summary = RunSummary(0, self.budget_ms, inputs.spec.name)
        self.cascade: CameraRuntime | None = None
        self.stream: FrameStream | None = None
        self.labels: LabelTable | None = None
        self.video: VideoOutput | None = None
        self.log: FrameLog | None = None
        self.window: Any = None
        self.show = False
        self.size: tuple[int, int] = (0, 0)  # (H, W) of the model's input
        self.colour_order = "BGR"
        self.resize_shorter = 0  # the model's: frames of another shape resized, then centre-cropped
        self.t_first: float | None = None
        self.t_last: float | None = None

    def run(self) -> int:
        with lock_outputs(self.options.outputs()):  # one run at a time writes a given file
            self.stop.install()
            try:
                try:
                    self._start()
                    if self.stop.reason is None:
                        self._loop()
                finally:
                    self._close_cascade()
            finally:
                self.stop.restore()
        return self.stop.exit_code

    # -- start-up ------------------------------------------------------------------------------

    def _start(self) -> None:
        o = self.options
        show = not o.headless
        if show and self.hooks.window_factory is None:
            show, why = display_available()
            if not show:
                _note(f"{why}; running headless")
        if self.inputs.spec.live and o.pace:
            _note("--pace applies to files and images; a live source runs at its own rate")
        factory = self.hooks.cascade_factory
        extra = {"temporal": o.temporal} if factory is _default_cascade_factory else {}
        cascade = self.cascade = factory(self.inputs.folder, backend=o.backend, precision=o.precision,
                                         policy=o.policy, threads=o.threads, **extra)
        for note in cascade.notes:
            _note(note)
        self.size, self.colour_order = model_input(cascade)
        self.resize_shorter = cascade.resize_shorter
        self.labels = self.inputs.labels.resolve(cascade.classes) if self.inputs.labels else None
        self.summary = RunSummary(cascade.num_exits, self.budget_ms, self.inputs.spec.name)
        if self.stop.reason is not None:  # a signal while the model loaded
            self._print_summary()
            return
        spec = self.inputs.spec
        self.stream = call_interruptibly(
            lambda: open_stream(spec, pace=o.pace, pace_fps=o.fps or 30.0, stall_timeout_s=o.stall_timeout_s,
                                max_reconnects=o.reconnects, opener=self.hooks.opener),
            self.stop, discard=lambda stream: stream.close())
        if self.stop.reason is not None:  # a signal while the source opened
            if self.stream is not None:
                self.stream.close()
            self._print_summary()
            return
        assert self.stream is not None
        print(f"{spec.name} -> {self.inputs.folder.name} ({cascade.backend}/{cascade.precision}, "
              f"{cascade.num_exits} exits), budget "
              f"{'none' if self.budget_ms is None else f'{self.budget_ms:.1f} ms'}", file=sys.stderr)
        self.show = show

    def _open_outputs(self) -> None:
        """Outputs are opened last, once the model is loaded and the source gives frames."""
        o, stream = self.options, self.stream
        assert stream is not None
        if o.output is not None:  # a file keeps its own rate; a live recording plays at the target rate
            fps = (stream.fps or o.fps) if not stream.live else (o.fps or stream.fps)
            self.video = VideoOutput(o.output, fps or 30.0)
        if o.log is not None:
            self.log = FrameLog(o.log, open_file=self.hooks.open_log)
        self.window = (self.hooks.window_factory or Window)() if self.show else None

    # -- the frame loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            self._open_outputs()
            self._frames()
        except PipelineError as exc:
            self.stop.reason = f"error: {redact(str(exc))}"
            self._finish(failed=True)
            raise
        except OSError as exc:  # the writers name their own failures; this is any other file
            error = write_failure(exc, "the file", exc.filename) if exc.filename else \
                PipelineError(f"{exc.strerror or exc}".lower())
            self.stop.reason = f"error: {error}"
            self._finish(failed=True)
            raise error from exc
        except BaseException:  # a second Ctrl-C: finish on the way out
            self._finish(failed=True)
            raise
        self._finish(failed=False)

    def _frames(self) -> None:
        o, clock, stream = self.options, self.hooks.clock, self.stream
        assert stream is not None
        split, tail, interval = BudgetSplit(self.budget_ms), _Ewma(0.2), _Ewma(0.1)
        while self.stop.reason is None:
            if o.max_frames is not None and self.summary.frames >= o.max_frames:
                self.stop.reason = "--max-frames"
                break
            t_read = clock()
            frame = stream.read(timeout=0.1 if stream.live else None)
            if frame is None:
                if stream.finished:
                    self.stop.reason = "end of source"
                    break
                continue  # no live frame yet: look at the stop flag, then wait again
            image = self._model_input(frame)
            cascade_budget = split.cascade_budget()
            t_c0 = clock()
            result = self._classify(image, cascade_budget, frame)
            t_c1 = clock()
            so_far_ms = (t_c1 - t_read - frame.waited_s) * 1000
            fps = 1000.0 / interval.value if interval.value else None
            if self.video is not None or self.window is not None:  # headless without --output draws nothing
                shown = display_frame(frame.image)
                draw_overlay(shown, result, frame_ms=so_far_ms + (tail.value or 0.0), budget_ms=self.budget_ms,
                             fps=fps, dropped=stream.dropped)
                if self.video is not None:
                    self.video.write(shown)
                if self.window is not None and not self.window.show(shown):
                    self.stop.reason = "window closed (q/Esc)"
            t_end = clock()
            frame_ms = (t_end - t_read - frame.waited_s) * 1000
            rec = frame_record(frame.index, result, frame_ms=frame_ms, budget_ms=self.budget_ms,
                               cascade_budget_ms=cascade_budget, dropped=stream.dropped,
                               true_label=self.labels.lookup(frame) if self.labels else None, name=frame.name)
            if self.log is not None:
                self.log.write(rec)
            self.summary.add(rec)
            # the record's own cost falls between frames: not in frame_ms, but set aside all the same
            split.update(frame_ms - (t_c1 - t_c0) * 1000 + (clock() - t_end) * 1000)
            tail.update((t_end - t_c1) * 1000)
            if self.t_last is not None:
                interval.update((t_end - self.t_last) * 1000)
            self.t_first = t_read if self.t_first is None else self.t_first
            self.t_last = t_end

    def _model_input(self, frame: Frame) -> np.ndarray:
        try:
            return to_model_input(frame.image, self.size, self.colour_order, self.options.crop, self.resize_shorter)
        except PipelineError as exc:
            where = frame.name or f"frame {frame.index} of {self.inputs.spec.name}"
            raise PipelineError(f"{where}: {exc}") from None

    def _classify(self, image: np.ndarray, budget_ms: float | None, frame: Frame) -> FrameResult:
        cascade = self.cascade
        assert cascade is not None  # loaded in _start, before any frame
        try:
            return cascade.classify(image, budget_ms=budget_ms)
        except PipelineError:
            raise
        except Exception as exc:  # the runtime's own error (ONNX Runtime, TensorRT): one line, the cause kept
            first = (str(exc).strip().splitlines() or [""])[0]
            raise PipelineError(f"the {cascade.backend}/{cascade.precision} cascade failed on frame "
                                f"{frame.index}: {type(exc).__name__}: {first}; check the engines with "
                                "`make profile`, or rebuild them with `make engines`") from exc

    # -- the finish ----------------------------------------------------------------------------

    def _finish(self, failed: bool) -> None:
        """Close everything, print the summary; a problem found while closing fails a run that had none."""
        problems: list[str] = []
        if self.stream is not None:
            self.stream.close()
        if self.video is not None:
            try:
                self.video.close()
            except PipelineError as exc:
                problems.append(str(exc))
        if self.window is not None:
            self.window.close()
        if self.log is not None:
            self.log.close()
        if problems and not failed:
            self.stop.reason = f"error: {problems[0]}"
        self._print_summary()
        if self.video is not None and self.video.frames:
            print(f"annotated video: {self.video.path} ({self.video.frames} frames)", flush=True)
        if self.log is not None:
            print(f"frame log: {self.log.path} ({self.log.lines} frames)" if self.log.lines else
                  f"frame log: none written (no frame); {self.log.path} left as it was", flush=True)
        warning = None if self.labels is None else self.labels.coverage_warning(
            self.summary.frames, self.summary.labelled, source_ended=self.stop.reason == "end of source")
        for text in ([warning] if warning else []) + (problems if failed else problems[1:]):
            print(f"warning: {text}", file=sys.stderr)
        if problems and not failed:
            raise PipelineError(problems[0])

    def _print_summary(self) -> None:
        wall = (self.t_last - self.t_first) if self.t_first is not None and self.t_last is not None else None
        dropped = self.stream.dropped if self.stream is not None else 0
        stopped = self.stop.reason or "end of source"
        print(redact(format_summary(self.summary.finish(wall, dropped=dropped, stopped=stopped))), flush=True)

    def _close_cascade(self) -> None:
        if self.cascade is not None:
            self.cascade.close()


class _Ewma:
    def __init__(self, alpha: float = 0.1):
        self.alpha: float = alpha
        self.value: float | None = None

    def update(self, x: float) -> float:
        value = x if self.value is None else self.value + self.alpha * (x - self.value)
        self.value = value
        return value
