"""Scores, the exit rule and its simulation: what any set of thresholds does on labelled per-exit outputs.

A threshold is stored in its criterion's units (confidence: answer when max softmax >= t; entropy:
when the entropy in nats <= t) and compared as a score, higher = surer (``to_scores``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.errors import PipelineError

CRITERIA = ("confidence", "entropy")
AGGREGATES = ("last", "mean")  # exit k answers with its own softmax, or the mean of exits 1..k
AGGREGATE_NAMES = {"last": "exit k alone", "mean": "mean of exits 1..k"}  # as reports print them
AUTO_AGGREGATE = "auto"  # calibration picks whichever of AGGREGATES gives the cheaper default policy
DEFAULT_AGGREGATE = AUTO_AGGREGATE

Costs = Sequence[float] | np.ndarray  # (K,) cumulative cost to each exit
Thresholds = Sequence[float] | np.ndarray  # (K,) in criterion units



@dataclass(frozen=True)
class Simulation:
    """The cascade's outcome on a labelled set with fixed thresholds (no deadline)."""

    accuracy: float  # % of samples answered correctly
    mean_cost: float  # mean cumulative cost at the exit taken, in the units of ``costs``
    exit_counts: tuple[int, ...]  # (K,) samples answered at each exit

    @property
    def exit_fractions(self) -> tuple[float, ...]:
        n = sum(self.exit_counts)
        return tuple(c / n for c in self.exit_counts)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax, in the dtype of ``logits`` (float32 stays float32)."""
    z = np.asarray(logits)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def check_criterion(criterion: str) -> str:
    if criterion not in CRITERIA:
        raise PipelineError(f"unknown exit criterion {criterion!r}; expected one of {', '.join(CRITERIA)}")
    return criterion


def check_aggregate(aggregate: str) -> str:
    if aggregate not in AGGREGATES:
        raise PipelineError(f"unknown exit aggregate {aggregate!r}; expected one of {', '.join(AGGREGATES)}")
    return aggregate


def aggregate_exits(probs: np.ndarray, aggregate: str = "mean") -> np.ndarray:
    """(N, K, C) per-exit softmax -> (N, K, C) what each exit answers with: itself, or the running mean."""
    p = np.asarray(probs)
    if check_aggregate(aggregate) == "last":
        return p
    if p.ndim != 3:
        raise PipelineError(f"expected per-exit softmax outputs of shape (N, K, C), got {p.shape}")
    return np.cumsum(p, axis=1, dtype=np.float64) / np.arange(1, p.shape[1] + 1)[None, :, None]


def exit_scores(probs: np.ndarray, criterion: str = "confidence") -> np.ndarray:
    """(N, K, C) softmax outputs -> (N, K) float64 scores, higher = surer: confidence or minus entropy."""
    check_criterion(criterion)
    p = np.asarray(probs, dtype=np.float64)
    if criterion == "confidence":
        return p.max(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)  # 0 log 0 = 0
    return plogp.sum(axis=-1)  # minus the entropy, in nats


def to_scores(thresholds: Thresholds, criterion: str) -> np.ndarray:
    """Thresholds in criterion units -> score thresholds (rule ``score >= s``); the last one always passes.

    Scores are the confidence, or minus the entropy. The last exit always answers (threshold -inf
    for confidence, +inf for entropy); an earlier exit that should never answer has +inf (-inf).
    """
    t = np.asarray(thresholds, dtype=np.float64)
    s = t.copy() if check_criterion(criterion) == "confidence" else -t
    s[-1] = -np.inf
    return s


def from_scores(score_thresholds: np.ndarray, criterion: str) -> np.ndarray:
    s = np.asarray(score_thresholds, dtype=np.float64)
    return s.copy() if check_criterion(criterion) == "confidence" else -s


def exit_index(scores: np.ndarray, score_thresholds: np.ndarray) -> np.ndarray:
    """(N, K) scores, (K,) score thresholds -> (N,) 0-based exit taken: the first k with score >= s_k."""
    passed = scores >= score_thresholds[None, :]  # (N, K)
    passed[:, -1] = True
    return passed.argmax(axis=1)


def check_probs_labels(probs_in: np.ndarray, labels_in: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inputs as arrays: (N, K, C) finite probs and (N,) integer labels; else a PipelineError."""
    probs, labels = np.asarray(probs_in), np.asarray(labels_in)
    if probs.ndim != 3 or probs.shape[0] == 0 or probs.shape[1] == 0:
        raise PipelineError(f"expected per-exit softmax outputs of shape (N, K, C) with N, K >= 1, got {probs.shape}")
    if labels.shape != (probs.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise PipelineError(f"expected ({probs.shape[0]},) integer labels to match probs {probs.shape}, got "
                            f"{labels.shape} {labels.dtype}")
    if not np.all(np.isfinite(probs)):
        raise PipelineError("probs contain NaN or infinity; check the model outputs")
    return probs, labels


def check_inputs(probs_in: np.ndarray, labels_in: np.ndarray, costs_in: Costs
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inputs as arrays: (N, K, C) probs, (N,) integer labels, (K,) cumulative costs; else a PipelineError."""
    probs, labels = check_probs_labels(probs_in, labels_in)
    costs = np.asarray(costs_in, dtype=np.float64)
    k = probs.shape[1]
    if costs.shape != (k,):
        raise PipelineError(f"expected ({k},) cumulative costs, one per exit, got shape {costs.shape}")
    if not (np.all(np.isfinite(costs)) and np.all(costs >= 0) and np.all(np.diff(costs) >= 0)):
        raise PipelineError(f"costs must be cumulative to each exit (finite, >= 0, nondecreasing), got "
                            f"{costs.tolist()}; pass cumulative sums of per-stage costs")
    return probs, labels, costs


def simulate_scores(scores: np.ndarray, correct: np.ndarray, s: np.ndarray, costs: np.ndarray) -> Simulation:
    n, k = scores.shape
    taken = exit_index(scores, s)  # (N,)
    counts = np.bincount(taken, minlength=k)
    acc = 100.0 * float(correct[np.arange(n), taken].mean())
    return Simulation(acc, float(counts @ costs) / n, tuple(int(c) for c in counts))


def simulate(probs: np.ndarray, labels: np.ndarray, thresholds: Thresholds, costs: Costs,
             criterion: str = "confidence") -> Simulation:
    """Accuracy, mean cost and exit histogram of the exit rule with ``thresholds`` (criterion units)."""
    probs, labels, costs = check_inputs(probs, labels, costs)
    if len(thresholds) != probs.shape[1]:
        raise PipelineError(f"expected {probs.shape[1]} thresholds, one per exit, got {len(thresholds)}")
    correct = probs.argmax(axis=-1) == labels[:, None]  # (N, K)
    return simulate_scores(exit_scores(probs, criterion), correct, to_scores(thresholds, criterion), costs)


def thresholds_to_json(thresholds: Sequence[float]) -> list[float | None]:
    """Criterion-unit thresholds -> JSON list: infinities become ``null`` (JSON has none).

    At the last exit ``null`` means "always answers", at any other exit "never answers".
    """
    return [float(t) if math.isfinite(t) else None for t in thresholds]


def thresholds_from_json(values: Sequence[float | None], criterion: str) -> np.ndarray:
    """JSON list -> (K,) criterion-unit thresholds, ``null`` read as "never answers" (last exit: "always")."""
    never = math.inf if check_criterion(criterion) == "confidence" else -math.inf
    try:
        t = np.array([never if v is None else float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise PipelineError(f"thresholds must be numbers or null, got {list(values)!r}; "
                            "re-run the latency profiler to rewrite them") from None
    if t.size == 0 or np.isnan(t).any():
        raise PipelineError(f"thresholds must be a non-empty list without NaN, got {list(values)!r}")
    t[-1] = -never
    return t
