"""A demo clip from labelled evaluation images: one image per frame, with its label, for ``make demo``.

    python -m pipeline.video.clip --data DATA --split test --frames 300 --out runs/demo

Writes ``clip.avi`` (MJPG, which every OpenCV build can write), ``labels.json`` (one class name
per frame, what ``apps/camera.py --labels`` reads). Images are drawn with a fixed seed and
enlarged with nearest-neighbour, so that the app's INTER_AREA resize gives back the original
pixels up to the codec's loss. The clip is derived from the dataset: keep it out of git.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError, cli_main


def write_clip(images: np.ndarray, labels: list[str], out: Path, scale: int = 8, fps: float = 30.0) -> Path:
    """(N, H, W, 3) uint8 BGR images -> ``out/clip.avi`` and ``out/labels.json``; returns the clip path."""
    import cv2

    if len(images) == 0:
        raise PipelineError("no images to write into the clip; choose --frames of at least 1")
    out.mkdir(parents=True, exist_ok=True)
    n, h, w, _ = images.shape
    clip, tmp = out / "clip.avi", out / "clip.tmp.avi"
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w * scale, h * scale))  # type: ignore[attr-defined]
    if not writer.isOpened():
        raise PipelineError(f"OpenCV could not open a video writer for {tmp} (MJPG); check cv2.getBuildInformation()")
    try:
        for img in images:
            writer.write(cv2.resize(img, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST))
    finally:
        writer.release()
    os.replace(tmp, clip)
    (out / "labels.json").write_text(json.dumps(labels) + "\n")
    return clip


@cli_main
def main(argv: list[str] | None = None) -> int:
    from pipeline.data import load_dataset
    from pipeline.data import default_cache_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("ANYTIME_DATA", ""))
    ap.add_argument("--split", choices=["train", "test"], default="test")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--scale", type=int, default=8, help="nearest-neighbour enlargement of each image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/demo"))
    args = ap.parse_args(argv)
    if args.frames < 1 or args.scale < 1:
        raise PipelineError("--frames and --scale must be at least 1")
    data = load_dataset(args.data or None, args.split, cache_dir=args.cache_dir or default_cache_dir())
    pick = np.random.default_rng(args.seed).permutation(len(data))[: args.frames]
    clip = write_clip(data.images[pick], [data.classes[i] for i in data.labels[pick]], args.out, args.scale)
    print(f"wrote {clip} ({len(pick)} frames from the {args.split} split) and {args.out / 'labels.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
