"""When a frame may reuse the last answer, when it is a cut, and when the temporal prior applies.

Two distances per frame (:mod:`pipeline.temporal.change`): ``d_prev`` against the frame just
before, ``d_ref`` against the last frame the cascade ran on (the *reference*, whose answer a
reused frame repeats). Measuring reuse against the reference, not the previous frame, means slow
drift adds up until it counts as change.

- ``d_prev >= cut_threshold``: a hard cut. The cascade runs, without the prior; smoothing restarts.
- ``d_ref < reuse_threshold``, the reference answer is young enough (``max_age_frames``
  frames, ``max_age_ms`` milliseconds): reuse it, no stage runs. A doubtful answer (confidence
  below ``min_confidence``) is young enough for ``doubtful_age_frames`` frames only (0: it is
  looked at again on the next frame): reusing it long would repeat a likely error over many
  frames, where frame by frame errs on some of them.
- otherwise the cascade runs; the prior applies when the frame changed (no cut, and ``d_ref``
  below the cut threshold too: the scene is the reference's). A re-run because the answer grew
  too old takes no prior: it is there to catch what the measure missed, so it looks afresh.

The settings come from the manifest's ``temporal`` table (written by
:mod:`pipeline.apps.temporal_calibrate`); :class:`TemporalOptions` are a user's overrides on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from pipeline.errors import PipelineError
from pipeline.temporal.change import DEFAULT_THUMB

DEFAULT_MAX_AGE_FRAMES = 5  # a sixth of a second at 30 frames/s


@dataclass(frozen=True)
class TemporalSettings:
    """What the temporal cascade does; every feature can be off (the frame-by-frame cascade)."""

    reuse_threshold: float | None = None  # grey levels; None: never reuse
    cut_threshold: float = math.inf  # grey levels between consecutive frames; inf: never a cut
    max_age_frames: int = DEFAULT_MAX_AGE_FRAMES  # a reused answer is at most this many frames old
    max_age_ms: float | None = None  # ... and at most this many milliseconds, when given
    prior_floor: float | None = None  # criterion units (confidence, or entropy); None: no temporal prior
    smoothing: float = 0.0  # weight of the past in the shown softmax's moving average; 0: off
    thumb: int = DEFAULT_THUMB
    min_confidence: float = 0.0  # below this confidence (max softmax) an answer is doubtful ...
    doubtful_age_frames: int = 0  # ... and is reused for at most this many frames

    def __post_init__(self) -> None:
        for name in ("reuse_threshold", "max_age_ms"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise PipelineError(f"{name} should be a finite number of 0 or more, or None; got {value!r}")
        if not (isinstance(self.cut_threshold, (int, float)) and self.cut_threshold > 0):
            raise PipelineError(f"cut_threshold should be a positive number of grey levels; got {self.cut_threshold!r}")
        if isinstance(self.max_age_frames, bool) or not isinstance(self.max_age_frames, int) or self.max_age_frames < 1:
            raise PipelineError(f"max_age_frames should be 1 or more; got {self.max_age_frames!r}")
        if (isinstance(self.doubtful_age_frames, bool) or not isinstance(self.doubtful_age_frames, int)
                or not 0 <= self.doubtful_age_frames <= self.max_age_frames):
            raise PipelineError(f"doubtful_age_frames should be 0 to max_age_frames ({self.max_age_frames}); "
                                f"got {self.doubtful_age_frames!r}")
        if not (isinstance(self.smoothing, (int, float)) and 0 <= self.smoothing < 1):
            raise PipelineError(f"smoothing should be in [0, 1) (the weight of past frames); got {self.smoothing!r}")
        if not (isinstance(self.min_confidence, (int, float)) and 0 <= self.min_confidence <= 1):
            raise PipelineError(f"min_confidence should be in [0, 1]; got {self.min_confidence!r}")
        if self.prior_floor is not None and not math.isfinite(self.prior_floor):
            raise PipelineError(f"prior_floor should be a finite number or None; got {self.prior_floor!r}")

    @property
    def active(self) -> bool:
        """Whether anything differs from the frame-by-frame cascade."""
        return self.reuse_threshold is not None or self.prior_floor is not None or self.smoothing > 0

    def describe(self) -> str:
        """The settings in one line, as the calibration and the video benchmark print them."""
        def level(value: float | None) -> str:
            return "none" if value is None else f"{value:.2f}"

        age = f"at most {self.max_age_frames} frames old"
        if self.min_confidence > 0:
            age += f" ({self.doubtful_age_frames} below confidence {self.min_confidence:g})"
        return (f"reuse below {level(self.reuse_threshold)}, cut from {self.cut_threshold:.2f} grey levels, {age}, "
                f"prior floor {level(self.prior_floor)}, smoothing {self.smoothing:g}")

    def to_table(self) -> dict[str, Any]:
        """The manifest's form (JSON: infinity as null)."""
        return {"reuse_threshold": self.reuse_threshold,
                "cut_threshold": None if math.isinf(self.cut_threshold) else self.cut_threshold,
                "max_age_frames": self.max_age_frames, "max_age_ms": self.max_age_ms,
                "prior_floor": self.prior_floor, "smoothing": self.smoothing, "thumb": self.thumb,
                "min_confidence": self.min_confidence, "doubtful_age_frames": self.doubtful_age_frames}

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> "TemporalSettings":
        """Back from the manifest's form; a PipelineError naming the fix when it is malformed."""
        try:
            cut = table.get("cut_threshold")
            return cls(reuse_threshold=table.get("reuse_threshold"), cut_threshold=math.inf if cut is None else cut,
                       max_age_frames=int(table.get("max_age_frames", DEFAULT_MAX_AGE_FRAMES)),
                       max_age_ms=table.get("max_age_ms"), prior_floor=table.get("prior_floor"),
                       smoothing=float(table.get("smoothing", 0.0)), thumb=int(table.get("thumb", DEFAULT_THUMB)),
                       min_confidence=float(table.get("min_confidence", 0.0)),
                       doubtful_age_frames=int(table.get("doubtful_age_frames", 0)))
        except (AttributeError, TypeError, ValueError, PipelineError) as exc:
            raise PipelineError(f"the manifest's temporal table is malformed ({exc}); recalibrate it with "
                                "`make temporal`") from None


@dataclass(frozen=True)
class TemporalOptions:
    """A user's choices over the calibrated settings; None keeps what the manifest says."""

    reuse: bool | None = None  # False: never skip a frame
    prior: bool | None = None  # False: the plain exit rule on every frame
    smoothing: float | None = None
    reuse_threshold: float | None = None
    max_age_frames: int | None = None
    max_age_ms: float | None = None

    def __post_init__(self) -> None:
        checks = (("smoothing", "--smoothing", "in [0, 1) (the weight of past frames)",
                   lambda v: 0 <= v < 1),
                  ("reuse_threshold", "--reuse-threshold", "a finite number of grey levels, 0 or more",
                   lambda v: math.isfinite(v) and v >= 0),
                  ("max_age_frames", "--max-reuse-frames", "an integer of 1 or more",
                   lambda v: isinstance(v, int) and v >= 1),
                  ("max_age_ms", "--max-reuse-ms", "a positive, finite number of milliseconds",
                   lambda v: math.isfinite(v) and v > 0))
        for name, flag, expected, ok in checks:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
                raise PipelineError(f"{flag} should be {expected}; got {value!r}")

    def apply(self, base: TemporalSettings) -> TemporalSettings:
        """``base`` with these choices applied; checked like any settings."""
        s = base
        if self.reuse_threshold is not None:
            s = replace(s, reuse_threshold=self.reuse_threshold)
        if self.reuse is False:
            s = replace(s, reuse_threshold=None)
        elif self.reuse is True and s.reuse_threshold is None:
            raise PipelineError("reuse was asked for, but no reuse threshold is calibrated for this variant; "
                                "calibrate it with `make temporal` or give --reuse-threshold")
        if self.prior is False:
            s = replace(s, prior_floor=None)
        elif self.prior is True and s.prior_floor is None:
            raise PipelineError("the temporal prior was asked for, but none is calibrated for this variant; "
                                "calibrate it with `make temporal`")
        if self.max_age_frames is not None:  # a doubtful answer's bound never outlasts the new one
            s = replace(s, max_age_frames=self.max_age_frames,
                        doubtful_age_frames=min(s.doubtful_age_frames, self.max_age_frames))
        for name in ("smoothing", "max_age_ms"):
            if getattr(self, name) is not None:
                s = replace(s, **{name: getattr(self, name)})
        return s


@dataclass(frozen=True)
class Decision:
    reuse: bool
    cut: bool
    prior: bool  # the cascade may take the prior's lower threshold (only when it runs)
    why: str  # "first frame", "cut", "unchanged", "age", "doubtful", "changed"


def decide(s: TemporalSettings, d_prev: float | None, d_ref: float | None, age_frames: int,
           age_ms: float, confidence: float = 1.0) -> Decision:
    """The rule above; ``None`` distances: there is no previous frame or no reference yet.
    ``confidence``: the reference answer's."""
    if d_prev is None or d_ref is None:
        return Decision(False, True, False, "first frame")
    if d_prev >= s.cut_threshold:
        return Decision(False, True, False, "cut")
    prior = s.prior_floor is not None and d_ref < s.cut_threshold
    if s.reuse_threshold is not None and d_ref < s.reuse_threshold:
        doubtful = confidence < s.min_confidence
        bound = s.doubtful_age_frames if doubtful else s.max_age_frames
        if age_frames <= bound and (s.max_age_ms is None or age_ms <= s.max_age_ms):
            return Decision(True, False, False, "unchanged")
        if doubtful:  # no prior either: the answer is in doubt
            return Decision(False, False, False, "doubtful")
        return Decision(False, False, False, "age")
    return Decision(False, False, prior, "changed")
