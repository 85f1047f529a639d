"""Many cameras or clips in one process: per tick, stage k runs once on the frames still undecided.

    anytime streams --engines engines/ranet --fps 30 \\
        --stream "source=clip1.avi,labels=clip1_labels.json,log=clip1.jsonl" \\
        --stream "source=rtsp://cam2/stream,log=cam2.jsonl,budget-ms=20" --stream "source=0,output=cam0.mp4"

Each ``--stream`` is one source as the camera app takes it (a video file, a folder or quoted glob of
images, a camera index or device, csi://, rtsp:// or http(s)://) with its own ``labels``, ``log``,
``output`` and deadline (``budget-ms`` or ``fps``; default the command's ``--budget-ms`` / ``--fps``).
Early exit, the deadline rule and the temporal rule hold per frame and per stream as in ``anytime
camera``; the frames of one tick share each stage's run (``pipeline.runtime.batched``). Runs
headless; Ctrl-C or SIGTERM stop cleanly with every log whole. The run is ``pipeline.video.multi``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.backends import BACKENDS
from pipeline.errors import PipelineError, cli_main
from pipeline.names import PRECISIONS
from pipeline.temporal.rule import TemporalOptions
from pipeline.video.multi import RuntimeChoice, run_streams, stream_options

KEYS = ("source", "labels", "log", "output", "budget-ms", "fps")
_SPLIT = re.compile(r",(?=(?:" + "|".join(re.escape(k) for k in KEYS) + r")=)")  # a comma before a key only


def parse_stream(text: str) -> dict[str, str]:
    """``source=...,log=...`` -> {key: value}; a comma inside a value (a URL's) stays in it."""
    parts: dict[str, str] = {}
    for item in _SPLIT.split(text.strip()):
        key, eq, value = item.partition("=")
        if not eq or key not in KEYS or not value:
            raise PipelineError(f"--stream {text!r}: expected key=value pairs of {', '.join(KEYS)} separated by "
                                f"commas, found {item!r}")
        if key in parts:
            raise PipelineError(f"--stream {text!r} gives {key} twice")
        parts[key] = value
    if "source" not in parts:
        raise PipelineError(f"--stream {text!r} has no source=")
    return parts


def _number(parts: dict[str, str], key: str) -> float | None:
    if key not in parts:
        return None
    try:
        return float(parts[key])
    except ValueError:
        raise PipelineError(f"{key}={parts[key]!r} should be a positive number") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anytime streams", description=__doc__.split("\n\n")[0],
                                epilog="example:\n" + __doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", required=True, help="built model folder, holding manifest.json (engines/<model>)")
    p.add_argument("--stream", action="append", required=True, metavar="source=...[,labels=,log=,output=,budget-ms=,fps=]",
                   help="one stream; repeat for each")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-ms", type=float, help="time budget per frame of every stream that sets none")
    budget.add_argument("--fps", type=float, help="target rate of every stream that sets none; budget = 1000 / fps")
    p.add_argument("--backend", default="auto", choices=("auto", *BACKENDS))
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--policy", default="default", help="exit policy from the manifest's thresholds")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (ONNX Runtime)")
    p.add_argument("--pace", action="store_true", help="play files at their own frame rate, not at full speed")
    p.add_argument("--crop", action="store_true", help="centre-crop frames to the model's aspect before resizing")
    p.add_argument("--max-frames", type=int, help="stop each stream after this many frames")
    p.add_argument("--frame-by-frame", action="store_true", help="no reuse, no prior, no smoothing: every frame alone")
    return p


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    temporal = TemporalOptions(reuse=False, prior=False, smoothing=0.0) if args.frame_by_frame else TemporalOptions()
    choice = RuntimeChoice(backend=args.backend, precision=args.precision, policy=args.policy, threads=args.threads,
                           pace=args.pace, crop=args.crop, max_frames=args.max_frames, temporal=temporal)
    streams = []
    for text in args.stream:
        parts = parse_stream(text)
        budget, fps = _number(parts, "budget-ms"), _number(parts, "fps")
        if budget is None and fps is None:
            budget, fps = args.budget_ms, args.fps
        streams.append(stream_options(
            Path(args.engines), parts["source"], choice, budget_ms=budget, fps=fps,
            labels=Path(parts["labels"]) if "labels" in parts else None,
            log=Path(parts["log"]) if "log" in parts else None,
            output=Path(parts["output"]) if "output" in parts else None))
    return run_streams(streams, choice)


if __name__ == "__main__":
    sys.exit(main())
