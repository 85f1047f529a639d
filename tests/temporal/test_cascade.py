"""The temporal cascade over a real Cascade: reuse bounded by age, cuts re-run, the prior, smoothing, budget."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.temporal.cascade import TemporalCascade
from pipeline.temporal.rule import TemporalSettings
from tests.temporal.doubles import colour_cascade, noisy, scene


def stream(cascade, frames, **kw):
    return [cascade.classify(f, **kw) for f in frames]


def test_unchanged_frames_reuse_until_the_age_bound():
    base = colour_cascade()
    t = TemporalCascade(base, TemporalSettings(reuse_threshold=3.0, cut_threshold=20.0, max_age_frames=3))
    a = scene(0, seed=1)
    results = stream(t, [noisy(a, 1.0, seed=i) for i in range(8)])
    assert [r.reused for r in results] == [False, True, True, True, False, True, True, True]
    assert [r.why for r in results[:5]] == ["first frame", "unchanged", "unchanged", "unchanged", "age"]
    assert [r.age for r in results[:5]] == [0, 1, 2, 3, 0]
    assert base.chain.runs == [1, 1]  # two frames ran (exit 1 each), six cost the change measure only
    reused = results[1]
    assert reused.stage_ms == [] and reused.stages == 0 and reused.stopped_by == "reused"
    assert reused.answer is results[0].answer and reused.cascade is None  # the reference's run, held as it came
    assert results[0].cascade is results[0].answer and results[0].stage_ms == list(results[0].answer.stage_ms)
    assert reused.total_ms < 5.0 and reused.measure_ms <= reused.total_ms


def test_a_cut_always_reruns_and_restarts_the_smoothing():
    t = TemporalCascade(colour_cascade(), TemporalSettings(reuse_threshold=1e6, cut_threshold=10.0, smoothing=0.9))
    a, b = scene(0, seed=1), scene(2, seed=2)
    results = stream(t, [a] * 5 + [b] * 3)
    cut = results[5]
    assert not cut.reused and cut.why == "cut" and cut.answer.label == 2
    assert cut.shown_label == 2 and cut.shown_class == "red"  # not a blend with the old scene
    assert all(r.reused for r in results[1:5] + results[6:])


def test_smoothing_steadies_what_is_shown_between_cuts():
    t = TemporalCascade(colour_cascade(), TemporalSettings(cut_threshold=1e6, smoothing=0.8))
    a = scene(0, seed=1)
    flicker = a.copy()
    flicker[:, :, 0], flicker[:, :, 1] = a[:, :, 1], a[:, :, 0]  # one frame that reads as green, same texture
    results = stream(t, [a, a, a, flicker, a])
    assert results[3].answer.label == 1 and results[3].shown_label == 0  # the answer flips, the overlay does not


def test_the_prior_lets_an_agreeing_exit_leave_early_but_never_after_a_cut():
    base = colour_cascade()
    t = TemporalCascade(base, TemporalSettings(reuse_threshold=2.0, cut_threshold=15.0, prior_floor=0.7))
    a = scene(0, seed=1, lead=20.0)  # exit 1 is 0.79 sure: below its 0.99 threshold, above the floor
    moved = np.roll(a, 1, axis=1)  # changed (above the reuse threshold), same scene
    other = scene(0, seed=9, lead=20.0)  # a cut to another scene of the same class
    first, changed, cut = stream(t, [a, moved, other])
    assert (first.answer.exit, first.stopped_by) == (3, "last-exit")
    assert changed.why == "changed" and (changed.answer.exit, changed.stopped_by) == (1, "prior")
    assert cut.why == "cut" and (cut.answer.exit, cut.stopped_by) == (3, "last-exit")  # same label, yet no prior
    disagree = scene(1, seed=1, lead=20.0)
    t.reset()
    assert stream(t, [a, np.roll(disagree, 1, axis=1)])[1].stopped_by != "prior"


def test_the_prior_never_raises_the_bar():
    t = TemporalCascade(colour_cascade(), TemporalSettings(cut_threshold=15.0, prior_floor=0.99999))
    assert t._prior_scores[:2] == [0.99, 0.999]  # min(threshold, floor) per exit
    a = scene(0, seed=1)  # exit 1 passes its own threshold
    assert [r.answer.exit for r in stream(t, [a, np.roll(a, 1, axis=1)])] == [1, 1]


def test_the_change_measure_is_taken_from_the_budget():
    ticks = iter(np.arange(0.0, 10.0, 0.001))  # every clock read moves 1 ms
    base = colour_cascade()
    seen = []
    classify = base.classify
    base.classify = lambda frame, budget_ms=None, prior=None: seen.append(budget_ms) or classify(frame, budget_ms)
    t = TemporalCascade(base, TemporalSettings(reuse_threshold=3.0, cut_threshold=20.0), clock=lambda: next(ticks))
    a = scene(0, seed=1)
    first, reused = stream(t, [a, a], budget_ms=5.0)
    assert seen == [pytest.approx(4.0)]  # 5 ms less the measure's 1 ms
    assert first.measure_ms == pytest.approx(1.0) and reused.total_ms == pytest.approx(2.0)
    assert reused.deadline_met is True


def test_attributes_pass_through_and_a_plain_object_is_refused():
    base = colour_cascade()
    base.resize_shorter, base.notes = 40, ["a note of the cascade's"]
    t = TemporalCascade(base, TemporalSettings(), notes=["a note of the temporal settings'"])
    assert t.classes == base.classes and t.num_exits == 3 and t.frame_size == (32, 32) and t.backend == "double"
    assert (t.precision, t.policy, t.colour_order, t.resize_shorter) == ("fp32", "", "BGR", 40)
    assert t.notes == ["a note of the cascade's", "a note of the temporal settings'"]
    assert not hasattr(t, "answer_probs") and not hasattr(t, "thresholds")  # nothing forwarded but the seam's facts
    with pytest.raises(PipelineError, match="wraps a pipeline.runtime.cascade.Cascade"):
        TemporalCascade(object(), TemporalSettings())
