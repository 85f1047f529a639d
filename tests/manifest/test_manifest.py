"""The manifest: round trip, and a clear error for every way a model folder can be wrong."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import PipelineError
from pipeline.manifest import (MANIFEST_NAME, SCHEMA_VERSION, DeviceInfo, FileEntry, InputSpec, Manifest, StageSpec,
                               TensorSpec, load_manifest, sha256_file, variant_key, write_manifest)


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
                    input=InputSpec("frame", ["N", 32, 32, 3], "uint8"), stages=[stage],
                    artifacts=entries, tools={"onnx": "1"}, device=DeviceInfo(cpu="x"),
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


def test_version_1_manifests_load_through_the_migration(tmp_path):
    """Version 1: a flat device, tables without providers, thresholds from before the mean aggregate."""
    path = write_manifest(tmp_path, make(tmp_path))
    raw = json.loads(path.read_text())
    raw["schema_version"] = 1
    raw["device"] = {"cpu": "x", "machine": "x86_64", "cpu_count": 2, "onnxruntime_providers": ["CPUExecutionProvider"],
                     "onnxruntime_threads": 1, "gpu": "Orin", "compute_capability": "8.7", "tensorrt": "10.3.0",
                     "emulated": {"onnxruntime/fp16": "float32 inside"}}
    table = {"criterion": "confidence", "samples": 5, "default_tolerance": 0.3, "default_confidence": 0.95,
             "policies": {"default": {"thresholds": [None]}}, "curve": []}
    raw["thresholds"] = {"onnxruntime/fp32": table, "tensorrt/fp32": dict(table, aggregate="mean")}
    raw["latency"] = {"onnxruntime/fp32": {"stages": [{"p50_ms": 1.0}], "cumulative_p50_ms": [1.0], "runs": 3,
                                           "threads": 1, "clock": "perf_counter", "device": {}, "measured_at": "t"}}
    path.write_text(json.dumps(raw))
    m = load_manifest(tmp_path)
    assert m.schema_version == SCHEMA_VERSION == 2
    assert (m.device.cpu, m.device.machine, m.device.cpu_count) == ("x", "x86_64", 2)
    assert m.device.backends == {"onnxruntime": {"providers": ["CPUExecutionProvider"], "threads": 1},
                                 "tensorrt": {"gpu": "Orin", "compute_capability": "8.7", "tensorrt": "10.3.0"}}
    assert m.device.emulated == {"onnxruntime/fp16": "float32 inside"}
    assert m.thresholds["onnxruntime/fp32"].aggregate == "last"  # written before exits answered with the mean
    assert m.thresholds["tensorrt/fp32"].aggregate == "mean"
    cpu = ["CPUExecutionProvider"]
    assert m.thresholds["onnxruntime/fp32"].providers == cpu == m.latency["onnxruntime/fp32"].providers
    assert m.thresholds["tensorrt/fp32"].providers == []
    write_manifest(tmp_path, m)  # written back in the current layout, equal on reading
    assert json.loads(path.read_text())["schema_version"] == 2 and load_manifest(tmp_path) == m


def test_the_batch_range_and_per_batch_latency_round_trip_and_older_manifests_load(tmp_path):
    """The optional ``batch`` field and ``LatencyTable.batches``: written, read back; a manifest without them is batch 1."""
    from pipeline.manifest import BatchRange, LatencyTable, Manifest, load_manifest, write_manifest
    from pipeline.manifest.tables import InputSpec
    from pipeline.manifest import StageSpec, TensorSpec

    stage = StageSpec(1, [TensorSpec("frame", ["N", 8, 8, 3], "uint8")], [TensorSpec("logits_1", ["N", 2], "float32")],
                      flops=1, params=1)
    old = Manifest(model={"name": "t"}, classes=["a", "b"], input=InputSpec("frame", ["N", 8, 8, 3], "uint8"),
                   stages=[stage])
    write_manifest(tmp_path, old)
    raw = json.loads((tmp_path / "manifest.json").read_text())
    raw.pop("batch")  # as a manifest written before batches
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    loaded = load_manifest(tmp_path)
    assert loaded.batch == {} and loaded.batch_range("tensorrt") == BatchRange(1, 1, 1)
    row = {"mean_ms": 1.0, "p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0, "max_ms": 1.0}
    old.batch = {"tensorrt": BatchRange(1, 8, 16)}
    old.latency = {"onnxruntime/fp32": LatencyTable([row], batches={"4": [dict(row, p50_ms=2.5)]})}
    write_manifest(tmp_path, old)
    back = load_manifest(tmp_path)
    assert back.batch_range("tensorrt") == BatchRange(1, 8, 16)
    assert back.latency["onnxruntime/fp32"].batch_rows()[4][0]["p50_ms"] == 2.5
    assert sorted(back.latency["onnxruntime/fp32"].batch_rows()) == [1, 4]
