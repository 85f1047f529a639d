"""The runtime: what runs a built model on frames, with no torch.

``interface.AnytimeRuntime`` is the seam the camera, the video loop and the benchmarks hold; ``cascade.Cascade``
runs the stages of one frame until an exit is confident or the deadline (``deadline``) stops it, and
``pipeline.temporal.TemporalCascade`` wraps it for video.
"""

from __future__ import annotations

from pipeline.runtime.cascade import Cascade, CascadeResult
from pipeline.runtime.deadline import LatencyPredictor
from pipeline.runtime.interface import AnytimeRuntime

__all__ = ["AnytimeRuntime", "Cascade", "CascadeResult", "LatencyPredictor"]
