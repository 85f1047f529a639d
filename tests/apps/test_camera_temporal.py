"""The camera app with the temporal cascade, end to end on a generated clip: the log's and summary's fields."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.apps.camera import build_parser, main, options_from_args
from pipeline.temporal.cascade import TemporalCascade
from pipeline.temporal.rule import TemporalOptions, TemporalSettings
from pipeline.video.clip import write_clip
from pipeline.video.report import RunSummary
from pipeline.video.scenes import ClipSpec, plan_clip
from tests.temporal.doubles import CLASSES, colour_cascade, scene

LABELS = np.array([0, 2, 1, 0, 2])


@pytest.fixture
def generated(tmp_path):
    images = np.stack([scene(int(label), seed=10 + i) for i, label in enumerate(LABELS)])
    plan = plan_clip(LABELS, ClipSpec(scenes=5, min_frames=12, max_frames=16, size=(96, 128)), seed=0)
    clip = write_clip(plan, images, CLASSES, tmp_path / "clip", fps=30.0)
    engines = tmp_path / "engines" / "model"
    engines.mkdir(parents=True)
    (engines / "manifest.json").write_text("{}")  # read only by the real loader, which is not used here
    return plan, clip, engines


def test_log_and_summary_fields_on_a_generated_clip(generated, tmp_path, capsys):
    plan, clip, engines = generated
    settings = TemporalSettings(reuse_threshold=8.0, cut_threshold=15.0, max_age_frames=4, prior_floor=0.6,
                                smoothing=0.5)
    factory_calls = []

    def factory(folder, **kw):
        factory_calls.append(kw)
        return TemporalCascade(colour_cascade(), settings)

    log = tmp_path / "frames.jsonl"
    code = main(["--engines", str(engines), "--source", str(clip), "--labels", str(clip.parent / "labels.json"),
                 "--headless", "--crop", "--log", str(log), "--output", str(tmp_path / "annotated.avi")],
                cascade_factory=factory)
    assert code == 0 and "temporal" not in factory_calls[0]  # a replaced loader gets the usual keywords
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == plan.num_frames
    for key in ("reused", "why", "stages", "change", "age", "shown", "shown_confidence"):
        assert all(key in r for r in records), key
    assert records[0]["why"] == "first frame" and records[0]["change"] is None
    for start in plan.cuts():  # a cut always runs the cascade
        assert records[start]["why"] == "cut" and not records[start]["reused"] and records[start]["stages"] >= 1
    reused = [r for r in records if r["reused"]]
    assert reused and all(r["stages"] == 0 and r["stage_ms"] == [] and r["stopped_by"] == "reused" for r in reused)
    assert all(1 <= r["age"] <= 4 for r in reused)  # never older than the bound
    assert {r["why"] for r in records} <= {"first frame", "cut", "unchanged", "age", "doubtful", "changed"}
    assert all(r["correct"] for r in records)  # the colour chain reads every scene right
    out = capsys.readouterr().out
    rate = len(reused) / len(records)
    flips = sum(a.label != b.label for a, b in zip(plan.scenes, plan.scenes[1:]))  # right answers flip at cuts only
    assert f"temporal: {100 * rate:.1f}% of frames reused" in out and f"answer flips {flips}, shown {flips}" in out
    assert f"reused: {len(reused)} ({100 * rate:.1f}%)" in out
    assert f"accuracy: 100.0% ({len(records)}/{len(records)} labelled frames)" in out
    summary = RunSummary.from_log(log).finish()
    assert summary["reused"] == len(reused) and summary["flips"] == flips == summary["shown_flips"]
    assert sum(summary["exits"].values()) == len(records) - len(reused)  # exits count the frames that ran


def test_video_options_from_the_command_line():
    parse = build_parser().parse_args
    base = ["--engines", "e", "--source", "0"]
    assert options_from_args(parse(base)).temporal == TemporalOptions()
    assert options_from_args(parse(base + ["--frame-by-frame"])).temporal == TemporalOptions(
        reuse=False, prior=False, smoothing=0.0)
    opts = options_from_args(parse(base + ["--no-reuse", "--prior", "--smoothing", "0.4", "--reuse-threshold", "3",
                                           "--max-reuse-frames", "7", "--max-reuse-ms", "250"])).temporal
    assert opts == TemporalOptions(reuse=False, prior=True, smoothing=0.4, reuse_threshold=3.0, max_age_frames=7,
                                   max_age_ms=250.0)


def test_bad_video_options_are_one_line_errors(generated, capsys):
    _, clip, engines = generated
    with pytest.raises(SystemExit) as stop:
        main(["--engines", str(engines), "--source", str(clip), "--smoothing", "1.5"],
             cascade_factory=lambda folder, **kw: None)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--smoothing should be in [0, 1)" in err and "Traceback" not in err
