"""The replay that calibration uses makes the same decisions as the temporal cascade itself."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.profiling import chain_exit_probs
from pipeline.temporal.cascade import TemporalCascade
from pipeline.temporal.rule import TemporalSettings
from pipeline.temporal.simulate import ClipExits, replay
from pipeline.thresholds import to_scores
from tests.temporal.doubles import ColourChain, colour_cascade, noisy, scene


def drifting_stream(seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Scenes of 12 frames: a textured image drifting a pixel every few frames, with noise; hard cuts between."""
    rng = np.random.default_rng(seed)
    frames, labels, cuts = [], [], []
    for s in range(6):
        label = int(rng.integers(0, 3))
        img = scene(label, seed=100 + s, lead=float(rng.choice([20.0, 60.0])))
        if s:
            cuts.append(len(frames))
        for f in range(12):
            frames.append(noisy(np.roll(img, f // 3, axis=1), 2.0, seed=1000 * s + f))
            labels.append(label)
    return np.stack(frames), np.asarray(labels), cuts


@pytest.mark.parametrize("aggregate,doubt", [("last", (0.0, 0)), ("mean", (0.0, 0)), ("last", (0.9, 1)),
                                             ("mean", (0.99, 1))])
def test_replay_matches_the_cascade(aggregate, doubt):
    frames, labels, cuts = drifting_stream()
    settings = TemporalSettings(reuse_threshold=4.0, cut_threshold=15.0, max_age_frames=4, prior_floor=0.7,
                                smoothing=0.5, min_confidence=doubt[0], doubtful_age_frames=doubt[1])
    live = TemporalCascade(colour_cascade(aggregate=aggregate), settings)
    results = [live.classify(f) for f in frames]
    chain = ColourChain()
    clip = ClipExits.from_probs(frames, chain_exit_probs(chain, frames), labels, cuts, aggregate, "confidence", 16)
    r = replay(clip, settings, to_scores(live.cascade.thresholds, "confidence"), np.array([1.0, 2.0, 3.0]))
    assert np.array_equal(r.ran, [not x.reused for x in results])
    assert np.array_equal(r.answers, [x.answer.label for x in results])
    assert np.array_equal(r.exits, [x.answer.exit for x in results])
    assert np.array_equal(r.shown, [x.shown_label for x in results])
    assert ("doubtful" in {x.why for x in results}) == (doubt[0] > 0)
    assert 0 < r.reuse_rate < 1 and {x.stopped_by for x in results} >= {"reused", "prior"}
    assert all(r.cut_flags[c] for c in cuts)
    assert r.costs[~r.ran].sum() == 0 and r.accuracy(labels) == 100.0 * np.mean(r.answers == labels)
