"""Exit thresholds for the anytime cascade, calibrated on per-exit softmax outputs of the validation split.

Inputs everywhere: ``probs`` (N, K, C) softmax outputs of the K exits, ``labels`` (N,) ints and
``costs`` (K,) the cumulative cost of answering at exit k (ms or FLOPs; nondecreasing). numpy only,
so the runtime and the profiler can use it without torch.

Representation. A threshold is stored in its criterion's own units:

- ``"confidence"``: exit k answers when the largest softmax probability is ``>= t_k``;
- ``"entropy"``: exit k answers when the softmax entropy, in nats, is ``<= t_k``.

Internally both become a *score* where higher means surer (confidence, or minus the entropy) and
one rule, ``score >= s_k``. The last exit always answers (its threshold is -inf for confidence,
+inf for entropy); an earlier exit that should never answer gets +inf (-inf for entropy). JSON has
no infinities, so the manifest writes them as ``null``: at the last exit ``null`` means "always
answers", at any other exit "never answers".

The budgeted-batch method (Huang et al., MSDNet, 2018): for a geometric family of exit
distributions p_k proportional to q^k, walk the exits in order and let the surest samples that are
still in flight leave at exit k until the share that has left reaches p_1 + ... + p_k; the score of
the last sample let out is exit k's threshold. Sweeping q gives an accuracy-versus-mean-cost curve.
Unlike the reference code, the target is rounded on the cumulative share, so for samples without
tied scores the mean cost of the curve never decreases as q grows.

What exit k answers with (``aggregate``): ``"last"``, exit k's own softmax, or ``"mean"``, the
mean of the softmax outputs of exits 1..k, which the cascade has computed anyway. MSDNet's
classifiers err on partly different images, so the mean is more accurate than exit k alone (here
+0.5 to +0.6 points at exits 2-5 on CIFAR-10) and more frames leave early at the same accuracy.
Scores and thresholds then apply to the mean. The "last-exit" policy answers with the mean of
every exit; the loss below is always judged against the last exit's own classifier, the network
the cascade replaces.

The "default" policy must keep its accuracy on images it was not chosen on. The cheapest point
whose calibration accuracy is within the tolerance of the last exit's is chosen for the noise of
that one split: on 5,000 images it gave up 0.9 points on the test split where it gave up 0.3 on
validation. So the loss is judged paired, image by image, against the last exit (the cascade and
the full network disagree on few images, so the difference has a far smaller error than either
accuracy), and the default is the cheapest point whose loss stays within the tolerance at a
one-sided confidence level (95% unless asked). The bound is per point: taking the cheapest of the
points that pass leans a little towards a point whose validation loss was luckier than its true one.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from pipeline.errors import PipelineError

CRITERIA = ("confidence", "entropy")
AGGREGATES = ("last", "mean")  # exit k answers with its own softmax, or the mean of exits 1..k
DEFAULT_AGGREGATE = "mean"
# Ratios of the geometric exit distribution: log-spaced and symmetric around 1 (uniform over exits);
# small q sends most samples out at exit 1, large q most to the last exit.
DEFAULT_QS = tuple(float(q) for q in np.geomspace(1 / 20, 20, 61))
DEFAULT_TOLERANCE = 0.3  # accuracy points below the last exit that the "default" policy may give up
DEFAULT_CONFIDENCE = 0.95  # one-sided confidence that the "default" policy's loss is within the tolerance
LAST_EXIT_POLICY = "last-exit"  # run every stage (the deadline may still stop early)
_MAX_ACC = re.compile(r"^max-accuracy@(\d+(?:\.\d+)?)ms$")
_MIN_LAT = re.compile(r"^min-latency@(\d+(?:\.\d+)?)%$")


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


@dataclass(frozen=True)
class CurvePoint:
    """One operating point: thresholds (criterion units) and what they give on the calibration set."""

    q: float | None  # ratio of the geometric exit distribution; None for a point not from the sweep
    accuracy: float  # %
    cost: float
    thresholds: tuple[float, ...]  # (K,)
    exit_fractions: tuple[float, ...]  # (K,)


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


def aggregate_exits(probs: np.ndarray, aggregate: str = DEFAULT_AGGREGATE) -> np.ndarray:
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


def to_scores(thresholds: Sequence[float], criterion: str) -> np.ndarray:
    """Thresholds in criterion units -> score thresholds (rule ``score >= s``); the last one always passes."""
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


def _check(probs: np.ndarray, labels: np.ndarray, costs: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    probs, labels, costs = np.asarray(probs), np.asarray(labels), np.asarray(costs, dtype=np.float64)
    if probs.ndim != 3 or probs.shape[0] == 0 or probs.shape[1] == 0:
        raise PipelineError(f"expected per-exit softmax outputs of shape (N, K, C) with N, K >= 1, got {probs.shape}")
    n, k, _ = probs.shape
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise PipelineError(f"expected ({n},) integer labels to match probs {probs.shape}, got {labels.shape} "
                            f"{labels.dtype}")
    if costs.shape != (k,):
        raise PipelineError(f"expected ({k},) cumulative costs, one per exit, got shape {costs.shape}")
    if not (np.all(np.isfinite(costs)) and np.all(costs >= 0) and np.all(np.diff(costs) >= 0)):
        raise PipelineError(f"costs must be cumulative to each exit (finite, >= 0, nondecreasing), got "
                            f"{costs.tolist()}; pass cumulative sums of per-stage costs")
    if not np.all(np.isfinite(probs)):
        raise PipelineError("probs contain NaN or infinity; check the model outputs")
    return probs, labels, costs


def _simulate_scores(scores: np.ndarray, correct: np.ndarray, s: np.ndarray, costs: np.ndarray) -> Simulation:
    n, k = scores.shape
    taken = exit_index(scores, s)  # (N,)
    counts = np.bincount(taken, minlength=k)
    acc = 100.0 * float(correct[np.arange(n), taken].mean())
    return Simulation(acc, float(counts @ costs) / n, tuple(int(c) for c in counts))


def simulate(probs: np.ndarray, labels: np.ndarray, thresholds: Sequence[float], costs: Sequence[float],
             criterion: str = "confidence") -> Simulation:
    """Accuracy, mean cost and exit histogram of the exit rule with ``thresholds`` (criterion units)."""
    probs, labels, costs = _check(probs, labels, costs)
    if len(thresholds) != probs.shape[1]:
        raise PipelineError(f"expected {probs.shape[1]} thresholds, one per exit, got {len(thresholds)}")
    correct = probs.argmax(axis=-1) == labels[:, None]  # (N, K)
    return _simulate_scores(exit_scores(probs, criterion), correct, to_scores(thresholds, criterion), costs)


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


def budgeted_curve(probs: np.ndarray, labels: np.ndarray, costs: Sequence[float], criterion: str = "confidence",
                   qs: Sequence[float] = DEFAULT_QS) -> list[CurvePoint]:
    """The budgeted-batch sweep: one operating point per q, in the order of ``qs``."""
    probs, labels, costs = _check(probs, labels, costs)
    scores = exit_scores(probs, criterion)  # (N, K)
    correct = probs.argmax(axis=-1) == labels[:, None]  # (N, K)
    curve = []
    for q in qs:
        s = _greedy_score_thresholds(scores, geometric_distribution(q, probs.shape[1]))
        sim = _simulate_scores(scores, correct, s, costs)
        curve.append(CurvePoint(float(q), sim.accuracy, sim.mean_cost,
                                tuple(float(t) for t in from_scores(s, criterion)), sim.exit_fractions))
    return curve


def last_exit_point(probs: np.ndarray, labels: np.ndarray, costs: Sequence[float],
                    criterion: str = "confidence") -> CurvePoint:
    """Always run to the last exit: the full network's accuracy and cost."""
    probs, labels, costs = _check(probs, labels, costs)
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
        probs, labels, _ = _check(probs, labels, np.zeros(np.asarray(probs).shape[1]))
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


def _cheapest_within_loss(probs: np.ndarray, labels: np.ndarray, curve: Sequence[CurvePoint], tolerance: float,
                          confidence: float, criterion: str, reference: np.ndarray | None) -> CurvePoint | None:
    paired = _PairedLoss(probs, labels, confidence, criterion, reference)
    return next((p for p in sorted(curve, key=lambda p: (p.cost, -p.accuracy))
                 if paired.bound(p.thresholds) <= tolerance), None)


def min_cost_within_loss(probs: np.ndarray, labels: np.ndarray, curve: Sequence[CurvePoint], tolerance: float,
                         confidence: float = DEFAULT_CONFIDENCE, criterion: str = "confidence",
                         reference: np.ndarray | None = None) -> CurvePoint:
    """The cheapest point whose loss against the reference (``loss_bound``) is <= ``tolerance`` points.

    With the default reference, the last-exit point of ``curve`` loses nothing and always qualifies.
    """
    point = _cheapest_within_loss(probs, labels, curve, tolerance, confidence, criterion, reference)
    if point is None:
        raise PipelineError(f"no operating point loses at most {tolerance:g} points against the reference at "
                            f"{confidence:.0%} confidence; include the last-exit point or raise the tolerance")
    return point


def thresholds_to_json(thresholds: Sequence[float]) -> list[float | None]:
    """Criterion-unit thresholds -> JSON list: infinities become ``null`` (see the module docstring)."""
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


def thresholds_table(probs: np.ndarray, labels: np.ndarray, costs_ms: Sequence[float], criterion: str = "confidence",
                     max_accuracy_at_ms: Sequence[float] = (), min_latency_at_accuracy: Sequence[float] = (),
                     qs: Sequence[float] = DEFAULT_QS, tolerance: float = DEFAULT_TOLERANCE,
                     confidence: float = DEFAULT_CONFIDENCE, aggregate: str = DEFAULT_AGGREGATE) -> dict[str, Any]:
    """The JSON-ready entry for ``manifest.thresholds["<backend>/<precision>"]``.

    ``probs``: each exit's own softmax; the curve and policies are those of ``aggregate``.
    ``costs_ms``: cumulative latency to each exit on that backend and precision. Policies: "default"
    (the cheapest point that loses at most ``tolerance`` points against the last exit's own
    classifier at the one-sided ``confidence`` level, paired per sample; the last-exit point when
    none does), "last-exit", and one per requested target. A target that no point meets is an error.
    """
    probs, labels, _ = _check(probs, labels, costs_ms)
    answers = aggregate_exits(probs, aggregate)
    curve = budgeted_curve(answers, labels, costs_ms, criterion, qs)
    full = last_exit_point(answers, labels, costs_ms, criterion)
    network_right = probs[:, -1].argmax(axis=-1) == labels  # (N,) the last exit's own classifier
    # None only when the aggregate at the last exit is worse than the last exit alone.
    default = _cheapest_within_loss(answers, labels, [*curve, full], tolerance, confidence, criterion,
                                    network_right) or full
    policies = {"default": _policy_json(default), LAST_EXIT_POLICY: _policy_json(full)}
    for ms in max_accuracy_at_ms:
        policies[max_accuracy_name(ms)] = _policy_json(max_accuracy_for_cost([*curve, full], ms))
    for acc in min_latency_at_accuracy:
        policies[min_latency_name(acc)] = _policy_json(min_cost_for_accuracy([*curve, full], acc))
    return {"criterion": criterion, "aggregate": aggregate, "samples": int(len(labels)), "default_tolerance": tolerance,
            "default_confidence": confidence,
            "policies": policies, "curve": [_point_json(p) for p in curve]}


def add_calibration_options(ap: argparse.ArgumentParser) -> None:
    """The command-line options that shape the calibrated table: --aggregate, --tolerance, --confidence."""
    ap.add_argument("--aggregate", default=DEFAULT_AGGREGATE, choices=list(AGGREGATES),
                    help="what exit k answers with: the mean softmax of exits 1..k, or its own (last)")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                    help="accuracy points below the last exit that the default thresholds may give up")
    ap.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE,
                    help="one-sided confidence that the default thresholds' loss is within --tolerance "
                         "(0.5: judge the mean loss alone)")


def check_calibration_options(args: argparse.Namespace) -> None:
    if not args.tolerance >= 0:
        raise PipelineError(f"--tolerance must be 0 or more accuracy points, got {args.tolerance}")
    if not 0 < args.confidence < 1:
        raise PipelineError(f"--confidence must be between 0 and 1, got {args.confidence}")


def curve_from_table(table: dict[str, Any]) -> list[CurvePoint]:
    """The stored sweep back as CurvePoints (costs in ms)."""
    criterion = table.get("criterion", "confidence")
    try:
        return [CurvePoint(c["q"], float(c["accuracy"]), float(c["cost_ms"]),
                           tuple(thresholds_from_json(c["thresholds"], criterion).tolist()),
                           tuple(c.get("exit_fractions", ()))) for c in table.get("curve", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise PipelineError(f"the stored threshold curve is malformed ({exc}); re-run the latency profiler") from None


def policy_thresholds(table: dict[str, Any], policy: str) -> np.ndarray:
    """(K,) criterion-unit thresholds of ``policy``: a stored policy, or a target chosen from the stored curve.

    Besides the stored names, "max-accuracy@<x>ms" and "min-latency@<y>%" pick a point of the curve.
    """
    criterion = check_criterion(table.get("criterion", "confidence"))
    policies = table.get("policies", {})
    if policy in policies:
        try:
            return thresholds_from_json(policies[policy]["thresholds"], criterion)
        except (KeyError, TypeError):
            raise PipelineError(f"stored policy {policy!r} has no thresholds list; "
                                "re-run the latency profiler") from None
    m_acc, m_lat = _MAX_ACC.match(policy), _MIN_LAT.match(policy)
    if (m_acc or m_lat) and table.get("curve"):
        curve = curve_from_table(table)
        if m_acc:
            point = max_accuracy_for_cost(curve, float(m_acc.group(1)))
        else:
            point = min_cost_for_accuracy(curve, float(m_lat.group(1)))  # type: ignore[union-attr]
        return np.asarray(point.thresholds)
    known = ", ".join(sorted(policies)) or "none"
    raise PipelineError(f"unknown threshold policy {policy!r}; known: {known}; or ask for a target on the "
                        "stored curve as max-accuracy@<ms>ms or min-latency@<percent>%")
