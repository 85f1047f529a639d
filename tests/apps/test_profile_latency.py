"""The latency profiler end to end on the tiny built model: JSON, Markdown and PNG out, the manifest's
latency and threshold tables updated (and still verified), thresholds from validation only; every
user mistake exits 2 with a message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.apps.profile_latency import main
from pipeline.manifest import load_manifest, sha256_file
from tests.helpers import PNG, tiny_build

ROOT = Path(__file__).resolve().parents[2]
STAT_KEYS = {"mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return tiny_build(tmp_path_factory)


def args(built, folder, out, *extra):
    return ["--engines", str(folder), "--data", str(built.data), "--cache-dir", str(built.cache), "--out", str(out),
            "--runs", "20", "--warmup", "5", *extra]


def fails(argv, capsys, match):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err, err
    return err


def test_profile_writes_reports_and_updates_the_manifest(built, tmp_path, capsys):
    folder = built.copy(tmp_path)
    before = {p.name: sha256_file(p) for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"}
    out = tmp_path / "reports"
    assert main(args(built, folder, out, "--split", "test", "--checkpoint", str(built.checkpoint))) == 0
    log = capsys.readouterr().out
    assert "onnxruntime/int8: cumulative p50" in log and "pytorch-eager/fp32" in log

    report = json.loads((out / "latency.json").read_text())
    assert report["split"] == "test" and report["images"] == 30 and report["calibration_images"] == 20
    assert set(report["variants"]) == {"onnxruntime/fp32", "onnxruntime/fp16", "onnxruntime/int8",
                                       "pytorch-eager/fp32"}
    v = report["variants"]["onnxruntime/int8"]
    assert len(v["stages"]) == 3 and set(v["stages"][0]) == STAT_KEYS and v["runs"] == 20
    assert len(v["anytime"]) == 3 and v["budgeted"] and len(v["accuracy"]) == 3
    assert [p["accuracy"] for p in v["anytime"]] == v["answer_accuracy"]
    # --aggregate auto (the default): the cheaper default policy of the two, both recorded
    chosen = v["aggregate_chosen_from"]
    assert set(chosen) == {"mean", "last"}
    assert v["aggregate"] == min(chosen, key=lambda a: (chosen[a]["expected_cost_ms"], -chosen[a]["expected_accuracy"]))
    assert v["answer_accuracy"][0] == v["accuracy"][0]  # exit 1's mean is exit 1 itself
    assert report["device"]["threads"] == 1 and report["device"]["cpu"]
    md = (out / "latency.md").read_text()
    assert md.count("| stage | mean (ms) | p50 (ms) |") == 4 and "## onnxruntime/fp16" in md
    assert (out / "latency.png").read_bytes()[:8] == PNG

    manifest = load_manifest(folder, verify=True)  # engines and artifacts untouched: sha256 still hold
    after = {p.name: sha256_file(p) for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert after == before
    assert set(manifest.latency) == set(manifest.thresholds) == {"onnxruntime/fp32", "onnxruntime/fp16",
                                                                 "onnxruntime/int8"}
    lat = manifest.latency["onnxruntime/fp32"]
    assert [set(s) for s in lat.stages] == [STAT_KEYS] * 3 and lat.runs == 20 and lat.threads == 1
    assert lat.cumulative_p50_ms == sorted(lat.cumulative_p50_ms) and lat.measured_at and lat.device["cpu"]
    table = manifest.thresholds["onnxruntime/fp32"]
    assert table.samples == 20  # calibrated on the validation split, although the curves are on test
    assert {"default", "last-exit"} <= set(table.policies) and table.curve
    fp32 = report["variants"]["onnxruntime/fp32"]
    assert table.aggregate == fp32["aggregate"] and table.aggregate_chosen_from == fp32["aggregate_chosen_from"]
    assert "Chosen on validation (`--aggregate auto`)" in md
    assert lat.providers == table.providers == manifest.device.backends["onnxruntime"]["providers"]


def test_the_cascade_reads_what_the_profiler_wrote(built, tmp_path):
    from pipeline.runtime.cascade import Cascade

    folder = built.copy(tmp_path)
    assert main(args(built, folder, tmp_path / "r", "--precisions", "fp32", "--aggregate", "mean")) == 0
    manifest = load_manifest(folder)
    assert list(manifest.latency) == ["onnxruntime/fp32"]
    assert manifest.thresholds["onnxruntime/fp32"].aggregate_chosen_from == {}  # given, not chosen
    with Cascade.from_folder(folder, backend="onnxruntime", precision="fp32") as cascade:
        assert cascade.predictor.measured and cascade.notes == [] and cascade.aggregate == "mean"
        assert cascade.thresholds[-1] == -float("inf")
    with Cascade.from_folder(folder, backend="onnxruntime", precision="int8") as cascade:
        assert not cascade.predictor.measured  # not profiled: the cascade says so
    # A second run of another precision keeps the first one's tables; its aggregate is its own.
    assert main(args(built, folder, tmp_path / "r", "--precisions", "int8", "--backends", "onnxruntime",
                     "--aggregate", "last", "--tolerance", "0.5", "--confidence", "0.99")) == 0
    manifest = load_manifest(folder)
    assert set(manifest.latency) == {"onnxruntime/fp32", "onnxruntime/int8"}
    tables = [manifest.thresholds[k] for k in ("onnxruntime/fp32", "onnxruntime/int8")]
    assert [(t.aggregate, t.default_tolerance, t.default_confidence) for t in tables] == [
        ("mean", 0.3, 0.95), ("last", 0.5, 0.99)]
    with Cascade.from_folder(folder, backend="onnxruntime", precision="int8") as cascade:
        assert cascade.aggregate == "last"


def test_without_torch_the_baseline_is_skipped_with_a_note(built, tmp_path, monkeypatch):
    import pipeline.profiling.torch_baseline

    monkeypatch.setattr(pipeline.profiling.torch_baseline, "torch_available", lambda: False)
    folder = built.copy(tmp_path)
    out = tmp_path / "r"
    assert main(args(built, folder, out, "--precisions", "fp32", "--checkpoint", str(built.checkpoint))) == 0
    report = json.loads((out / "latency.json").read_text())
    assert list(report["variants"]) == ["onnxruntime/fp32"]
    assert "note: torch is not installed here: no PyTorch eager baseline" in (out / "latency.md").read_text()


def test_a_batch_beyond_the_engines_is_refused_before_any_timing(built, tmp_path, capsys, monkeypatch):
    """Engines that take at most 2 frames: --batch-sizes 1,4 fails at once, not after batch 1's profile."""
    import pipeline.profiling
    from pipeline.backends.onnxruntime.chain import OnnxRuntimeChain

    def never(*a, **k):
        raise AssertionError("timed before the batch sizes were checked")

    monkeypatch.setattr(OnnxRuntimeChain, "_max_batch", lambda self: 2)
    monkeypatch.setattr(pipeline.profiling, "profile_chain", never)
    folder = built.copy(tmp_path)
    before = (folder / "manifest.json").read_bytes()
    fails(args(built, folder, tmp_path / "r", "--precisions", "fp32", "--batch-sizes", "1,4"), capsys,
          "batch 4 is beyond what the onnxruntime/fp32 engines take (at most 2)")
    assert (folder / "manifest.json").read_bytes() == before and not (tmp_path / "r" / "latency.json").exists()


@pytest.mark.parametrize("extra, match", [
    (["--precisions", "fp64"], "--precisions must be 'all' or a comma list of fp32, fp16, int8"),
    (["--backends", "cuda"], "--backends must be 'all' or a comma list of onnxruntime, tensorrt"),
    (["--backends", "tensorrt"], "has no tensorrt engines"),
    (["--runs", "0"], "--runs must be at least 1"),
    (["--warmup", "-1"], "--warmup must be 0 or more"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--checkpoint", "missing.pt"], "--checkpoint missing.pt does not exist"),
    (["--tolerance", "-1"], "--tolerance must be 0 or more accuracy points"),
    (["--confidence", "0"], "--confidence must be between 0 and 1"),
    (["--batch-sizes", "4,abc"], "--batch-sizes must be a comma list of whole numbers from 1 to 1024"),
    (["--batch-sizes", "0"], "--batch-sizes must be a comma list of whole numbers from 1 to 1024"),
    (["--batch-sizes", "1,100000"], "--batch-sizes must be a comma list of whole numbers from 1 to 1024"),
])
def test_bad_options_are_refused(built, tmp_path, capsys, extra, match):
    fails(args(built, built.folder, tmp_path / "r", *extra), capsys, match)
    assert not (tmp_path / "r").exists()


def test_unknown_aggregate_is_refused(built, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args(built, built.folder, tmp_path / "r", "--aggregate", "max"))
    assert exc.value.code == 2 and "--aggregate: invalid choice: 'max'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_missing_manifest_and_unbuilt_precision(built, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    fails(args(built, tmp_path / "empty", tmp_path / "r"), capsys, "no manifest at")
    folder = built.copy(tmp_path)
    raw = json.loads((folder / "manifest.json").read_text())
    raw["engines"] = [e for e in raw["engines"] if e["precision"] != "int8"]
    raw["unsupported"].append({"backend": "onnxruntime", "precision": "int8", "reason": "built but does not run"})
    (folder / "manifest.json").write_text(json.dumps(raw))
    err = fails(args(built, folder, tmp_path / "r", "--precisions", "fp32,int8"), capsys,
                "has no onnxruntime/int8 engines (built but does not run)")
    assert "onnxruntime/fp16, onnxruntime/fp32" in err


def test_altered_engine_and_foreign_checkpoint(built, tmp_path, capsys):
    import torch

    from pipeline.checkpoint import save_checkpoint
    from pipeline.models import create_model
    from tests.conftest import TINY
    from tests.helpers import CLASSES

    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    save_checkpoint(other, create_model("msdnet_cifar", **TINY), "msdnet_cifar", CLASSES, {"seed": 0, "size": 20})
    fails(args(built, built.folder, tmp_path / "r", "--checkpoint", str(other)), capsys,
          "is not the checkpoint the engines")
    folder = built.copy(tmp_path)
    engine = next((folder / "onnxruntime").glob("stage2.*"))
    engine.write_bytes(engine.read_bytes() + b"x")
    fails(args(built, folder, tmp_path / "r"), capsys, "does not match the manifest")


def test_the_command_line_exits_2_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "apps/profile_latency.py"), "--engines", str(tmp_path / "none")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no manifest at") and "Traceback" not in proc.stderr
