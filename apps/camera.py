"""Live anytime classification: frames in, one answer per frame inside the frame's time budget.

    python apps/camera.py --engines engines/msdnet_cifar --source 0 --fps 30
    python apps/camera.py --engines engines/msdnet_cifar --source csi://0 --budget-ms 20 --precision int8
    python apps/camera.py --engines engines/msdnet_cifar --source clip.avi --headless \\
        --output annotated.mp4 --log frames.jsonl --labels clip_labels.json

For each frame: read it (a live source's newest frame, or a file's next one), convert it to the
model's input, run the cascade of stages until a classifier is confident or the budget would be
exceeded, draw the answer, write/show it. The budget holds for the whole frame, not only the
network: the recent cost of everything outside the cascade is set aside, and the cascade gets
what remains. ``q`` or Esc in the window, Ctrl-C or SIGTERM stop cleanly: the video is
finalised, the log flushed, the summary printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError, cli_main
from pipeline.manifest import MANIFEST_NAME
from pipeline.names import PRECISIONS
from pipeline.video.capture import Frame, FrameStream, open_stream
from pipeline.video.frames import to_model_input
from pipeline.video.overlay import display_frame, draw_overlay
from pipeline.video.report import FrameLog, RunSummary, format_summary, frame_record
from pipeline.video.sources import parse_source, redact

WINDOW_TITLE = "anytime classification"
VIDEO_CODECS = {".avi": "MJPG", ".mkv": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v"}


# -- the budget ----------------------------------------------------------------------------------

class BudgetSplit:
    """The cascade's share of a frame budget: the budget less what the rest of the frame costs.

    The rest (capture, conversion, overlay, writing, display) is tracked as a smoothed mean plus
    twice its smoothed deviation, as TCP estimates a round trip: jitter in the overhead then eats
    into the cascade's share before it eats into the deadline. The first ``warmup`` frames are not
    counted: they pay one-off costs (opening the video writer, creating the window).
    """

    def __init__(self, budget_ms: float | None, alpha: float = 0.2, floor_ms: float = 0.01, warmup: int = 1):
        self.budget_ms, self.alpha, self.floor_ms, self.warmup = budget_ms, alpha, floor_ms, warmup
        self.mean_ms: float | None = None
        self.dev_ms = 0.0

    @property
    def reserve_ms(self) -> float:
        return 0.0 if self.mean_ms is None else self.mean_ms + 2.0 * self.dev_ms

    def cascade_budget(self) -> float | None:
        if self.budget_ms is None:
            return None
        return max(self.floor_ms, self.budget_ms - self.reserve_ms)

    def update(self, overhead_ms: float) -> None:
        if self.warmup > 0:
            self.warmup -= 1
            return
        if self.mean_ms is None:
            self.mean_ms = overhead_ms
            return
        self.dev_ms += self.alpha * (abs(overhead_ms - self.mean_ms) - self.dev_ms)
        self.mean_ms += self.alpha * (overhead_ms - self.mean_ms)


class _Ewma:
    def __init__(self, alpha: float = 0.1):
        self.alpha, self.value = alpha, None

    def update(self, x: float) -> float:
        self.value = x if self.value is None else self.value + self.alpha * (x - self.value)
        return self.value


# -- true labels for accuracy on a clip ----------------------------------------------------------

class LabelTable:
    """True labels by image file (name, parent/name or stem) or by frame index."""

    def __init__(self, by_key: dict[str, int], per_frame: list[int]):
        self.by_key, self.per_frame = by_key, per_frame

    def lookup(self, frame: Frame) -> int | None:
        if frame.name is not None:
            p = Path(frame.name)
            for key in (frame.name, f"{p.parent.name}/{p.name}", p.name, p.stem):
                if key in self.by_key:
                    return self.by_key[key]
        if str(frame.index) in self.by_key:
            return self.by_key[str(frame.index)]
        return self.per_frame[frame.index] if frame.index < len(self.per_frame) else None


def _label_value(value: Any, classes: Sequence[str], where: str) -> int:
    text = str(value).strip()
    if text in classes:
        return list(classes).index(text)
    if text.lstrip("-").isdigit() and 0 <= int(text) < len(classes):
        return int(text)
    raise PipelineError(f"{where}: label {text!r} is neither a class name nor an index below {len(classes)}; "
                        f"classes are {', '.join(classes[:10])}{' ...' if len(classes) > 10 else ''}")


def load_labels(path: str | Path, classes: Sequence[str]) -> LabelTable:
    """Read ``--labels``: JSON (a list, one label per frame, or {file or frame index: label}) or
    CSV/text (one label per line, or ``file,label`` rows; a header row is skipped). Labels are
    class names or indices."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"labels file {path} not found; expected JSON or CSV of file->label, "
                            "or one label per frame")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PipelineError(f"labels file {path} is not valid JSON: {exc}") from None
        if isinstance(data, list):
            return LabelTable({}, [_label_value(v, classes, f"{path} item {i}") for i, v in enumerate(data)])
        if isinstance(data, dict):
            return LabelTable({str(k): _label_value(v, classes, f"{path} key {k!r}") for k, v in data.items()}, [])
        raise PipelineError(f"labels file {path} should hold a JSON list or object; found {type(data).__name__}")
    rows = [r for r in csv.reader(text.splitlines()) if r and r[0].strip() and not r[0].lstrip().startswith("#")]
    by_key: dict[str, int] = {}
    per_frame: list[int] = []
    for i, row in enumerate(rows):
        cells = [c.strip() for c in row]
        where = f"{path} row {i + 1}"
        try:
            if len(cells) == 1:
                per_frame.append(_label_value(cells[0], classes, where))
            else:
                by_key[cells[0]] = _label_value(cells[1], classes, where)
        except PipelineError:
            if i == 0:  # a header such as "file,label"
                continue
            raise
    if not by_key and not per_frame:
        raise PipelineError(f"labels file {path} holds no labels")
    return LabelTable(by_key, per_frame)


# -- outputs -------------------------------------------------------------------------------------

class VideoOutput:
    """The annotated video, opened on the first frame (its size fixes the video's)."""

    def __init__(self, path: str | Path, fps: float = 30.0):
        self.path, self.fps = Path(path), fps  # fps may be set until the first frame is written
        self.codec = VIDEO_CODECS.get(self.path.suffix.lower())
        if self.codec is None:
            raise PipelineError(f"--output {self.path}: unsupported extension; use one of {', '.join(VIDEO_CODECS)}")
        if not self.path.parent.is_dir():
            raise PipelineError(f"--output {self.path}: folder {self.path.parent} does not exist")
        self._writer: Any = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, image: Any) -> None:
        import cv2

        if self._writer is None:
            self._size = (image.shape[1], image.shape[0])  # (W, H)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.codec), self.fps, self._size)
            if not self._writer.isOpened():
                self._writer = None
                raise PipelineError(f"could not open {self.path} for writing with codec {self.codec}; "
                                    "try an .avi output (MJPG), which every OpenCV build can write")
        if (image.shape[1], image.shape[0]) != self._size:  # a source that changed size mid-stream
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class Window:
    """An OpenCV window; :meth:`show` returns False once q or Esc is pressed or the window is closed."""

    def __init__(self, title: str = WINDOW_TITLE):
        import cv2

        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, image: Any) -> bool:
        import cv2

        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.title)


def display_available() -> tuple[bool, str]:
    """Whether a window can be shown here, and if not, why."""
    import cv2

    info = cv2.getBuildInformation()
    gui = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.strip().startswith("GUI:")), "")
    if gui.upper().startswith("NONE"):
        return False, "this OpenCV has no GUI support (the headless wheel)"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display ($DISPLAY is not set)"
    return True, ""


# -- the command line ----------------------------------------------------------------------------

def _positive(kind: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"should be a positive number of {kind}; got {text!r}") from None
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"should be a positive number of {kind}; got {text!r}")
        return value
    return parse


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"should be a positive integer; got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="camera", description=__doc__.split("\n\n")[0],
                                epilog="examples:\n" + __doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", required=True, help="built model folder, holding manifest.json (engines/<model>)")
    p.add_argument("--source", required=True,
                   help="0 or /dev/video0 (V4L2), csi://0[?width=&height=&fps=&flip=] (Jetson CSI), rtsp://..., "
                        "http(s)://..., a video file, or a folder or quoted glob of images")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-ms", type=_positive("milliseconds"), help="time budget per frame")
    budget.add_argument("--fps", type=_positive("frames per second"), help="target rate; budget = 1000 / fps ms")
    p.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"))
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--policy", default="default", help="exit policy from the manifest's thresholds")
    p.add_argument("--threads", type=_positive_int, default=1, help="intra-op threads (ONNX Runtime)")
    p.add_argument("--headless", action="store_true", help="no window (automatic when there is no display)")
    p.add_argument("--output", help="write the annotated video here (.avi, .mp4, .mkv, .mov)")
    p.add_argument("--log", help="write one JSON line per frame here")
    p.add_argument("--labels", help="true labels for accuracy: JSON/CSV of file->label, or one label per frame")
    p.add_argument("--pace", action="store_true",
                   help="play files at their own frame rate (images at --fps, else 30) instead of at full speed")
    p.add_argument("--max-frames", type=_positive_int, help="stop after this many frames")
    p.add_argument("--crop", action="store_true", help="centre-crop frames to the model's aspect before resizing")
    p.add_argument("--stall-timeout", type=_positive("seconds"), default=5.0,
                   help="live sources: no frame for this long counts as a stall and triggers a reconnect")
    p.add_argument("--reconnects", type=int, default=5, help="live sources: reconnect attempts before giving up")
    return p


def check_engines(folder: str) -> Path:
    path = Path(folder)
    if (path / MANIFEST_NAME).is_file():
        return path
    if not path.is_dir():
        raise PipelineError(f"engines folder {path} not found: build it with `make engines`, then pass "
                            f"--engines engines/<model> (the folder that holds {MANIFEST_NAME})")
    inside = sorted(str(p.parent) for p in path.glob(f"*/{MANIFEST_NAME}"))
    hint = f"; built models inside it: {', '.join(inside)}" if inside else \
        " (an interrupted build leaves none); run `make engines`"
    raise PipelineError(f"engines folder {path} has no {MANIFEST_NAME}, so it is not a built model{hint}")


def model_input(cascade: Any) -> tuple[tuple[int, int], str]:
    """The (H, W) and colour order the cascade's stage 1 takes (``input_size`` or ``frame_size``)."""
    size = getattr(cascade, "input_size", None) or getattr(cascade, "frame_size", None)
    if not size or len(size) != 2:
        raise PipelineError("the model's input size is not fixed in its manifest (stage 1's input shape should "
                            "be [N, H, W, 3]); rebuild the engines with `make engines`")
    return (int(size[0]), int(size[1])), getattr(cascade, "colour_order", "") or "BGR"


def _default_cascade_factory(folder: Path, **kw: Any) -> Any:
    from pipeline.cascade import Cascade

    return Cascade.from_folder(folder, **kw)


class _Stop:
    """Why the loop should stop; set from signal handlers (a plain attribute: no locks in a handler)."""

    reason: str | None = None


def _install_signal_handlers(stop: _Stop) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, _frame: Any) -> None:
        if stop.reason is not None:  # asked twice: stop now, finalising on the way out
            raise KeyboardInterrupt
        stop.reason = signal.Signals(signum).name

    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


@cli_main
def main(argv: Sequence[str] | None = None, *, cascade_factory: Callable[..., Any] | None = None,
         opener: Callable[..., Any] | None = None, window_factory: Callable[[], Any] | None = None,
         clock: Callable[[], float] = time.perf_counter) -> int:
    """Run the app; the keyword arguments let tests inject the cascade, the source opener, the
    window and the clock."""
    args = build_parser().parse_args(argv)
    budget_ms = args.budget_ms if args.budget_ms is not None else (1000.0 / args.fps if args.fps else None)
    if args.reconnects < 0:
        raise PipelineError(f"--reconnects should be 0 or more; got {args.reconnects}")
    folder = check_engines(args.engines)
    spec = parse_source(args.source)
    if args.labels and not Path(args.labels).is_file():
        raise PipelineError(f"labels file {args.labels} not found")
    video = VideoOutput(args.output) if args.output else None  # checks before any slow work
    log = FrameLog(args.log) if args.log else None
    try:
        return _run(args, spec, folder, budget_ms, video, log, cascade_factory or _default_cascade_factory,
                    opener, window_factory, clock)
    finally:
        if log is not None:
            log.close()


def _run(args: argparse.Namespace, spec: Any, folder: Path, budget_ms: float | None,
         video: VideoOutput | None, log: FrameLog | None,
         cascade_factory: Callable[..., Any], opener: Callable[..., Any] | None,
         window_factory: Callable[[], Any] | None, clock: Callable[[], float]) -> int:
    show = not args.headless
    if show and window_factory is None:
        show, why = display_available()
        if not show:
            print(f"note: {why}; running headless", file=sys.stderr)
    if spec.live and args.pace:
        print("note: --pace applies to files and images; a live source runs at its own rate", file=sys.stderr)

    cascade = cascade_factory(folder, backend=args.backend, precision=args.precision, policy=args.policy,
                              threads=args.threads)
    try:
        return _loop(args, spec, folder, budget_ms, video, log, cascade, opener, window_factory, clock, show)
    finally:
        if hasattr(cascade, "close"):
            cascade.close()


def _loop(args: argparse.Namespace, spec: Any, folder: Path, budget_ms: float | None,
          video: VideoOutput | None, log: FrameLog | None, cascade: Any, opener: Callable[..., Any] | None,
          window_factory: Callable[[], Any] | None, clock: Callable[[], float], show: bool) -> int:
    for note in getattr(cascade, "notes", []):
        print(f"note: {note}", file=sys.stderr)
    size, colour_order = model_input(cascade)
    labels = load_labels(args.labels, cascade.classes) if args.labels else None
    stream: FrameStream = open_stream(spec, pace=args.pace, pace_fps=args.fps or 30.0,
                                      stall_timeout_s=args.stall_timeout, max_reconnects=args.reconnects,
                                      opener=opener)
    if video is not None:  # a file keeps its own rate; a live recording plays at the target rate
        video.fps = ((stream.fps or args.fps) if not stream.live else (args.fps or stream.fps)) or 30.0
    print(f"{spec.name} -> {folder.name} ({cascade.backend}/{cascade.precision}, {cascade.num_exits} exits), "
          f"budget {'none' if budget_ms is None else f'{budget_ms:.1f} ms'}", file=sys.stderr)

    stop = _Stop()
    previous = _install_signal_handlers(stop)
    split, tail, interval = BudgetSplit(budget_ms), _Ewma(0.2), _Ewma(0.1)
    summary = RunSummary(cascade.num_exits, budget_ms, spec.name)
    t_first = t_last = None
    window = None
    try:
        window = (window_factory or Window)() if show else None
        while stop.reason is None:
            if args.max_frames is not None and summary.frames >= args.max_frames:
                stop.reason = "--max-frames"
                break
            t_read = clock()
            frame = stream.read(timeout=0.1 if stream.live else None)
            if frame is None:
                if stream.finished:
                    break
                continue  # no live frame yet: look at the stop flag, then wait again
            image = to_model_input(frame.image, size, colour_order, args.crop)
            cascade_budget = split.cascade_budget()
            t_c0 = clock()
            result = cascade.classify(image, budget_ms=cascade_budget)
            t_c1 = clock()
            so_far_ms = (t_c1 - t_read - frame.waited_s) * 1000
            fps = 1000.0 / interval.value if interval.value else None
            if video is not None or window is not None:  # headless without --output draws nothing
                shown = display_frame(frame.image)
                draw_overlay(shown, result, frame_ms=so_far_ms + (tail.value or 0.0), budget_ms=budget_ms,
                             fps=fps, dropped=stream.dropped)
                if video is not None:
                    video.write(shown)
                if window is not None and not window.show(shown):
                    stop.reason = "window closed (q/Esc)"
            t_end = clock()
            frame_ms = (t_end - t_read - frame.waited_s) * 1000
            rec = frame_record(frame.index, result, frame_ms=frame_ms, budget_ms=budget_ms,
                               cascade_budget_ms=cascade_budget, dropped=stream.dropped,
                               true_label=labels.lookup(frame) if labels else None, name=frame.name)
            summary.add(rec)
            if log is not None:
                log.write(rec)
            # the record's own cost falls between frames: not in frame_ms, but set aside all the same
            split.update(frame_ms - (t_c1 - t_c0) * 1000 + (clock() - t_end) * 1000)
            tail.update((t_end - t_c1) * 1000)
            if t_last is not None:
                interval.update((t_end - t_last) * 1000)
            t_first = t_read if t_first is None else t_first
            t_last = t_end
    except PipelineError:
        stop.reason = "error"
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stream.close()
        if video is not None:
            video.close()
        if window is not None:
            window.close()
        wall = (t_last - t_first) if t_first is not None and t_last is not None else None
        result_summary = summary.finish(wall, dropped=stream.dropped, stopped=stop.reason or "end of source")
        print(redact(format_summary(result_summary)), flush=True)
        if video is not None and video.frames:
            print(f"annotated video: {video.path} ({video.frames} frames)", flush=True)
        if log is not None:
            print(f"frame log: {args.log}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
