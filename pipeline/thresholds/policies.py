"""The thresholds table the manifest stores: named policies over the sweep, and reading policies back."""

from __future__ import annotations

import argparse
import re
from typing import Any, Sequence

import numpy as np

from pipeline.errors import PipelineError
from pipeline.thresholds.scores import (AGGREGATES, AUTO_AGGREGATE, DEFAULT_AGGREGATE, Costs, aggregate_exits,
                                        check_criterion, check_inputs, thresholds_from_json, thresholds_to_json)
from pipeline.thresholds.sweep import (CHOICE_DENSITY, CHOICE_QS, DEFAULT_CONFIDENCE, DEFAULT_QS, CurvePoint, budgeted_curve,
                                       cheapest_within_loss, last_exit_point, max_accuracy_for_cost,
                                       min_cost_for_accuracy)

DEFAULT_TOLERANCE = 0.3  # accuracy points below the last exit that the "default" policy may give up
DEFAULT_POLICY = "default"  # the last point of the guarded walk towards cheaper points (``thresholds_table``)
LAST_EXIT_POLICY = "last-exit"  # run every stage (the deadline may still stop early)
_MAX_ACC = re.compile(r"^max-accuracy@(\d+(?:\.\d+)?)ms$")
_MIN_LAT = re.compile(r"^min-latency@(\d+(?:\.\d+)?)%$")


def _point_json(p: CurvePoint) -> dict[str, Any]:
    return {"q": p.q, "accuracy": p.accuracy, "cost_ms": p.cost, "thresholds": thresholds_to_json(p.thresholds),
            "exit_fractions": list(p.exit_fractions)}


def _policy_json(p: CurvePoint) -> dict[str, Any]:
    return {"thresholds": thresholds_to_json(p.thresholds), "expected_accuracy": p.accuracy,
            "expected_cost_ms": p.cost, "q": p.q, "exit_fractions": list(p.exit_fractions)}


def max_accuracy_name(ms: float) -> str:
    return f"max-accuracy@{ms:g}ms"


def min_latency_name(accuracy: float) -> str:
    return f"min-latency@{accuracy:g}%"


def thresholds_table(probs: np.ndarray, labels: np.ndarray, costs_ms: Costs, criterion: str = "confidence",
                     max_accuracy_at_ms: Sequence[float] = (), min_latency_at_accuracy: Sequence[float] = (),
                     qs: Sequence[float] = DEFAULT_QS, tolerance: float = DEFAULT_TOLERANCE,
                     confidence: float = DEFAULT_CONFIDENCE, aggregate: str = DEFAULT_AGGREGATE) -> dict[str, Any]:
    """The JSON-ready entry for ``manifest.thresholds["<backend>/<precision>"]``.

    ``probs``: each exit's own softmax; the curve and policies are those of ``aggregate`` ("last":
    exit k answers alone; "mean": with the mean softmax of exits 1..k, which is more accurate where
    the classifiers err on partly different images; "auto": whichever of the two gives the cheaper
    default policy here, the mean on a tie, recorded with both candidates' defaults, as a model whose
    exits learnt from one teacher err alike and its mean can fall below its last exit). ``costs_ms``:
    cumulative latency to each exit on that backend and precision. Policies: "default", "last-exit",
    and one per requested target (a target that no point meets is an error; under "auto", no point
    of the chosen curve). The table stores the curve of ``qs``; "default" is chosen among its points
    and, with the default ``qs``, those of the ten times denser sweep ``CHOICE_QS``.

    "default" must keep its accuracy on images it was not chosen on, and a point chosen on one
    split's mean loss is chosen for that split's noise. So the loss is judged paired, image by
    image, against the last exit's own classifier (the network the cascade replaces): walking from the
    costliest point towards cheaper ones, the last point before the first whose one-sided
    ``confidence`` bound on that loss exceeds ``tolerance`` points (the last-exit point when the first
    does), so that a cheap point that passes by luck among many is not taken (``cheapest_within_loss``).
    """
    if aggregate == AUTO_AGGREGATE:
        # The choice rests on the default policy alone; the named targets are met on the chosen curve.
        defaults = {a: thresholds_table(probs, labels, costs_ms, criterion, qs=qs, tolerance=tolerance,
                                        confidence=confidence, aggregate=a)["policies"][DEFAULT_POLICY]
                    for a in ("mean", "last")}  # the mean first: it is kept on a tie
        candidates = {a: {k: d[k] for k in ("expected_cost_ms", "expected_accuracy")} for a, d in defaults.items()}
        chosen = min(candidates, key=lambda a: (candidates[a]["expected_cost_ms"], -candidates[a]["expected_accuracy"]))
        return {**thresholds_table(probs, labels, costs_ms, criterion, max_accuracy_at_ms, min_latency_at_accuracy, qs,
                                   tolerance, confidence, chosen), "aggregate_chosen_from": candidates}
    probs, labels, _ = check_inputs(probs, labels, costs_ms)
    answers = aggregate_exits(probs, aggregate)
    if tuple(qs) == DEFAULT_QS:  # the default is chosen on the dense sweep, whose every tenth point is stored
        points = budgeted_curve(answers, labels, costs_ms, criterion, CHOICE_QS)
        curve = points[::CHOICE_DENSITY]
    else:
        curve = points = budgeted_curve(answers, labels, costs_ms, criterion, qs)
    full = last_exit_point(answers, labels, costs_ms, criterion)
    network_right = probs[:, -1].argmax(axis=-1) == labels  # (N,) the last exit's own classifier
    # None only when the aggregate at the last exit is worse than the last exit alone.
    default = cheapest_within_loss(answers, labels, [*points, full], tolerance, confidence, criterion,
                                    network_right) or full
    policies = {DEFAULT_POLICY: _policy_json(default), LAST_EXIT_POLICY: _policy_json(full)}
    for ms in max_accuracy_at_ms:  # as :func:`policy_thresholds` finds a target the table does not hold
        policies[max_accuracy_name(ms)] = _policy_json(max_accuracy_for_cost([*curve, full], ms))
    for acc in min_latency_at_accuracy:
        policies[min_latency_name(acc)] = _policy_json(min_cost_for_accuracy([*curve, full], acc))
    return {"criterion": criterion, "aggregate": aggregate, "samples": int(len(labels)), "default_tolerance": tolerance,
            "default_confidence": confidence,
            "policies": policies, "curve": [_point_json(p) for p in curve]}


def add_calibration_options(ap: argparse.ArgumentParser) -> None:
    """The command-line options that shape the calibrated table: --aggregate, --tolerance, --confidence."""
    ap.add_argument("--aggregate", default=DEFAULT_AGGREGATE, choices=[AUTO_AGGREGATE, *AGGREGATES],
                    help="what exit k answers with: the mean softmax of exits 1..k, or its own (last); auto: "
                         "whichever gives the cheaper default thresholds on the calibration images")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                    help="accuracy points below the last exit that the default thresholds may give up")
    ap.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE,
                    help="one-sided confidence that the default thresholds' loss is within --tolerance "
                         "(0.5: judge the mean loss alone)")


def check_calibration_options(tolerance: float, confidence: float) -> None:
    """Refuse a negative --tolerance or a --confidence outside (0, 1)."""
    if not tolerance >= 0:
        raise PipelineError(f"--tolerance must be 0 or more accuracy points, got {tolerance}")
    if not 0 < confidence < 1:
        raise PipelineError(f"--confidence must be between 0 and 1, got {confidence}")


def _read_point(d: dict[str, Any], criterion: str, accuracy: str, cost: str, what: str) -> CurvePoint:
    """A stored point (a curve entry, or a policy under its ``expected_`` keys) back as a CurvePoint."""
    try:
        return CurvePoint(d.get("q"), float(d[accuracy]), float(d[cost]),
                          tuple(thresholds_from_json(d["thresholds"], criterion).tolist()),
                          tuple(d.get("exit_fractions", ())))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise PipelineError(f"the stored {what} is malformed ({exc}); re-run the latency profiler") from None


def curve_from_table(table: dict[str, Any]) -> list[CurvePoint]:
    """The stored sweep back as CurvePoints (costs in ms)."""
    criterion = table.get("criterion", "confidence")
    return [_read_point(c, criterion, "accuracy", "cost_ms", "threshold curve") for c in table.get("curve", [])]


def _stored_last_exit(policies: dict[str, Any], criterion: str) -> list[CurvePoint]:
    """The stored "last-exit" policy as a curve point (none if the table has none): a target is found among
    the same points as :func:`thresholds_table` finds its stored ones, the sweep and the full network."""
    entry = policies.get(LAST_EXIT_POLICY)
    return [] if entry is None else [_read_point(entry, criterion, "expected_accuracy", "expected_cost_ms",
                                                 f"{LAST_EXIT_POLICY!r} policy")]


def policy_thresholds(table: dict[str, Any], policy: str) -> np.ndarray:
    """(K,) criterion-unit thresholds of ``policy``: a stored policy, or a target chosen from the stored curve.

    Besides the stored names, "max-accuracy@<x>ms" and "min-latency@<y>%" pick a point of the stored curve
    or the last-exit policy, as the table picks the targets it stores.
    """
    criterion = check_criterion(table.get("criterion", "confidence"))
    policies = table.get("policies", {})
    if not isinstance(policies, dict):
        raise PipelineError(f"the stored thresholds table is malformed: its policies should be an object of named "
                            f"policies, found {type(policies).__name__}; re-run the latency profiler")
    if policy in policies:
        try:
            return thresholds_from_json(policies[policy]["thresholds"], criterion)
        except (KeyError, TypeError):
            raise PipelineError(f"stored policy {policy!r} has no thresholds list; "
                                "re-run the latency profiler") from None
    m_acc, m_lat = _MAX_ACC.match(policy), _MIN_LAT.match(policy)
    curve = curve_from_table(table) + _stored_last_exit(policies, criterion) if m_acc or m_lat else []
    if curve:
        if m_acc:
            point = max_accuracy_for_cost(curve, float(m_acc.group(1)))
        else:
            point = min_cost_for_accuracy(curve, float(m_lat.group(1)))  # type: ignore[union-attr]
        return np.asarray(point.thresholds)
    known = ", ".join(sorted(policies)) or "none"
    raise PipelineError(f"unknown threshold policy {policy!r}; known: {known}; or ask for a target on the "
                        "stored curve as max-accuracy@<ms>ms or min-latency@<percent>%")


def default_policy(table: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """The "default" policy of a table: its (K,) criterion-unit thresholds, and its stored entry
    (``thresholds`` as JSON, ``expected_accuracy``, ``expected_cost_ms``, ...)."""
    return policy_thresholds(table, DEFAULT_POLICY), table["policies"][DEFAULT_POLICY]
