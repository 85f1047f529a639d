"""The accuracy-versus-latency curves: per-exit accuracy, anytime points, budgeted points from validation."""

from __future__ import annotations

import pytest

from pipeline.metrics import accuracy_per_exit
from pipeline.profiling.curves import anytime_curve, budgeted_points
from pipeline.thresholds import budgeted_curve, simulate, thresholds_from_json
from tests.profiling.conftest import synthetic_probs


def test_accuracy_and_anytime_curve():
    probs, labels = synthetic_probs()
    acc = accuracy_per_exit(probs, labels)
    assert acc == pytest.approx([100.0 * float((probs[:, k].argmax(-1) == labels).mean()) for k in range(3)])
    curve = anytime_curve(acc, [1.0, 2.0, 3.0])
    assert [p["exit"] for p in curve] == [1, 2, 3] and curve[2] == {"exit": 3, "latency_ms": 3.0, "accuracy": acc[2]}


def test_budgeted_points_apply_validation_thresholds_to_another_split():
    val, val_labels = synthetic_probs(seed=0)
    test, test_labels = synthetic_probs(seed=1)
    costs = [1.0, 2.0, 3.0]
    own = budgeted_points(val, val_labels, costs)
    curve = budgeted_curve(val, val_labels, costs)
    assert [p["accuracy"] for p in own] == [p.accuracy for p in curve]
    other = budgeted_points(val, val_labels, costs, test, test_labels)
    assert [p["thresholds"] for p in other] == [p["thresholds"] for p in own]  # never refitted on the test split
    for p in other:
        sim = simulate(test, test_labels, thresholds_from_json(p["thresholds"], "confidence"), costs)
        assert (p["accuracy"], p["cost_ms"]) == pytest.approx((sim.accuracy, sim.mean_cost))
