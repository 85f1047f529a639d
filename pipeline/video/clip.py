"""Labelled test clips from a split: scenes of one image each, seen by a moving camera, joined by cuts.

    python -m pipeline.video.clip --data DATA --split test --scenes 10 --out runs/demo

Writes ``clip.avi`` (MJPG, which every OpenCV build can write), ``labels.json`` (one class name
per frame, what ``apps/camera.py --labels`` reads) and ``scenes.json`` (each scene's first frame,
length, image, class and camera segments). How a scene is filmed: :mod:`pipeline.video.scenes`.
The validation split is for tuning, the test split for reporting. The clip is derived from the
data set: keep it out of git. Play it with ``--crop``: frames are 4:3, the model's input square.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError, check_seed, cli_main, file_size_limit
from pipeline.files import check_output, mark_temporary, refuse_special, write_output
from pipeline.stop import stop_at_once
from pipeline.video.scenes import MOTIONS, ClipPlan, ClipSpec, plan_clip, render_frames

MAX_FPS = 1000  # the clip's frame rate, as the video file records it
MAX_SIDE = 4096  # pixels: a frame as large as a 4K camera's; larger is a typo that would exhaust memory


def count_frames(path: Path) -> int:
    """The frames OpenCV can read back from the video at ``path``."""
    import cv2

    capture, n = cv2.VideoCapture(str(path)), 0
    try:
        while capture.grab():
            n += 1
    finally:
        capture.release()
    return n


def write_video(frames: Iterable[np.ndarray], path: Path, fps: float = 30.0, *,
                into_place: bool = True) -> tuple[Path, int]:
    """(H, W, 3) uint8 BGR frames -> an MJPG video written to a marked temporary beside ``path`` and read back:
    (the temporary, or ``path`` once renamed there with ``into_place``; the frame count). A video that does
    not read back whole (a full disk, a file size limit: OpenCV's writer does not say) or a signal removes
    the temporary and leaves ``path`` as it was."""
    import cv2

    refuse_special(path, "the clip")
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # OpenCV picks the format by suffix
    writer, n = None, 0
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))  # type: ignore[attr-defined]
                if not writer.isOpened():
                    raise PipelineError(f"OpenCV could not open a video writer for {tmp} (MJPG); "
                                        "check cv2.getBuildInformation()")
                with open(tmp, "rb") as f:  # mark it ours, so a later run may sweep it if this one is killed
                    mark_temporary(f.fileno())
            writer.write(frame)
            n += 1
        if writer is not None:
            writer.release()
            writer = None
        if n == 0:
            raise PipelineError("no frames to write into the clip; ask for at least one scene")
        readable = count_frames(tmp)
        if readable != n:
            limit = file_size_limit()
            cause = f"a file size limit of {limit} bytes (`ulimit -f`)" if limit is not None else "a full disk?"
            raise PipelineError(f"the clip {path} would hold {readable} readable frames of {n} ({cause}); "
                                f"{path} was left as it was: free some space or write it elsewhere")
        if into_place:
            os.replace(tmp, path)
            return path, n
        return tmp, n
    except BaseException:
        if writer is not None:
            writer.release()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def scenes_json(plan: ClipPlan, classes: Sequence[str]) -> list[dict[str, object]]:
    """The plan's scenes as ``scenes.json`` records."""
    return [{"scene": s.index, "start": s.start, "frames": s.frames, "image": s.image, "class": classes[s.label],
             "segments": list(s.segments)} for s in plan.scenes]


def write_clip(plan: ClipPlan, images: np.ndarray, classes: Sequence[str], out: Path, fps: float = 30.0) -> Path:
    """Render ``plan`` from ``images`` (N, h, w, 3) uint8 BGR into ``out``; returns the clip's path."""
    out.mkdir(parents=True, exist_ok=True)
    clip = out / "clip.avi"
    tmp, _ = write_video(render_frames(plan, images), clip, fps, into_place=False)
    try:  # the video is whole before the labels are replaced, and goes in place last
        names = [classes[int(label)] for label in plan.frame_labels()]
        write_output(out / "labels.json", json.dumps(names) + "\n", "the clip's labels")
        write_output(out / "scenes.json", json.dumps(scenes_json(plan, classes), indent=1) + "\n", "the clip's scenes")
        os.replace(tmp, clip)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return clip


@cli_main
def main(argv: list[str] | None = None) -> int:
    from pipeline.data import load_dataset
    from pipeline.data.options import DataOptions, add_data_options

    ap = argparse.ArgumentParser(prog="anytime clip", description=__doc__.split("\n")[0])
    add_data_options(ap, help="the labelled images the clip shows")
    ap.add_argument("--split", choices=["train", "test"], default="test",
                    help="test for reporting; train draws from the training images (tuning uses the validation "
                         "split through pipeline.apps.temporal_calibrate)")
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--min-frames", type=int, default=30, help="frames per scene, at least")
    ap.add_argument("--max-frames", type=int, default=60, help="frames per scene, at most")
    ap.add_argument("--motion", choices=MOTIONS, default="mixed",
                    help="mixed: pans, fast moves and static stretches; continuous: the camera never stops")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/demo"))
    args = ap.parse_args(argv)
    if not 1 <= args.fps <= MAX_FPS:  # also refuses nan and inf, on which the video writer never returns
        raise PipelineError(f"--fps should be a number of frames per second from 1 to {MAX_FPS}; got {args.fps}")
    if not 8 <= min(args.width, args.height) <= max(args.width, args.height) <= MAX_SIDE:
        raise PipelineError(f"--width and --height should be 8 to {MAX_SIDE} pixels; got {args.width}x{args.height}")
    check_seed(args.seed)
    inputs = [("--data", Path(args.data) if args.data else None)]
    for name in ("clip.avi", "labels.json", "scenes.json"):
        check_output(args.out / name, f"the clip's {name}", inputs)
    spec = ClipSpec(scenes=args.scenes, min_frames=args.min_frames, max_frames=args.max_frames,
                    size=(args.height, args.width), motion=args.motion)
    source = DataOptions.from_args(args)
    data = load_dataset(source.source or None, args.split, cache_dir=source.cache_dir)
    plan = plan_clip(data.labels, spec, args.seed)
    with stop_at_once():  # SIGINT or SIGTERM: the temporary goes, the previous clip stays (exit 130 or 143)
        clip = write_clip(plan, data.images, list(data.classes), args.out, args.fps)
    print(f"wrote {clip} ({plan.num_frames} frames, {len(plan.scenes)} scenes from the {args.split} split), "
          f"{args.out / 'labels.json'} and {args.out / 'scenes.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
