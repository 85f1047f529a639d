"""The overlay: its lines, red for a missed budget, legible on small frames."""

from __future__ import annotations

import numpy as np

from pipeline.runtime.cascade import CascadeResult
from pipeline.temporal.cascade import TemporalResult
from pipeline.video.overlay import GREEN, RED, display_frame, draw_overlay, overlay_lines


def result(exit=2):
    return CascadeResult(1, "green", 0.934, exit, 3, [1.0] * exit, float(exit), 10.0, True, "confidence")


def red_pixels(image):
    b, g, r = image[..., 0].astype(int), image[..., 1].astype(int), image[..., 2].astype(int)
    return int(((r > 150) & (g < 80) & (b < 80)).sum())


def test_lines_say_class_exit_time_fps_drops():
    lines = overlay_lines(result(), frame_ms=12.34, budget_ms=33.3, fps=29.76, dropped=3)
    assert [t for t, _ in lines] == ["green 93%", "exit 2/3", "frame 12.3 / 33.3 ms", "29.8 FPS  drops 3"]
    assert lines[2][1] == GREEN
    assert overlay_lines(result(), 40.0, 33.3, None, 0)[2] == ("frame 40.0 / 33.3 ms", RED)
    assert overlay_lines(result(), 4.0, None, None, 0)[2][0] == "frame 4.0 ms"


def test_the_temporal_cascade_shows_the_smoothed_answer_and_says_reused():
    answer = result(exit=2)
    reused = TemporalResult(answer, None, 0.3, 10.0, True, "unchanged", 1.0, 1.0, 1, 0.3, 2, "red", 0.71)
    lines = overlay_lines(reused, frame_ms=5.0, budget_ms=33.3, fps=None, dropped=0)
    assert [t for t, _ in lines[:2]] == ["red 71%", "exit 2/3 reused"]  # shown answer; the exit that gave it
    ran = TemporalResult(answer, answer, 2.0, 10.0, True, "changed", 9.0, 9.0, 0, 0.3, 1, "green", 0.9)
    assert [t for t, _ in overlay_lines(ran, 5.0, None, None, 0)[:2]] == ["green 90%", "exit 2/3"]


def test_small_frames_are_enlarged_for_display():
    small = np.zeros((32, 32), np.uint8)  # grey, CIFAR-sized
    shown = display_frame(small)
    assert shown.shape == (384, 384, 3)
    big = np.zeros((480, 640, 3), np.uint8)
    assert display_frame(big).shape == big.shape and display_frame(big) is not big
    narrow = np.full((300, 1, 3), 200, np.uint8)  # a frame one pixel wide: no room for text, and video
    shown = display_frame(narrow)  # writers fail on some such widths
    assert shown.shape == (600, 320, 3) and (shown[:, :2] == 200).all() and (shown[:, 2:] == 0).all()


def test_missed_budget_is_drawn_red():
    canvas = np.full((360, 480, 3), 128, np.uint8)
    met = draw_overlay(canvas.copy(), result(), frame_ms=5.0, budget_ms=10.0, fps=30.0, dropped=0)
    missed = draw_overlay(canvas.copy(), result(), frame_ms=15.0, budget_ms=10.0, fps=30.0, dropped=0)
    assert not np.array_equal(met, canvas)
    assert red_pixels(missed) > 20 and red_pixels(met) == 0
    tiny = draw_overlay(np.zeros((20, 30, 3), np.uint8), result(), frame_ms=1.0, title="rtsp://u:p@cam/x")
    assert tiny.shape == (20, 30, 3)  # text clipped, no error
