"""The shown answer's moving average: its arithmetic, and the reset on a cut."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.temporal.smoothing import SoftmaxSmoother

A, B = np.array([0.8, 0.1, 0.1]), np.array([0.1, 0.2, 0.7])


def test_moving_average_follows_slowly():
    s = SoftmaxSmoother(0.75)
    assert s.update(A) == (0, pytest.approx(0.8))
    label, _ = s.update(B)  # 0.75 * A + 0.25 * B = [0.625, 0.125, 0.25]
    assert label == 0 and np.allclose(s.mean, [0.625, 0.125, 0.25])
    for _ in range(5):
        label, conf = s.update(B)
    assert label == 2 and conf < 0.7


def test_a_cut_restarts_from_the_new_frame():
    s = SoftmaxSmoother(0.9)
    for _ in range(10):
        s.update(A)
    assert s.update(B, reset=True) == (2, pytest.approx(0.7))
    assert np.array_equal(s.mean, B)


def test_no_smoothing_shows_each_frame_and_bad_weights_are_refused():
    s = SoftmaxSmoother(0.0)
    s.update(A)
    assert s.update(B)[0] == 2
    for bad in (1.0, -0.1):
        with pytest.raises(PipelineError, match=r"in \[0, 1\)"):
            SoftmaxSmoother(bad)
