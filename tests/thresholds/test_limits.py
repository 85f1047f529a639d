"""The bounds on a cascade's speed-up: each lifts one limit, so they are ordered, and each is the figure it names."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pipeline.thresholds import budgeted_curve
from pipeline.thresholds.limits import speedup_limits


def one_hot(labels, classes=3, sure=0.9):
    p = np.full((len(labels), classes), (1 - sure) / (classes - 1))
    p[np.arange(len(labels)), labels] = sure
    return p


def test_a_hand_made_case():
    # four frames, two exits; exit 1 is right on frames 0 and 1 (sure on 0, unsure on 1), the last exit on all
    labels = np.array([0, 1, 2, 0])
    exit1 = np.stack([one_hot([0], sure=0.9)[0], one_hot([1], sure=0.5)[0], one_hot([1], sure=0.8)[0],
                      one_hot([2], sure=0.4)[0]])
    probs = np.stack([exit1, one_hot(labels)], axis=1)  # (4, 2, 3)
    lim = speedup_limits(probs, labels, [1.0, 4.0], tolerance=0.0)
    assert lim.last_exit_accuracy == 100.0 and lim.first_stage == 4.0
    # knowing the labels: frames 0 and 1 at exit 1, frames 2 and 3 at the last exit: (1 + 1 + 4 + 4) / 4
    assert lim.perfect_rule == pytest.approx(4.0 / 2.5) and lim.perfect_rule_accuracy == 100.0
    # confidence thresholds: frame 2 (0.8, wrong) is surer than frame 1 (0.5, right), so only frame 0 can leave
    assert lim.hindsight == pytest.approx(4.0 / 3.25) and lim.hindsight_accuracy == 100.0
    assert lim.hindsight_exit_fractions == (0.25, 0.75)
    # a tolerance of one frame in four lets the surest wrong answer through, and with it frame 1: (1 + 1 + 1 + 4) / 4
    loose = speedup_limits(probs, labels, [1.0, 4.0], tolerance=25.0)
    assert loose.hindsight == pytest.approx(4.0 / 1.75) and loose.hindsight_accuracy == 75.0
    # the rule that knows the labels needs three right answers too: one of frames 2 and 3 goes on, at the same cost
    assert loose.perfect_rule == pytest.approx(4.0 / 1.75) and loose.perfect_rule_accuracy == 75.0


def random_case(seed, n=60, k=3, classes=4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, k, classes)) + np.linspace(0.5, 2.5, k)[None, :, None] * np.eye(classes)[labels][:, None]
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    costs = np.cumsum(rng.uniform(0.2, 1.0, k))
    return probs, labels, costs


def brute_force_hindsight(probs, labels, costs, tolerance):
    """Every combination of cuts between distinct confidences at the free exits: the exact optimum."""
    conf, right = probs.max(-1), probs.argmax(-1) == labels[:, None]
    n, k = conf.shape
    target = right[:, -1].sum() - tolerance / 100 * n  # right answers, as the search counts them
    options = [np.r_[np.inf, np.unique(conf[:, j])] for j in range(k - 1)]
    best = np.inf
    for s in itertools.product(*options):
        passed = np.c_[conf[:, :-1] >= np.array(s), np.ones(n, bool)]
        exits = passed.argmax(1)
        if right[np.arange(n), exits].sum() >= target - 1e-9:
            best = min(best, costs[exits].mean())
    return costs[-1] / best


@pytest.mark.parametrize("seed", range(6))
def test_the_bounds_are_ordered_and_the_search_beats_the_sweep(seed):
    probs, labels, costs = random_case(seed)
    lim = speedup_limits(probs, labels, costs, tolerance=2.0)
    assert lim.first_stage >= lim.perfect_rule >= lim.hindsight >= 1.0
    assert lim.hindsight_accuracy >= lim.last_exit_accuracy - 2.0
    swept = [p for p in budgeted_curve(probs, labels, costs) if p.accuracy >= lim.last_exit_accuracy - 2.0]
    assert lim.hindsight >= costs[-1] / min(p.cost for p in swept) - 1e-9
    assert sum(lim.hindsight_exit_fractions) == pytest.approx(1.0)


@pytest.mark.parametrize("k, seeds, tolerances", [(3, range(10), (0.0, 4.0, 8.0)), (4, range(4), (0.0, 4.0))])
def test_the_search_finds_the_optimum_of_small_cases(k, seeds, tolerances):
    for seed in seeds:
        for tol in tolerances:
            probs, labels, costs = random_case(seed, n=24, k=k)
            assert speedup_limits(probs, labels, costs, tolerance=tol).hindsight == pytest.approx(
                brute_force_hindsight(probs, labels, costs, tol), rel=1e-9), (seed, tol)


def test_a_tolerance_no_answer_meets_is_none_not_a_figure():
    # the mean answer is wrong on every frame, the last exit alone right on every frame
    labels = np.array([0, 1, 2, 0])
    wrong = one_hot((labels + 1) % 3, sure=0.98)
    probs = np.stack([wrong, wrong, one_hot(labels, sure=0.4)], axis=1)
    lim = speedup_limits(probs, labels, [1.0, 2.0, 3.0], tolerance=0.0, aggregate="mean")
    assert lim.last_exit_accuracy == 100.0
    assert lim.perfect_rule is None and lim.hindsight is None and lim.hindsight_exit_fractions is None
    assert lim.to_dict()["hindsight"] is None


def test_a_first_stage_of_no_cost_has_no_ratio():
    labels = np.array([0, 1])
    probs = np.stack([one_hot(labels), one_hot(labels)], axis=1)
    assert speedup_limits(probs, labels, [0.0, 1.0]).first_stage is None


def test_the_mean_answer_is_judged_against_the_network_s_own_last_exit():
    probs, labels, costs = random_case(7)
    lim = speedup_limits(probs, labels, costs, aggregate="mean")
    assert lim.last_exit_accuracy == pytest.approx(100 * (probs[:, -1].argmax(-1) == labels).mean())
