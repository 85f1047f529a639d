"""The cascade for video: frames that did not change reuse the last answer; the rest may exit earlier.

    cascade = TemporalCascade.from_folder("engines/msdnet_cifar", precision="int8")
    for frame in frames:                       # consecutive (H, W, 3) uint8 frames of one stream
        r = cascade.classify(frame, budget_ms=20.0)
        r.class_name, r.reused, r.why, r.stages, r.shown_class

Per frame: the change measure (:mod:`pipeline.temporal.change`) against the previous frame and
the reference (the last frame the cascade ran on), the rule (:mod:`pipeline.temporal.rule`), then
either the reference's answer again (no stage runs; the frame costs the measure only) or the
wrapped :class:`~pipeline.cascade.Cascade` under the usual deadline rule, given the budget less
the measure's time. When the prior applies, exit k may also answer when it agrees with the
previous answer and its score reaches ``min(threshold k, prior floor)``: never a higher bar than
the plain rule, and never after a cut. The shown answer is the moving average of the softmax
(:mod:`pipeline.temporal.smoothing`). One instance follows one stream: :meth:`reset` between streams.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.cascade import Cascade
from pipeline.errors import PipelineError
from pipeline.temporal.change import ChangeMeter
from pipeline.temporal.rule import TemporalOptions, TemporalSettings, decide
from pipeline.temporal.smoothing import SoftmaxSmoother
from pipeline.thresholds import to_scores


@dataclass(frozen=True)
class TemporalResult:
    """A cascade answer (the fields of CascadeResult) and what the temporal rule did on this frame."""

    label: int
    class_name: str
    confidence: float
    exit: int  # the exit that gave the answer (the reference's when reused)
    num_exits: int
    stage_ms: list[float]  # stages run on this frame; empty when reused
    total_ms: float  # the change measure plus any stages
    budget_ms: float | None
    deadline_met: bool | None
    stopped_by: str  # the cascade's reason, or "reused"
    reused: bool
    why: str  # "first frame", "cut", "unchanged", "age", "doubtful", "changed"
    change: float | None  # distance to the reference, grey levels
    change_prev: float | None  # distance to the previous frame
    age: int  # frames since the answer's own frame (0 when the cascade ran)
    measure_ms: float
    shown_label: int
    shown_class: str
    shown_confidence: float

    @property
    def stages(self) -> int:
        """How many stages ran on this frame."""
        return len(self.stage_ms)


class TemporalCascade:
    """A Cascade followed over consecutive frames; everything not temporal is the wrapped cascade's."""

    def __init__(self, cascade: Cascade, settings: TemporalSettings,
                 clock: Callable[[], float] = time.perf_counter):
        if not hasattr(cascade, "answer_probs"):
            raise PipelineError("the temporal cascade wraps a pipeline.cascade.Cascade (it reads answer_probs)")
        self.cascade, self.settings, self._clock = cascade, settings, clock
        self.meter = ChangeMeter(settings.thumb)
        self.smoother = SoftmaxSmoother(settings.smoothing)
        self._prior_scores: list[float] | None = None
        if settings.prior_floor is not None:
            floor = to_scores([settings.prior_floor] * cascade.num_exits, cascade.criterion)
            plain = to_scores(cascade.thresholds, cascade.criterion)
            self._prior_scores = np.minimum(plain, floor).tolist()  # never above the plain rule's bar
        self.reset()

    @classmethod
    def from_folder(cls, folder: str | Path, temporal: TemporalOptions | None = None, **kw: Any) -> "TemporalCascade":
        """``Cascade.from_folder(folder, **kw)`` with the manifest's temporal settings for its variant."""
        from pipeline.manifest import load_manifest, variant_key

        cascade = Cascade.from_folder(folder, **kw)
        try:
            key = variant_key(cascade.backend, cascade.precision)
            table = load_manifest(folder, verify=False).temporal.get(key)
            if table:
                base = TemporalSettings.from_table(table)
                if table.get("policy", cascade.policy) != cascade.policy:
                    cascade.notes.append(f"the temporal settings of {key} were calibrated with the "
                                         f"{table['policy']!r} exit policy, not {cascade.policy!r}: recalibrate with "
                                         f"`make temporal TEMPORAL_ARGS='--policy {cascade.policy}'`")
            else:
                base = TemporalSettings()
                if temporal is None or temporal.reuse is not False:
                    cascade.notes.append(f"no temporal calibration for {key} in the manifest: every frame runs the "
                                         "cascade (calibrate frame reuse and the temporal prior with `make temporal`)")
            return cls(cascade, (temporal or TemporalOptions()).apply(base))
        except BaseException:
            cascade.close()
            raise

    def reset(self) -> None:
        """Forget the stream: the next frame is a first frame."""
        self._prev: np.ndarray | None = None  # (s, s) thumbnail of the previous frame
        self._ref: np.ndarray | None = None  # ... of the reference frame
        self._ref_time = 0.0
        self._age = 0
        self._answer: tuple[int, float, int] | None = None  # label, confidence, exit of the reference
        self._probs: np.ndarray | None = None  # (C,) its softmax
        self.smoother.reset()

    def __getattr__(self, name: str) -> Any:  # classes, num_exits, backend, frame_size, notes, ...
        if name == "cascade":
            raise AttributeError(name)
        return getattr(self.cascade, name)

    def classify(self, frame: np.ndarray, budget_ms: float | None = None) -> TemporalResult:
        """Answer the next frame of the stream (see the module's docstring)."""
        clock, s = self._clock, self.settings
        t0 = clock()
        thumb = self.meter.thumb(frame)
        d_prev = None if self._prev is None else self.meter.distance(thumb, self._prev)
        d_ref = None if self._ref is None else self.meter.distance(thumb, self._ref)
        self._prev = thumb
        age = self._age + 1
        decision = decide(s, d_prev, d_ref, age, (t0 - self._ref_time) * 1e3,
                          1.0 if self._answer is None else self._answer[1])
        measure_ms = (clock() - t0) * 1e3
        if decision.reuse and self._answer is not None and self._probs is not None:
            self._age = age
            label, conf, exit_ = self._answer
            shown = self.smoother.update(self._probs)
            total = (clock() - t0) * 1e3
            return self._result(label, conf, exit_, [], total, budget_ms, "reused", True, decision.why, d_ref,
                                d_prev, age, measure_ms, shown)
        rest = None if budget_ms is None else max(1e-3, budget_ms - measure_ms)
        prior = None
        if decision.prior and self._answer is not None and self._prior_scores is not None:
            prior = (self._answer[0], self._prior_scores)
        r = self.cascade.classify(frame, budget_ms=rest, prior=prior)
        self._probs = self.cascade.answer_probs()
        self._answer = (r.label, r.confidence, r.exit)
        self._ref, self._ref_time, self._age = thumb, t0, 0
        shown = self.smoother.update(self._probs, reset=decision.cut)
        total = (clock() - t0) * 1e3
        return self._result(r.label, r.confidence, r.exit, list(r.stage_ms), total, budget_ms, r.stopped_by, False,
                            decision.why, d_ref, d_prev, 0, measure_ms, shown)

    def _result(self, label: int, conf: float, exit_: int, stage_ms: list[float], total: float,
                budget_ms: float | None, stopped_by: str, reused: bool, why: str, d_ref: float | None,
                d_prev: float | None, age: int, measure_ms: float, shown: tuple[int, float]) -> TemporalResult:
        classes = self.cascade.classes
        return TemporalResult(label, classes[label], conf, exit_, self.cascade.num_exits, stage_ms, float(total),
                              budget_ms, None if budget_ms is None else bool(total <= budget_ms), stopped_by, reused,
                              why, d_ref, d_prev, age, float(measure_ms), shown[0], classes[shown[0]], shown[1])

    def close(self) -> None:
        self.cascade.close()

    def __enter__(self) -> "TemporalCascade":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
