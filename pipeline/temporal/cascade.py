"""The cascade for video: frames that did not change reuse the last answer; the rest may exit earlier.

    cascade = TemporalCascade.from_folder("engines/ranet", precision="int8")
    for frame in frames:                       # consecutive (H, W, 3) uint8 frames of one stream
        r = cascade.classify(frame, budget_ms=20.0)
        r.answer.class_name, r.reused, r.why, r.stages, r.shown_class

Per frame: the change measure (:mod:`pipeline.temporal.change`) against the previous frame and
the reference (the last frame the cascade ran on), the rule (:mod:`pipeline.temporal.rule`), then
either the reference's answer again (no stage runs; the frame costs the measure only) or the
wrapped :class:`~pipeline.runtime.cascade.Cascade` under the usual deadline rule, given the budget less
the measure's time. When the prior applies, exit k may also answer when it agrees with the
previous answer and its score reaches ``min(threshold k, prior floor)``: never a higher bar than
the plain rule, and never after a cut. The shown answer is the moving average of the softmax
(:mod:`pipeline.temporal.smoothing`). One instance follows one stream: :meth:`reset` between streams.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeAlias

import numpy as np

from pipeline.runtime.cascade import Cascade, CascadeResult
from pipeline.runtime.deadline import check_budget
from pipeline.errors import PipelineError
from pipeline.runtime.interface import AnytimeRuntime
from pipeline.temporal.change import ChangeMeter
from pipeline.temporal.rule import TemporalOptions, TemporalSettings, decide
from pipeline.temporal.smoothing import SoftmaxSmoother
from pipeline.thresholds import to_scores


@dataclass(frozen=True)
class TemporalResult:
    """One frame of the stream: the cascade's answer (a CascadeResult, held whole), what this frame cost
    and what the temporal rule did.

    ``answer`` is the CascadeResult the frame's answer comes from: this frame's own run, or, when
    the answer was reused, the reference frame's run (its ``stage_ms``, ``total_ms`` and
    ``stopped_by`` are that frame's). What this frame cost is on this object: ``stage_ms``,
    ``total_ms``, ``deadline_met`` and ``stopped_by``.
    """

    answer: CascadeResult
    cascade: CascadeResult | None  # the cascade's run on this frame; None when the answer was reused
    total_ms: float  # the change measure plus any stages
    budget_ms: float | None
    deadline_met: bool | None
    why: str  # "first frame", "cut", "unchanged", "age", "doubtful", "changed"
    change: float | None  # distance to the reference, grey levels
    change_prev: float | None  # distance to the previous frame
    age: int  # frames since the answer's own frame (0 when the cascade ran)
    measure_ms: float
    shown_label: int
    shown_class: str
    shown_confidence: float

    @property
    def reused(self) -> bool:
        """Whether no stage ran on this frame (the reference's answer again)."""
        return self.cascade is None

    @property
    def stage_ms(self) -> list[float]:
        """The stages run on this frame, ms each; empty when reused."""
        return [] if self.cascade is None else list(self.cascade.stage_ms)

    @property
    def stages(self) -> int:
        """How many stages ran on this frame."""
        return 0 if self.cascade is None else len(self.cascade.stage_ms)

    @property
    def stopped_by(self) -> str:
        """Why the cascade stopped on this frame (``CascadeResult.stopped_by``), or "reused"."""
        return "reused" if self.cascade is None else self.cascade.stopped_by


FrameResult: TypeAlias = CascadeResult | TemporalResult  # what a runtime the camera loop runs answers


def answer_of(result: FrameResult) -> CascadeResult:
    """The CascadeResult whose answer (label, class, confidence, exit) a frame's result gives."""
    return result.answer if isinstance(result, TemporalResult) else result


def prior_score_thresholds(cascade: Cascade, settings: TemporalSettings) -> list[float] | None:
    """The score thresholds a frame that agrees with the reference answer may leave at (the prior floor, never
    above the plain rule's bar), or None where the settings have no prior."""
    if settings.prior_floor is None:
        return None
    floor = to_scores([settings.prior_floor] * cascade.num_exits, cascade.criterion)
    plain = to_scores(cascade.thresholds, cascade.criterion)
    return [float(v) for v in np.minimum(plain, floor)]


class TemporalCascade(AnytimeRuntime[TemporalResult]):
    """A Cascade followed over consecutive frames; the model's facts are the wrapped cascade's.

    ``notes``: the wrapped cascade's, then what loading the temporal settings found.
    """

    def __init__(self, cascade: Cascade, settings: TemporalSettings,
                 clock: Callable[[], float] = time.perf_counter, notes: Sequence[str] = ()):
        if not isinstance(cascade, Cascade):
            raise PipelineError("the temporal cascade wraps a pipeline.runtime.cascade.Cascade (it reads answer_probs)")
        self.cascade, self.settings, self._clock = cascade, settings, clock
        self._notes = list(notes)
        self.meter = ChangeMeter(settings.thumb)
        self.smoother = SoftmaxSmoother(settings.smoothing)
        self._prior_scores = prior_score_thresholds(cascade, settings)
        self.reset()

    @classmethod
    def from_folder(cls, folder: str | Path, temporal: TemporalOptions | None = None, **kw: Any) -> "TemporalCascade":
        """``Cascade.from_folder(folder, **kw)`` with the manifest's temporal settings for its variant."""
        from pipeline.manifest import load_manifest, variant_key

        cascade = Cascade.from_folder(folder, **kw)
        try:
            key = variant_key(cascade.backend, cascade.precision)
            table = load_manifest(folder, verify=False).temporal.get(key)
            notes: list[str] = []
            if table:
                base = TemporalSettings.from_table(table)
                if table.get("policy", cascade.policy) != cascade.policy:
                    notes.append(f"the temporal settings of {key} were calibrated with the "
                                 f"{table['policy']!r} exit policy, not {cascade.policy!r}: recalibrate with "
                                 f"`make temporal TEMPORAL_ARGS='--policy {cascade.policy}'`")
            else:
                base = TemporalSettings()
                if temporal is None or temporal.reuse is not False:
                    notes.append(f"no temporal calibration for {key} in the manifest: every frame runs the "
                                 "cascade (calibrate frame reuse and the temporal prior with `make temporal`)")
            return cls(cascade, (temporal or TemporalOptions()).apply(base), notes=notes)
        except BaseException:
            cascade.close()
            raise

    # -- AnytimeRuntime's facts: the wrapped cascade's -------------------------------------------

    @property
    def backend(self) -> str:
        return self.cascade.backend

    @property
    def precision(self) -> str:
        return self.cascade.precision

    @property
    def policy(self) -> str:
        return self.cascade.policy

    @property
    def classes(self) -> Sequence[str]:
        return self.cascade.classes

    @property
    def num_exits(self) -> int:
        return self.cascade.num_exits

    @property
    def frame_size(self) -> tuple[int, int] | None:
        return self.cascade.frame_size

    @property
    def colour_order(self) -> str:
        return self.cascade.colour_order

    @property
    def resize_shorter(self) -> int:
        return self.cascade.resize_shorter

    @property
    def notes(self) -> list[str]:
        return [*self.cascade.notes, *self._notes]

    def reset(self) -> None:
        """Forget the stream: the next frame is a first frame."""
        self._prev: np.ndarray | None = None  # (s, s) thumbnail of the previous frame
        self._ref: np.ndarray | None = None  # ... of the reference frame
        self._ref_time = 0.0
        self._age = 0
        self._answer: CascadeResult | None = None  # the reference frame's run
        self._probs: np.ndarray | None = None  # (C,) its softmax
        self.smoother.reset()

    def classify(self, frame: np.ndarray, budget_ms: float | None = None) -> TemporalResult:
        """Answer the next frame of the stream (see the module's docstring)."""
        clock, s = self._clock, self.settings
        t0 = clock()
        budget_ms = check_budget(budget_ms)  # as the plain cascade: NaN, 0, -1 or True are refused
        self.cascade._batch(frame)  # the frame the model takes, on a reused frame too: the plain cascade's check
        thumb = self.meter.thumb(frame)
        d_prev = None if self._prev is None else self.meter.distance(thumb, self._prev)
        d_ref = None if self._ref is None else self.meter.distance(thumb, self._ref)
        self._prev = thumb
        age = self._age + 1
        decision = decide(s, d_prev, d_ref, age, (t0 - self._ref_time) * 1e3,
                          1.0 if self._answer is None else self._answer.confidence)
        measure_ms = (clock() - t0) * 1e3
        if decision.reuse and self._answer is not None and self._probs is not None:
            self._age = age
            shown = self.smoother.update(self._probs)
            return self._result(self._answer, None, clock() - t0, budget_ms, decision.why, d_ref, d_prev, age,
                                measure_ms, shown)
        rest = None if budget_ms is None else max(1e-3, budget_ms - measure_ms)
        prior = None
        if decision.prior and self._answer is not None and self._prior_scores is not None:
            prior = (self._answer.label, self._prior_scores)
        r = self.cascade.classify(frame, budget_ms=rest, prior=prior)
        self._probs = self.cascade.answer_probs()
        self._answer = r
        self._ref, self._ref_time, self._age = thumb, t0, 0
        shown = self.smoother.update(self._probs, reset=decision.cut)
        return self._result(r, r, clock() - t0, budget_ms, decision.why, d_ref, d_prev, 0, measure_ms, shown)

    def _result(self, answer: CascadeResult, ran: CascadeResult | None, seconds: float, budget_ms: float | None,
                why: str, d_ref: float | None, d_prev: float | None, age: int, measure_ms: float,
                shown: tuple[int, float]) -> TemporalResult:
        total = float(seconds * 1e3)
        met = None if budget_ms is None else bool(total <= budget_ms)
        return TemporalResult(answer, ran, total, budget_ms, met, why, d_ref, d_prev, age, float(measure_ms), shown[0],
                              self.cascade.classes[shown[0]], shown[1])

    def close(self) -> None:
        self.cascade.close()
