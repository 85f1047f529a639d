"""Helpers shared by several test modules: a fake clock and the tiny model built once per session."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

CLASSES = [f"c{i}" for i in range(10)]  # the tiny built model's 10 classes
PNG = b"\x89PNG\r\n\x1a\n"


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0  # seconds

    def __call__(self) -> float:
        return self.t


@dataclass
class TinyBuild:
    folder: Path  # engines/<model>, with a manifest
    checkpoint: Path
    data: Path  # ImageFolder tree: train/ and test/
    cache: Path

    def copy(self, dest: Path) -> Path:
        """A private copy of the model folder, for tests that write to it."""
        out = dest / "engines" / self.folder.name
        shutil.copytree(self.folder, out)
        return out


def _write_images(root: Path, per_class: dict[str, int], seed: int = 0) -> None:
    import cv2

    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)  # (H, W, 3) BGR
                img[:4, :4] = 25 * c  # a class mark the random net may pick up a little
                cv2.imwrite(str(folder / f"{i}.png"), img)


def tiny_build(tmp_path_factory: pytest.TempPathFactory) -> TinyBuild:
    """The tiny_model config, random weights, built with pipeline.build for ONNX Runtime fp32/fp16/int8."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxsim")
    from pipeline import build
    from pipeline.checkpoint import save_checkpoint
    from pipeline.models import create_model
    from tests.conftest import TINY

    root = tmp_path_factory.getbasetemp() / "tiny-build"
    made = TinyBuild(root / "engines" / "msdnet_cifar", root / "tiny.pt", root / "data", root / "cache")
    if (made.folder / "manifest.json").is_file():
        return made
    _write_images(made.data, {"train": 5, "test": 3})  # 50 train (20 for validation), 30 test
    torch.manual_seed(0)
    model = create_model("msdnet_cifar", **TINY).eval()
    save_checkpoint(made.checkpoint, model, "msdnet_cifar", CLASSES, {"seed": 0, "size": 20, "source": "generated"})
    code = build.main(["--checkpoint", str(made.checkpoint), "--data", str(made.data), "--out", str(root / "engines"),
                       "--backend", "onnxruntime", "--calib-images", "8", "--cache-dir", str(made.cache),
                       "--calib-dir", str(root / "calib"), "--test-split"])
    assert code == 0 and (made.folder / "manifest.json").is_file()
    return made
