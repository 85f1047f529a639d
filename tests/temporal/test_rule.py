"""The reuse rule: bounded by age, a cut always runs, the prior never after a cut; settings and options."""

from __future__ import annotations

import math

import pytest

from pipeline.errors import PipelineError
from pipeline.temporal.rule import TemporalOptions, TemporalSettings, decide

S = TemporalSettings(reuse_threshold=5.0, cut_threshold=20.0, max_age_frames=3, prior_floor=0.5)


def test_first_frame_and_cut_always_run_without_prior():
    first = decide(S, None, None, 1, 0.0)
    assert (first.reuse, first.cut, first.prior, first.why) == (False, True, False, "first frame")
    huge = TemporalSettings(reuse_threshold=1e9, cut_threshold=20.0, prior_floor=0.5)  # reuse "everything"
    for d_ref in (0.0, 4.0, 50.0):
        cut = decide(huge, 20.0, d_ref, 1, 0.0)
        assert (cut.reuse, cut.cut, cut.prior, cut.why) == (False, True, False, "cut")


def test_reuse_is_bounded_by_age_in_frames_and_ms():
    assert [decide(S, 0.1, 0.1, age, 0.0).reuse for age in (1, 2, 3, 4, 50)] == [True, True, True, False, False]
    old = decide(S, 0.1, 0.1, 4, 0.0)
    assert old.why == "age" and not old.prior  # the stale answer is checked afresh, without the prior
    timed = TemporalSettings(reuse_threshold=5.0, max_age_frames=100, max_age_ms=100.0)
    assert decide(timed, 0.1, 0.1, 2, 99.0).reuse and not decide(timed, 0.1, 0.1, 2, 101.0).reuse


def test_changed_frames_run_with_the_prior_only_within_the_scene():
    changed = decide(S, 6.0, 6.0, 1, 0.0)
    assert (changed.reuse, changed.cut, changed.prior, changed.why) == (False, False, True, "changed")
    drifted = decide(S, 2.0, 25.0, 1, 0.0)  # no cut between neighbours, but far from the reference
    assert not drifted.reuse and not drifted.cut and not drifted.prior
    assert not decide(TemporalSettings(reuse_threshold=5.0, cut_threshold=20.0), 6.0, 6.0, 1, 0.0).prior


def test_no_reuse_threshold_never_reuses():
    plain = TemporalSettings()
    assert not plain.active
    assert not any(decide(plain, 0.0, 0.0, 1, 0.0).reuse for _ in range(3))


def test_table_round_trip_and_malformed_table():
    s = TemporalSettings(reuse_threshold=4.0, cut_threshold=math.inf, max_age_ms=250.0, smoothing=0.5)
    table = s.to_table()
    assert table["cut_threshold"] is None  # JSON has no infinity
    assert TemporalSettings.from_table({**table, "policy": "default", "validation": {}}) == s
    with pytest.raises(PipelineError, match="temporal table is malformed.*make temporal"):
        TemporalSettings.from_table({"max_age_frames": 0})


def test_options_override_and_refuse_what_is_not_calibrated():
    s = TemporalOptions(reuse=False, prior=False, smoothing=0.0).apply(S)
    assert s.reuse_threshold is None and s.prior_floor is None and not s.active
    s = TemporalOptions(reuse_threshold=2.0, max_age_frames=7, max_age_ms=50.0, smoothing=0.3).apply(S)
    assert (s.reuse_threshold, s.max_age_frames, s.max_age_ms, s.smoothing) == (2.0, 7, 50.0, 0.3)
    with pytest.raises(PipelineError, match="no reuse threshold is calibrated.*--reuse-threshold"):
        TemporalOptions(reuse=True).apply(TemporalSettings())
    with pytest.raises(PipelineError, match="prior was asked for.*make temporal"):
        TemporalOptions(prior=True).apply(TemporalSettings())
    for kw, match in ((dict(smoothing=1.0), "--smoothing should be in"), (dict(max_age_frames=0), "--max-reuse-frames"),
                      (dict(max_age_ms=-1.0), "--max-reuse-ms"), (dict(reuse_threshold=math.nan), "--reuse-threshold")):
        with pytest.raises(PipelineError, match=match):
            TemporalOptions(**kw)
    with pytest.raises(PipelineError, match="smoothing should be in"):
        TemporalSettings(smoothing=-0.1)


def test_a_doubtful_answer_is_reused_for_fewer_frames():
    s = TemporalSettings(reuse_threshold=5.0, cut_threshold=20.0, max_age_frames=5, min_confidence=0.7,
                         doubtful_age_frames=2)
    sure = [decide(s, 0.1, 0.1, age, 0.0, confidence=0.9).reuse for age in range(1, 7)]
    doubtful = [decide(s, 0.1, 0.1, age, 0.0, confidence=0.6) for age in range(1, 7)]
    assert sure == [True] * 5 + [False]
    assert [d.reuse for d in doubtful] == [True, True, False, False, False, False]
    assert doubtful[2].why == "doubtful" and not doubtful[2].prior
    never = TemporalSettings(reuse_threshold=5.0, min_confidence=0.7)  # doubtful_age_frames 0: look again at once
    assert decide(never, 0.1, 0.1, 1, 0.0, confidence=0.6).why == "doubtful"
    assert TemporalSettings.from_table(s.to_table()) == s
    with pytest.raises(PipelineError, match="doubtful_age_frames should be 0 to max_age_frames"):
        TemporalSettings(max_age_frames=2, doubtful_age_frames=3)
    shorter = TemporalOptions(max_age_frames=1).apply(s)  # the override shortens the doubtful bound with it
    assert (shorter.max_age_frames, shorter.doubtful_age_frames) == (1, 1)


def test_settings_describe_themselves_in_one_rounded_line():
    line = TemporalSettings(reuse_threshold=6.7712, cut_threshold=18.624, prior_floor=0.7839, smoothing=0.7,
                            min_confidence=0.6, doubtful_age_frames=2).describe()
    assert line == ("reuse below 6.77, cut from 18.62 grey levels, at most 5 frames old (2 below confidence 0.6), "
                    "prior floor 0.78, smoothing 0.7")
    assert "reuse below none" in TemporalSettings().describe() and "prior floor none" in TemporalSettings().describe()
