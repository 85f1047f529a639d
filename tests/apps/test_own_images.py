"""Your own images and your own network, end to end with the README's commands: a tiny generated
ImageFolder, the example two-exit CNN trained on it, `make engines`, the profiler and the camera app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
FACTORY = f"{ROOT}/examples/two_exit_cnn.py:build"
CLASSES = ("daisy", "rose", "tulip")


def write_flowers(root: Path) -> None:
    """(48, 64) JPEGs, not the model's 32x32: each class tints one colour channel."""
    import cv2

    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("test", 4)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 200, (48, 64, 3), dtype=np.uint8)  # (H, W, 3) BGR
                img[..., c] += 55
                cv2.imwrite(str(folder / f"{i}.jpg"), img)


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("onnxsim")
    from pipeline import build
    from pipeline.training import cli as training

    root = tmp_path_factory.mktemp("own")
    data, cache, ckpt = root / "flowers", root / "cache", root / "cnn.pt"
    write_flowers(data)
    assert training.main(["--model-factory", FACTORY, "--model-opt", "num_classes=3", "--data", str(data),
                          "--cache-dir", str(cache), "--out", str(ckpt), "--epochs", "2", "--batch-size", "8",
                          "--val-size", "6", "--no-progress", "--threads", "1"]) == 0
    assert build.main(["--model-factory", FACTORY, "--checkpoint", str(ckpt), "--data", str(data), "--cache-dir",
                       str(cache), "--out", str(root / "engines"), "--backend", "onnxruntime", "--calib-images", "16",
                       "--calib-dir", str(root / "calib")]) == 0
    return root


def test_training_records_the_factory_and_the_data(walk):
    from pipeline.checkpoint import read_checkpoint

    ckpt = read_checkpoint(walk / "cnn.pt")
    assert ckpt["model"] == FACTORY and ckpt["classes"] == list(CLASSES)
    assert ckpt["config"]["factory"] == FACTORY and ckpt["config"]["num_classes"] == 3


def test_the_build_makes_every_precision_for_the_example(walk):
    from pipeline.manifest import load_manifest

    m = load_manifest(walk / "engines" / "two_exit_cnn")
    assert m.classes == list(CLASSES) and m.num_exits == 2 and m.input.shape == ["N", 32, 32, 3]
    assert sorted({(e.precision, e.stage) for e in m.engines}) == [(p, k) for p in ("fp16", "fp32", "int8")
                                                                   for k in (1, 2)]
    assert set(m.accuracy["validation"]) == {"onnxruntime/fp32", "onnxruntime/fp16", "onnxruntime/int8"}
    assert [t.name for t in m.stages[1].inputs] == ["stage1_map0"] and m.stages[1].flops > 0


def test_the_profiler_and_the_camera_run_on_it(walk, capsys):
    from pipeline.apps.camera import main as camera
    from pipeline.apps.profile_latency import main as profile
    from pipeline.manifest import load_manifest

    folder = walk / "engines" / "two_exit_cnn"
    assert profile(["--engines", str(folder), "--data", str(walk / "flowers"), "--cache-dir", str(walk / "cache"),
                    "--out", str(walk / "reports"), "--runs", "20", "--warmup", "5"]) == 0
    assert "onnxruntime/int8: cumulative p50" in capsys.readouterr().out
    assert "onnxruntime/int8" in load_manifest(folder).thresholds
    log = walk / "frames.jsonl"
    assert camera(["--engines", str(folder), "--source", str(walk / "flowers" / "test" / "*" / "*.jpg"),
                   "--headless", "--log", str(log), "--precision", "int8"]) == 0
    out = capsys.readouterr().out
    assert "12 frames" in out and "stopped: end of source" in out
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 12 and {r["class"] for r in records} <= set(CLASSES)
