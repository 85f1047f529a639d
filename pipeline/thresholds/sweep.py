"""Operating points: MSDNet's budgeted-batch sweep, the last exit, and points chosen by cost, accuracy or
a paired loss bound against a reference."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.errors import PipelineError
from pipeline.thresholds.scores import (Costs, check_inputs, exit_index, exit_scores, from_scores, simulate,
                                        simulate_scores, to_scores)

# Ratios of the geometric exit distribution: log-spaced and symmetric around 1 (uniform over exits);
# small q sends most samples out at exit 1, large q most to the last exit.
# CHOICE_QS, ten times as dense, holds DEFAULT_QS as every tenth point: the default policy is chosen among
# all of them (between two neighbours of the coarse sweep lie cheaper points that still pass its test),
# while the curve a table stores and plots keeps DEFAULT_QS.
CHOICE_DENSITY = 10
CHOICE_QS = tuple(float(q) for q in np.geomspace(1 / 20, 20, 60 * CHOICE_DENSITY + 1))
DEFAULT_QS = CHOICE_QS[::CHOICE_DENSITY]
DEFAULT_CONFIDENCE = 0.95  # one-sided confidence that the "default" policy's loss is within the tolerance


@dataclass(frozen=True)
class CurvePoint:
    """One operating point: thresholds (criterion units) and what they give on the calibration set."""

    q: float | None  # ratio of the geometric exit distribution; None for a point not from the sweep
    accuracy: float  # %
    cost: float
    thresholds: tuple[float, ...]  # (K,)
    exit_fractions: tuple[float, ...]  # (K,)


def geometric_distribution(q: float, num_exits: int) -> np.ndarray:
    """(K,) exit shares p_k proportional to q^k, k = 1..K."""
    if not q > 0:
        raise PipelineError(f"the geometric ratio q must be > 0, got {q}")
    logp = np.arange(1, num_exits + 1) * math.log(q)
    p = np.exp(logp - logp.max())
    return p / p.sum()


def _greedy_score_thresholds(scores: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """(N, K) scores, (K,) target exit shares -> (K,) score thresholds, surest-first at each exit in turn."""
    n, k = scores.shape
    by_exit = np.floor(n * np.cumsum(shares) + 1e-9).astype(np.int64)  # samples that should have left by exit k
    s = np.full(k, np.inf)
    s[-1] = -np.inf
    left = np.zeros(n, dtype=bool)
    done = 0
    for j in range(k - 1):
        want = int(by_exit[j]) - done
        if want <= 0:
            continue  # nobody leaves here (ties at an earlier exit may have let out more than asked)
        rest = scores[~left, j]  # at least ``want`` samples, since by_exit[j] <= n
        s[j] = np.partition(rest, rest.size - want)[rest.size - want]  # the want-th largest score
        newly = ~left & (scores[:, j] >= s[j])
        left |= newly
        done += int(newly.sum())
    return s


def budgeted_curve(probs: np.ndarray, labels: np.ndarray, costs: Costs, criterion: str = "confidence",
                   qs: Sequence[float] = DEFAULT_QS) -> list[CurvePoint]:
    """The budgeted-batch sweep (Huang et al., MSDNet, 2018): one operating point per q, in the order of ``qs``.

    For a geometric family of exit distributions p_k proportional to q^k, walk the exits in order
    and let the surest samples still in flight leave at exit k until the share that has left
    reaches p_1 + ... + p_k; the score of the last sample let out is exit k's threshold. Unlike the
    reference code, the target is rounded on the cumulative share, so for samples without tied
    scores the mean cost of the curve never decreases as q grows.
    """
    probs, labels, costs = check_inputs(probs, labels, costs)
    scores = exit_scores(probs, criterion)  # (N, K)
    correct = probs.argmax(axis=-1) == labels[:, None]  # (N, K)
    curve = []
    for q in qs:
        s = _greedy_score_thresholds(scores, geometric_distribution(q, probs.shape[1]))
        sim = simulate_scores(scores, correct, s, costs)
        curve.append(CurvePoint(float(q), sim.accuracy, sim.mean_cost,
                                tuple(float(t) for t in from_scores(s, criterion)), sim.exit_fractions))
    return curve


def last_exit_point(probs: np.ndarray, labels: np.ndarray, costs: Costs,
                    criterion: str = "confidence") -> CurvePoint:
    """Always run to the last exit: the full network's accuracy and cost."""
    probs, labels, costs = check_inputs(probs, labels, costs)
    k = probs.shape[1]
    t = from_scores(np.r_[np.full(k - 1, np.inf), -np.inf], criterion)
    sim = simulate(probs, labels, t, costs, criterion)
    return CurvePoint(None, sim.accuracy, sim.mean_cost, tuple(float(x) for x in t), sim.exit_fractions)


def max_accuracy_for_cost(curve: Sequence[CurvePoint], max_cost: float) -> CurvePoint:
    """The most accurate point whose mean cost is <= ``max_cost`` (the cheaper one on a tie)."""
    fit = [p for p in curve if p.cost <= max_cost]
    if not fit:
        cheapest = min(p.cost for p in curve)
        raise PipelineError(f"no operating point has a mean cost <= {max_cost:g}; the cheapest costs "
                            f"{cheapest:.4g}: ask for a larger budget")
    return max(fit, key=lambda p: (p.accuracy, -p.cost))


def min_cost_for_accuracy(curve: Sequence[CurvePoint], min_accuracy: float) -> CurvePoint:
    """The cheapest point whose accuracy is >= ``min_accuracy`` % (the more accurate one on a tie)."""
    fit = [p for p in curve if p.accuracy >= min_accuracy]
    if not fit:
        best = max(p.accuracy for p in curve)
        raise PipelineError(f"no operating point reaches {min_accuracy:g}% accuracy; the best reaches "
                            f"{best:.2f}%: ask for a lower accuracy")
    return min(fit, key=lambda p: (p.cost, -p.accuracy))


class _PairedLoss:
    """Per-sample scores and outcomes, computed once, for the loss bound of any thresholds on them."""

    def __init__(self, probs: np.ndarray, labels: np.ndarray, confidence: float, criterion: str,
                 reference: np.ndarray | None):
        probs, labels, _ = check_inputs(probs, labels, np.zeros(np.asarray(probs).shape[1]))
        if not 0 < confidence < 1:
            raise PipelineError(f"the confidence level must be in (0, 1), got {confidence}")
        self.criterion, self.num_exits = criterion, probs.shape[1]
        self.scores = exit_scores(probs, criterion)  # (N, K)
        self.correct = probs.argmax(axis=-1) == labels[:, None]  # (N, K)
        right = self.correct[:, -1] if reference is None else np.asarray(reference, dtype=bool)
        if right.shape != labels.shape:
            raise PipelineError(f"expected ({len(labels)},) reference outcomes, got shape {right.shape}")
        self.right = right.astype(np.float64)  # (N,)
        self.z = statistics.NormalDist().inv_cdf(confidence)

    def bound(self, thresholds: Sequence[float]) -> float:
        if len(thresholds) != self.num_exits:
            raise PipelineError(f"expected {self.num_exits} thresholds, one per exit, got {len(thresholds)}")
        taken = exit_index(self.scores, to_scores(thresholds, self.criterion))
        d = self.right - self.correct[np.arange(len(taken)), taken]
        stderr = float(d.std(ddof=1)) / math.sqrt(d.size) if d.size > 1 else 0.0
        return 100.0 * (float(d.mean()) + self.z * stderr)


def loss_bound(probs: np.ndarray, labels: np.ndarray, thresholds: Sequence[float],
               confidence: float = DEFAULT_CONFIDENCE, criterion: str = "confidence",
               reference: np.ndarray | None = None) -> float:
    """Upper confidence bound, in accuracy points, on what ``thresholds`` lose against the reference.

    Paired per sample: d_i = (reference right) - (cascade right), bound = mean(d) + z * stderr(d),
    z the normal quantile of ``confidence``. Negative when the cascade is surely better.
    ``reference``: (N,) whether the reference answer is right; default, the last exit of ``probs``.
    """
    return _PairedLoss(probs, labels, confidence, criterion, reference).bound(thresholds)


def cheapest_within_loss(probs: np.ndarray, labels: np.ndarray, curve: Sequence[CurvePoint], tolerance: float,
                          confidence: float, criterion: str, reference: np.ndarray | None) -> CurvePoint | None:
    """The cheapest point reached from the costliest one, towards cheaper ones, while each keeps its loss
    bound within ``tolerance``: the walk stops at the first point that does not (None if the first fails).

    Each bound holds for one point; taking the cheapest of all that pass would let one of many
    candidates pass by luck, more often the denser the sweep. Tested one after another in order of cost,
    stopping at the first failure (fixed-sequence testing), the chosen point's bound is not diluted by
    the number of points; the guarantee is approximate, since the order and the thresholds come from the
    same images the bounds are computed on. Of points of equal cost only the most accurate is tested:
    a less accurate twin is never the better choice, and its failure must not end the walk.
    """
    paired = _PairedLoss(probs, labels, confidence, criterion, reference)
    chosen, tested_cost = None, None
    for point in sorted(curve, key=lambda p: (-p.cost, -p.accuracy)):
        if point.cost == tested_cost:
            continue
        tested_cost = point.cost
        if paired.bound(point.thresholds) > tolerance:
            break
        chosen = point
    return chosen


def min_cost_within_loss(probs: np.ndarray, labels: np.ndarray, curve: Sequence[CurvePoint], tolerance: float,
                         confidence: float = DEFAULT_CONFIDENCE, criterion: str = "confidence",
                         reference: np.ndarray | None = None) -> CurvePoint:
    """The cheapest point whose loss against the reference (``loss_bound``) is <= ``tolerance`` points, and
    that of every costlier point (:func:`cheapest_within_loss`).

    With the default reference, the last-exit point of ``curve`` loses nothing and always qualifies.
    """
    point = cheapest_within_loss(probs, labels, curve, tolerance, confidence, criterion, reference)
    if point is None:
        if not curve:
            raise PipelineError("no operating point to choose from; include the last-exit point")
        raise PipelineError(f"the costliest operating point (cost {max(p.cost for p in curve):g}) may lose more than "
                            f"{tolerance:g} points against the reference at {confidence:.0%} confidence; include the "
                            "last-exit point or raise the tolerance")
    return point
