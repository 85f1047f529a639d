"""The per-frame log (fields, flushed per line) and the end summary."""

from __future__ import annotations

import json

import pytest

from pipeline.runtime.cascade import CascadeResult
from pipeline.errors import PipelineError
from pipeline.temporal.cascade import TemporalResult
from pipeline.video.report import FrameLog, RunSummary, format_summary, frame_record

FIELDS = ["time", "frame", "class", "label", "confidence", "exit", "num_exits", "stage_ms", "cascade_ms",
          "frame_ms", "budget_ms", "cascade_budget_ms", "met", "stopped_by", "dropped", "true_label", "correct"]


def res(label=0, exit=1, stage_ms=1.0):
    return CascadeResult(label, ["blue", "green", "red"][label], 0.9, exit, 3, [stage_ms] * exit, stage_ms * exit,
                         None, None, "confidence")


def test_record_fields():
    rec = frame_record(7, res(2, exit=2), frame_ms=3.14159, budget_ms=3.0, cascade_budget_ms=2.5, dropped=4,
                       true_label=1, now=1700000000.12345)
    assert list(rec) == FIELDS
    assert rec["frame"] == 7 and rec["class"] == "red" and rec["label"] == 2 and rec["exit"] == 2
    assert rec["stage_ms"] == [1.0, 1.0] and rec["cascade_ms"] == 2.0 and rec["frame_ms"] == 3.142
    assert rec["met"] is False and rec["dropped"] == 4 and rec["correct"] is False
    assert rec["time"] == 1700000000.123
    free = frame_record(0, res(), frame_ms=1.0, name="a/b.png")
    assert free["file"] == "a/b.png" and free["met"] is None and free["true_label"] is None and free["correct"] is None


def test_temporal_record_reads_the_answer_from_the_cascade_result_it_holds():
    answer = res(2, exit=2)
    ran = TemporalResult(answer, answer, 2.5, 3.0, True, "cut", 30.0, 29.0, 0, 0.5, 2, "red", 0.9)
    reused = TemporalResult(answer, None, 0.4, 3.0, True, "unchanged", 1.234567, 0.5, 3, 0.4, 1, "green", 0.61237)
    rec = frame_record(5, reused, frame_ms=1.0, budget_ms=3.0, true_label=2)
    assert list(rec)[:len(FIELDS)] == FIELDS
    assert (rec["class"], rec["label"], rec["exit"], rec["num_exits"], rec["correct"]) == ("red", 2, 2, 3, True)
    assert (rec["stage_ms"], rec["cascade_ms"], rec["stopped_by"]) == ([], 0.4, "reused")  # this frame's cost
    assert rec["reused"] is True and rec["why"] == "unchanged" and rec["stages"] == 0 and rec["age"] == 3
    assert rec["change"] == 1.235 and rec["shown"] == "green" and rec["shown_confidence"] == 0.6124
    ran_rec = frame_record(4, ran, frame_ms=3.0)
    assert (ran_rec["stage_ms"], ran_rec["stages"], ran_rec["stopped_by"]) == ([1.0, 1.0], 2, "confidence")
    assert ran_rec["reused"] is False and ran_rec["cascade_ms"] == 2.5
    assert "reused" not in frame_record(0, answer, frame_ms=1.0)  # the plain cascade's record has no temporal fields


def test_log_is_flushed_line_by_line(tmp_path):
    path = tmp_path / "frames.jsonl"
    log = FrameLog(path)
    log.write(frame_record(0, res(), frame_ms=1.0))
    assert json.loads(path.read_text())["frame"] == 0  # readable before close
    log.write(frame_record(1, res(), frame_ms=1.0))
    assert len(path.read_text().splitlines()) == 2
    log.close()
    with pytest.raises(PipelineError, match="does not exist"):
        FrameLog(tmp_path / "missing" / "frames.jsonl")


def test_summary_numbers_and_text(tmp_path):
    summary = RunSummary(3, budget_ms=10.0, source="clip.avi")
    plan = [(0, 1, 4.0, 0), (1, 1, 5.0, 1), (2, 2, 12.0, 2), (0, 3, 9.0, 1)]  # label, exit, frame ms, truth
    with FrameLog(tmp_path / "f.jsonl") as log:
        for i, (label, exit, ms, truth) in enumerate(plan):
            rec = frame_record(i, res(label, exit), frame_ms=ms, budget_ms=10.0, dropped=i, true_label=truth)
            summary.add(rec)
            log.write(rec)
    s = summary.finish(wall_s=2.0)
    assert s["frames"] == 4 and s["fps"] == 2.0 and s["exits"] == {1: 2, 2: 1, 3: 1}
    assert s["deadline_misses"] == 1 and s["dropped"] == 3 and s["accuracy"] == 75.0
    assert s["frame_ms"]["p50"] == 7.0 and s["frame_ms"]["max"] == 12.0
    text = format_summary(s)
    assert text.splitlines() == [
        "clip.avi: 4 frames in 2.00 s (2.0 FPS); stopped: end of source",
        "exits: 1: 2 (50.0%)  2: 1 (25.0%)  3: 1 (25.0%)",
        "budget 10.0 ms per frame: 1 missed (25.0%)",
        f"frame ms p50 7.00 p99 {s['frame_ms']['p99']:.2f} max 12.00 | "
        f"cascade ms p50 1.50 p99 {s['cascade_ms']['p99']:.2f}",
        "dropped frames: 3",
        "accuracy: 75.0% (3/4 labelled frames)",
    ]
    again = RunSummary.from_log(tmp_path / "f.jsonl").finish(wall_s=2.0)
    assert {k: v for k, v in again.items() if k != "source"} == {k: v for k, v in s.items() if k != "source"}


def test_summary_without_budget_labels_or_frames():
    s = RunSummary(2).finish(wall_s=None, stopped="SIGINT")
    assert s["frames"] == 0 and s["fps"] is None and s["accuracy"] is None and s["deadline_misses"] is None
    assert format_summary(s).splitlines() == [
        "0 frames; stopped: SIGINT", "budget: none (each frame ran until the exit policy stopped it)",
        "dropped frames: 0"]
    with pytest.raises(PipelineError, match="no frame records"):
        RunSummary.from_records([])
