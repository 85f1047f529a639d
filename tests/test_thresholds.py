"""Exit thresholds: known answers on hand-built probabilities, the budgeted sweep, target selection, JSON."""

from __future__ import annotations

import json
from dataclasses import replace
import math

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.thresholds import (DEFAULT_QS, CurvePoint, aggregate_exits, budgeted_curve, exit_index, exit_scores,
                                 geometric_distribution, last_exit_point, loss_bound, max_accuracy_for_cost,
                                 min_cost_for_accuracy, min_cost_within_loss, policy_thresholds, simulate, softmax,
                                 thresholds_from_json, thresholds_table, thresholds_to_json, to_scores)
from pipeline.thresholds.sweep import cheapest_within_loss

C = 3  # classes in the hand-built sets


def probs_from(conf: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(N, K) confidence and predicted class -> (N, K, C) probabilities: the rest split evenly (conf > 1/C)."""
    p = np.repeat(((1 - conf) / (C - 1))[..., None], C, axis=-1)
    np.put_along_axis(p, pred[..., None], conf[..., None], axis=-1)
    return p.astype(np.float32)


def entropy(conf: float) -> float:
    rest = (1 - conf) / (C - 1)
    return -(conf * math.log(conf) + (C - 1) * rest * math.log(rest))


def four_samples():
    """Sample 1, 2 leave at exit 1; 3 at exit 2; 4 at exit 3 with thresholds (0.75, 0.9, -inf). All correct."""
    conf = np.array([[0.9, 0.9, 0.9], [0.8, 0.6, 0.6], [0.6, 0.95, 0.5], [0.5, 0.7, 0.8]])
    pred = np.array([[0, 0, 0], [1, 1, 1], [0, 2, 2], [1, 1, 0]])
    labels = np.array([0, 1, 2, 0])
    return probs_from(conf, pred), labels


def test_simulate_known_answer():
    probs, labels = four_samples()
    sim = simulate(probs, labels, [0.75, 0.9, -math.inf], [1.0, 2.0, 4.0])
    assert sim.exit_counts == (2, 1, 1)
    assert sim.accuracy == pytest.approx(100.0)
    assert sim.mean_cost == pytest.approx((1 + 1 + 2 + 4) / 4)
    # Stricter exit 1: sample 2 (0.8) moves on, is unsure at exit 2 (0.6) and answered by exit 3.
    sim = simulate(probs, labels, [0.85, 0.9, -math.inf], [1.0, 2.0, 4.0])
    assert sim.exit_counts == (1, 1, 2)
    assert sim.accuracy == pytest.approx(100.0) and sim.mean_cost == pytest.approx((1 + 2 + 4 + 4) / 4)
    # Exit 1 with threshold 0 answers everything: samples 3 and 4 are wrong there.
    sim = simulate(probs, labels, [0.0, 0.9, -math.inf], [1.0, 2.0, 4.0])
    assert sim.exit_counts == (4, 0, 0) and sim.accuracy == pytest.approx(50.0) and sim.mean_cost == 1.0


def test_entropy_thresholds_give_the_same_exits():
    """Here entropy falls as confidence rises, so entropy <= H(t) is the same rule as confidence >= t."""
    probs, labels = four_samples()
    costs = [1.0, 2.0, 4.0]
    conf = simulate(probs, labels, [0.75, 0.9, -math.inf], costs)
    ent = simulate(probs, labels, [entropy(0.75), entropy(0.9), math.inf], costs, criterion="entropy")
    assert ent == conf
    scores = exit_scores(probs, "entropy")
    assert scores[0, 0] == pytest.approx(-entropy(0.9), abs=1e-6)


def test_budgeted_method_on_a_known_set():
    """Half easy (sure and right at exit 1), half hard (unsure and wrong at exit 1, right at exit 2).

    The default policy must send exactly the easy half out at exit 1: 100% at half the extra cost.
    """
    n = 100
    easy = np.arange(n) < n // 2
    conf = np.where(easy[:, None], [[0.99, 0.99]], [[0.5, 0.9]])
    labels = np.zeros(n, dtype=np.int64)
    pred = np.where(easy[:, None], [[0, 0]], [[1, 0]])
    probs = probs_from(conf, pred)
    table = thresholds_table(probs, labels, [1.0, 3.0])
    default = table["policies"]["default"]
    assert default["expected_accuracy"] == pytest.approx(100.0)
    assert default["expected_cost_ms"] == pytest.approx(2.0)
    assert default["thresholds"][0] == pytest.approx(0.99) and default["thresholds"][1] is None
    full = table["policies"]["last-exit"]
    assert full["expected_cost_ms"] == pytest.approx(3.0) and full["expected_accuracy"] == pytest.approx(100.0)


@pytest.fixture
def random_set():
    """Continuous per-exit probabilities that get better with depth: no tied scores."""
    rng = np.random.default_rng(0)
    n, k, c = 600, 4, 10
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(n, k, c)) * 2
    logits[np.arange(n), :, labels] += np.linspace(0.5, 3.0, k)  # deeper exits favour the label more
    return softmax(logits).astype(np.float32), labels, np.array([1.0, 1.8, 2.5, 3.0])


def test_geometric_distribution():
    p = geometric_distribution(2.0, 3)
    assert p == pytest.approx(np.array([2, 4, 8]) / 14)
    assert geometric_distribution(1.0, 4) == pytest.approx(np.full(4, 0.25))
    with pytest.raises(PipelineError, match="q must be > 0"):
        geometric_distribution(0.0, 3)


def test_sweep_leaves_the_target_share_at_each_exit(random_set):
    probs, labels, costs = random_set
    n, k = len(labels), probs.shape[1]
    for point in budgeted_curve(probs, labels, costs, qs=(0.2, 1.0, 3.0)):
        counts = np.round(np.array(point.exit_fractions) * n).astype(int)
        want = np.floor(n * np.cumsum(geometric_distribution(point.q, k)) + 1e-9).astype(int)
        assert np.cumsum(counts)[:-1].tolist() == want[:-1].tolist()
        assert point.thresholds[-1] == -math.inf


@pytest.mark.parametrize("criterion", ["confidence", "entropy"])
def test_sweep_is_monotone_in_cost(random_set, criterion):
    probs, labels, costs = random_set
    curve = budgeted_curve(probs, labels, costs, criterion)
    assert [p.q for p in curve] == list(DEFAULT_QS)
    cost = np.array([p.cost for p in curve])
    assert np.all(np.diff(cost) >= -1e-12)
    assert cost[0] < 1.5 and cost[-1] > 2.5  # spans from mostly exit 1 to mostly the last exit
    for p in curve:  # each point's numbers are what simulate() says for its thresholds
        sim = simulate(probs, labels, p.thresholds, costs, criterion)
        assert sim.accuracy == pytest.approx(p.accuracy) and sim.mean_cost == pytest.approx(p.cost)


def test_target_selection_picks_the_right_point():
    def pt(acc, cost):
        return CurvePoint(None, acc, cost, (0.5, -math.inf), (0.5, 0.5))

    curve = [pt(80, 1.0), pt(85, 2.0), pt(84, 2.5), pt(90, 3.0), pt(90, 3.5), pt(91, 5.0)]
    assert max_accuracy_for_cost(curve, 2.9) == pt(85, 2.0)
    assert max_accuracy_for_cost(curve, 4.0) == pt(90, 3.0)  # tie on accuracy: the cheaper one
    assert max_accuracy_for_cost(curve, 100) == pt(91, 5.0)
    assert min_cost_for_accuracy(curve, 84.5) == pt(85, 2.0)
    assert min_cost_for_accuracy(curve, 90) == pt(90, 3.0)
    with pytest.raises(PipelineError, match="cheapest costs 1"):
        max_accuracy_for_cost(curve, 0.5)
    with pytest.raises(PipelineError, match="best reaches 91.00%"):
        min_cost_for_accuracy(curve, 95)


def test_table_is_strict_json_and_round_trips(random_set):
    probs, labels, costs = random_set
    full = last_exit_point(probs, labels, costs)
    table = thresholds_table(probs, labels, costs, max_accuracy_at_ms=[2.0], min_latency_at_accuracy=[full.accuracy - 1])
    table = json.loads(json.dumps(table, allow_nan=False))  # infinities were written as null
    assert set(table["policies"]) == {"default", "last-exit", "max-accuracy@2ms",
                                      f"min-latency@{full.accuracy - 1:g}%"}
    assert table["criterion"] == "confidence" and table["samples"] == len(labels)
    assert table["aggregate"] == "mean"  # the default: exit k answers with the mean of exits 1..k
    answers = aggregate_exits(probs, "mean")
    for name, pol in table["policies"].items():
        t = policy_thresholds(table, name)
        sim = simulate(answers, labels, t, costs)
        assert sim.accuracy == pytest.approx(pol["expected_accuracy"]), name
        assert sim.mean_cost == pytest.approx(pol["expected_cost_ms"]), name
    assert table["policies"]["max-accuracy@2ms"]["expected_cost_ms"] <= 2.0
    default = table["policies"]["default"]
    assert default["expected_accuracy"] >= full.accuracy - 0.3
    assert default["expected_cost_ms"] <= full.cost
    assert {"q", "accuracy", "cost_ms", "thresholds"} <= set(table["curve"][0])
    # A target not stored is chosen from the stored curve.
    t = policy_thresholds(table, "max-accuracy@1.5ms")
    assert simulate(answers, labels, t, costs).mean_cost <= 1.5


def test_json_thresholds_null_means_never_and_last_always():
    assert thresholds_to_json([0.7, math.inf, -math.inf]) == [0.7, None, None]
    t = thresholds_from_json([0.7, None, None], "confidence")
    assert t.tolist() == [0.7, math.inf, -math.inf]
    t = thresholds_from_json([0.3, None, None], "entropy")
    assert t.tolist() == [0.3, -math.inf, math.inf]
    s = to_scores(t, "entropy")  # minus entropy >= -0.3; never; always
    assert s.tolist() == [-0.3, math.inf, -math.inf]
    assert exit_index(np.array([[-0.2, 0, 0], [-0.5, 0, 0]]), s).tolist() == [0, 2]


def test_unknown_policy_lists_the_known_ones(random_set):
    probs, labels, costs = random_set
    table = thresholds_table(probs, labels, costs)
    with pytest.raises(PipelineError, match=r"unknown threshold policy 'fastest'; known: default, last-exit"):
        policy_thresholds(table, "fastest")
    with pytest.raises(PipelineError, match="cheapest costs"):
        policy_thresholds(table, "max-accuracy@0.01ms")


@pytest.mark.parametrize("kwargs,match", [
    (dict(probs=np.zeros((4, 3))), r"shape \(N, K, C\)"),
    (dict(labels=np.zeros(3, dtype=np.int64)), "integer labels"),
    (dict(labels=np.zeros(4)), "integer labels"),
    (dict(costs=[1.0, 2.0]), r"\(3,\) cumulative costs"),
    (dict(costs=[1.0, 3.0, 2.0]), "nondecreasing"),
    (dict(criterion="margin"), "unknown exit criterion 'margin'"),
])
def test_bad_inputs_are_refused(kwargs, match):
    probs, labels = four_samples()
    args = dict(probs=probs, labels=labels, costs=[1.0, 2.0, 4.0], criterion="confidence") | kwargs
    with pytest.raises(PipelineError, match=match):
        budgeted_curve(**args)


def test_infeasible_target_in_table_is_an_error(random_set):
    probs, labels, costs = random_set
    with pytest.raises(PipelineError, match="no operating point reaches 101%"):
        thresholds_table(probs, labels, costs, min_latency_at_accuracy=[101])


def ranked_set(n: int, wrong_ranks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Two exits; exit 1's confidence falls with the rank, it is wrong at ``wrong_ranks``; exit 2 always right."""
    conf1 = np.linspace(0.99, 0.4, n)
    pred1 = np.zeros(n, dtype=np.int64)
    pred1[wrong_ranks] = 1
    probs = probs_from(np.stack([conf1, np.full(n, 0.9)], axis=1), np.stack([pred1, np.zeros(n, np.int64)], axis=1))
    return probs, np.zeros(n, dtype=np.int64)


def letting_out(probs: np.ndarray, m: int, cost: float) -> CurvePoint:
    """The point that lets the m surest samples out at exit 1 (m = 0: the last-exit point)."""
    t = float(probs[m - 1, 0].max()) if m else math.inf
    return CurvePoint(None, math.nan, cost, (t, -math.inf), ())


def test_loss_bound_known_answer():
    """One miss in 1,000: mean loss 0.1 points, stderr sqrt(0.001 * 0.999 / 999) * 100 points."""
    probs, labels = ranked_set(1000, [300])
    stderr = 100 * math.sqrt(1000 / 999 * 0.001 * 0.999 / 1000)
    everyone = letting_out(probs, 1000, 1.0).thresholds
    assert loss_bound(probs, labels, everyone, confidence=0.5) == pytest.approx(0.1)
    assert loss_bound(probs, labels, everyone, confidence=0.95) == pytest.approx(0.1 + 1.6448536 * stderr)
    assert loss_bound(probs, labels, letting_out(probs, 0, 3.0).thresholds) == 0.0  # the last exit loses nothing
    with pytest.raises(PipelineError, match=r"confidence level must be in \(0, 1\)"):
        loss_bound(probs, labels, everyone, confidence=1.0)


def test_the_walk_towards_cheaper_points_stops_at_the_first_that_fails():
    """Tested from the costliest point down, a point beyond one that fails is not taken even where its own
    bound passes: among many points, one passes by luck (here a cheaper one is made to look safe)."""
    probs, labels = ranked_set(1000, [300, 310])
    full, fails, passes = letting_out(probs, 0, 3.0), letting_out(probs, 500, 1.5), letting_out(probs, 305, 1.2)
    assert loss_bound(probs, labels, fails.thresholds) > 0.3 >= loss_bound(probs, labels, passes.thresholds)
    assert min_cost_within_loss(probs, labels, [passes, fails, full], 0.3) is full
    assert min_cost_within_loss(probs, labels, [passes, full], 0.3) is passes
    assert cheapest_within_loss(probs, labels, [fails, passes], 0.3, 0.95, "confidence", None) is None


def test_of_points_of_equal_cost_the_walk_tests_the_most_accurate():
    """A less accurate point beside a passing one of the same cost is never the choice, and its failure
    does not end the walk before a cheaper point that passes."""
    probs, labels = ranked_set(1000, [300, 310])
    fails = replace(letting_out(probs, 500, 1.5), accuracy=99.8)
    passes = replace(letting_out(probs, 305, 1.5), accuracy=99.9)
    cheaper = replace(letting_out(probs, 305, 1.2), accuracy=99.9)
    full = replace(letting_out(probs, 0, 3.0), accuracy=100.0)
    assert loss_bound(probs, labels, fails.thresholds) > 0.3
    assert min_cost_within_loss(probs, labels, [fails, passes, full], 0.3) is passes
    assert min_cost_within_loss(probs, labels, [full, fails, cheaper, passes], 0.3) is cheaper


def test_the_table_default_is_not_a_cheaper_point_beyond_one_that_fails():
    """Exit 1 is wrong at ranks 300 and 310, and right where exit 2 is wrong at ten ranks in 600..699: letting
    700 out gains 0.8 points and passes, but letting 500 out loses 0.2 (bound 0.43) and fails before it."""
    n = 1000
    pred1, pred2 = np.zeros(n, np.int64), np.zeros(n, np.int64)
    pred1[[300, 310]] = 1
    pred2[np.arange(600, 700, 10)] = 1
    probs = probs_from(np.stack([np.linspace(0.99, 0.4, n), np.full(n, 0.9)], axis=1), np.stack([pred1, pred2], 1))
    labels = np.zeros(n, dtype=np.int64)
    qs = tuple(n / m - 1 for m in (700, 500, 305, 200))  # exit 1 takes 1 / (1 + q) of the images
    curve = budgeted_curve(probs, labels, [1.0, 3.0], qs=qs)
    assert [round(p.exit_fractions[0] * n) for p in curve] == [700, 500, 305, 200]
    bounds = [loss_bound(probs, labels, p.thresholds) for p in curve]
    assert bounds[0] <= 0.3 < bounds[1] and bounds[2] <= 0.3  # the cheapest passes, by luck of the split
    default = thresholds_table(probs, labels, [1.0, 3.0], qs=qs, aggregate="last")["policies"]["default"]
    assert default["exit_fractions"][0] == pytest.approx(0.305)


def test_a_mean_aggregate_that_loses_at_the_last_exit_defaults_to_it():
    """50 images right at both exits, 50 that exit 1 is sure of and wrong: the mean softmax at exit 2 takes
    exit 1's answer. Under "mean" no point is within the tolerance, and the default is the full point."""
    wrong = np.arange(100) >= 50
    conf = np.where(wrong[:, None], [[0.99, 0.6]], [[0.9, 0.9]])
    pred = np.stack([wrong.astype(np.int64), np.zeros(100, np.int64)], axis=1)
    probs, labels = probs_from(conf, pred), np.zeros(100, dtype=np.int64)
    table = thresholds_table(probs, labels, [1.0, 3.0], aggregate="mean")
    assert table["policies"]["default"] == table["policies"]["last-exit"]
    assert table["policies"]["default"]["expected_accuracy"] == pytest.approx(50.0)
    assert thresholds_table(probs, labels, [1.0, 3.0], aggregate="auto")["aggregate"] == "last"


def test_a_target_is_found_on_the_last_exit_policy_of_a_table_without_a_curve(random_set):
    probs, labels, costs = random_set
    table = thresholds_table(probs, labels, costs, qs=(), aggregate="last", min_latency_at_accuracy=(1.0,))
    assert table["curve"] == []
    np.testing.assert_array_equal(policy_thresholds(table, "min-latency@1%"),
                                  policy_thresholds(table, "last-exit"))


def test_default_policy_guards_against_a_noisy_loss():
    """Two misses in 1,000 at ranks 300 and 310: letting 500 out loses 0.2 points, within 0.3 on the
    mean but not at 95% (bound 0.43); letting 305 out loses one (bound 0.26) and is the guarded pick."""
    probs, labels = ranked_set(1000, [300, 310])
    points = [letting_out(probs, m, 1.0 + 2.0 * (1 - m / 1000)) for m in (500, 305, 200, 0)]
    assert min_cost_within_loss(probs, labels, points, 0.3, confidence=0.5) is points[0]
    assert min_cost_within_loss(probs, labels, points, 0.3, confidence=0.95) is points[1]
    assert min_cost_within_loss(probs, labels, points, 0.0, confidence=0.95) is points[2]
    with pytest.raises(PipelineError, match=r"the costliest operating point \(cost 2\) may lose more than 0.3 points"):
        min_cost_within_loss(probs, labels, points[:1], 0.3)
    with pytest.raises(PipelineError, match="no operating point to choose from"):
        min_cost_within_loss(probs, labels, [], 0.3)
    # The table's default: a point of the sweep whose bound is within the tolerance; the mean-loss rule
    # (confidence 0.5) is at least as cheap.
    table = thresholds_table(probs, labels, [1.0, 3.0], aggregate="last")
    guarded = table["policies"]["default"]
    assert table["default_confidence"] == 0.95 and table["aggregate"] == "last"
    assert loss_bound(probs, labels, policy_thresholds(table, "default")) <= 0.3
    assert 1.0 < guarded["expected_cost_ms"] < 3.0
    loose = thresholds_table(probs, labels, [1.0, 3.0], confidence=0.5, aggregate="last")["policies"]["default"]
    assert loose["expected_cost_ms"] < guarded["expected_cost_ms"]


def test_aggregate_exits_is_the_running_mean():
    probs = np.array([[[0.2, 0.8], [0.6, 0.4], [1.0, 0.0]]])  # (1, 3, 2)
    np.testing.assert_allclose(aggregate_exits(probs, "mean"), [[[0.2, 0.8], [0.4, 0.6], [0.6, 0.4]]])
    assert aggregate_exits(probs, "last") is probs
    with pytest.raises(PipelineError, match="unknown exit aggregate 'max'"):
        aggregate_exits(probs, "max")


def test_mean_answers_are_judged_against_the_last_exit_alone():
    """40 images right at both exits; 40 right at exit 1 only, which the mean at exit 2 keeps right;
    20 wrong at exit 1 and sure of it. Exit 2 alone: 60%; the mean at exit 2: 100%.

    The default point lets most images out at exit 1 (80%): 20 points above the network's last exit,
    which is what the default is held to, though 20 below the mean's own last exit."""
    group = np.repeat([0, 1, 2], [40, 40, 20])
    conf = np.select([group[:, None] == 0, group[:, None] == 1], [[[0.9, 0.9]], [[0.8, 0.5]]], [[0.95, 0.99]])
    pred = np.select([group[:, None] == 1, group[:, None] == 2], [[[0, 1]], [[1, 0]]], 0)
    probs, labels = probs_from(conf, pred), np.zeros(100, dtype=np.int64)
    answers = aggregate_exits(probs, "mean")
    assert (answers.argmax(-1)[:, 1] == 0).all() and (probs.argmax(-1)[:, 1] == 0).mean() == 0.6
    table = thresholds_table(probs, labels, [1.0, 3.0], aggregate="mean")
    assert table["policies"]["last-exit"]["expected_accuracy"] == pytest.approx(100.0)
    default = table["policies"]["default"]
    assert default["expected_accuracy"] <= 80.0 and default["expected_cost_ms"] < 1.5
    t = policy_thresholds(table, "default")
    network_right = probs[:, -1].argmax(-1) == labels
    assert loss_bound(answers, labels, t, confidence=0.5, reference=network_right) == pytest.approx(-20.0)
    assert loss_bound(answers, labels, t, reference=network_right) <= 0.3
    assert loss_bound(answers, labels, t) >= 10.0  # against the mean's own last exit it would not qualify


def test_auto_aggregate_takes_the_mean_where_it_is_cheaper():
    """Exits that err independently (noise drawn afresh per exit): the mean of exits 1..k is surer and more
    often right than exit k alone, so its default thresholds cost less for the same guarded loss."""
    from pipeline.thresholds import softmax

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(400, 3, 10))
    logits[:, :, 0] += [1.5, 2.0, 2.5]
    probs, labels = softmax(logits).astype(np.float32), np.zeros(400, dtype=np.int64)
    table = thresholds_table(probs, labels, [1.0, 2.0, 3.0], aggregate="auto")
    candidates = table["aggregate_chosen_from"]
    assert table["aggregate"] == "mean" and set(candidates) == {"mean", "last"}
    assert candidates["mean"]["expected_cost_ms"] < candidates["last"]["expected_cost_ms"]
    assert table["policies"] == thresholds_table(probs, labels, [1.0, 2.0, 3.0], aggregate="mean")["policies"]


def test_auto_aggregate_takes_exit_k_alone_where_the_mean_errs():
    """Exits that err alike: on 30 images exit 1 is wrong and surer than exit 2 is right, so the mean at
    exit 2 is wrong there, 30 points below the last exit alone, and its default can only be the last
    exit (cost 3). Exit k alone lets the 70 sure images out at exit 1 (cost 1.6)."""
    hard = np.arange(100) >= 70
    conf = np.where(hard[:, None], [[0.6, 0.55]], [[0.95, 0.9]])
    pred = np.where(hard[:, None], [[1, 0]], [[0, 0]])
    probs, labels = probs_from(conf, pred), np.zeros(100, dtype=np.int64)
    assert (aggregate_exits(probs, "mean").argmax(-1)[hard, 1] == 1).all()
    table = thresholds_table(probs, labels, [1.0, 3.0], aggregate="auto")
    candidates = table["aggregate_chosen_from"]
    assert table["aggregate"] == "last"
    assert candidates["mean"]["expected_cost_ms"] == pytest.approx(3.0)
    assert candidates["last"]["expected_cost_ms"] == pytest.approx(0.7 * 1.0 + 0.3 * 3.0)
    assert table["policies"]["default"]["expected_accuracy"] == pytest.approx(100.0)
    assert "aggregate_chosen_from" not in thresholds_table(probs, labels, [1.0, 3.0], aggregate="last")


def test_auto_aggregate_meets_named_targets_on_the_chosen_curve_only():
    """A target the rejected aggregate cannot meet (the mean never reaches 100% on exits that err alike)
    does not stop the choice: it is met on the curve of exit k alone."""
    hard = np.arange(100) >= 70
    conf = np.where(hard[:, None], [[0.6, 0.55]], [[0.95, 0.9]])
    pred = np.where(hard[:, None], [[1, 0]], [[0, 0]])
    probs, labels = probs_from(conf, pred), np.zeros(100, dtype=np.int64)
    with pytest.raises(PipelineError):
        thresholds_table(probs, labels, [1.0, 3.0], min_latency_at_accuracy=[100.0], aggregate="mean")
    table = thresholds_table(probs, labels, [1.0, 3.0], min_latency_at_accuracy=[100.0], aggregate="auto")
    assert table["aggregate"] == "last"
    assert table["policies"]["min-latency@100%"]["expected_accuracy"] == pytest.approx(100.0)


def test_the_default_is_chosen_among_a_ten_times_denser_sweep_and_the_table_stores_the_coarse_curve(random_set):
    from pipeline.thresholds import CHOICE_QS
    from pipeline.thresholds.sweep import cheapest_within_loss

    probs, labels, costs = random_set
    table = thresholds_table(probs, labels, costs, aggregate="last")
    default = table["policies"]["default"]
    coarse = cheapest_within_loss(probs, labels, [*budgeted_curve(probs, labels, costs), last_exit_point(probs, labels,
                                  costs)], 0.3, 0.95, "confidence", None)
    assert default["q"] in CHOICE_QS and default["q"] not in DEFAULT_QS
    assert default["expected_cost_ms"] < coarse.cost  # a cheaper point that passes the same test
    assert loss_bound(probs, labels, policy_thresholds(table, "default")) <= 0.3
    assert [c["q"] for c in table["curve"]] == list(DEFAULT_QS)


def test_a_target_not_stored_is_found_among_the_same_points_as_a_stored_one():
    """Only the full network reaches 100% here (exit 1 is most confident where it is wrong), and that point
    is the stored last-exit policy, not a point of the sweep: asked later, the target is still met."""
    hard = np.arange(100) >= 70
    conf = np.where(hard[:, None], [[0.99, 0.9]], [[0.9, 0.9]])
    pred = np.where(hard[:, None], [[1, 0]], [[0, 0]])
    probs, labels = probs_from(conf, pred), np.zeros(100, dtype=np.int64)
    stored = thresholds_table(probs, labels, [1.0, 3.0], min_latency_at_accuracy=[100.0], aggregate="last")
    assert max(c["accuracy"] for c in stored["curve"]) < 100.0
    target = stored["policies"].pop("min-latency@100%")
    t = policy_thresholds(stored, "min-latency@100%")
    assert thresholds_to_json(t) == target["thresholds"]
    assert simulate(probs, labels, t, [1.0, 3.0]).accuracy == pytest.approx(100.0)
    del stored["policies"]["last-exit"]  # a table without it: the sweep alone, as before
    with pytest.raises(PipelineError, match="best reaches"):
        policy_thresholds(stored, "min-latency@100%")
