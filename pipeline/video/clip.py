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
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError, cli_main
from pipeline.files import atomic_write_text
from pipeline.video.scenes import MOTIONS, ClipPlan, ClipSpec, plan_clip, render_frames


def write_video(frames: Iterable[np.ndarray], path: Path, fps: float = 30.0) -> int:
    """(H, W, 3) uint8 BGR frames -> an MJPG video at ``path``, written beside it and renamed into place."""
    import cv2

    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    writer, n = None, 0
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))  # type: ignore[attr-defined]
                if not writer.isOpened():
                    raise PipelineError(f"OpenCV could not open a video writer for {tmp} (MJPG); "
                                        "check cv2.getBuildInformation()")
            writer.write(frame)
            n += 1
    finally:
        if writer is not None:
            writer.release()
    if n == 0:
        raise PipelineError("no frames to write into the clip; ask for at least one scene")
    os.replace(tmp, path)
    return n


def scenes_json(plan: ClipPlan, classes: Sequence[str]) -> list[dict[str, object]]:
    """The plan's scenes as ``scenes.json`` records."""
    return [{"scene": s.index, "start": s.start, "frames": s.frames, "image": s.image, "class": classes[s.label],
             "segments": list(s.segments)} for s in plan.scenes]


def write_clip(plan: ClipPlan, images: np.ndarray, classes: Sequence[str], out: Path, fps: float = 30.0) -> Path:
    """Render ``plan`` from ``images`` (N, h, w, 3) uint8 BGR into ``out``; returns the clip's path."""
    out.mkdir(parents=True, exist_ok=True)
    clip = out / "clip.avi"
    write_video(render_frames(plan, images), clip, fps)
    names = [classes[int(label)] for label in plan.frame_labels()]
    atomic_write_text(out / "labels.json", json.dumps(names) + "\n")
    atomic_write_text(out / "scenes.json", json.dumps(scenes_json(plan, classes), indent=1) + "\n")
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
    if not args.fps > 0:
        raise PipelineError(f"--fps should be a positive number of frames per second; got {args.fps}")
    spec = ClipSpec(scenes=args.scenes, min_frames=args.min_frames, max_frames=args.max_frames,
                    size=(args.height, args.width), motion=args.motion)
    source = DataOptions.from_args(args)
    data = load_dataset(source.source or None, args.split, cache_dir=source.cache_dir)
    plan = plan_clip(data.labels, spec, args.seed)
    clip = write_clip(plan, data.images, list(data.classes), args.out, args.fps)
    print(f"wrote {clip} ({plan.num_frames} frames, {len(plan.scenes)} scenes from the {args.split} split), "
          f"{args.out / 'labels.json'} and {args.out / 'scenes.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
