"""Frames in, for the camera app: sources, capture threads, model-input conversion, overlay, logs.

Every module here imports OpenCV lazily, inside the functions that need it, so importing
``pipeline.video`` costs nothing on a machine without a camera or a display.

- :mod:`~pipeline.video.sources`: parse ``--source`` (V4L2, CSI via GStreamer, RTSP/HTTP, a video
  file, images) and open it with a clear error when it cannot be; :func:`redact` hides credentials.
- :mod:`~pipeline.video.capture`: opens a source as a frame stream (:mod:`~pipeline.video.stream`):
  a latest-frame thread for live sources (:mod:`~pipeline.video.latest`: drops counted, bounded
  reconnects with backoff), in-order readers for files and image folders (:mod:`~pipeline.video.readers`:
  optional pacing).
- :mod:`~pipeline.video.frames`: any frame (grey, BGRA, any size) to the model's input.
- :mod:`~pipeline.video.overlay`: the answer, exit, timing against budget, FPS and drops, drawn.
- :mod:`~pipeline.video.report`: the per-frame JSON-lines log (whole lines) and the end-of-run summary.
- :mod:`~pipeline.video.labels`: ``--labels`` read before any output opens, matched to classes.
- :mod:`~pipeline.video.writer`, :mod:`~pipeline.video.window`: the annotated video, the window.
- :mod:`~pipeline.video.outputs`: outputs checked before opening (writable, never an input).
- :mod:`~pipeline.video.scenes`, :mod:`~pipeline.video.clip`: labelled test clips, scenes filmed by a
  moving camera (pans, shake, noise, flicker, blur, cuts), seeded.
- :mod:`~pipeline.video.options`, :mod:`~pipeline.video.inputs`, :mod:`~pipeline.video.run`: the
  camera app's run (options, inputs, start-up, loop; the clean stop is :mod:`pipeline.stop`).
"""

from pipeline.video.capture import Frame, FrameStream, LatestFrameCapture, open_stream
from pipeline.video.frames import to_bgr, to_model_input
from pipeline.video.labels import LabelTable, load_labels, read_labels
from pipeline.video.options import CameraOptions
from pipeline.video.overlay import display_frame, draw_overlay
from pipeline.video.report import FrameLog, RunSummary, format_summary, frame_record
from pipeline.video.sources import SourceSpec, open_capture, parse_source, redact
from pipeline.video.writer import VideoOutput

__all__ = [
    "Frame", "FrameStream", "LatestFrameCapture", "open_stream",
    "to_bgr", "to_model_input",
    "display_frame", "draw_overlay",
    "FrameLog", "RunSummary", "format_summary", "frame_record",
    "SourceSpec", "open_capture", "parse_source", "redact",
    "LabelTable", "load_labels", "read_labels", "CameraOptions", "VideoOutput",
]
