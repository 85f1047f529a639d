"""The change measure on synthetic frames: identical, shifted by a pixel, noisy, brighter, a cut."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.temporal.change import ChangeMeter
from tests.temporal.doubles import noisy, scene


def test_identical_shifted_noisy_flicker_and_cut_are_ordered():
    meter = ChangeMeter(16)
    a = scene(0, seed=1)
    t = meter.thumb(a)
    assert t.shape == (16, 16) and t.dtype == np.float32 and abs(float(t.mean())) < 1e-3
    same = meter.distance(t, meter.thumb(a.copy()))
    shifted = meter.distance(t, meter.thumb(np.roll(a, 1, axis=1)))
    noise = meter.distance(t, meter.thumb(noisy(a, 3.0, seed=2)))
    brighter = meter.distance(t, meter.thumb(np.clip(a.astype(int) + 12, 0, 255).astype(np.uint8)))
    cut = meter.distance(t, meter.thumb(scene(0, seed=7)))
    assert same == 0.0
    assert brighter < 0.5  # exposure flicker is not change
    assert noise < 2.0 and shifted < 10.0  # noise averages out on the thumbnail; a pixel of motion stays small
    assert cut > 3 * max(noise, shifted)  # a new scene stands far above both


def test_any_frame_size_and_batch_axis():
    meter = ChangeMeter(8)
    big = np.repeat(np.repeat(scene(1, seed=3), 4, axis=0), 4, axis=1)  # (128, 128, 3)
    assert meter.thumb(big[None]).shape == (8, 8)
    assert meter.distance(meter.thumb(big), meter.thumb(big[None])) == 0.0


def test_bad_frames_and_sizes_are_refused():
    with pytest.raises(PipelineError, match="at least 2 pixels"):
        ChangeMeter(1)
    with pytest.raises(PipelineError, match=r"expected an \(H, W, 3\) uint8 frame"):
        ChangeMeter().thumb(np.zeros((32, 32), np.uint8))
    with pytest.raises(PipelineError, match="uint8"):
        ChangeMeter().thumb(np.zeros((32, 32, 3), np.float32))
