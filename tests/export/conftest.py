"""Module-scoped fixtures: the tiny three-exit model exported once, and frames that look like images."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline import names
from tests.conftest import TINY


def image_like(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    """(n, size, size, 3) uint8 BGR: smooth colour gradients plus noise, closer to photos than pure noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size  # (H, W)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        a, b, c = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3), rng.uniform(0.2, 0.8, 3)
        img = c + 0.4 * (a * yy[..., None] + b * xx[..., None]) + rng.normal(0, 0.06, (size, size, 3))
        out[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return out


def torch_chain(model, frames: np.ndarray) -> list[np.ndarray]:
    """Every exit's logits from the PyTorch stages, chained as the runtime chains the graphs."""
    import torch

    outs, carried = [], (torch.from_numpy(frames),)
    with torch.no_grad():
        for stage in model.stages:
            out = stage(*carried)
            outs.append(out[0].numpy())
            carried = out[1:]
    return outs


def run_chain(paths, frames):
    """Chain the stage graphs on ONNX Runtime, feeding each stage the previous one's outputs by name."""
    import onnxruntime as ort

    feeds, logits = {names.FRAME: frames}, []
    for path in paths:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs = sess.run(None, feeds)
        logits.append(outs[0])
        feeds = dict(zip([o.name for o in sess.get_outputs()][1:], outs[1:]))
    return logits


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The tiny model (3 exits, 3 classes) and its FP32 stage graphs, exported and simplified once per module."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxsim")
    from pipeline.export.onnx_export import onnx_from_model
    from pipeline.models import create_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batch-1 tracing: one thread is fastest, more only contend
    try:
        torch.manual_seed(0)
        model = create_model("msdnet_cifar", **TINY, num_classes=3).eval()
        folder = tmp_path_factory.mktemp("onnx")
        paths = onnx_from_model(model, folder)
    finally:
        torch.set_num_threads(threads)
    return SimpleNamespace(model=model, folder=Path(folder), paths=paths)
