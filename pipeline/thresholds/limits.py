"""What bounds a cascade's speed-up over its own last exit at matched accuracy, one limit lifted at a time.

A cascade that answers within ``tolerance`` points of its last exit can be held back by three things:
the cost of its first stage, the accuracy gap between its exits, and its exit rule. Each bound below
lifts the limits before it, on the same images and costs:

- ``first_stage``: every frame answered by exit 1 (the cost of stage 1 alone; nothing is faster).
- ``perfect_rule``: a rule that knew the labels: within the tolerance at the least cost, each frame it
  needs right answered by the first exit that gets it right, every other frame by exit 1: what the
  exits' accuracies allow to any exit rule.
- ``hindsight``: the cheapest thresholds of the exit rule (its criterion and answers) within the
  tolerance found on these very images: the rule's own limit, free of calibration noise. Found by
  search (the budgeted sweep's points refined by coordinate descent), so a lower bound on it; on small
  cases the tests hold it to an exhaustive search.

The measured ratio, with thresholds calibrated on other images, sits below ``hindsight``: the gap is
what choosing thresholds on a finite validation split costs. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.thresholds.scores import Costs, aggregate_exits, check_inputs, exit_index, exit_scores
from pipeline.thresholds.sweep import DEFAULT_QS, _greedy_score_thresholds, geometric_distribution

MAX_PASSES = 20  # coordinate passes of the hindsight search; each lowers the cost or ends it


@dataclass(frozen=True)
class SpeedupLimits:
    """Speed-ups (last exit's cost / mean cost) and the accuracies (%) they come with."""

    last_exit_accuracy: float
    first_stage: float
    perfect_rule: float
    perfect_rule_accuracy: float
    hindsight: float
    hindsight_accuracy: float
    hindsight_exit_fractions: tuple[float, ...]

    def to_dict(self) -> dict[str, float | list[float]]:
        return {"last_exit_accuracy": self.last_exit_accuracy, "first_stage": self.first_stage,
                "perfect_rule": self.perfect_rule, "perfect_rule_accuracy": self.perfect_rule_accuracy,
                "hindsight": self.hindsight, "hindsight_accuracy": self.hindsight_accuracy,
                "hindsight_exit_fractions": list(self.hindsight_exit_fractions)}


def speedup_limits(probs: np.ndarray, labels: np.ndarray, costs: Costs, tolerance: float = 0.3,
                   criterion: str = "confidence", aggregate: str = "last") -> SpeedupLimits:
    """The three bounds for (N, K, C) exit softmax ``probs``, ``labels`` and cumulative ``costs`` (K,); the
    exit rule answers with ``aggregate`` and tests ``criterion``, as the cascade does."""
    probs, labels, c = check_inputs(probs, labels, costs)
    answers = aggregate_exits(probs, aggregate)
    right = answers.argmax(axis=-1) == labels[:, None]  # (N, K)
    own_last = probs[:, -1].argmax(axis=-1) == labels  # the network's own last exit, the one matched
    last_acc = 100.0 * float(own_last.mean())
    target = last_acc - tolerance
    full_cost = float(c[-1])
    perfect_cost, perfect_acc = _perfect_rule(right, c, target)
    scores = exit_scores(answers, criterion)
    exits = _hindsight_exits(scores, right, c, target)
    n = len(labels)
    hind_cost = float(c[exits].mean())
    return SpeedupLimits(
        last_exit_accuracy=last_acc, first_stage=_ratio(full_cost, float(c[0])),
        perfect_rule=_ratio(full_cost, perfect_cost), perfect_rule_accuracy=perfect_acc,
        hindsight=_ratio(full_cost, hind_cost), hindsight_accuracy=100.0 * float(right[np.arange(n), exits].mean()),
        hindsight_exit_fractions=tuple((np.bincount(exits, minlength=c.size) / n).tolist()))


def _perfect_rule(right: np.ndarray, costs: np.ndarray, target: float) -> tuple[float, float]:
    """(mean cost, accuracy %) of the cheapest assignment of frames to exits with accuracy >= ``target``: exit 1
    for every frame, except the fewest frames exit 1 gets wrong, cheapest first, that the target needs, each
    sent to its first right exit."""
    n = right.shape[0]
    need = int(np.ceil(target / 100.0 * n - 1e-9)) - int(right[:, 0].sum())
    later = right[:, 1:].any(axis=1) & ~right[:, 0]
    extra = np.sort(costs[right.argmax(axis=1)[later]])[:max(need, 0)]  # each such frame's first right exit
    total = float(costs[0]) * (n - extra.size) + float(extra.sum())
    return total / n, 100.0 * (int(right[:, 0].sum()) + extra.size) / n


def _ratio(full: float, cost: float) -> float:
    return full / cost if cost > 0 else float("inf")


def _hindsight_exits(scores: np.ndarray, right: np.ndarray, costs: np.ndarray, target: float) -> np.ndarray:
    """(N,) exits of the cheapest score thresholds found whose accuracy is >= ``target`` (%): the best point of
    the budgeted sweep, then coordinate descent, each exit's threshold in turn set to its cheapest feasible
    value with the others held. Always running to the last exit is feasible when the last answer is the
    network's own; where nothing is, the most accurate of the candidates is returned."""
    n, k = scores.shape
    starts = [np.full(k, np.inf)]
    starts += [_greedy_score_thresholds(scores, geometric_distribution(q, k)) for q in DEFAULT_QS]
    best_cost, best = np.inf, exit_index(scores, starts[0])
    best_acc = -1.0
    for s in starts:
        s = _descend(scores, right, costs, target, s.copy())
        exits = exit_index(scores, s)
        acc = 100.0 * float(right[np.arange(n), exits].mean())
        cost = float(costs[exits].mean())
        if (acc >= target and cost < best_cost) or (best_cost == np.inf and acc > best_acc):
            best_cost, best, best_acc = (cost if acc >= target else np.inf), exits, acc
    return best


def _descend(scores: np.ndarray, right: np.ndarray, costs: np.ndarray, target: float, s: np.ndarray) -> np.ndarray:
    """Coordinate descent on the K-1 free score thresholds ``s`` (the last exit always answers)."""
    n, k = scores.shape
    need = int(np.ceil(target / 100.0 * n - 1e-9))  # right answers the target asks for
    rows = np.arange(n)
    for _ in range(MAX_PASSES):
        improved = False
        for j in range(k - 1):
            exits = exit_index(scores, s)
            reach = exits >= j  # frames that get to exit j
            rest = s.copy()
            rest[j] = np.inf  # where each reaching frame goes if exit j lets it through
            onward = exit_index(scores, rest)
            fixed_right = int(right[rows[~reach], exits[~reach]].sum())
            fixed_cost = float(costs[exits[~reach]].sum())
            idx = rows[reach]
            order = idx[np.argsort(-scores[idx, j], kind="stable")]  # surest first
            gain = np.r_[0, np.cumsum(right[order, j].astype(np.int64) - right[order, onward[order]])]
            dcost = np.r_[0.0, np.cumsum(costs[j] - costs[onward[order]])]
            base_right = fixed_right + int(right[order, onward[order]].sum())
            base_cost = fixed_cost + float(costs[onward[order]].sum())
            sorted_scores = scores[order, j]
            # m frames leave at j: allowed only where the m-th score differs from the next (a threshold can cut there)
            cut = np.r_[True, sorted_scores[:-1] > sorted_scores[1:], True] if order.size else np.array([True])
            feasible = cut & (base_right + gain >= need)
            if not feasible.any():
                continue
            total = np.where(feasible, base_cost + dcost, np.inf)
            m = int(np.argmin(total))
            new = np.inf if m == 0 else float(sorted_scores[m - 1])
            current = float(costs[exits].sum())
            if total[m] < current - 1e-12 and new != s[j]:
                s[j] = new
                improved = True
        if not improved:
            break
    return s
