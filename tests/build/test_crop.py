"""The build of a reference-style ImageNet configuration reads its images as that configuration says: cropped."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxsim")

import pipeline.build.cli as build_cli  # noqa: E402
from pipeline.build import main  # noqa: E402
from pipeline.manifest import load_manifest  # noqa: E402
from pipeline.data.geometry import resize_and_crop  # noqa: E402

CLASSES = ("cat", "dog", "frog")
SMALL = {"num_classes": len(CLASSES), "n_blocks": 2, "step": 1, "base": 1, "n_channels": 4, "growth_rate": 4}


def test_an_imagenet_configuration_build_reads_cropped_images(tmp_path, monkeypatch):
    from pipeline.checkpoint import save_checkpoint
    from pipeline.models import create_model
    from pipeline.models.reference import CONFIGURATIONS

    conf = CONFIGURATIONS["imagenet"]  # what the converter builds: the reference's 256, then centre 224
    torch.manual_seed(0)
    model = create_model(conf.model, **{**conf.overrides, **SMALL, "preprocess": conf.preprocess})
    ckpt = tmp_path / "ref.pt"
    save_checkpoint(ckpt, model, conf.model, list(CLASSES), {"seed": 0, "size": 3, "source": "generated"})
    rng = np.random.default_rng(0)
    made = []
    for cls in CLASSES:
        folder = tmp_path / "data" / "train" / cls
        folder.mkdir(parents=True)
        for i, shape in enumerate(((240, 320), (300, 260))):  # landscape and portrait, neither 224x224
            img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
            cv2.imwrite(str(folder / f"{i:02d}.png"), img)
            made.append(img)
    read = []
    real = build_cli.load_checked

    def spy(*args, **kwargs):
        read.append(real(*args, **kwargs))
        return read[-1]

    monkeypatch.setattr(build_cli, "load_checked", spy)
    assert main(["--checkpoint", str(ckpt), "--data", str(tmp_path / "data"),
                 "--out", str(tmp_path / "engines"), "--cache-dir", str(tmp_path / "cache"),
                 "--calib-dir", str(tmp_path / "calib"), "--precisions", "fp32", "--backend", "onnxruntime"]) == 0
    manifest = load_manifest(tmp_path / "engines" / "msdnet_imagenet")
    assert (manifest.input.size, manifest.input.resize_shorter) == ((224, 224), 256)
    assert len(read) == 1
    expected = np.stack([resize_and_crop(img, (224, 224), 256) for img in made])
    np.testing.assert_array_equal(read[0].images, expected)
