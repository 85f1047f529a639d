"""Every built graph keeps the dynamic batch axis: FP32, FP16 and INT8 (both flavours) load at batch N and
agree with their own single-frame runs, exit by exit."""

from __future__ import annotations

import numpy as np
import pytest

from tests.export.conftest import image_like
from tests.helpers import tiny_build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return tiny_build(tmp_path_factory)


def test_every_artifact_has_a_symbolic_batch_axis(built):
    import onnx

    from pipeline.manifest import load_manifest

    m = load_manifest(built.folder)
    assert {a.precision for a in m.artifacts} == {"fp32", "fp16", "int8"}
    for entry in m.artifacts + m.engines:
        graph = onnx.load(str(built.folder / entry.path), load_external_data=False).graph
        for vi in [*graph.input, *graph.output]:
            assert vi.type.tensor_type.shape.dim[0].dim_param, (entry.path, vi.name)  # "N", not a fixed 1


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_a_batch_equals_single_frames_in_every_precision(built, precision):
    from pipeline.backends import load_chain
    from pipeline.manifest import load_manifest

    m = load_manifest(built.folder)
    frames = image_like(6, seed=4)
    with load_chain(m, built.folder, "onnxruntime", precision) as chain:
        single = np.stack([np.concatenate(chain.run_all(frames[i:i + 1])) for i in range(6)])  # (N, K, C)
        batched = np.stack(chain.run_all(frames), axis=1)
    scale = max(1.0, float(np.abs(single).max()))
    assert batched.shape == single.shape and np.abs(batched - single).max() <= 1e-4 * scale
