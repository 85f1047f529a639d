"""The deadline rule, the online per-stage time predictor it relies on, and a frame budget's split.

Rule: before stage k+1, if the time already spent on the frame plus stage k+1's predicted time
exceeds the frame's budget, stop and answer with exit k. Stage 1 always runs, so every frame gets
an answer. The predictor (``LatencyPredictor``) is Jacobson's estimator, the one TCP uses for its
retransmission timeout, started from the manifest's measured latency.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any, Sequence

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.manifest import Manifest

PERCENTILES = ("p99", "p90", "p50", "mean")  # fallback order when the requested one is not measured
MAX_BACKOFF = 256  # the recovery step shrinks at most this many times after repeated overruns


class LatencyPredictor:
    """Predicted time of each stage, in ms, for the deadline rule. Stages count from 1.

    Per stage, a smoothed mean ``m`` and a smoothed mean absolute deviation ``d`` of the observed
    times predict ``m + margin * d`` (gains 1/8 and 1/4, margin 4). Rather than a running high
    quantile: O(1) per observation with no buffer to sort; it follows a step change (throttling, a
    competing process) within one or two frames; the margin grows with jitter and shrinks when
    times are steady, so it tracks the tail without assuming its shape.

    It starts from the measured latency: ``m`` = p50 and ``d`` such that the first prediction is
    the requested percentile (p99 by default). Without measurements, a stage's first guess is the
    observed stages' time per unit weight (FLOPs) times its own. A stage the rule keeps skipping is
    never observed, and one slow run would keep it off for good under a fixed budget, so each skip
    pulls its estimate a step (``recover``) back toward the start; a retry that overruns halves
    that step for the stage (as TCP backs off its timer), a run within its prediction restores it.

    Batches (the batched cascade): the estimate is kept for batch 1, and a stage run on b frames at
    once costs ``batch_factor(stage, b)`` times it, the ratio of the stage's measured median at b to
    its median at 1 (``batch_p50``, from the manifest's per-batch latency), linear between measured
    sizes and proportional beyond the largest; with no measured batches, b frames cost b single
    runs (frames run one after another: never an optimistic guess). An observation of a batch is
    folded in divided by its factor, so every batch size teaches the one estimate.
    """

    def __init__(self, num_stages: int, start_ms: Sequence[float | None] | None = None,
                 typical_ms: Sequence[float | None] | None = None, weights: Sequence[float] | None = None, *,
                 margin: float = 4.0, gain: float = 1 / 8, spread_gain: float = 1 / 4, recover: float = 1 / 16,
                 source: str = "", batch_p50: dict[int, Sequence[float]] | None = None):
        """``start_ms``: first prediction per stage (a measured high percentile), None where unknown.
        ``typical_ms``: the measured median, the starting mean (defaults to ``start_ms``).
        ``weights``: relative cost of each stage (e.g. its own FLOPs), to guess unmeasured stages.
        ``batch_p50``: batch size -> per-stage median ms of one run on that many frames (batch 1 included).
        """
        if num_stages < 1:
            raise PipelineError(f"a predictor needs at least one stage, got {num_stages}")
        for name, seq in (("start_ms", start_ms), ("typical_ms", typical_ms), ("weights", weights)):
            if seq is not None and len(seq) != num_stages:
                raise PipelineError(f"{name} has {len(seq)} entries, expected {num_stages} (one per stage)")
        if not (margin >= 0 and 0 < gain <= 1 and 0 < spread_gain <= 1 and 0 <= recover <= 1):
            raise PipelineError(f"predictor settings out of range: margin {margin} (>= 0), gain {gain} and "
                                f"spread_gain {spread_gain} (in (0, 1]), recover {recover} (in [0, 1])")
        self.num_stages = num_stages
        self.margin, self.gain, self.spread_gain, self.recover = margin, gain, spread_gain, recover
        self.source = source
        self._w = [float(w) if w and w > 0 else 1.0 for w in weights] if weights else [1.0] * num_stages
        start = list(start_ms) if start_ms is not None else [None] * num_stages
        typical = list(typical_ms) if typical_ms is not None else [None] * num_stages
        # Per stage (index k - 1): mean and deviation, and the prior they relax toward when skipped.
        self._m: list[float | None] = [None] * num_stages
        self._d: list[float] = [0.0] * num_stages
        self._prior: list[tuple[float, float] | None] = [None] * num_stages
        self._backoff = [1] * num_stages  # divides ``recover``; doubles on each overrun
        for i, (s, t) in enumerate(zip(start, typical)):
            if s is None or not math.isfinite(s) or s < 0:
                continue
            m = t if t is not None and math.isfinite(t) and 0 <= t <= s else s
            d = (s - m) / margin if margin > 0 else 0.0
            self._prior[i] = (m, d)
            self._m[i], self._d[i] = m, d
        # Per stage: (batch sizes, cost factors) measured, ascending from (1, 1.0); see batch_factor.
        self._factors: list[tuple[list[int], list[float]]] = [([1], [1.0]) for _ in range(num_stages)]
        for b, row in sorted((batch_p50 or {}).items()):
            if len(row) != num_stages:
                raise PipelineError(f"batch {b}'s latency has {len(row)} stages, expected {num_stages}")
            base = (batch_p50 or {}).get(1)
            for i in range(num_stages):
                one = base[i] if base is not None else None
                if b > 1 and one is not None and one > 0 and math.isfinite(row[i]) and row[i] > 0:
                    self._factors[i][0].append(int(b))
                    self._factors[i][1].append(float(row[i]) / float(one))

    @property
    def measured(self) -> bool:
        """Whether the predictions start from measured times (else from guesses)."""
        return any(p is not None for p in self._prior)

    @classmethod
    def from_manifest(cls, manifest: "Manifest", backend: str, precision: str, percentile: str = "p99",
                      **kw: Any) -> "LatencyPredictor":
        """Start from ``manifest.latency["<backend>/<precision>"].stages[k]["<percentile>_ms"]``."""
        from pipeline.manifest import variant_key

        key = variant_key(backend, precision)
        n = manifest.num_exits
        weights = manifest.stage_flops()
        table = manifest.latency.get(key)
        rows = table.stages if table is not None else []
        if not rows:
            return cls(n, weights=weights, **kw,
                       source=f"no measured latencies for {key} in the manifest: stages are first guessed from "
                              "stage 1's observed time and the FLOP ratio (run the latency profiler to measure them)")
        if len(rows) != n or not all(isinstance(r, dict) for r in rows):
            raise PipelineError(f"the manifest's latency table for {key} has {len(rows)} stage rows, expected {n}; "
                                "re-run the latency profiler")
        order = [percentile] + [p for p in PERCENTILES if p != percentile]
        used = next((p for p in order if all(f"{p}_ms" in r for r in rows)), None)
        if used is None:
            raise PipelineError(f"the manifest's latency table for {key} has none of "
                                f"{', '.join(p + '_ms' for p in order)}; re-run the latency profiler")
        try:
            start = [float(r[f"{used}_ms"]) for r in rows]
            typical = [float(r["p50_ms"]) if "p50_ms" in r else None for r in rows]
            batches: dict[int, Sequence[float]] = {
                b: [float(r["p50_ms"]) for r in rs] for b, rs in table.batch_rows().items()  # type: ignore[union-attr]
                if len(rs) == n and all(isinstance(r, dict) and "p50_ms" in r for r in rs)}
        except (TypeError, ValueError):
            raise PipelineError(f"the manifest's latency table for {key} has non-numeric times; "
                                "re-run the latency profiler") from None
        sizes = "" if len(batches) < 2 else f" (batches {', '.join(map(str, sorted(batches)))})"
        return cls(n, start, typical, weights, **kw, batch_p50=batches if len(batches) > 1 else None,
                   source=f"measured {used} latency of {key}{sizes}")

    def _guess(self, i: int) -> tuple[float, float] | None:
        """Mean and deviation for a stage with no prior: known stages' ms per unit weight, times its weight."""
        known = [j for j in range(self.num_stages) if j != i and self._m[j] is not None]
        if not known:
            return None
        per_w = sum(self._m[j] for j in known) / sum(self._w[j] for j in known)  # type: ignore[misc]
        m = per_w * self._w[i]
        return m, m / 2

    def batch_factor(self, stage: int, batch: int) -> float:
        """How many batch-1 runs of ``stage`` one run on ``batch`` frames costs (1 at batch 1)."""
        if batch <= 1:
            return 1.0
        sizes, factors = self._factors[stage - 1]
        if len(sizes) == 1:
            return float(batch)  # nothing measured beyond batch 1: as many runs as frames
        if batch >= sizes[-1]:
            return factors[-1] * batch / sizes[-1]
        j = next(j for j, s in enumerate(sizes) if s >= batch)
        lo, hi = sizes[j - 1], sizes[j]
        return factors[j - 1] + (factors[j] - factors[j - 1]) * (batch - lo) / (hi - lo)

    def predict(self, stage: int, batch: int = 1) -> float:
        """Predicted time of ``stage`` in ms on ``batch`` frames at once (0 while nothing at all is known)."""
        i = stage - 1
        m = self._m[i]
        if m is None:
            g = self._guess(i)
            base = 0.0 if g is None else g[0] + self.margin * g[1]
        else:
            base = m + self.margin * self._d[i]
        return base if batch == 1 else base * self.batch_factor(stage, batch)

    def observe(self, stage: int, ms: float, batch: int = 1) -> None:
        """Fold one measured time of ``stage`` (run on ``batch`` frames at once) into its estimate."""
        if not (math.isfinite(ms) and ms >= 0):
            return
        if batch != 1:
            ms /= self.batch_factor(stage, batch)
        i = stage - 1
        m = self._m[i]
        if m is None:  # first sight: mean = x, deviation = x / 2 (as TCP starts its estimator)
            self._m[i], self._d[i] = ms, ms / 2
            return
        over = ms > m + self.margin * self._d[i]  # slower than predicted
        self._backoff[i] = min(2 * self._backoff[i], MAX_BACKOFF) if over else 1
        err = ms - m
        self._m[i] = m + self.gain * err
        self._d[i] += self.spread_gain * (abs(err) - self._d[i])

    def skipped(self, stage: int) -> None:
        """The rule skipped ``stage``: relax its estimate a step toward its starting point."""
        i = stage - 1
        m = self._m[i]
        if m is None or self.recover == 0:
            return
        target = self._prior[i] or self._guess(i)
        if target is None:
            return
        step = self.recover / self._backoff[i]
        self._m[i] = m + step * (target[0] - m)
        self._d[i] += step * (target[1] - self._d[i])

    def should_run(self, next_stage: int, spent_ms: float, budget_ms: float | None, batch: int = 1) -> bool:
        """True when ``next_stage`` on ``batch`` frames is predicted to finish within the budget; stage 1 and no
        budget: always."""
        if next_stage <= 1 or budget_ms is None:
            return True
        return spent_ms + self.predict(next_stage, batch) <= budget_ms


def check_budget(budget_ms: object) -> float | None:
    """``budget_ms`` as a float, None for no budget; a PipelineError for anything but a positive finite number."""
    if budget_ms is None:
        return None
    if type(budget_ms) is float and 0.0 < budget_ms < math.inf:  # the per-frame case, kept cheap
        return budget_ms
    if isinstance(budget_ms, bool) or not isinstance(budget_ms, numbers.Real):
        raise PipelineError(f"budget_ms should be a number of milliseconds or None; got {budget_ms!r} "
                            f"({type(budget_ms).__name__})")
    value = float(budget_ms)
    if not (math.isfinite(value) and value > 0):
        raise PipelineError(f"budget_ms should be a positive, finite number of milliseconds or None; got {value!r}")
    return value


class BudgetSplit:
    """The cascade's share of a frame budget: the budget less what the rest of the frame costs.

    The rest (capture, conversion, overlay, writing, display) is tracked as a smoothed mean plus
    twice its smoothed deviation, as TCP estimates a round trip: jitter in the overhead then eats
    into the cascade's share before it eats into the deadline. The first ``warmup`` frames are not
    counted: they pay one-off costs (opening the video writer, creating the window).
    """

    def __init__(self, budget_ms: float | None, alpha: float = 0.2, floor_ms: float = 0.01, warmup: int = 1):
        self.budget_ms, self.alpha, self.floor_ms, self.warmup = budget_ms, alpha, floor_ms, warmup
        self.mean_ms: float | None = None
        self.dev_ms = 0.0

    @property
    def reserve_ms(self) -> float:
        return 0.0 if self.mean_ms is None else self.mean_ms + 2.0 * self.dev_ms

    def cascade_budget(self) -> float | None:
        """What the cascade may spend on the next frame (never below ``floor_ms``); None without a budget."""
        if self.budget_ms is None:
            return None
        return max(self.floor_ms, self.budget_ms - self.reserve_ms)

    def update(self, overhead_ms: float) -> None:
        """Fold one frame's time outside the cascade into the reserve."""
        if self.warmup > 0:
            self.warmup -= 1
            return
        if self.mean_ms is None:
            self.mean_ms = overhead_ms
            return
        self.dev_ms += self.alpha * (abs(overhead_ms - self.mean_ms) - self.dev_ms)
        self.mean_ms += self.alpha * (overhead_ms - self.mean_ms)
