"""What bounds a cascade's speed-up over its own last exit at matched accuracy, one limit lifted at a time.

A cascade that answers within ``tolerance`` points of its last exit can be held back by three things:
the cost of its first stage, the accuracy gap between its exits, and its exit rule. Each of the first
three bounds below lifts the limits before it, on the same images and costs; the fourth sits beside the
third:

- ``first_stage``: every frame answered by exit 1 (the cost of stage 1 alone; nothing is faster).
- ``perfect_rule``: a rule that knew the labels: within the tolerance at the least cost, each frame it
  needs right answered by the first exit that gets it right, every other frame by exit 1: what the
  exits' accuracies allow to any exit rule.
- ``hindsight``: the cheapest thresholds of the exit rule (its criterion and answers) within the
  tolerance found on these very images: the rule's own limit, free of calibration noise. Found by
  search (the budgeted sweep's points and a coarse grid, the best refined by coordinate descent), so
  the rule can do at least this well; on small cases the tests hold it to an exhaustive search.
- ``learned_gate`` (given a calibration split): the same search on the scores of a gate fit there on
  more of the exits' outputs (``pipeline.thresholds.gate``) in place of the rule's one number: whether
  this richer reading of the same exits beats ``hindsight``. It can come out below it (the gate is fit
  on other images, by likelihood, not by cost), never above ``perfect_rule``.

The tolerance is counted against the network's own last exit on the same images. A bound whose
tolerance no assignment meets (an answer that never reaches the last exit's accuracy) is None, as is
a ratio over a zero cost. Thresholds calibrated on other images usually land below ``hindsight``;
the gap is what choosing them on a finite validation split costs. numpy only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from pipeline.errors import PipelineError
from pipeline.thresholds.gate import fit_gate
from pipeline.thresholds.scores import (Costs, aggregate_exits, check_inputs, check_probs_labels, exit_index,
                                        exit_scores)
from pipeline.thresholds.sweep import DEFAULT_QS, _greedy_score_thresholds, geometric_distribution

MAX_PASSES = 20  # coordinate passes of one descent; each lowers the cost or ends it
GRID = 21  # score quantiles per free exit in the coarse grid of starting points
MAX_GRID_STARTS = 2000  # a random subset of the grid beyond this many points (fixed seed)
DESCENTS = 16  # starting points refined by coordinate descent


@dataclass(frozen=True)
class SpeedupLimits:
    """Speed-ups (last exit's cost / mean cost) and the accuracies (%) they come with; None where unmet."""

    last_exit_accuracy: float
    first_stage: float | None
    perfect_rule: float | None
    perfect_rule_accuracy: float | None
    hindsight: float | None
    hindsight_accuracy: float | None
    hindsight_exit_fractions: tuple[float, ...] | None
    gate_fitted: bool = False  # a calibration split was given; the two figures below are None where unmet
    learned_gate: float | None = None
    learned_gate_accuracy: float | None = None

    def to_dict(self) -> dict[str, float | list[float] | None]:
        """The bounds as JSON; the learned gate's keys only where a gate was fit (None there means unmet)."""
        out: dict[str, float | list[float] | None] = {
            "last_exit_accuracy": self.last_exit_accuracy, "first_stage": self.first_stage,
            "perfect_rule": self.perfect_rule, "perfect_rule_accuracy": self.perfect_rule_accuracy,
            "hindsight": self.hindsight, "hindsight_accuracy": self.hindsight_accuracy,
            "hindsight_exit_fractions": None if self.hindsight_exit_fractions is None
            else list(self.hindsight_exit_fractions)}
        if self.gate_fitted:
            out.update(learned_gate=self.learned_gate, learned_gate_accuracy=self.learned_gate_accuracy)
        return out


def speedup_limits(probs: np.ndarray, labels: np.ndarray, costs: Costs, tolerance: float = 0.3,
                   criterion: str = "confidence", aggregate: str = "last",
                   calibration: tuple[np.ndarray, np.ndarray] | None = None) -> SpeedupLimits:
    """The bounds for (N, K, C) exit softmax ``probs``, ``labels`` and cumulative ``costs`` (K,); the exit
    rule answers with ``aggregate`` and tests ``criterion``, as the cascade does. With ``calibration``
    (softmax and labels of other images, the validation split) also the learned gate's bound."""
    probs, labels, c = check_inputs(probs, labels, costs)
    n = len(labels)
    answers = aggregate_exits(probs, aggregate)
    right = answers.argmax(axis=-1) == labels[:, None]  # (N, K)
    own_last = int((probs[:, -1].argmax(axis=-1) == labels).sum())  # the network's own last exit, the one matched
    need = max(0, int(np.ceil(own_last - tolerance / 100.0 * n - 1e-9)))  # right answers within the tolerance
    full = float(c[-1])
    perfect = _perfect_rule(right, c, need)
    exits = _hindsight_exits(exit_scores(answers, criterion), right, c, need)
    gated = None
    if calibration is not None:
        cal_probs, cal_labels = check_probs_labels(*calibration)
        if cal_probs.shape[1:] != probs.shape[1:]:
            raise PipelineError(f"calibration probabilities {cal_probs.shape} and these {probs.shape} differ in "
                                "exits or classes")
        gated = _hindsight_exits(fit_gate(cal_probs, cal_labels, aggregate).scores(probs), right, c, need)
    return SpeedupLimits(
        last_exit_accuracy=100.0 * own_last / n, first_stage=_ratio(full, float(c[0])),
        perfect_rule=None if perfect is None else _ratio(full, perfect[0]),
        perfect_rule_accuracy=None if perfect is None else 100.0 * perfect[1] / n,
        hindsight=None if exits is None else _ratio(full, float(c[exits].mean())),
        hindsight_accuracy=None if exits is None else 100.0 * float(right[np.arange(n), exits].mean()),
        hindsight_exit_fractions=None if exits is None else tuple((np.bincount(exits, minlength=c.size) / n).tolist()),
        gate_fitted=calibration is not None,
        learned_gate=None if gated is None else _ratio(full, float(c[gated].mean())),
        learned_gate_accuracy=None if gated is None else 100.0 * float(right[np.arange(n), gated].mean()))


def times_text(x: float | None) -> str:
    """A bound as a report prints it: "2.51x", or "n/a" where it is unmet."""
    return "n/a" if x is None else f"{x:.2f}x"


def _ratio(full: float, cost: float) -> float | None:
    return full / cost if cost > 0 else None


def _perfect_rule(right: np.ndarray, costs: np.ndarray, need: int) -> tuple[float, int] | None:
    """(mean cost, right answers) of the cheapest assignment of frames to exits with at least ``need`` right:
    exit 1 for every frame, except the fewest frames exit 1 gets wrong, cheapest first, that ``need`` asks
    for, each sent to its first right exit; None where too few frames are right at any exit."""
    n = right.shape[0]
    first = int(right[:, 0].sum())
    later = right[:, 1:].any(axis=1) & ~right[:, 0]
    if first + int(later.sum()) < need:
        return None
    extra = np.sort(costs[right.argmax(axis=1)[later]])[:max(need - first, 0)]  # each one's first right exit
    return (float(costs[0]) * (n - extra.size) + float(extra.sum())) / n, first + int(extra.size)


def _hindsight_exits(scores: np.ndarray, right: np.ndarray, costs: np.ndarray, need: int) -> np.ndarray | None:
    """(N,) exits of the cheapest score thresholds found with at least ``need`` right answers, or None.

    Starting points: always the last exit, the budgeted sweep's points and a coarse grid of score
    quantiles; the cheapest feasible ones, and the most accurate where few are feasible, are refined by
    coordinate descent (each exit's threshold in turn set to its cheapest feasible value, the others held)."""
    n, k = scores.shape
    rows = np.arange(n)
    starts = [np.full(k, np.inf)]
    starts += [_greedy_score_thresholds(scores, geometric_distribution(q, k)) for q in DEFAULT_QS]
    levels = [np.r_[np.inf, np.quantile(scores[:, j], np.linspace(0.0, 1.0, GRID))] for j in range(k - 1)]
    grid = list(itertools.product(*levels))
    if len(grid) > MAX_GRID_STARTS:
        pick = np.random.default_rng(0).choice(len(grid), MAX_GRID_STARTS, replace=False)
        grid = [grid[i] for i in sorted(pick)]
    starts += [np.r_[np.array(g, dtype=np.float64), np.inf] for g in grid]
    judged = []
    for s in starts:
        exits = exit_index(scores, s)
        judged.append((int(right[rows, exits].sum()), float(costs[exits].sum()), s))
    feasible = sorted((j for j in judged if j[0] >= need), key=lambda j: j[1])
    accurate = sorted(judged, key=lambda j: (-j[0], j[1]))
    best: tuple[float, np.ndarray] | None = None
    for _, _, s in feasible[:DESCENTS] + accurate[:max(0, DESCENTS - len(feasible))]:
        exits = exit_index(scores, _descend(scores, right, costs, need, s.copy()))
        cost = float(costs[exits].sum())
        if int(right[rows, exits].sum()) >= need and (best is None or cost < best[0]):
            best = (cost, exits)
    return None if best is None else best[1]


def _descend(scores: np.ndarray, right: np.ndarray, costs: np.ndarray, need: int, s: np.ndarray) -> np.ndarray:
    """Coordinate descent on the K-1 free score thresholds ``s`` (the last exit always answers)."""
    n, k = scores.shape
    rows = np.arange(n)
    for _ in range(MAX_PASSES):
        improved = False
        for j in range(k - 1):
            exits = exit_index(scores, s)
            reach = exits >= j  # frames that get to exit j
            rest = s.copy()
            rest[j] = np.inf  # where each reaching frame goes if exit j lets it through
            onward = exit_index(scores, rest)
            order = rows[reach][np.argsort(-scores[reach, j], kind="stable")]  # surest first
            gain = np.r_[0, np.cumsum(right[order, j].astype(np.int64) - right[order, onward[order]])]
            dcost = np.r_[0.0, np.cumsum(costs[j] - costs[onward[order]])]
            base_right = int(right[rows[~reach], exits[~reach]].sum()) + int(right[order, onward[order]].sum())
            base_cost = float(costs[exits[~reach]].sum()) + float(costs[onward[order]].sum())
            ranked = scores[order, j]
            # m frames leave at j only where the m-th score differs from the next: a threshold can cut there
            cut = np.r_[True, ranked[:-1] > ranked[1:], True] if order.size else np.array([True])
            total = np.where(cut & (base_right + gain >= need), base_cost + dcost, np.inf)
            m = int(np.argmin(total))
            if not np.isfinite(total[m]):
                continue
            new = np.inf if m == 0 else float(ranked[m - 1])
            if total[m] < float(costs[exits].sum()) - 1e-9 and new != s[j]:
                s[j] = new
                improved = True
        if not improved:
            break
    return s
