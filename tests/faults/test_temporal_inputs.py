"""The temporal cascade refuses what the plain cascade refuses: a budget that is NaN, negative, zero or a
boolean, and a frame of the wrong shape even when it would only have reused the last answer."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.temporal.cascade import TemporalCascade
from pipeline.temporal.rule import TemporalSettings
from tests.temporal.doubles import colour_cascade, scene


@pytest.mark.parametrize("budget", [float("nan"), -1.0, 0, True, float("inf")])
def test_budgets_the_plain_cascade_refuses_are_refused(budget):
    base = colour_cascade()
    t = TemporalCascade(base, TemporalSettings(reuse_threshold=1e6, cut_threshold=1e6))
    with pytest.raises(PipelineError, match="budget_ms should be"):
        t.classify(scene(0, seed=1), budget_ms=budget)
    assert base.chain.runs == []


def test_a_frame_of_the_wrong_shape_is_refused_after_the_first(tmp_path):
    base = colour_cascade()
    t = TemporalCascade(base, TemporalSettings(reuse_threshold=1e6, cut_threshold=1e6))  # reuse everything
    t.classify(scene(0, seed=1))
    for frame in (np.zeros((64, 64, 3), np.uint8), np.zeros((32, 32), np.uint8), np.zeros((32, 32, 3), np.float32)):
        with pytest.raises(PipelineError, match=r"expected a 32x32 \(H, W, 3\)"):
            t.classify(frame)
    assert t.classify(scene(0, seed=1)).reused
