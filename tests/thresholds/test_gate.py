"""The learned exit gate: it ranks frames by more than one number, so where the exits' agreement says who is
right and the max softmax does not, its bound beats the rule's; and it fails clearly on mismatched inputs."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.thresholds.gate import NEWTON_STEPS, fit_gate, fit_logistic, gate_features
from pipeline.thresholds.limits import speedup_limits


def agreeing_case(seed, n=400, classes=4):
    """Exits 1 and 2 are right on the same frames (about half), and exit 2 answers exit 1's class exactly
    there, each at a max softmax that says nothing about it; exit 3 is always right."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    first = np.where(rng.random(n) < 0.5, labels, (labels + 1) % classes)
    second = np.where(first == labels, labels, (labels + 2) % classes)  # agrees with exit 1 only where right
    probs = np.empty((n, 3, classes))
    for k, (answer, sure) in enumerate(((first, rng.uniform(0.4, 0.9, n)), (second, rng.uniform(0.4, 0.9, n)),
                                        (labels, np.full(n, 0.9)))):
        probs[:, k] = ((1 - sure) / (classes - 1))[:, None]
        probs[np.arange(n), k, answer] = sure
    return probs, labels, np.array([1.0, 1.5, 4.0])


def test_features_have_one_row_per_frame_and_more_from_exit_2_on():
    probs, _, _ = agreeing_case(0)
    feats = gate_features(probs)
    assert [f.shape for f in feats] == [(400, 3), (400, 6), (400, 6)] and all(np.isfinite(f).all() for f in feats)


@pytest.mark.parametrize("aggregate, over_rule", [("last", 1.2), ("mean", 1.0)])
def test_the_gate_reads_agreement_where_the_max_softmax_says_nothing(aggregate, over_rule):
    """Exit 2 alone cannot tell its right frames by its max softmax; the gate can. (The mean of exits 1 and 2
    is surer where they agree, so there the rule itself reads some of it: the gate still does no worse.)"""
    probs, labels, costs = agreeing_case(1)
    right2 = probs[:, 1].argmax(-1) == labels
    scores = fit_gate(*agreeing_case(2)[:2], aggregate=aggregate).scores(probs)
    assert scores.shape == (400, 3)
    assert scores[right2, 1].min() > scores[~right2, 1].max()  # it ranks every right answer first
    lim = speedup_limits(probs, labels, costs, tolerance=0.0, aggregate=aggregate, calibration=agreeing_case(2)[:2])
    assert lim.learned_gate is not None and lim.hindsight is not None
    assert lim.learned_gate > lim.hindsight * over_rule if over_rule > 1 else lim.learned_gate >= lim.hindsight
    assert lim.perfect_rule >= lim.learned_gate and lim.learned_gate_accuracy == 100.0
    assert lim.to_dict()["learned_gate"] == lim.learned_gate


def test_without_calibration_there_is_no_gate_bound():
    probs, labels, costs = agreeing_case(3)
    lim = speedup_limits(probs, labels, costs)
    assert lim.learned_gate is None and not lim.gate_fitted and "learned_gate" not in lim.to_dict()


def test_a_separable_or_one_class_calibration_set_converges_to_bounded_weights():
    x = np.r_[np.linspace(-2, -0.1, 50), np.linspace(0.1, 2, 50)][:, None]  # one feature splits them exactly
    w, steps = fit_logistic(x, (x[:, 0] > 0).astype(float))
    assert steps < NEWTON_STEPS and np.abs(w).max() < 50  # unregularised, the weight would grow without end
    w, steps = fit_logistic(x, np.ones(100))  # every answer right: the bias too stays finite
    assert steps < NEWTON_STEPS and 0 < w[-1] < 20
    probs, labels, _ = agreeing_case(4)
    assert np.isfinite(fit_gate(probs, labels).scores(probs)).all()


def test_mismatched_or_malformed_inputs_are_refused():
    probs, labels, costs = agreeing_case(5)
    with pytest.raises(PipelineError, match="differ in exits or classes"):
        speedup_limits(probs, labels, costs, calibration=(probs[:, :, :3], labels))
    gate = fit_gate(probs, labels)
    with pytest.raises(PipelineError, match="fit on 3 exits of 4 classes"):
        gate.scores(probs[:, :2])
    with pytest.raises(PipelineError, match="fit on 3 exits of 4 classes"):
        gate.scores(probs[:, :, :3])
    with pytest.raises(PipelineError, match="integer labels"):
        fit_gate(probs, labels.astype(float))
    with pytest.raises(PipelineError, match="at least 2 classes"):
        fit_gate(np.ones((4, 2, 1)), np.zeros(4, dtype=int))
