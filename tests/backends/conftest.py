"""A tiny model folder (FP32 artifacts, ONNX Runtime engines, manifest) built once per module."""

from __future__ import annotations

import shutil

import pytest

from pipeline.manifest import DeviceInfo, FileEntry, InputSpec, Manifest, StageSpec, sha256_file, write_manifest
from tests.export.conftest import exported  # noqa: F401  (re-exported fixture)


@pytest.fixture(scope="module")
def model_folder(exported, tmp_path_factory):  # noqa: F811
    from pipeline.backends.onnxruntime import engine_from_onnx
    from pipeline.device import host_facts
    from pipeline.export.onnx_export import tensor_specs

    folder = tmp_path_factory.mktemp("model")
    (folder / "onnx").mkdir()
    arts, engines, stages = [], [], []
    for k, src in enumerate(exported.paths, start=1):
        rel = f"onnx/{src.name}"
        shutil.copy(src, folder / rel)
        arts.append(FileEntry(k, "fp32", rel, sha256_file(folder / rel)))
        eng = f"onnxruntime/{src.name}"
        engine_from_onnx(folder / rel, folder / eng)
        engines.append(FileEntry(k, "fp32", eng, sha256_file(folder / eng), backend="onnxruntime"))
        stages.append(StageSpec(k, *tensor_specs(src), flops=0, params=0))
    manifest = Manifest(model={"name": "tiny"}, classes=["a", "b", "c"], input=InputSpec("frame", ["N", 32, 32, 3],
                        "uint8"), stages=stages, artifacts=arts, engines=engines, device=DeviceInfo(**host_facts()),
                        unsupported=[{"backend": "onnxruntime", "precision": "fp16", "reason": "just a test"}])
    write_manifest(folder, manifest)
    return folder
