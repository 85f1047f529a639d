"""The temporal rule of one stream among many, split around a shared batched cascade run.

:class:`~pipeline.temporal.cascade.TemporalCascade` measures the change, decides and runs the
cascade in one ``classify`` call. With many streams, the cascade runs once per tick on a batch
across streams, so each stream's rule is split in two: :meth:`StreamTemporal.before` (the change
measure and the decision: reuse the last answer, or run with or without the prior) and
:meth:`StreamTemporal.after` (the run's answer becomes the stream's reference). The decisions, the
prior's bar and the shown (smoothed) answer are TemporalCascade's, per stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.runtime.cascade import Cascade, CascadeResult
from pipeline.temporal.cascade import TemporalResult, prior_score_thresholds
from pipeline.temporal.change import ChangeMeter
from pipeline.temporal.rule import TemporalSettings, decide
from pipeline.temporal.smoothing import SoftmaxSmoother


@dataclass
class Pending:
    """A frame the rule sent to the cascade: what ``after`` needs to finish its result."""

    t0: float  # the cascade clock when the frame's rule started (its budget counts from here)
    thumb: np.ndarray
    why: str
    cut: bool
    d_ref: float | None
    d_prev: float | None
    measure_ms: float
    budget_ms: float | None  # the frame's whole budget
    prior: tuple[int, Sequence[float]] | None  # for the cascade


class StreamTemporal:
    """One stream's temporal state over a cascade shared with other streams."""

    def __init__(self, cascade: Cascade, settings: TemporalSettings):
        self.cascade, self.settings = cascade, settings
        self.meter = ChangeMeter(settings.thumb)
        self.smoother = SoftmaxSmoother(settings.smoothing)
        self._prior_scores = prior_score_thresholds(cascade, settings)
        self._prev: np.ndarray | None = None
        self._ref: np.ndarray | None = None
        self._ref_time, self._age = 0.0, 0
        self._answer: CascadeResult | None = None
        self._probs: np.ndarray | None = None

    def before(self, frame: np.ndarray, budget_ms: float | None) -> TemporalResult | Pending:
        """The reused answer (no stage runs), or what the cascade run needs (``Pending``)."""
        clock = self.cascade._clock
        t0 = clock()
        thumb = self.meter.thumb(frame)
        d_prev = None if self._prev is None else self.meter.distance(thumb, self._prev)
        d_ref = None if self._ref is None else self.meter.distance(thumb, self._ref)
        self._prev = thumb
        age = self._age + 1
        decision = decide(self.settings, d_prev, d_ref, age, (t0 - self._ref_time) * 1e3,
                          1.0 if self._answer is None else self._answer.confidence)
        measure_ms = (clock() - t0) * 1e3
        if decision.reuse and self._answer is not None and self._probs is not None:
            self._age = age
            shown = self.smoother.update(self._probs)
            return self._result(self._answer, None, (clock() - t0) * 1e3, budget_ms, decision.why, d_ref, d_prev,
                                age, measure_ms, shown)
        prior = None
        if decision.prior and self._answer is not None and self._prior_scores is not None:
            prior = (self._answer.label, self._prior_scores)
        return Pending(t0, thumb, decision.why, decision.cut, d_ref, d_prev, measure_ms, budget_ms, prior)

    def after(self, pending: Pending, result: CascadeResult, probs: np.ndarray) -> TemporalResult:
        """The cascade's answer to a pending frame (``probs``: the softmax it was read from)."""
        self._probs, self._answer = np.array(probs, dtype=np.float64), result
        self._ref, self._ref_time, self._age = pending.thumb, pending.t0, 0
        shown = self.smoother.update(self._probs, reset=pending.cut)
        total = (self.cascade._clock() - pending.t0) * 1e3
        return self._result(result, result, total, pending.budget_ms, pending.why, pending.d_ref, pending.d_prev, 0,
                            pending.measure_ms, shown)

    def _result(self, answer: CascadeResult, ran: CascadeResult | None, total_ms: float, budget_ms: float | None,
                why: str, d_ref: float | None, d_prev: float | None, age: int, measure_ms: float,
                shown: tuple[int, float]) -> TemporalResult:
        met = None if budget_ms is None else bool(total_ms <= budget_ms)
        return TemporalResult(answer, ran, float(total_ms), budget_ms, met, why, d_ref, d_prev, age, float(measure_ms),
                              shown[0], self.cascade.classes[shown[0]], shown[1])
