"""Live anytime classification: frames in, one answer per frame inside the frame's time budget.

    anytime camera --engines engines/ranet --source 0 --fps 30
    anytime camera --engines engines/ranet --source csi://0 --budget-ms 20 --precision int8
    anytime camera --engines engines/ranet --source clip.avi --headless --crop \\
        --output annotated.mp4 --log frames.jsonl --labels clip_labels.json
    anytime camera --engines engines/ranet --source 0 --frame-by-frame

For each frame: read it (a live source's newest frame, or a file's next one), convert it to the
model's input, run the cascade of stages until a classifier is confident or the budget would be
exceeded, draw the answer, write/show it. Consecutive frames share work (``pipeline.temporal``):
a frame that did not change reuses the last answer, a changed one may exit earlier when it agrees
with it, and the answer shown is smoothed; the settings are calibrated into the manifest. The
budget holds for the whole frame, not only the network: the recent cost of everything outside the
cascade is set aside, and the cascade gets what remains. ``q`` or Esc in the window, Ctrl-C or
SIGTERM stop cleanly: the video is finalised, the log left in whole lines, the summary printed; a
signal's stop then exits 130 (SIGINT) or 143 (SIGTERM). This file is the command line only: the
run is ``pipeline.video.run``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.backends import BACKENDS
from pipeline.errors import cli_main
from pipeline.names import PRECISIONS
from pipeline.temporal.rule import TemporalOptions
from pipeline.video.options import CameraOptions
from pipeline.video.run import CameraHooks, run_camera


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
    p = argparse.ArgumentParser(prog="anytime camera", description=__doc__.split("\n\n")[0],
                                epilog="examples:\n" + __doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", required=True, help="built model folder, holding manifest.json (engines/<model>)")
    p.add_argument("--source", required=True,
                   help="0 or /dev/video0 (V4L2), csi://0[?width=&height=&fps=&flip=] (Jetson CSI), rtsp://..., "
                        "http(s)://..., a video file, or a folder or quoted glob of images")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-ms", type=_positive("milliseconds"), help="time budget per frame")
    budget.add_argument("--fps", type=_positive("frames per second"), help="target rate; budget = 1000 / fps ms")
    p.add_argument("--backend", default="auto", choices=("auto", *BACKENDS))
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
    t = p.add_argument_group("video", "consecutive frames share work; defaults from the manifest's calibration")
    t.add_argument("--reuse", action=argparse.BooleanOptionalAction, default=None,
                   help="reuse the last answer for a frame that did not change (no stage runs)")
    t.add_argument("--prior", action=argparse.BooleanOptionalAction, default=None,
                   help="let an exit that agrees with the last answer leave at a lower confidence")
    t.add_argument("--smoothing", type=float, default=None,
                   help="weight of past frames in the shown answer's moving average, in [0, 1); 0 shows each frame's")
    t.add_argument("--reuse-threshold", type=float, default=None, help="change below which a frame reuses (grey levels)")
    t.add_argument("--max-reuse-frames", type=_positive_int, default=None, help="a reused answer is at most this many "
                   "frames old")
    t.add_argument("--max-reuse-ms", type=_positive("milliseconds"), default=None,
                   help="... and at most this many milliseconds old")
    t.add_argument("--frame-by-frame", action="store_true", help="no reuse, no prior, no smoothing: every frame alone")
    return p


def _path(text: str | None) -> Path | None:
    return None if text is None else Path(text)


def temporal_from_args(args: argparse.Namespace) -> TemporalOptions:
    if args.frame_by_frame:
        return TemporalOptions(reuse=False, prior=False, smoothing=0.0)
    return TemporalOptions(reuse=args.reuse, prior=args.prior, smoothing=args.smoothing,
                           reuse_threshold=args.reuse_threshold, max_age_frames=args.max_reuse_frames,
                           max_age_ms=args.max_reuse_ms)


def options_from_args(args: argparse.Namespace) -> CameraOptions:
    """The parsed command line as the run's options; the Namespace goes no further than this file."""
    return CameraOptions(
        engines=Path(args.engines), source=args.source, budget_ms=args.budget_ms, fps=args.fps,
        backend=args.backend, precision=args.precision, policy=args.policy, threads=args.threads,
        headless=args.headless, output=_path(args.output), log=_path(args.log), labels=_path(args.labels),
        pace=args.pace, max_frames=args.max_frames, crop=args.crop, stall_timeout_s=args.stall_timeout,
        reconnects=args.reconnects, temporal=temporal_from_args(args))


@cli_main
def main(argv: Sequence[str] | None = None, *, cascade_factory: Callable[..., Any] | None = None,
         opener: Callable[..., Any] | None = None, window_factory: Callable[[], Any] | None = None,
         clock: Callable[[], float] = time.perf_counter, open_log: Callable[[Path], Any] | None = None) -> int:
    """Run the app; the keyword arguments let tests inject the cascade, the source opener, the
    window, the clock and the log's file."""
    options = options_from_args(build_parser().parse_args(argv))
    given: dict[str, Any] = dict(cascade_factory=cascade_factory, opener=opener, window_factory=window_factory,
                                 open_log=open_log)
    hooks = CameraHooks(clock=clock, **{name: hook for name, hook in given.items() if hook is not None})
    return run_camera(options, hooks)


if __name__ == "__main__":
    sys.exit(main())
