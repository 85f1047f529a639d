"""Benchmark 5 on the tiny built model with a few short scenes: both clips measured side by side, the
figures printed and written as JSON; run_clip's accounting on a stream whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.benchmarks.video_benchmark import main, run_clip
from pipeline.temporal.cascade import TemporalCascade
from pipeline.temporal.rule import TemporalSettings
from tests.temporal.doubles import colour_cascade
from tests.temporal.test_simulate import drifting_stream
from tests.helpers import tiny_build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return tiny_build(tmp_path_factory)


def test_run_clip_counts_reuse_cuts_and_accuracy():
    frames, labels, cuts = drifting_stream()
    cascade = colour_cascade()
    temporal = TemporalCascade(cascade, TemporalSettings(reuse_threshold=4.0, cut_threshold=15.0, max_age_frames=4))
    r = run_clip(cascade, temporal, frames, labels, cuts, warmup=2)
    assert r["frames"] == len(frames) and r["scenes"] == len(cuts) + 1 and r["cuts"] == len(cuts)
    assert r["cuts_followed_within_one_frame"] == 1.0 == r["cuts_followed_at_the_cut"]
    assert r["frame_by_frame"]["accuracy"] == 100.0 == r["temporal"]["accuracy"] and r["accuracy_diff"] == 0.0
    assert 0.3 < r["temporal"]["reuse_rate"] < 1 and r["accuracy_diff_se"] == 0.0
    assert r["ratio_mean"] == pytest.approx(r["frame_by_frame"]["mean_ms"] / r["temporal"]["mean_ms"])


def test_benchmark_five_end_to_end(built, tmp_path, capsys):
    out = tmp_path / "video.json"
    code = main(["--engines", str(built.folder), "--data", str(built.data), "--cache-dir", str(built.cache),
                 "--precisions", "fp32", "--scenes", "3", "--continuous-scenes", "2", "--calib-scenes", "3",
                 "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| onnxruntime/fp32, mixed |" in printed and "| onnxruntime/fp32, continuous |" in printed
    results = json.loads(out.read_text())
    assert results["command"].startswith("anytime bench video --engines ")
    clips = results["precisions"][0]["clips"]
    assert clips["mixed"]["scenes"] == 3 and clips["continuous"]["scenes"] == 2
    for r in clips.values():
        assert r["ratio_mean"] > 0 and 0 <= r["temporal"]["reuse_rate"] <= 1
        assert r["temporal"]["measure_mean_ms"] > 0 and r["cuts_followed_within_one_frame"] == 1.0
    assert results["precisions"][0]["settings"]["cut_threshold"] > 0


def test_bad_options_exit_2(built, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--engines", str(built.folder), "--data", str(built.data), "--scenes", "1"])
    assert stop.value.code == 2 and "--*scenes 2 or more" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["--engines", str(built.folder), "--data", str(built.data), "--precisions", "fp8"])
    assert stop.value.code == 2 and "no onnxruntime engines for fp8" in capsys.readouterr().err
