"""An ImageNet-size model on this machine: MSDNet's ImageNet configuration at 224x224, random weights,
through `make engines`, the latency profiler and the camera app (``make imagenet-size``).

    anytime bench imagenet-size --out runs/imagenet224 [--classes 1000] [--runs 100] [--frames 60]

Steps, each the command a user runs: generated 256x256 training images (smooth colour fields, one
folder per class: latency does not depend on what the pixels show), a checkpoint of freshly
initialised weights (``anytime factory --model msdnet_imagenet``), the engines
(``anytime engines``, accuracy skipped: random weights), per-stage latency
(``anytime profile``: ``<out>/reports/latency.md`` holds the table), and the camera app on
640x480 frames, which it resizes (shorter side 256) and centre-crops to 224x224 as the model says.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from pipeline.errors import cli_main


def write_images(folder: Path, n: int, size: tuple[int, int], seed: int) -> None:
    """``n`` smooth random colour images of ``size`` (H, W) as JPEG files in ``folder``."""
    import cv2

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size[0], 0:size[1]] / max(size)
    for i in range(n):
        a, b, c = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3), rng.uniform(0.2, 0.8, 3)
        img = c + 0.4 * (a * yy[..., None] + b * xx[..., None])  # (H, W, 3) in 0..1
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), np.clip(img * 255, 0, 255).astype(np.uint8))


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="anytime bench imagenet-size", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/imagenet224"))
    ap.add_argument("--classes", type=int, default=1000, help="class folders (one training image each)")
    ap.add_argument("--runs", type=int, default=100, help="timed runs per variant in the profiler")
    ap.add_argument("--frames", type=int, default=60, help="640x480 frames for the camera app")
    ap.add_argument("--precisions", default="fp32,fp16,int8")
    args = ap.parse_args(argv)
    from pipeline.apps.camera import main as camera
    from pipeline.apps.profile_latency import main as profile
    from pipeline.build import main as build
    from pipeline.models.factory import main as checkpoint

    out, data = args.out, args.out / "data"
    if not (data / "train").is_dir():
        for c in range(args.classes):
            write_images(data / "train" / f"class{c:04d}", 1, (256, 256), seed=c)
        write_images(out / "frames", args.frames, (480, 640), seed=10_000)
    common = ["--data", str(data), "--cache-dir", str(out / "cache")]
    val = str(min(100, args.classes // 2))
    checkpoint(["--model", "msdnet_imagenet", "--classes", str(data / "train"), "--val-size", val,
                "--out", str(out / "msdnet_imagenet.pt")])
    build(["--checkpoint", str(out / "msdnet_imagenet.pt"), *common, "--out", str(out / "engines"), "--skip-accuracy",
           "--precisions", args.precisions, "--calib-images", "64", "--calib-dir", str(out / "calib")])
    folder = str(out / "engines" / "msdnet_imagenet")
    profile(["--engines", folder, *common, "--runs", str(args.runs), "--warmup", "10", "--out", str(out / "reports")])
    return camera(["--engines", folder, "--source", str(out / "frames"), "--headless", "--policy", "last-exit",
                   "--log", str(out / "frames.jsonl")])


if __name__ == "__main__":
    sys.exit(main())
