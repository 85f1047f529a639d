"""The answer drawn on the frame a person sees or the output video records.

    cat 93%                   class and confidence (the smoothed answer, with the temporal cascade)
    exit 2/3                  which classifier answered, of how many ("reused" when no stage ran)
    frame 12.4 / 33.3 ms      the frame's time against its budget: green if held, red if missed
    29.8 FPS  drops 3         throughput and frames the live source produced that were skipped
"""

from __future__ import annotations

import numpy as np

from pipeline.temporal.cascade import FrameResult, TemporalResult, answer_of
from pipeline.video.frames import to_bgr
from pipeline.video.sources import redact

WHITE, GREEN, RED, BLACK = (255, 255, 255), (0, 200, 0), (0, 0, 255), (0, 0, 0)  # BGR


def display_frame(image: np.ndarray, min_height: int = 360, min_width: int = 320) -> np.ndarray:
    """A BGR copy of a source frame, enlarged (whole pixels, no blur) until it is ``min_height`` tall, and
    widened with black on the right to ``min_width``.

    Small inputs (a 32x32 CIFAR clip) would otherwise have no room for legible text; a frame a few pixels
    wide has none either, and OpenCV's MJPG writer corrupts its memory on some such widths.
    """
    import cv2

    bgr = to_bgr(image)
    h = bgr.shape[0]
    if h < min_height:
        scale = -(-min_height // h)  # ceil
        bgr = cv2.resize(bgr, (bgr.shape[1] * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    else:
        bgr = bgr.copy()
    if bgr.shape[1] < min_width:
        bgr = cv2.copyMakeBorder(bgr, 0, 0, 0, min_width - bgr.shape[1], cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return bgr


def overlay_lines(result: FrameResult, frame_ms: float, budget_ms: float | None, fps: float | None,
                  dropped: int) -> list[tuple[str, tuple[int, int, int]]]:
    """The text lines and their colours, for the plain or the temporal cascade's result."""
    timing = f"frame {frame_ms:.1f} ms"
    colour = WHITE
    if budget_ms is not None:
        timing = f"frame {frame_ms:.1f} / {budget_ms:.1f} ms"
        colour = GREEN if frame_ms <= budget_ms else RED
    rate = f"{fps:.1f} FPS" if fps else "-- FPS"
    answer = answer_of(result)
    name, conf = answer.class_name, answer.confidence
    reused = ""
    if isinstance(result, TemporalResult):  # the smoothed answer is the one shown
        name, conf = result.shown_class, result.shown_confidence
        reused = " reused" if result.reused else ""
    return [
        (f"{name} {100 * conf:.0f}%", WHITE),
        (f"exit {answer.exit}/{answer.num_exits}{reused}", WHITE),
        (timing, colour),
        (f"{rate}  drops {dropped}", WHITE),
    ]


def draw_overlay(image: np.ndarray, result: FrameResult, *, frame_ms: float, budget_ms: float | None = None,
                 fps: float | None = None, dropped: int = 0, title: str | None = None) -> np.ndarray:
    """Draw the result's lines on ``image`` ((H, W, 3) uint8 BGR) in place, top left; returns it.

    ``title`` (e.g. the source's name) goes first, redacted like everything else shown.
    """
    import cv2

    lines = overlay_lines(result, frame_ms, budget_ms, fps, dropped)
    if title:
        lines.insert(0, (redact(title), WHITE))
    h, w = image.shape[:2]
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, min(1.0, h / 720))
    thick = 1 if scale < 0.7 else 2
    sizes = [cv2.getTextSize(text, font, scale, thick) for text, _ in lines]
    line_h = max(th + base for (_, th), base in sizes) + 4
    pad = 6
    box_w = min(w, max(tw for (tw, _), _ in sizes) + 2 * pad)
    box_h = min(h, line_h * len(lines) + pad)
    roi = image[:box_h, :box_w]
    roi[:] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken behind the text: legible on any frame
    for i, (text, colour) in enumerate(lines):
        y = pad + line_h * (i + 1) - 4
        cv2.putText(image, text, (pad, y), font, scale, colour, thick, cv2.LINE_AA)
    return image
