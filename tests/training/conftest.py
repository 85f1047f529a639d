"""Shared fixtures of the training tests: a tiny two-class ImageFolder and a tiny MSDNet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

TINY_OPTS = ["--model-opt", "n_blocks=3", "--model-opt", "step=1", "--model-opt", "base=2",
             "--model-opt", "n_channels=8", "--model-opt", "growth_rate=4", "--model-opt", "num_classes=2"]


def make_imagefolder(root: Path, per_class: int = 40) -> Path:
    """Two easy classes: reddish and bluish 32x32 images with noise, under root/train/<class>/."""
    rng = np.random.default_rng(0)
    for name, colour in (("blue", (200, 40, 40)), ("red", (40, 40, 200))):  # BGR
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            img = np.clip(np.array(colour) + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{i:03d}.png"), img)
    return root


def run(tmp_path: Path, out: Path, *extra: str) -> int:
    data = tmp_path / "data"
    if not data.exists():
        make_imagefolder(data)
    from pipeline.training import cli

    return cli.main(["--data", str(data), "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
                    "--batch-size", "16", "--val-size", "16", "--lr", "0.05", "--threads", "1",
                    "--no-progress", *TINY_OPTS, *extra])


