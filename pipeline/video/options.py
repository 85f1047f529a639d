"""The camera app's options as one frozen value, checked when made; the command line builds it in ``apps/``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.runtime.deadline import check_budget
from pipeline.errors import PipelineError
from pipeline.device import check_threads
from pipeline.names import PRECISIONS
from pipeline.temporal.rule import TemporalOptions


@dataclass(frozen=True)
class CameraOptions:
    """What one run of the camera app reads, how it classifies, and what it writes.

    ``budget_ms`` and ``fps`` are alternatives: the frame budget is ``budget_ms``, else
    ``1000 / fps``, else none. ``fps`` also paces image sources and sets a live recording's rate.
    """

    engines: Path  # a built model folder (holds manifest.json) or a folder of them, for the hint
    source: str  # as ``pipeline.video.sources.parse_source`` reads it
    budget_ms: float | None = None
    fps: float | None = None
    backend: str = "auto"
    precision: str = "fp32"
    policy: str = "default"
    threads: int = 1
    headless: bool = False
    output: Path | None = None  # the annotated video
    log: Path | None = None  # one JSON line per frame
    labels: Path | None = None  # true labels, for accuracy
    pace: bool = False
    max_frames: int | None = None
    crop: bool = False
    stall_timeout_s: float = 5.0
    reconnects: int = 5
    temporal: TemporalOptions = field(default_factory=TemporalOptions)  # frame reuse, prior, smoothing

    def __post_init__(self) -> None:
        check_budget(self.budget_ms)
        if self.budget_ms is not None and self.fps is not None:
            raise PipelineError("give a budget in milliseconds or a frame rate, not both")
        if self.fps is not None and (isinstance(self.fps, bool) or not isinstance(self.fps, (int, float))
                                     or not (math.isfinite(self.fps) and self.fps > 0)):
            raise PipelineError(f"fps should be a positive, finite number of frames per second; got {self.fps!r}")
        if self.precision not in PRECISIONS:
            raise PipelineError(f"unknown precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}")
        for name, low in (("threads", 1), ("max_frames", 1), ("reconnects", 0)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                flag = "--" + name.replace("_", "-")
                raise PipelineError(f"{flag} should be {low} or more; got {value}")
        check_threads(self.threads)
        if not (math.isfinite(self.stall_timeout_s) and self.stall_timeout_s > 0):
            raise PipelineError(f"--stall-timeout should be a positive number of seconds; got {self.stall_timeout_s}")
        if not isinstance(self.temporal, TemporalOptions):
            raise PipelineError(f"temporal should be a TemporalOptions; got {type(self.temporal).__name__}")
        for name in ("engines", "output", "log", "labels"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))

    @property
    def frame_budget_ms(self) -> float | None:
        """The time budget per frame, in ms, or None."""
        if self.budget_ms is not None:
            return float(self.budget_ms)
        return 1000.0 / self.fps if self.fps else None

    def outputs(self) -> dict[str, Path]:
        """The files the run writes, by option."""
        named = {"--output": self.output, "--log": self.log}
        return {option: path for option, path in named.items() if path is not None}
