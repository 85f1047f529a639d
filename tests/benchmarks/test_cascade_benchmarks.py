"""The README benchmarks on the tiny built model with a handful of frames: all four figures printed
and written as JSON; a missing checkpoint skips benchmark 2 and says why; bad options exit 2."""

from __future__ import annotations

import json

import pytest

from pipeline.benchmarks.cascade_benchmarks import main
from tests.helpers import tiny_build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return tiny_build(tmp_path_factory)


def args(built, out, *extra):
    return ["--engines", str(built.folder), "--data", str(built.data), "--cache-dir", str(built.cache),
            "--json", str(out), "--frames", "12", "--runs", "10", "--warmup", "2", *extra]


def test_all_four_benchmarks(built, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(args(built, out, "--checkpoint", str(built.checkpoint))) == 0
    printed = capsys.readouterr().out
    for row in ("| 1 | cascade vs full network, onnxruntime/fp32", "| 2 | ONNX Runtime vs PyTorch eager",
                "| 3 | INT8 vs FP32 per stage", "| 4 | deadline adherence"):
        assert row in printed
    assert "not measured" not in printed and "| stage | FP32 p50 (ms) | INT8 p50 (ms) |" in printed
    r = json.loads(out.read_text())
    b1, b2, b3, b4 = r["cascade_vs_full"], r["ort_vs_torch"], r["int8_vs_fp32"], r["deadline"]
    assert b1["frames"] == 12 and b1["calibration_frames"] == 20 and b1["ratio_mean"] > 0
    assert b1["fp32_last_exit_accuracy"] == b1["full_accuracy"] and isinstance(b1["matched"], bool)
    assert b1["fp32_full_mean_ms"] is None and b1["ratio_mean_vs_fp32_full"] is None  # no second baseline
    assert sum(b1["exit_fractions"]) == pytest.approx(1.0) and b1["aggregate"] in ("mean", "last")  # auto resolved
    assert f"answers: {'mean of exits 1..k' if b1['aggregate'] == 'mean' else 'exit k alone'}" in printed
    lim = b1["limits"]  # what bounds benchmark 1 on the same test frames, one limit lifted at a time
    assert lim["first_stage"] >= lim["perfect_rule"] >= lim["hindsight"] >= 1.0
    assert lim["last_exit_accuracy"] == pytest.approx(b1["full_accuracy"])
    assert f"a rule that knew the labels {lim['perfect_rule']:.2f}x" in printed
    assert lim["learned_gate"] is None or lim["perfect_rule"] >= lim["learned_gate"] >= 1.0  # fit on validation
    assert "a gate learnt on validation from the exits' softmax outputs, its thresholds in hindsight " in printed
    assert b2["ratio_p50"] > 0 and b2["ratio_mean"] > 0 and b2["onnxruntime"]["p50_ms"] > 0
    assert [s["stage"] for s in b3["stages"]] == [1, 2, 3] and all(s["ratio_p50"] > 0 for s in b3["stages"])
    assert b4["budget_ms"] > 0 and 0.0 <= b4["within_budget_plus_1ms"] <= 1.0 and 0.0 <= b4["accuracy"] <= 100.0
    assert r["command"].startswith("anytime bench cascade --engines")


def test_without_checkpoint_benchmark_2_is_skipped(built, tmp_path, capsys):
    assert main(args(built, tmp_path / "b.json", "--precision", "int8", "--calib-frames", "10")) == 0
    printed = capsys.readouterr().out
    assert ("| 2 | ONNX Runtime vs PyTorch eager, full network, batch 1 | not measured | no --checkpoint given |"
            in printed)
    r = json.loads((tmp_path / "b.json").read_text())
    assert r["cascade_vs_full"]["variant"] == "onnxruntime/int8" and r["cascade_vs_full"]["calibration_frames"] == 10
    b1 = r["cascade_vs_full"]
    assert b1["fp32_last_exit_accuracy"] is not None  # measured on the fp32 engines, side by side
    assert b1["fp32_full_mean_ms"] > 0 and b1["ratio_mean_vs_fp32_full"] == pytest.approx(
        b1["fp32_full_mean_ms"] / b1["cascade_mean_ms"])
    assert "FP32 full network" in printed


@pytest.mark.parametrize("extra, match", [
    (["--frames", "-1"], "--frames must be 0 or more"),
    (["--runs", "0"], "--runs must be at least 1"),
    (["--checkpoint", "nope.pt"], "--checkpoint nope.pt does not exist"),
    (["--confidence", "1"], "--confidence must be between 0 and 1"),
])
def test_bad_options_exit_2(built, tmp_path, capsys, extra, match):
    with pytest.raises(SystemExit) as exc:
        main(args(built, tmp_path / "b.json", *extra))
    assert exc.value.code == 2 and match in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()


def test_benchmark_7_streams_prints_its_table(built, tmp_path, capsys):
    """`anytime bench streams` on the tiny model: 1 and 2 streams, both modes, a short clip."""
    from pipeline.benchmarks.streams import main as streams_main

    out = tmp_path / "streams.json"
    assert streams_main(["--engines", str(built.folder), "--data", str(built.data), "--cache-dir", str(built.cache),
                         "--streams", "1,2", "--seconds", "0.2", "--repeats", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| 2 | batched |" in text and "| 2 | threads |" in text and "| 2 | ratio |" in text
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert report["command"].startswith("anytime bench streams --engines ")
    assert [r["streams"] for r in rows] == [1, 2] and rows[1]["batched"]["answered"] + rows[1]["batched"]["dropped"] == 12
