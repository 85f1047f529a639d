"""Accuracy-versus-latency curves of a variant: anytime (answer at each exit) and budgeted (thresholds swept).

Thresholds are always calibrated on the validation split; on another split each point's
thresholds are only applied (``simulate``), never refitted.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pipeline.metrics import accuracy_per_exit
from pipeline.profiling.timing import LatencyProfile
from pipeline.thresholds import (DEFAULT_AGGREGATE, DEFAULT_CONFIDENCE, DEFAULT_TOLERANCE, aggregate_exits,
                                 budgeted_curve, default_policy, simulate, thresholds_table, thresholds_to_json)


def anytime_curve(accuracy: Sequence[float], cumulative_ms: Sequence[float]) -> list[dict[str, float]]:
    """Accuracy at exit k against the latency to reach it: one point per exit."""
    return [{"exit": k, "latency_ms": float(ms), "accuracy": float(acc)}
            for k, (acc, ms) in enumerate(zip(accuracy, cumulative_ms), start=1)]


def budgeted_points(calib_probs: np.ndarray, calib_labels: np.ndarray, costs_ms: Sequence[float],
                    eval_probs: np.ndarray | None = None, eval_labels: np.ndarray | None = None,
                    criterion: str = "confidence") -> list[dict[str, Any]]:
    """The budgeted-batch sweep, calibrated on ``calib_*`` (the validation split) with per-exit costs.

    With ``eval_*`` (another split), each point's thresholds are applied to it and its accuracy and
    mean cost are those measured there; otherwise they are the calibration set's own.
    """
    curve = budgeted_curve(calib_probs, calib_labels, costs_ms, criterion)
    points = []
    for p in curve:
        acc, cost, fractions = p.accuracy, p.cost, p.exit_fractions
        if eval_probs is not None:
            sim = simulate(eval_probs, eval_labels, p.thresholds, costs_ms, criterion)  # type: ignore[arg-type]
            acc, cost, fractions = sim.accuracy, sim.mean_cost, sim.exit_fractions
        points.append({"q": p.q, "accuracy": acc, "cost_ms": cost, "exit_fractions": list(fractions),
                       "thresholds": thresholds_to_json(p.thresholds)})
    return points


def variant_report(profile: LatencyProfile, val: tuple[np.ndarray, np.ndarray],
                   evaluated: tuple[np.ndarray, np.ndarray] | None, aggregate: str = DEFAULT_AGGREGATE,
                   tolerance: float = DEFAULT_TOLERANCE, confidence: float = DEFAULT_CONFIDENCE
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(report entry, thresholds table) of one variant from its timings and per-exit probabilities.

    ``val``: (N, K, C) validation probs and labels; ``evaluated``: the same on the test split, or
    None when the curves are evaluated on validation itself. "accuracy" is each exit's own
    classifier; "answer_accuracy" and the curves are the cascade's answers under ``aggregate`` (as
    the table resolved "auto").
    ``tolerance`` and ``confidence``: the default policy's guard (``thresholds_table``).
    """
    costs = profile.cumulative_p50()
    table = thresholds_table(val[0], val[1], costs, aggregate=aggregate, tolerance=tolerance,
                             confidence=confidence)  # calibrated on validation only
    aggregate = table["aggregate"]  # "auto" resolved
    probs, labels = evaluated if evaluated is not None else val
    answers = aggregate_exits(probs, aggregate)  # (N, K, C)
    answer_accuracy = accuracy_per_exit(answers, labels)
    thresholds, stored = default_policy(table)
    default = simulate(answers, labels, thresholds, costs)
    entry = {**profile.to_json(), "aggregate": aggregate, "aggregate_chosen_from": table.get("aggregate_chosen_from"),
             "accuracy": accuracy_per_exit(probs, labels),
             "answer_accuracy": answer_accuracy, "anytime": anytime_curve(answer_accuracy, costs),
             "budgeted": budgeted_points(aggregate_exits(val[0], aggregate), val[1], costs,
                                         *((answers, labels) if evaluated is not None else (None, None))),
             "default_policy": {"accuracy": default.accuracy, "cost_ms": default.mean_cost,
                                "exit_fractions": list(default.exit_fractions),
                                "thresholds": stored["thresholds"]}}
    return entry, table
