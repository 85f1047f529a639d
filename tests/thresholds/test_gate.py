"""The learned exit gate: it ranks frames by more than one number, so where the exits' agreement says who is
right and the max softmax does not, its bound beats the rule's; and it fails clearly on mismatched inputs."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.thresholds.gate import fit_gate, gate_features
from pipeline.thresholds.limits import speedup_limits


def agreeing_case(seed, n=400, classes=4):
    """Exit 2 is right exactly where it agrees with exit 1, at a max softmax that says nothing about it;
    exit 3 is always right. Exit 1 is right on about half the frames."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    first = np.where(rng.random(n) < 0.5, labels, (labels + 1) % classes)
    second = np.where(rng.random(n) < 0.5, first, labels)  # agrees with exit 1 on its right frames and some wrong
    second = np.where((second == first) & (first != labels), labels, second)  # disagreeing frames are wrong instead
    second = np.where(second != first, (labels + 2) % classes, second)
    probs = np.empty((n, 3, classes))
    for k, (answer, sure) in enumerate(((first, rng.uniform(0.4, 0.9, n)), (second, rng.uniform(0.4, 0.9, n)),
                                        (labels, np.full(n, 0.9)))):
        probs[:, k] = ((1 - sure) / (classes - 1))[:, None]
        probs[np.arange(n), k, answer] = sure
    return probs, labels, np.array([1.0, 1.5, 4.0])


def test_features_have_one_row_per_frame_and_more_from_exit_2_on():
    probs, _, _ = agreeing_case(0)
    feats = gate_features(probs)
    assert [f.shape for f in feats] == [(400, 3), (400, 7), (400, 7)] and all(np.isfinite(f).all() for f in feats)


def test_the_gate_reads_agreement_where_the_max_softmax_says_nothing():
    probs, labels, costs = agreeing_case(1)
    right2 = probs[:, 1].argmax(-1) == labels
    scores = fit_gate(*agreeing_case(2)[:2]).scores(probs)
    assert scores.shape == (400, 3)
    assert scores[right2, 1].min() > scores[~right2, 1].max()  # it ranks every right answer first
    lim = speedup_limits(probs, labels, costs, tolerance=0.0, calibration=agreeing_case(2)[:2])
    # only the gate can let exit 2's right frames leave there without a single wrong one
    assert lim.learned_gate is not None and lim.hindsight is not None and lim.learned_gate > lim.hindsight * 1.2
    assert lim.learned_gate_accuracy == 100.0
    assert lim.to_dict()["learned_gate"] == lim.learned_gate


def test_without_calibration_there_is_no_gate_bound():
    probs, labels, costs = agreeing_case(3)
    lim = speedup_limits(probs, labels, costs)
    assert lim.learned_gate is None and lim.learned_gate_accuracy is None


def test_an_exit_right_on_every_frame_still_gives_finite_scores():
    probs, labels, _ = agreeing_case(4)
    scores = fit_gate(probs, labels).scores(probs)
    assert np.isfinite(scores).all()  # exit 3 is right everywhere: the ridge keeps its weights finite


def test_mismatched_calibration_is_refused():
    probs, labels, costs = agreeing_case(5)
    with pytest.raises(PipelineError, match="differ in exits or classes"):
        speedup_limits(probs, labels, costs, calibration=(probs[:, :, :3], labels))
    with pytest.raises(PipelineError, match="fit on 3 exits"):
        fit_gate(probs, labels).scores(probs[:, :2])
