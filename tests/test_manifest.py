"""The manifest: round trip, and a clear error for every way a model folder can be wrong."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import PipelineError
from pipeline.manifest import (MANIFEST_NAME, SCHEMA_VERSION, FileEntry, Manifest, StageSpec, TensorSpec,
                               load_manifest, sha256_file, variant_key, write_manifest)


def make(folder, files=("onnx/stage1.fp32.onnx",)):
    """A one-stage manifest whose artifacts exist in ``folder`` with their real hashes."""
    entries = []
    for rel in files:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode())
        entries.append(FileEntry(stage=1, precision="fp32", path=rel, sha256=sha256_file(path)))
    stage = StageSpec(1, [TensorSpec("frame", ["N", 32, 32, 3], "uint8")],
                      [TensorSpec("logits_1", ["N", 10], "float32")], flops=100, params=10)
    return Manifest(model={"name": "m", "config": {}, "checkpoint_sha256": "0" * 64}, classes=list("abcdefghij"),
                    input={"name": "frame", "shape": ["N", 32, 32, 3], "dtype": "uint8"}, stages=[stage],
                    artifacts=entries, tools={"onnx": "1"}, device={"cpu": "x"},
                    accuracy={"validation": {variant_key("onnxruntime", "fp32"): [50.0]}})


def test_round_trip(tmp_path):
    m = make(tmp_path)
    path = write_manifest(tmp_path, m)
    assert path.name == MANIFEST_NAME and json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    back = load_manifest(tmp_path)
    assert back == m and back.num_exits == 1
    assert back.files(precision="fp32")[0].path == "onnx/stage1.fp32.onnx"
    assert load_manifest(path) == m  # the file itself works too


def test_missing_manifest(tmp_path):
    with pytest.raises(PipelineError, match="no manifest at .*make engines"):
        load_manifest(tmp_path)


def test_missing_file(tmp_path):
    write_manifest(tmp_path, make(tmp_path))
    (tmp_path / "onnx/stage1.fp32.onnx").unlink()
    with pytest.raises(PipelineError, match="stage1.fp32.onnx, which is missing"):
        load_manifest(tmp_path)


def test_hash_mismatch(tmp_path):
    write_manifest(tmp_path, make(tmp_path))
    (tmp_path / "onnx/stage1.fp32.onnx").write_bytes(b"tampered")
    with pytest.raises(PipelineError, match="does not match the manifest"):
        load_manifest(tmp_path)
    load_manifest(tmp_path, verify=False)  # only the hashes were wrong


def test_path_outside_the_folder(tmp_path):
    inner = tmp_path / "model"
    inner.mkdir()
    m = make(inner)
    (tmp_path / "elsewhere.onnx").write_bytes(b"x")
    m.artifacts[0].path = "../elsewhere.onnx"
    m.artifacts[0].sha256 = sha256_file(tmp_path / "elsewhere.onnx")
    write_manifest(inner, m)
    with pytest.raises(PipelineError, match="outside the model folder"):
        load_manifest(inner)


def test_unknown_schema_version(tmp_path):
    path = write_manifest(tmp_path, make(tmp_path))
    raw = json.loads(path.read_text())
    raw["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(raw))
    with pytest.raises(PipelineError, match="schema version"):
        load_manifest(tmp_path)


def test_not_json_or_malformed(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text("{")
    with pytest.raises(PipelineError, match="not valid JSON"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"schema_version": SCHEMA_VERSION, "model": {}}))
    with pytest.raises(PipelineError, match="malformed"):
        load_manifest(tmp_path)
