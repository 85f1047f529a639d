"""The cascade for video: consecutive frames share work.

- :mod:`~pipeline.temporal.change`: a cheap change measure on small grey thumbnails.
- :mod:`~pipeline.temporal.rule`: reuse below a threshold with an age bound, cuts, when the prior applies.
- :mod:`~pipeline.temporal.smoothing`: the moving average of the softmax that is shown, reset on a cut.
- :mod:`~pipeline.temporal.cascade`: :class:`TemporalCascade`, the wrapper the camera app and the API use
  (a :class:`pipeline.runtime.AnytimeRuntime`, as the plain cascade is); :class:`TemporalResult` holds
  the cascade's :class:`~pipeline.runtime.cascade.CascadeResult`.
- :mod:`~pipeline.temporal.simulate`, :mod:`~pipeline.apps.temporal_calibrate`: the settings, chosen on
  validation clips and stored in the manifest's ``temporal`` table.

Nothing here imports torch; OpenCV is imported where a frame is measured.
"""

from pipeline.temporal.cascade import FrameResult, TemporalCascade, TemporalResult, answer_of
from pipeline.temporal.change import ChangeMeter
from pipeline.temporal.rule import TemporalOptions, TemporalSettings, decide
from pipeline.temporal.smoothing import SoftmaxSmoother

__all__ = ["FrameResult", "TemporalCascade", "TemporalResult", "answer_of", "ChangeMeter", "TemporalOptions",
           "TemporalSettings", "decide", "SoftmaxSmoother"]
